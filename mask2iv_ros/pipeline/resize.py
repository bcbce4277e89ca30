"""Resizing between the caller's image size and the model resolution (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np


def _interpolation(source: tuple[int, int], target: tuple[int, int]) -> int:
    # INTER_AREA avoids aliasing when shrinking; linear when enlarging.
    shrinking = target[0] < source[0] or target[1] < source[1]
    return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> ``[size[0], size[1], 3]``."""
    if image.shape[:2] == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=_interpolation(image.shape[:2], size))


def resize_video(video: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> ``[T, size[0], size[1], 3]``."""
    if video.shape[1:3] == tuple(size):
        return video
    return np.stack([resize_image(frame, size) for frame in video])


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool ``[H, W]`` -> bool at ``size`` by area coverage >= 0.5.

    A small mask that would vanish at the new size keeps every pixel it touches (coverage > 0),
    so an object the caller marked never silently disappears.
    """
    if mask.shape == tuple(size):
        return mask
    coverage = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA
                          if size[0] <= mask.shape[0] and size[1] <= mask.shape[1]
                          else cv2.INTER_LINEAR)
    resized = coverage >= 0.5
    if mask.any() and not resized.any():
        resized = coverage > 0
    return resized


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Integer label maps ``[T, H, W]`` -> ``[T, size[0], size[1]]`` (nearest neighbour)."""
    if labels.shape[1:] == tuple(size):
        return labels
    return np.stack([cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
                     for frame in labels])
