"""Scoring and ranking several imagined hypotheses of one input (``num_samples > 1``).

A planner asking for several samples wants to know which one to act on and how sure the
imagination is. Both come from how much the hypotheses agree on the object: the similarity of
two hypotheses is the mean over frames of the per-frame IoU of their object masks
(:func:`~mask2iv_ros.eval.metrics_trajectory.per_frame_iou`, so two empty frames agree), a
hypothesis' score is its mean similarity to the others, and the ranking puts the medoid (the
highest score) first. ``agreement``, the mean pairwise similarity (= the mean score), is 1.0
when all hypotheses put the object in the same place in every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..eval.metrics_trajectory import per_frame_iou

MEDOID_OBJECT_IOU = "medoid_object_iou"   # the ranking this module does
SINGLE = "single"                         # one hypothesis: nothing to rank


@dataclass(frozen=True)
class HypothesisRanking:
    order: tuple[int, ...]      # sample indices, best first
    scores: tuple[float, ...]   # per sample index (not per rank): mean IoU with the others
    agreement: float            # mean pairwise object-mask IoU over frames, in [0, 1]
    method: str                 # MEDOID_OBJECT_IOU, or SINGLE for one hypothesis


def pairwise_object_iou(object_masks: np.ndarray) -> np.ndarray:
    """``[N, T, H, W]`` bool -> symmetric ``[N, N]``: mean per-frame IoU of each pair (diagonal 1)."""
    masks = np.asarray(object_masks)
    if masks.ndim != 4:
        raise ValueError(f"object_masks: expected the hypotheses' mask videos [N, T, H, W], got "
                         f"shape {masks.shape}")
    count = masks.shape[0]
    similarity = np.eye(count)
    for i in range(count):
        for j in range(i + 1, count):
            similarity[i, j] = similarity[j, i] = float(per_frame_iou(masks[i], masks[j]).mean())
    return similarity


def rank_hypotheses(object_masks: np.ndarray) -> HypothesisRanking:
    """Medoid first by mean object-mask IoU with the other hypotheses; ties keep sample order
    (the lower seed first). One hypothesis scores 1.0 with agreement 1.0."""
    similarity = pairwise_object_iou(object_masks)
    count = similarity.shape[0]
    if count == 0:
        raise ValueError("object_masks: expected at least one hypothesis, got 0")
    if count == 1:
        return HypothesisRanking(order=(0,), scores=(1.0,), agreement=1.0, method=SINGLE)
    scores = (similarity.sum(axis=1) - 1.0) / (count - 1)   # leave out the diagonal
    order = sorted(range(count), key=lambda i: (-scores[i], i))
    return HypothesisRanking(order=tuple(order), scores=tuple(float(s) for s in scores),
                             agreement=float(scores.mean()), method=MEDOID_OBJECT_IOU)
