"""Lifting mask pixels to 3D: through the support plane (object path) or the current depth
(contact point, actor path). All points are in the camera optical frame, metres.

Bottom-centre of a mask (the pixel whose ray meets the support plane where the object stands):
the lowest mask row r (largest row index: the image y axis points down, and for a camera looking
down at a table the silhouette's lowest point is where the object meets the table, nearest the
camera) and, in that row, the mean column of the mask pixels. Its image coordinates are
(u, v) = (mean column, r + 0.5): v is the lower boundary of row r, where the silhouette ends (with
centre-sampled masks the true edge lies in [r, r + 1), so r + 0.5 is off by at most half a pixel).
For a box whose front edge is level in the image this is the middle of that edge; when the edge
slopes (camera roll, a rotated object) it is next to the footprint's lowest corner. The offset from
the object's centre is the same in every frame while the object does not turn, so displacements
along the path are unaffected by it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .camera import PinholeCamera
from .depth import valid_depth
from .plane import SupportPlane


def bottom_centre(mask: np.ndarray) -> Optional[np.ndarray]:
    """(u, v) image coordinates of a bool [H, W] mask's bottom-centre (module doc), None if empty."""
    mask = np.asarray(mask, bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    row = int(rows[-1])
    return np.array([np.flatnonzero(mask[row]).mean(), row + 0.5])


def bottom_centres(masks: np.ndarray) -> np.ndarray:
    """[T, 2] bottom-centres of a mask video; NaN rows for empty frames."""
    out = np.full((len(masks), 2), np.nan)
    for index, mask in enumerate(masks):
        point = bottom_centre(mask)
        if point is not None:
            out[index] = point
    return out


def lift_to_plane(pixels: np.ndarray, camera: PinholeCamera, plane: SupportPlane) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, 3] where the rays through pixels [N, 2] (NaN rows = no pixel) meet the plane,
    and validity [N] (False: no pixel, plane not valid, ray parallel to the plane or meeting it
    behind the camera)."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    points = np.full((len(pixels), 3), np.nan)
    valid = np.zeros(len(pixels), bool)
    present = np.isfinite(pixels).all(axis=1)
    if present.any():
        points[present], valid[present] = plane.intersect_rays(camera.rays(pixels[present]))
    return points, valid


def depth_at(depth_m: np.ndarray, pixel: np.ndarray, window_px: int) -> float:
    """Median of the valid depths in the (2 window_px + 1)^2 window around the pixel containing
    image point `pixel` (u, v); NaN when none is valid or the point is outside the image."""
    height, width = depth_m.shape
    # Pixel (r, c) covers [c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]; a point on a lower boundary
    # (a bottom-centre, v = r + 0.5) belongs to the row above it, the mask's own row.
    col, row = int(np.floor(pixel[0] + 0.5)), int(np.ceil(pixel[1] - 0.5))
    if not (0 <= row < height and 0 <= col < width):
        return float("nan")
    patch = depth_m[max(0, row - window_px): row + window_px + 1, max(0, col - window_px): col + window_px + 1]
    values = patch[valid_depth(patch)]
    return float(np.median(values)) if values.size else float("nan")


def lift_with_depth(pixels: np.ndarray, depth_m: np.ndarray, camera: PinholeCamera,
                    window_px: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, 3] of pixels [N, 2] (NaN rows = none) back-projected with the median valid depth
    around each (`depth_at`), and validity [N] (False: no pixel or no valid depth there)."""
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    points = np.full((len(pixels), 3), np.nan)
    valid = np.zeros(len(pixels), bool)
    for index, pixel in enumerate(pixels):
        if not np.isfinite(pixel).all():
            continue
        z = depth_at(depth_m, pixel, window_px)
        if np.isfinite(z):
            points[index] = camera.back_project(pixel[None], z)[0]
            valid[index] = True
    return points, valid


def lift_region(region: np.ndarray, depth_m: np.ndarray, camera: PinholeCamera) -> tuple[np.ndarray, bool]:
    """3D point of a pixel region: the centroid of its pixels that have a valid depth, back-projected
    at the median of those depths. (NaN point, False) when no pixel of the region has depth."""
    rows, cols = np.nonzero(np.asarray(region, bool) & valid_depth(depth_m))
    if rows.size == 0:
        return np.full(3, np.nan), False
    centroid = np.array([[cols.mean(), rows.mean()]])
    return camera.back_project(centroid, float(np.median(depth_m[rows, cols])))[0], True
