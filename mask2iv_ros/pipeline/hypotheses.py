"""Scoring and ranking several imagined hypotheses of one input (``num_samples > 1``).

A planner asking for several samples wants to know which one to act on and how sure the
imagination is. Both come from how much the hypotheses agree on the object: the similarity of
two hypotheses is the mean over frames of the per-frame IoU of their object masks
(:func:`~mask2iv_ros.eval.metrics_trajectory.per_frame_iou`, so two empty frames agree), a
hypothesis' score is its mean similarity to the others, and the ranking puts the medoid (the
highest score) first. ``agreement``, the mean pairwise similarity (= the mean score), is 1.0
when all hypotheses put the object in the same place in every frame.

Trajectory votes (``trajectory_votes`` K > 1) make one hypothesis out of K stage-1 samples drawn
from its seed's stream: every pixel of every frame takes the label most of the K samples give it
(:func:`majority_vote`), and a tie goes to the sample the others agree with most (their medoid).
Why: the edge pixels where single samples miss are where they disagree; the majority keeps what
they share (issue 14: PT-Gen placement IoU on unseen episodes, see the model card).
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


def majority_vote(values: np.ndarray, tie_break: int) -> np.ndarray:
    """``[K, ...]`` integer categories -> ``[...]``: per element the category most of the K give;
    a tie goes to sample ``tie_break``'s category when it is among the tied, else to the smallest
    tied category."""
    values = np.asarray(values)
    if values.ndim < 1 or values.shape[0] == 0:
        raise ValueError(f"values: expected [K, ...] with K >= 1 samples, got shape {values.shape}")
    if not 0 <= tie_break < values.shape[0]:
        raise ValueError(f"tie_break: expected a sample index in [0, {values.shape[0]}), got {tie_break}")
    if values.shape[0] == 1:
        return values[0].copy()
    categories = np.unique(values)
    # half a vote for the tie-breaker's category: it decides ties and nothing else
    counts = np.stack([(values == c).sum(axis=0) + 0.5 * (values[tie_break] == c)
                       for c in categories])
    return categories[counts.argmax(axis=0)]


def vote_labels(labels: np.ndarray, votes: int, object_label: int) -> tuple[np.ndarray, list[int]]:
    """Labels of ``N * votes`` stage-1 samples ``[N * votes, T, H, W]`` (hypothesis i's votes at
    ``i * votes .. i * votes + votes - 1``) -> the ``[N, T, H, W]`` majority of each hypothesis'
    votes, and each hypothesis' medoid vote (an index into ``labels``: ties went to it)."""
    labels = np.asarray(labels)
    if votes < 1 or labels.shape[0] % votes:
        raise ValueError(f"labels: expected a multiple of trajectory_votes {votes} samples, got "
                         f"{labels.shape[0]}")
    voted, medoids = [], []
    for start in range(0, labels.shape[0], votes):
        group = labels[start:start + votes]
        medoid = rank_hypotheses(group == object_label).order[0]
        voted.append(majority_vote(group, medoid))
        medoids.append(start + medoid)
    return np.stack(voted), medoids
