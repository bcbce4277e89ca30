"""Pictures of a pipeline result: side-by-side frames and an animated GIF."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np

from ..masks import DEFAULT_PALETTE, MaskPalette, overlay_masks
from .pipeline import Mask2IVOutput


def preview_frames(image: np.ndarray, output: Mask2IVOutput,
                   palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """uint8 ``[T, H, k*W, 3]``: mask trajectory | masks over the input image | video (if any)."""
    frames = len(output.mask_trajectory)
    background = output.video if output.video is not None else np.repeat(image[None], frames, 0)
    overlay = overlay_masks(background, output.object_masks, output.actor_masks, palette)
    panels = [output.mask_trajectory, overlay]
    if output.video is not None:
        panels.append(output.video)
    return np.concatenate(panels, axis=2)


def save_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """Write uint8 ``[T, H, W, 3]`` frames as a looping GIF."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps: expected a positive number, got {fps}")
    iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
