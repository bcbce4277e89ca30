import math

import numpy as np
import pytest

from mask2iv_ros.eval.metrics_trajectory import (agreement_rate, centroid, direction_agreement,
                                                 mask_iou, per_frame_iou, placement_metrics,
                                                 trajectory_metrics)
from mask2iv_ros.eval.prompt_direction import direction_vector, parse_prompt_direction


def _box(h, w, top, left, size):
    mask = np.zeros((h, w), bool)
    mask[top:top + size, left:left + size] = True
    return mask


def _moving_box(start, step, frames=5, h=40, w=40, size=6):
    """A size x size box whose top-left corner (row, col) moves by `step` per frame."""
    return np.stack([_box(h, w, start[0] + k * step[0], start[1] + k * step[1], size) for k in range(frames)])


def test_mask_iou_hand_made():
    a = _box(10, 10, 0, 0, 4)                   # 16 px
    b = _box(10, 10, 2, 2, 4)                   # overlap 2x2 = 4 px, union 28
    assert mask_iou(a, b) == pytest.approx(4 / 28)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0
    assert mask_iou(a, np.zeros_like(a)) == 0.0
    ious = per_frame_iou(np.stack([a, a]), np.stack([a, b]))
    assert ious.tolist() == pytest.approx([1.0, 4 / 28])


def test_centroid_and_placement():
    target = _box(20, 20, 10, 4, 4)             # centroid (x=5.5, y=11.5)
    assert centroid(target).tolist() == [5.5, 11.5]
    predicted = np.stack([_box(20, 20, 0, 0, 4), _box(20, 20, 13, 7, 4)])  # last centroid (8.5, 14.5)
    result = placement_metrics(predicted, target)
    assert result["centroid_error_px"] == pytest.approx(math.sqrt(3 ** 2 + 3 ** 2))
    assert result["placement_iou"] == pytest.approx(1 / 31)    # 1 px overlap
    empty = placement_metrics(np.zeros((2, 20, 20), bool), target)
    assert empty["placement_iou"] == 0.0 and math.isnan(empty["centroid_error_px"])


@pytest.mark.parametrize("prompt,expected", [
    ("push the red block to the left", "left"),
    ("pull the blue cylinder to the right", "right"),
    ("push the green bar forward", "forward"),
    ("pull the yellow disc backward", "backward"),
    ("pick up the blue cylinder", "up"),
    ("a hand picking up a mug", "up"),
    ("put the cup down", "down"),
    ("push the right block", "forward"),        # 'right' as an adjective, the verb decides
    ("pull the mug", "backward"),
    ("move the block left", "left"),
    ("slide the left block to the right", "right"),
    ("put the red block to the left of the blue disc", None),
    ("open the drawer", None),
])
def test_prompt_direction_parsing(prompt, expected):
    assert parse_prompt_direction(prompt) == expected


def test_direction_vectors_follow_image_axes():
    assert direction_vector("left").tolist() == [-1.0, 0.0]
    assert direction_vector("forward").tolist() == [0.0, -1.0]   # away from camera = up in image
    assert direction_vector("backward", forward=(0, 1)).tolist() == [0.0, -1.0]
    with pytest.raises(ValueError, match="direction"):
        direction_vector("sideways")


def test_direction_agreement_on_hand_made_trajectories():
    moving_left = _moving_box((15, 30), (0, -4))
    moving_up = _moving_box((30, 15), (-4, 0))
    still = _moving_box((15, 15), (0, 0))
    assert direction_agreement(moving_left, "push the red block to the left").agrees is True
    assert direction_agreement(moving_left, "push the red block to the right").agrees is False
    assert direction_agreement(moving_up, "pick up the cube").agrees is True
    assert direction_agreement(moving_up, "push the cube forward").agrees is True
    assert direction_agreement(moving_up, "pull the cube backward").agrees is False
    assert direction_agreement(still, "push the cube forward").agrees is False  # did not move
    check = direction_agreement(moving_left, "open the drawer")
    assert check.agrees is None and check.displacement.tolist() == [-16.0, 0.0]


def test_trajectory_metrics_and_agreement_rate():
    target_object = _moving_box((15, 30), (0, -4))
    target_actor = _moving_box((5, 30), (0, -4))
    metrics = trajectory_metrics(target_actor, target_object, target_actor, target_object,
                                 prompt="push the block to the left")
    assert metrics == {"actor_iou": 1.0, "object_iou": 1.0, "placement_iou": 1.0,
                       "centroid_error_px": 0.0, "direction_agrees": 1.0}
    shifted = np.roll(target_object, 3, axis=2)  # 3 px to the right on every frame
    metrics = trajectory_metrics(target_actor, shifted, target_actor, target_object, prompt="open it")
    assert metrics["object_iou"] == pytest.approx(18 / 54)  # 6x3 overlap, union 2*36-18
    assert metrics["centroid_error_px"] == pytest.approx(3.0)
    assert math.isnan(metrics["direction_agrees"])
    assert agreement_rate([1.0, 0.0, float("nan"), 1.0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="predicted_masks"):
        trajectory_metrics(target_actor[:, :10], target_object, target_actor, target_object)


def test_ground_truth_synthetic_episodes_agree_with_their_prompts():
    """The synthetic generator's conventions (forward = up in the image, pick up = rises)."""
    from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode

    config = SyntheticConfig(height=64, width=80, num_frames=8)
    checked = 0
    for index in range(12):
        clip = generate_episode(3, index, config)
        check = direction_agreement(clip.object_masks, clip.prompt)
        if clip.action == "put":
            assert check.agrees is None  # "put X to the left of Y" names a place, not a motion
        else:
            assert check.agrees is True, (clip.prompt, check.displacement)
            checked += 1
    assert checked >= 5
