"""Pictures of a pipeline result: side-by-side frames and an animated GIF."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np

from ..masks import DEFAULT_PALETTE, MaskPalette, overlay_masks
from .pipeline import Mask2IVOutput
from .resize import masks_in_input_frame, paste_frames_into_image


def preview_frames(image: np.ndarray, output: Mask2IVOutput,
                   palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """uint8 ``[T, H, k*W, 3]`` on the input image's grid: mask trajectory | masks over the input
    image (or the video) | video (if any; laid over the input image in ``output.input_region``)."""
    masks = masks_in_input_frame(output, palette)
    frames = len(masks.mask_trajectory)
    video = None
    if output.video is not None:
        region = output.input_region or (0, 0, image.shape[1], image.shape[0])
        video = paste_frames_into_image(output.video, region, image)
    background = video if video is not None else np.repeat(image[None], frames, 0)
    overlay = overlay_masks(background, masks.object_masks, masks.actor_masks, palette)
    panels = [masks.mask_trajectory, overlay]
    if video is not None:
        panels.append(video)
    return np.concatenate(panels, axis=2)


def save_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """Write uint8 ``[T, H, W, 3]`` frames as a looping GIF."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps: expected a positive number, got {fps}")
    iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
