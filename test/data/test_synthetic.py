import numpy as np
import pytest

from mask2iv_ros.data.synthetic import ACTIONS, SyntheticConfig, generate_episode
from mask2iv_ros.eval.metrics_trajectory import centroid


def test_episodes_are_seeded_and_varied(small_cfg):
    a, b = generate_episode(5, 0, small_cfg), generate_episode(5, 0, small_cfg)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.object_masks, b.object_masks)
    assert a.prompt == b.prompt
    prompts = {generate_episode(5, i, small_cfg).prompt for i in range(12)}
    assert len(prompts) >= 8  # different objects/actions per episode


def test_masks_are_visible_disjoint_regions(small_cfg):
    for i in range(6):
        clip = generate_episode(1, i, small_cfg)
        assert clip.frames.shape == (10, 64, 96, 3) and clip.frames.dtype == np.uint8
        assert not (clip.actor_masks & clip.object_masks).any()
        assert clip.object_masks.any(axis=(1, 2)).all(), "the target is visible in every frame"
        assert clip.actor_masks.any(axis=(1, 2)).all(), "the arm is visible in every frame"
        np.testing.assert_array_equal(clip.placement_mask, clip.object_masks[-1])
        # the arm comes in from outside the image: its mask touches a border in the first frame
        a0 = clip.actor_masks[0]
        assert a0[0].any() or a0[-1].any() or a0[:, 0].any() or a0[:, -1].any()


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_move_the_object_as_described(action):
    cfg = SyntheticConfig(height=96, width=128, num_frames=12, actions=(action,), noise_std=0.0, jitter_px=0.0)
    for i in range(3):
        clip = generate_episode(11, i, cfg)
        assert clip.action == action and clip.prompt.startswith(action)
        start, end = centroid(clip.object_masks[0]), centroid(clip.object_masks[-1])
        shift = end - start
        if action == "pick up":
            assert shift[1] < -3, f"lifted object should rise in the image: {clip.prompt} {shift}"
        elif action == "put":
            assert np.hypot(*shift) > 8, f"{clip.prompt}: moved {shift}"
        else:
            expected = {"left": (-1, 0), "right": (1, 0), "forward": (0, -1), "backward": (0, 1)}[clip.direction]
            assert clip.prompt.endswith({"left": "to the left", "right": "to the right"}.get(
                clip.direction, clip.direction))
            assert float(np.dot(shift, expected)) > 8, f"{clip.prompt}: moved {shift}"
        # the gripper reaches the object: arm and object touch at some frame
        dilated_actor = np.zeros_like(clip.actor_masks)
        dilated_actor[:, 1:] |= clip.actor_masks[:, :-1]
        dilated_actor[:, :-1] |= clip.actor_masks[:, 1:]
        dilated_actor[:, :, 1:] |= clip.actor_masks[:, :, :-1]
        dilated_actor[:, :, :-1] |= clip.actor_masks[:, :, 1:]
        assert (dilated_actor & clip.object_masks).any()


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="actions"):
        SyntheticConfig(actions=("jump",))
    with pytest.raises(ValueError, match="num_frames"):
        SyntheticConfig(num_frames=2)
