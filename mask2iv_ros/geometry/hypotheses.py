"""Interaction geometry of every hypothesis of one input, on one support plane.

The hypotheses of one request share the camera, the current depth and the input object mask, so
the support plane is fitted once, around the *input* object mask (what the camera sees now, not
an imagined frame), with the input actor mask left out, and every hypothesis is lifted onto it.
Their object paths are then comparable point by point.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .contact import DEFAULT_DILATE_PX
from .depth import decode_depth
from .interaction import InteractionGeometry, _camera, interaction_geometry
from .plane import SupportPlane, dilate, fit_support_plane


def shared_support_plane(depth: Any, K: Any, object_mask: np.ndarray,
                         actor_mask: Optional[np.ndarray] = None, *,
                         depth_encoding: Optional[str] = None, dilate_px: int = DEFAULT_DILATE_PX,
                         seed: int = 0) -> SupportPlane:
    """The support plane around the input ``object_mask`` (bool [H, W], depth's pixel grid)."""
    depth_m = decode_depth(depth, depth_encoding)
    camera = _camera(K, ())
    camera.check_image_size(*depth_m.shape, field="depth")
    object_mask = np.asarray(object_mask, dtype=bool)
    if object_mask.shape != depth_m.shape:
        raise ValueError(f"object_mask: expected the depth image's pixel grid {depth_m.shape} (H, W), "
                         f"got {object_mask.shape}")
    exclude = None
    if actor_mask is not None:
        actor_mask = np.asarray(actor_mask, dtype=bool)
        if actor_mask.shape != depth_m.shape:
            raise ValueError(f"actor_mask: expected the depth image's pixel grid {depth_m.shape} (H, W), "
                             f"got {actor_mask.shape}")
        exclude = dilate(actor_mask, dilate_px)
    return fit_support_plane(depth_m, camera, object_mask, exclude_mask=exclude, seed=seed)


def hypotheses_geometry(hypotheses: Sequence[tuple[np.ndarray, np.ndarray]], depth: Any, K: Any,
                        object_mask: np.ndarray, actor_mask: Optional[np.ndarray] = None, *,
                        depth_encoding: Optional[str] = None, dilate_px: int = DEFAULT_DILATE_PX,
                        seed: int = 0) -> list[InteractionGeometry]:
    """One :class:`InteractionGeometry` per hypothesis, in the given order.

    hypotheses: ``(actor_masks, object_masks)`` bool ``[T, H, W]`` pairs in the depth image's
    pixel grid (a pipeline output's ``masks_in_input_frame()``); ``object_mask`` /
    ``actor_mask``: the input masks the imagination started from (same grid). depth / K as for
    :func:`interaction_geometry`.
    """
    depth_m = decode_depth(depth, depth_encoding)
    camera = _camera(K, ())
    plane = shared_support_plane(depth_m, camera, object_mask, actor_mask, dilate_px=dilate_px,
                                 seed=seed)
    return [interaction_geometry(actor_masks, object_masks, depth_m, camera, dilate_px=dilate_px,
                                 plane=plane)
            for actor_masks, object_masks in hypotheses]
