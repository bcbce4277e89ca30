"""Benchmark curation (paper, "Benchmark Construction").

* Motion score: how much actor and object move in a clip -- the mean per-step displacement of
  the actor and object mask centroids (in units of the image diagonal) plus, weighted by
  ``area_weight``, the mean relative change of their mask areas (a lifted object grows, a
  rotated one changes outline). Clips below the 5th percentile of the score distribution are
  dropped (:func:`filter_by_motion`).
* Temporal mIoU: for each candidate object track, the mean IoU between temporally spaced frames.
  A manipulated object changes shape and position, so the candidate with the *lowest* temporal
  mIoU is taken as the interacted object (:func:`select_manipulated_object`).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .sample import InteractionClip


def _as_mask_video(name: str, masks) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"{name}: expected a bool mask video [T, H, W], got shape {masks.shape}")
    return masks.astype(bool, copy=False)


def _centroid_steps(masks: np.ndarray) -> Optional[float]:
    """Mean centroid displacement (pixels) between consecutive frames where both are non-empty."""
    T, H, W = masks.shape
    area = masks.sum(axis=(1, 2)).astype(np.float64)
    ys = np.arange(H, dtype=np.float64)
    xs = np.arange(W, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (masks.sum(axis=2) * ys).sum(axis=1) / area
        cx = (masks.sum(axis=1) * xs).sum(axis=1) / area
    valid = (area[:-1] > 0) & (area[1:] > 0)
    if not valid.any():
        return None
    steps = np.hypot(np.diff(cx), np.diff(cy))[valid]
    return float(steps.mean())


def _area_change(masks: np.ndarray) -> Optional[float]:
    area = masks.sum(axis=(1, 2)).astype(np.float64)
    mean_area = area.mean()
    if mean_area <= 0:
        return None
    return float(np.abs(np.diff(area)).mean() / mean_area)


def motion_score(actor_masks, object_masks, area_weight: float = 0.5) -> float:
    """Motion score of one clip (see module docstring). Higher means more motion.

    Args:
        actor_masks, object_masks: bool ``[T, H, W]`` (T >= 2).
        area_weight: weight of the relative area change term.
    """
    actor_masks = _as_mask_video("actor_masks", actor_masks)
    object_masks = _as_mask_video("object_masks", object_masks)
    if actor_masks.shape != object_masks.shape:
        raise ValueError(
            f"object_masks: expected shape {actor_masks.shape} matching actor_masks, got {object_masks.shape}"
        )
    if actor_masks.shape[0] < 2:
        raise ValueError(f"actor_masks: expected at least 2 frames, got {actor_masks.shape[0]}")
    diag = float(np.hypot(*actor_masks.shape[1:]))
    disp = [d for d in (_centroid_steps(actor_masks), _centroid_steps(object_masks)) if d is not None]
    area = [a for a in (_area_change(actor_masks), _area_change(object_masks)) if a is not None]
    displacement = float(np.mean(disp)) / diag if disp else 0.0
    area_term = float(np.mean(area)) if area else 0.0
    return displacement + area_weight * area_term


def clip_motion_score(clip: InteractionClip, area_weight: float = 0.5) -> float:
    if not clip.has_masks:
        raise ValueError(f"clip {clip.episode_id!r}: motion_score needs actor and object masks")
    return motion_score(clip.actor_masks, clip.object_masks, area_weight)


def motion_keep_mask(scores: Sequence[float], percentile: float = 5.0) -> Tuple[np.ndarray, float]:
    """``(keep, threshold)``: keep scores >= the ``percentile``-th percentile of ``scores``."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores: expected a non-empty 1-D sequence of numbers, got shape {scores.shape}")
    if not 0.0 <= percentile < 100.0:
        raise ValueError(f"percentile: expected a value in [0, 100), got {percentile}")
    threshold = float(np.percentile(scores, percentile))
    return scores >= threshold, threshold


def filter_by_motion(
    clips_or_scores: Sequence[Union[InteractionClip, float]], percentile: float = 5.0, area_weight: float = 0.5
) -> List:
    """Drop the items whose motion score is below the ``percentile``-th percentile.

    Items are :class:`InteractionClip` (scored with :func:`clip_motion_score`) or plain scores;
    the kept items are returned in their original order.
    """
    items = list(clips_or_scores)
    if not items:
        return []
    scores = [clip_motion_score(c, area_weight) if isinstance(c, InteractionClip) else float(c) for c in items]
    keep, _ = motion_keep_mask(scores, percentile)
    return [item for item, k in zip(items, keep) if k]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; two empty masks count as identical (1.0)."""
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def temporal_miou(masks, num_samples: int = 5) -> float:
    """Mean IoU between consecutive ones of ``num_samples`` evenly spaced frames of a track."""
    masks = _as_mask_video("masks", masks)
    if num_samples < 2:
        raise ValueError(f"num_samples: expected at least 2, got {num_samples}")
    idx = np.unique(np.linspace(0, masks.shape[0] - 1, num_samples).round().astype(int))
    if len(idx) < 2:
        return 1.0
    return float(np.mean([mask_iou(masks[i], masks[j]) for i, j in zip(idx[:-1], idx[1:])]))


def select_manipulated_object(
    tracks: Sequence[np.ndarray], num_samples: int = 5, min_visible_fraction: float = 0.5
) -> Tuple[int, List[float]]:
    """Index of the candidate track with the lowest temporal mIoU, and every candidate's mIoU.

    Tracks visible (non-empty) in fewer than ``min_visible_fraction`` of the frames are lost
    tracks rather than moving objects; they get mIoU ``inf`` and are never selected unless no
    other candidate exists.
    """
    if len(tracks) == 0:
        raise ValueError("tracks: expected at least one candidate object track")
    scores: List[float] = []
    for k, track in enumerate(tracks):
        track = _as_mask_video(f"tracks[{k}]", track)
        visible = float(track.any(axis=(1, 2)).mean())
        scores.append(temporal_miou(track, num_samples) if visible >= min_visible_fraction else float("inf"))
    return int(np.argmin(scores)), scores
