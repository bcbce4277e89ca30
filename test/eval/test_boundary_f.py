"""Boundary F-score (DAVIS' F) on hand-made masks."""

import cv2
import numpy as np
import pytest

from mask2iv_ros.eval.metrics_trajectory import (boundary_f_score, boundary_tolerance_px,
                                                 mask_boundary, mask_iou, per_frame_boundary_f)


def _box(h, w, top, left, height, width):
    mask = np.zeros((h, w), bool)
    mask[top:top + height, left:left + width] = True
    return mask


def _gripper(h=64, w=64):
    """A palm with two thin fingers: the kind of detail a blobby mask loses."""
    mask = np.zeros((h, w), bool)
    mask[20:30, 16:48] = True
    mask[30:46, 16:20] = True
    mask[30:46, 44:48] = True
    return mask


def test_boundary_is_the_inner_contour_and_not_the_image_border():
    box = _box(10, 10, 2, 3, 4, 5)
    expected = box.copy()
    expected[3:5, 4:7] = False                  # the 2x3 interior
    assert (mask_boundary(box) == expected).all()
    full = np.ones((6, 6), bool)
    assert not mask_boundary(full).any()        # the picture's edge is no object boundary
    left_half = _box(6, 6, 0, 0, 6, 3)
    assert mask_boundary(left_half).nonzero()[1].tolist() == [2] * 6


def test_identical_masks_score_one_and_empty_cases():
    gripper = _gripper()
    assert boundary_f_score(gripper, gripper) == 1.0
    empty = np.zeros_like(gripper)
    assert boundary_f_score(empty, empty) == 1.0
    assert boundary_f_score(gripper, empty) == 0.0
    assert boundary_f_score(empty, gripper) == 0.0


def test_tolerance_decides_what_counts_as_on_the_boundary():
    one = np.zeros((12, 12), bool)
    one[5, 5] = True
    two = np.zeros_like(one)
    two[5, 7] = True                            # 2 px away
    assert boundary_f_score(one, two, tolerance_px=1) == 0.0
    assert boundary_f_score(one, two, tolerance_px=2) == 1.0
    # one of two predicted pixels on the target: precision 1/2, recall 1 -> F = 2/3
    both = one.copy()
    both[10, 1] = True
    assert boundary_f_score(both, one, tolerance_px=1) == pytest.approx(2 / 3)
    # DAVIS' default: ceil(0.008 x diagonal), at least one pixel
    assert boundary_tolerance_px((64, 64)) == 1
    assert boundary_tolerance_px((320, 512)) == 5
    assert boundary_tolerance_px((480, 854)) == 8


def test_shift_beyond_the_tolerance_lowers_the_score():
    gt = _box(40, 40, 10, 10, 12, 12)
    scores = [boundary_f_score(np.roll(gt, shift, axis=1), gt, tolerance_px=1)
              for shift in (0, 1, 2, 3, 5)]
    assert scores[0] == scores[1] == 1.0        # within the tolerance: a perfect boundary
    assert scores[2] < 1.0
    assert scores[2] > scores[4]
    # only the top and bottom edges still match when the box is 5 px off
    assert scores[4] < 0.7


def test_blobby_mask_scores_lower_than_a_sharp_one_with_the_same_iou():
    gt = _gripper()
    sharp = np.roll(np.roll(gt, 1, axis=0), 1, axis=1)        # one pixel off, diagonally
    blobby = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 3) > 0.3   # smoothed, fingers merged
    assert mask_iou(sharp, gt) == pytest.approx(mask_iou(blobby, gt), abs=0.03)
    assert boundary_f_score(sharp, gt) > 0.95
    assert boundary_f_score(blobby, gt) < boundary_f_score(sharp, gt) - 0.25


def test_per_frame_and_shape_errors():
    gt = _gripper()
    video = np.stack([gt, np.roll(gt, 6, axis=1)])
    scores = per_frame_boundary_f(video, np.stack([gt, gt]))
    assert scores.shape == (2,) and scores[0] == 1.0 and scores[1] < 0.5
    with pytest.raises(ValueError, match="predicted"):
        boundary_f_score(gt[:10], gt)
    with pytest.raises(ValueError, match="predicted_masks"):
        per_frame_boundary_f(gt, gt)
