"""Trajectory metrics a planner cares about: does the predicted mask trajectory put the actor and
the object where they should be, and does the object move the way the prompt says?

Masks follow the package convention (bool ``[H, W]``, mask videos bool ``[T, H, W]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from .prompt_direction import direction_vector, parse_prompt_direction


def _mask_video(masks, name: str) -> np.ndarray:
    array = np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(f"{name}: expected a bool mask video [T, H, W], got shape {array.shape}")
    return array.astype(bool, copy=False)


def _mask(mask, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a bool mask [H, W], got shape {array.shape}")
    return array.astype(bool, copy=False)


def mask_iou(predicted: np.ndarray, target: np.ndarray) -> float:
    """IoU of two bool masks of equal shape; 1.0 when both are empty (they agree)."""
    if predicted.shape != target.shape:
        raise ValueError(f"predicted: expected shape {target.shape} like target, got {predicted.shape}")
    union = np.logical_or(predicted, target).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(predicted, target).sum() / union)


def per_frame_iou(predicted_masks, target_masks) -> np.ndarray:
    """IoU of every frame of two mask videos ``[T, H, W]`` -> ``[T]``."""
    pred = _mask_video(predicted_masks, "predicted_masks")
    target = _mask_video(target_masks, "target_masks")
    if pred.shape != target.shape:
        raise ValueError(f"predicted_masks: expected shape {target.shape} like target_masks, got {pred.shape}")
    return np.array([mask_iou(p, t) for p, t in zip(pred, target)])


# DAVIS (Perazzi et al. 2016) boundary tolerance: 0.8 % of the image diagonal, rounded up.
DAVIS_BOUNDARY_TOLERANCE = 0.008


def mask_boundary(mask) -> np.ndarray:
    """Boundary pixels of a bool mask: inside pixels with a 4-neighbour outside the mask.

    The image border is not a boundary (a mask touching the border ends there only because the
    picture does), as in DAVIS' ``seg2bmap``.
    """
    mask = _mask(mask, "mask")
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    # erode's default border value counts pixels outside the image as inside the mask
    inner = cv2.erode(mask.astype(np.uint8), cross).astype(bool)
    return mask & ~inner


def boundary_tolerance_px(shape: tuple[int, ...]) -> int:
    """DAVIS' pixel tolerance for an image of ``shape`` (H, W): ceil(0.008 * diagonal), >= 1."""
    return max(1, math.ceil(DAVIS_BOUNDARY_TOLERANCE * math.hypot(shape[0], shape[1])))


def boundary_f_score(predicted, target, tolerance_px: Optional[int] = None) -> float:
    """Boundary F-measure of two bool masks (DAVIS' F): the harmonic mean of boundary precision
    (share of predicted boundary pixels within ``tolerance_px`` of the target's boundary) and
    recall (share of target boundary pixels within ``tolerance_px`` of the predicted one).

    Unlike IoU it does not reward blobby, smoothed masks: a boundary that cuts corners or misses
    thin parts loses precision and recall however much area overlaps. ``tolerance_px`` defaults
    to DAVIS' ceil(0.008 x image diagonal). Both boundaries empty -> 1.0; one empty -> 0.0.
    """
    pred, gt = _mask(predicted, "predicted"), _mask(target, "target")
    if pred.shape != gt.shape:
        raise ValueError(f"predicted: expected shape {gt.shape} like target, got {pred.shape}")
    tolerance = boundary_tolerance_px(gt.shape) if tolerance_px is None else int(tolerance_px)
    if tolerance < 0:
        raise ValueError(f"tolerance_px: expected an integer >= 0, got {tolerance_px}")
    pred_boundary, gt_boundary = mask_boundary(pred), mask_boundary(gt)
    n_pred, n_gt = int(pred_boundary.sum()), int(gt_boundary.sum())
    if n_pred == 0 or n_gt == 0:
        return 1.0 if n_pred == n_gt else 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_gt = cv2.dilate(gt_boundary.astype(np.uint8), disk).astype(bool)
    near_pred = cv2.dilate(pred_boundary.astype(np.uint8), disk).astype(bool)
    precision = (pred_boundary & near_gt).sum() / n_pred
    recall = (gt_boundary & near_pred).sum() / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def per_frame_boundary_f(predicted_masks, target_masks,
                         tolerance_px: Optional[int] = None) -> np.ndarray:
    """:func:`boundary_f_score` of every frame of two mask videos ``[T, H, W]`` -> ``[T]``."""
    pred = _mask_video(predicted_masks, "predicted_masks")
    target = _mask_video(target_masks, "target_masks")
    if pred.shape != target.shape:
        raise ValueError(f"predicted_masks: expected shape {target.shape} like target_masks, got {pred.shape}")
    return np.array([boundary_f_score(p, t, tolerance_px) for p, t in zip(pred, target)])


