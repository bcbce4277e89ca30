"""When and where the actor touches the object in a mask trajectory.

Touching: some object pixel lies within `dilate_px` pixels (Euclidean disc) of the actor mask,
i.e. the actor mask dilated by `dilate_px` overlaps the object mask. The generated masks never
overlap (the palette gives shared pixels to the object), so `dilate_px` >= 1 is needed to see an
actor that is flush against the object; a few pixels absorb the masks' ragged edges.
The contact region of a frame is those object pixels: where the actor meets the object.
"""

from __future__ import annotations

import numpy as np

from .plane import dilate

DEFAULT_DILATE_PX = 3


def _check_videos(actor_masks, object_masks) -> tuple[np.ndarray, np.ndarray]:
    actor, obj = np.asarray(actor_masks, bool), np.asarray(object_masks, bool)
    if obj.ndim != 3:
        raise ValueError(f"object_masks: expected a bool mask video [T, H, W], got shape {obj.shape}")
    if actor.shape != obj.shape:
        raise ValueError(f"actor_masks: expected shape {obj.shape} like object_masks, got {actor.shape}")
    return actor, obj


def contact_region(actor_mask: np.ndarray, object_mask: np.ndarray, dilate_px: int = DEFAULT_DILATE_PX) -> np.ndarray:
    """bool [H, W]: object pixels within `dilate_px` of the actor (empty when they do not touch)."""
    if dilate_px < 0:
        raise ValueError(f"dilate_px: expected a radius >= 0 in pixels, got {dilate_px}")
    object_mask = np.asarray(object_mask, bool)
    return dilate(actor_mask, dilate_px) & object_mask


def contact_frame(actor_masks, object_masks, dilate_px: int = DEFAULT_DILATE_PX) -> int:
    """Index of the first frame where actor and object touch (see module doc), or -1."""
    actor, obj = _check_videos(actor_masks, object_masks)
    for index in range(len(obj)):
        if actor[index].any() and obj[index].any() and contact_region(actor[index], obj[index], dilate_px).any():
            return index
    return -1
