"""sensor_msgs/Image <-> NumPy: the only place in the package that converts between them.

cv_bridge is not used: the PyPI port breaks under NumPy 2 and rosbags-image ignores row padding.
Conversions here honour `step` (rows may be padded) and, for 16-bit encodings, `is_bigendian`.
Reading works on rclpy and rosbags messages alike (and needs no ROS install); only building
messages imports the rclpy message classes. Every error is an `ImageConversionError` (a `ValueError`) whose message names the offending field,
e.g. ``object_mask.encoding: ...``, so the node can hand it straight back to the caller.

Supported encodings (channel order as named; the 8UC3 generic encoding carries no order and is
taken as RGB, the same pass-through cv_bridge does for generic types):

- colour images: rgb8, bgr8, rgba8, bgra8, 8UC3 (and mono8 / 8UC1, replicated to 3 channels)
- masks: mono8, 8UC1, mono16, 16UC1 (nonzero = inside)
"""

from __future__ import annotations

from typing import Any

import numpy as np

# encoding -> (channels, bytes per channel)
_LAYOUTS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "8UC3": (3, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "8UC3", "mono8", "8UC1")
MASK_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")


class ImageConversionError(ValueError):
    """A sensor_msgs/Image that cannot be converted; the message names the field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def is_empty(msg: Any) -> bool:
    """True for an unset optional image (width or height 0), e.g. an absent placement mask."""
    return int(msg.width) == 0 or int(msg.height) == 0


def image_msg_to_array(msg: Any, field: str = "image") -> np.ndarray:
    """Raw pixel array of an Image message: uint8/uint16 `[H, W]` or `[H, W, C]`, channels as stored.

    Works for rclpy messages and rosbags-deserialized ones (both expose the same fields).
    Row padding beyond `width * channels * bytes` is dropped; 16-bit data is read with the byte
    order given by `is_bigendian` and returned in native order.
    """
    encoding = str(msg.encoding)
    if encoding not in _LAYOUTS:
        raise ImageConversionError(
            f"{field}.encoding", f"unsupported encoding {encoding!r}; expected one of {sorted(_LAYOUTS)}"
        )
    channels, depth_bytes = _LAYOUTS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"{field}", f"expected a non-empty image, got height={height} width={width}")
    row_bytes = width * channels * depth_bytes
    if step < row_bytes:
        raise ImageConversionError(
            f"{field}.step",
            f"expected at least {row_bytes} bytes per row (width {width} x {channels} channel(s) x "
            f"{depth_bytes} byte(s)) for {encoding}, got {step}",
        )
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageConversionError(
            f"{field}.data", f"expected {step * height} bytes (height {height} x step {step}), got {buffer.size}"
        )
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes]
    if depth_bytes == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        pixels = np.ascontiguousarray(rows).view(dtype).astype(np.uint16)
    else:
        pixels = rows
    if channels == 1:
        return pixels.reshape(height, width)
    return pixels.reshape(height, width, channels)


def image_msg_to_rgb(msg: Any, field: str = "image") -> np.ndarray:
    """uint8 `[H, W, 3]` RGB copy of a colour (or 8-bit grey) Image message."""
    encoding = str(msg.encoding)
    if encoding not in COLOR_ENCODINGS:
        raise ImageConversionError(
            f"{field}.encoding", f"expected a colour image encoding {list(COLOR_ENCODINGS)}, got {encoding!r}"
        )
    pixels = image_msg_to_array(msg, field)
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if encoding in ("bgr8", "bgra8"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def image_msg_to_mask(msg: Any, field: str = "object_mask") -> np.ndarray:
    """bool `[H, W]` mask of a single-channel Image message (nonzero = inside)."""
    encoding = str(msg.encoding)
    if encoding not in MASK_ENCODINGS:
        raise ImageConversionError(
            f"{field}.encoding", f"expected a single-channel mask encoding {list(MASK_ENCODINGS)}, got {encoding!r}"
        )
    return image_msg_to_array(msg, field) != 0


def _set_header(msg: Any, header: Any) -> Any:
    if header is not None:
        msg.header.stamp = header.stamp
        msg.header.frame_id = header.frame_id
    return msg


def rgb_to_image_msg(rgb: np.ndarray, header: Any = None, encoding: str = "rgb8") -> Any:
    """sensor_msgs/Image (rclpy; rgb8 or bgr8, unpadded rows) from a uint8 `[H, W, 3]` RGB array."""
    from sensor_msgs.msg import Image

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError("rgb", f"expected a uint8 array of shape [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if encoding not in ("rgb8", "bgr8"):
        raise ImageConversionError("encoding", f"expected 'rgb8' or 'bgr8', got {encoding!r}")
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0, step=rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return _set_header(msg, header)


def mask_to_image_msg(mask: np.ndarray, header: Any = None) -> Any:
    """mono8 sensor_msgs/Image (rclpy; 255 = inside, 0 = outside) from a bool/integer `[H, W]` mask."""
    from sensor_msgs.msg import Image

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ImageConversionError("mask", f"expected a 2-D mask [H, W], got shape {mask.shape}")
    msg = Image(height=mask.shape[0], width=mask.shape[1], encoding="mono8", is_bigendian=0, step=mask.shape[1])
    msg.data = np.where(mask != 0, 255, 0).astype(np.uint8).tobytes()
    return _set_header(msg, header)


def has_trajectory_images(trajectory: Any) -> bool:
    """Whether a MaskTrajectory message carries masks or colour frames (a rollout topic's does not)."""
    return bool(len(trajectory.object_masks) or len(trajectory.frames))


def trajectory_masks(trajectory: Any, field: str = "mask_trajectory") -> tuple[np.ndarray, np.ndarray]:
    """bool (actor `[T, H, W]`, object `[T, H, W]`) of a MaskTrajectory message (rclpy or rosbags),
    whatever the node's trajectory_encoding: its mono8 masks when it has them, else its colour
    frames read with its own palette (each pixel is exactly one palette colour)."""
    if len(trajectory.object_masks):
        actor = np.stack([image_msg_to_mask(m, f"{field}.actor_masks") for m in trajectory.actor_masks])
        obj = np.stack([image_msg_to_mask(m, f"{field}.object_masks") for m in trajectory.object_masks])
        return actor, obj
    if not len(trajectory.frames):
        raise ImageConversionError(field, "expected actor/object masks or colour frames, got neither (the rollout "
                                          "topic leaves them out: read the mask_trajectory topic, same header.stamp)")
    frames = np.stack([image_msg_to_rgb(f, f"{field}.frames") for f in trajectory.frames])
    actor = np.all(frames == np.asarray(trajectory.actor_color, np.uint8), axis=-1)
    obj = np.all(frames == np.asarray(trajectory.object_color, np.uint8), axis=-1)
    return actor, obj