def centroid(mask) -> Optional[np.ndarray]:
    """(x, y) pixel centroid of a mask, or None if it is empty."""
    mask = _mask(mask, "mask")
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return np.array([xs.mean(), ys.mean()])


def placement_metrics(predicted_object_masks, placement_mask) -> dict[str, float]:
    """Final placement IoU and centroid error (pixels) of the last predicted object mask.

    The centroid error is ``nan`` when the predicted or the target mask is empty.
    """
    pred = _mask_video(predicted_object_masks, "predicted_object_masks")[-1]
    target = _mask(placement_mask, "placement_mask")
    iou = mask_iou(pred, target)
    c_pred, c_target = centroid(pred), centroid(target)
    error = float("nan") if c_pred is None or c_target is None else float(np.linalg.norm(c_pred - c_target))
    return {"placement_iou": iou, "centroid_error_px": error}


def object_displacement(object_masks) -> Optional[np.ndarray]:
    """Centroid of the last non-empty frame minus that of the first non-empty one (dx, dy)."""
    masks = _mask_video(object_masks, "object_masks")
    centroids = [c for c in (centroid(m) for m in masks) if c is not None]
    if len(centroids) < 2:
        return None
    return centroids[-1] - centroids[0]


@dataclass
class DirectionCheck:
    expected: Optional[str]          # parsed from the prompt; None if it names no direction
    displacement: Optional[np.ndarray]
    agrees: Optional[bool]           # None when the prompt names no direction


def direction_agreement(object_masks, prompt: str, min_displacement_px: float = 1.0,
                        max_angle_deg: float = 45.0,
                        forward: tuple[float, float] = (0.0, -1.0)) -> DirectionCheck:
    """Does the object move the way the prompt says?

    It agrees when its centroid moved at least ``min_displacement_px`` and within
    ``max_angle_deg`` of the prompt's direction (an object that stays put disagrees).
    """
    expected = parse_prompt_direction(prompt)
    displacement = object_displacement(object_masks)
    if expected is None:
        return DirectionCheck(None, displacement, None)
    if displacement is None or np.linalg.norm(displacement) < min_displacement_px:
        return DirectionCheck(expected, displacement, False)
    cosine = float(displacement @ direction_vector(expected, forward) / np.linalg.norm(displacement))
    return DirectionCheck(expected, displacement, cosine >= math.cos(math.radians(max_angle_deg)))


def trajectory_metrics(predicted_actor_masks, predicted_object_masks, target_actor_masks,
                       target_object_masks, prompt: str = "",
                       placement_mask=None, **direction_kwargs) -> dict[str, float]:
    """All trajectory metrics of one clip as a flat dict.

    ``placement_mask`` defaults to the last target object mask. ``direction_agrees`` is 1.0/0.0,
    or nan when the prompt names no direction.
    """
    target_object = _mask_video(target_object_masks, "target_object_masks")
    result = {
        "actor_iou": float(per_frame_iou(predicted_actor_masks, target_actor_masks).mean()),
        "object_iou": float(per_frame_iou(predicted_object_masks, target_object).mean()),
    }
    placement = target_object[-1] if placement_mask is None else placement_mask
    result.update(placement_metrics(predicted_object_masks, placement))
    check = direction_agreement(predicted_object_masks, prompt, **direction_kwargs)
    result["direction_agrees"] = float("nan") if check.agrees is None else float(check.agrees)
    return result


def agreement_rate(values: Sequence[float]) -> float:
    """Share of clips whose direction agrees, ignoring clips without a direction (nan)."""
    known = [v for v in values if not math.isnan(v)]
    return float(np.mean(known)) if known else float("nan")
