import numpy as np
import pytest

from mask2iv_ros.data.curation import (filter_by_motion, mask_iou, motion_keep_mask, motion_score,
                                       select_manipulated_object, temporal_miou)
from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode


def _square_track(T, positions, size=4, hw=(20, 20)):
    masks = np.zeros((T,) + hw, bool)
    for t, (y, x) in enumerate(positions):
        masks[t, y:y + size, x:x + size] = True
    return masks


def test_motion_score_hand_computed():
    T = 5
    static = _square_track(T, [(2, 2)] * T)
    moving = _square_track(T, [(10, 2 + 2 * t) for t in range(T)])  # 2 px per frame to the right
    assert motion_score(static, static) == 0.0
    diag = np.hypot(20, 20)
    # actor still, object 2 px/frame: mean of the two centroid speeds over the diagonal
    assert motion_score(static, moving) == pytest.approx((0 + 2) / 2 / diag)
    assert motion_score(moving, moving) == pytest.approx(2 / diag)
    # a growing mask adds the relative area change
    grow = np.zeros((2, 20, 20), bool)
    grow[0, :4, :4] = True
    grow[1, :4, :8] = True
    area_only = motion_score(np.zeros_like(grow), grow, area_weight=1.0) - motion_score(
        np.zeros_like(grow), grow, area_weight=0.0)
    assert area_only == pytest.approx(16 / 24)  # |32-16| / mean(16, 32)


def test_filter_by_motion_drops_below_5th_percentile():
    scores = list(np.linspace(1.0, 20.0, 20))
    keep, threshold = motion_keep_mask(scores, 5)
    assert threshold == pytest.approx(np.percentile(scores, 5))
    assert keep.tolist() == [False] + [True] * 19
    assert filter_by_motion(scores) == scores[1:]
    cfg = SyntheticConfig(height=48, width=64, num_frames=8)
    clips = [generate_episode(2, i, cfg) for i in range(6)]
    still = generate_episode(2, 6, cfg)
    still.frames[:] = still.frames[:1]
    still.actor_masks[:] = still.actor_masks[:1]
    still.object_masks[:] = still.object_masks[:1]
    kept = filter_by_motion(clips + [still], percentile=5)
    assert still not in kept and len(kept) == 6


def test_temporal_miou_hand_computed():
    T = 5
    assert temporal_miou(_square_track(T, [(2, 2)] * T)) == 1.0
    # 4x4 square shifted by 2 px between sampled frames: IoU = 8 / 24
    shifting = _square_track(T, [(2, 2 + 2 * t) for t in range(T)])
    assert temporal_miou(shifting, num_samples=5) == pytest.approx(8 / 24)
    assert mask_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0


def test_selection_picks_the_moved_object_of_a_synthetic_scene():
    cfg = SyntheticConfig(height=64, width=96, num_frames=10, actions=("push", "pull", "put"))
    for i in range(4):
        clip = generate_episode(4, i, cfg)
        moved = clip.object_masks
        # distractors: objects that stay where they are (one the target's own first-frame shape
        # elsewhere, one static copy in place)
        elsewhere = np.roll(np.repeat(moved[:1], len(moved), 0), 20, axis=2)
        in_place = np.repeat(moved[:1], len(moved), 0)
        tracks = [elsewhere, moved, in_place]
        best, mious = select_manipulated_object(tracks)
        assert best == 1, (clip.prompt, mious)
        assert mious[0] == mious[2] == 1.0 and mious[1] < 0.9


def test_lost_tracks_are_not_selected():
    T = 6
    lost = _square_track(T, [(2, 2)] * 2 + [(0, 0)] * 4)
    lost[2:] = False  # vanishes after two frames: IoU 0 but not a moving object
    moving = _square_track(T, [(10, 2 + t) for t in range(T)])
    best, mious = select_manipulated_object([lost, moving])
    assert best == 1 and mious[0] == float("inf")
