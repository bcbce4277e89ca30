"""The overlay stream: the imagined masks tinted onto the input image, every frame at once (NumPy).

Same look as `mask2iv_ros.masks.overlay_masks` (palette tint with alpha 0.45, a one-pixel outline
in the full colour), without its per-frame float image and OpenCV contour calls: the input image
is the same in every frame, so only the masked pixels are blended (from that one image) and
written, and the outline is the mask minus its 4-neighbour erosion, computed for all frames in one
go. At 16 x 320 x 512 about 2x faster than the per-frame drawing (benchmarks/bench_node_vs_standalone.py).
"""

from __future__ import annotations

import numpy as np

from mask2iv_ros.masks import DEFAULT_PALETTE, MaskPalette

ALPHA = 0.45


def outline(masks: np.ndarray) -> np.ndarray:
    """bool [T, H, W]: pixels of each mask with a 4-neighbour outside it (image border = outside)."""
    inner = masks.copy()
    inner[:, 1:, :] &= masks[:, :-1, :]
    inner[:, :-1, :] &= masks[:, 1:, :]
    inner[:, :, 1:] &= masks[:, :, :-1]
    inner[:, :, :-1] &= masks[:, :, 1:]
    inner[:, 0, :] = inner[:, -1, :] = False
    inner[:, :, 0] = inner[:, :, -1] = False
    return masks & ~inner


def overlay_frames(image: np.ndarray, actor_masks: np.ndarray, object_masks: np.ndarray,
                   palette: MaskPalette = DEFAULT_PALETTE, alpha: float = ALPHA) -> np.ndarray:
    """uint8 [T, H, W, 3]: `image` (uint8 [H, W, 3]) with each frame's actor/object masks (bool [T, H, W]).

    The object is drawn over the actor where both are set.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected uint8 [H, W, 3], got {image.dtype} {image.shape}")
    for name, masks in (("actor_masks", actor_masks), ("object_masks", object_masks)):
        if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
            raise ValueError(f"{name}: expected bool [T, H, W] with H, W = {image.shape[:2]}, got {masks.shape}")
    frames = np.empty(object_masks.shape + (3,), np.uint8)
    frames[:] = image
    base = image.astype(np.float32)
    for masks, color in ((actor_masks, palette.actor), (object_masks, palette.object)):
        masks = masks.astype(bool, copy=False)
        color = np.asarray(color, np.float32)
        # Only the masked pixels are touched: blended from the one input image, wherever a frame has them.
        t, y, x = np.nonzero(masks)
        frames[t, y, x] = np.clip((1.0 - alpha) * base[y, x] + alpha * color + 0.5, 0, 255).astype(np.uint8)
        t, y, x = np.nonzero(outline(masks))
        frames[t, y, x] = color.astype(np.uint8)
    return frames
