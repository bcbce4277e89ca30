"""Depth images -> metres, the two ROS depth encodings (REP 118).

- ``16UC1`` (also ``mono16``): uint16 millimetres; 0 = no measurement.
- ``32FC1``: float32 metres; 0, NaN, +-inf = no measurement.

Decoded depth is float32 ``[H, W]`` metres with NaN where there is no valid measurement (negative
values count as invalid too). Values are z, the distance along the optical axis, as ROS depth
images store them.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

MILLIMETRE_ENCODINGS = ("16UC1", "mono16")
METRE_ENCODINGS = ("32FC1",)
DEPTH_ENCODINGS = MILLIMETRE_ENCODINGS + METRE_ENCODINGS


def decode_depth(pixels: Any, encoding: Optional[str] = None, field: str = "depth") -> np.ndarray:
    """float32 ``[H, W]`` metres (NaN = invalid) from a raw depth array.

    ``encoding`` None infers it from the dtype: unsigned 16-bit = 16UC1 millimetres, floating
    point = metres (32FC1). An explicit encoding must match the dtype.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"{field}: expected a single-channel depth image [H, W], got shape {pixels.shape}")
    if encoding is None:
        if pixels.dtype == np.uint16:
            encoding = "16UC1"
        elif np.issubdtype(pixels.dtype, np.floating):
            encoding = "32FC1"
        else:
            raise ValueError(f"{field}: expected uint16 millimetres (16UC1) or float metres (32FC1), got dtype {pixels.dtype}")
    if encoding in MILLIMETRE_ENCODINGS:
        if pixels.dtype != np.uint16:
            raise ValueError(f"{field}: encoding {encoding} expects uint16 millimetres, got dtype {pixels.dtype}")
        metres = pixels.astype(np.float32) * np.float32(0.001)
        metres[pixels == 0] = np.nan
        return metres
    if encoding in METRE_ENCODINGS:
        if not np.issubdtype(pixels.dtype, np.floating):
            raise ValueError(f"{field}: encoding {encoding} expects float metres, got dtype {pixels.dtype}")
        metres = pixels.astype(np.float32, copy=True)
        metres[~(np.isfinite(metres) & (metres > 0))] = np.nan
        return metres
    raise ValueError(f"{field}.encoding: expected one of {list(DEPTH_ENCODINGS)}, got {encoding!r}")


def valid_depth(depth_m: np.ndarray) -> np.ndarray:
    """bool mask of pixels with a measurement in a decoded depth image."""
    return np.isfinite(depth_m) & (depth_m > 0)
