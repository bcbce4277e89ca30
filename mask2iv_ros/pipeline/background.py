"""Keep the camera's pixels where the imagination says nothing moves.

Stage 2 decodes every pixel of the imagined video through the VAE, so even a static table comes
back as the VAE's reconstruction of it (for the embedded default's small f=4 VAE about 25 dB RGB
PSNR at best, far less after sampling). A planner that compares the imagined frames with the
camera gains nothing from that texture noise. With ``video_background="input"`` the pipeline
composites each imagined frame onto the input image: pixels that are background in the input
masks (object, and actor when given) *and* in that frame's imagined mask trajectory take the
input image's value; the actor and object regions of both, dilated by a margin and feathered,
keep the imagined pixels. This is pixel compositing, not generation: it uses the stage-1 masks
to decide what may change, and so depends on them. Shadows or lighting changes the model
imagines outside those regions are dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..masks import ACTOR, OBJECT
from .pipeline_config import VIDEO_BACKGROUNDS


def check_video_background(value: object) -> str:
    if value not in VIDEO_BACKGROUNDS:
        raise ValueError(f"video_background: expected one of {list(VIDEO_BACKGROUNDS)}, got {value!r}")
    return str(value)


def margin_px(height: int, width: int) -> int:
    """Dilation radius of the moving regions: 1/32 of the short side (2 px at 64x64, 10 at 320)."""
    return max(1, round(min(height, width) / 32))


def input_background_weights(input_moving: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 ``[T, H, W, 1]`` in [0, 1]: 1 where frame t keeps the input image.

    ``input_moving``: bool ``[H, W]``, the input's object (and actor) mask on the model grid;
    ``labels``: the imagined palette labels ``[T, H, W]`` of the trajectory the video follows.
    """
    height, width = input_moving.shape
    radius = margin_px(height, width)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    weights = np.empty(labels.shape + (1,), np.float32)
    for t, frame_labels in enumerate(labels):
        moving = input_moving | (frame_labels == OBJECT) | (frame_labels == ACTOR)
        moving = cv2.dilate(moving.astype(np.uint8), kernel) > 0
        weights[t, ..., 0] = cv2.GaussianBlur((~moving).astype(np.float32), (2 * radius + 1,) * 2, 0)
    return weights


def keep_input_background(video: np.ndarray, image: np.ndarray, input_moving: np.ndarray,
                          labels: np.ndarray) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` imagined ``video`` composited onto the uint8 ``[H, W, 3]`` input
    ``image`` (both on the model grid) outside the moving regions (:func:`input_background_weights`)."""
    weights = input_background_weights(input_moving, labels)
    mixed = weights * image[None].astype(np.float32) + (1 - weights) * video.astype(np.float32)
    return mixed.round().clip(0, 255).astype(np.uint8)
