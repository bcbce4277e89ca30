"""Trajectory metrics of a bag replay (prediction vs the bag's ground truth)."""

import numpy as np
import pytest

from mask2iv_ros.eval.replay_report import mask_iou, trajectory_metrics


def test_mask_iou_resizes_a_prediction_of_another_size():
    target = np.zeros((8, 8), bool)
    target[:4] = True
    predicted = np.zeros((4, 4), bool)
    predicted[:2] = True  # the same half, at half the resolution
    assert mask_iou(predicted, target) == 1.0
    assert mask_iou(np.zeros((8, 8), bool), np.zeros((8, 8), bool)) == 1.0
    assert mask_iou(~target, target) == 0.0


def test_trajectory_metrics_compare_the_common_frames():
    truth = np.zeros((3, 8, 8), bool)
    truth[:, 2:6, 2:6] = True
    predicted = truth[:2].copy()
    predicted[1, 2:4] = False  # half of the last compared object frame missing
    metrics = trajectory_metrics(truth[:2], predicted, truth, truth)
    assert metrics.frames_compared == 2
    assert metrics.actor_iou == [1.0, 1.0]
    assert metrics.object_iou == [1.0, 0.5]
    assert metrics.final_placement_iou == 0.5
    with pytest.raises(ValueError, match="predicted_object"):
        trajectory_metrics(truth[:0], truth[:0], truth, truth)
