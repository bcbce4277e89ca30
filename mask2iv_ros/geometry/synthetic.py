"""Exact synthetic tabletop scenes: a tilted table plane and boxes seen by a pinhole camera.

For tests, demos and bags with depth (a known plane and known object paths give known answers).
Rendering is per pixel centre, by ray casting: a pixel belongs to a box when the ray through its
centre hits the box, and its depth is the nearest hit's z (optical-axis distance, metres).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .camera import PinholeCamera


def tabletop_plane(height_m: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Plane coefficients (a, b, c, d) (the `SupportPlane` convention: unit normal toward the camera,
    d = distance) of a table `height_m` below a camera pitched down by `pitch_deg` (0 = looking
    horizontally, 90 = straight down) and rolled by `roll_deg` about its optical axis."""
    pitch, roll = np.radians(pitch_deg), np.radians(roll_deg)
    up = np.array([0.0, -np.cos(pitch), -np.sin(pitch)])
    rotation = np.array([[np.cos(roll), -np.sin(roll), 0.0], [np.sin(roll), np.cos(roll), 0.0], [0.0, 0.0, 1.0]])
    return np.append(rotation @ up, float(height_m))


def plane_axes(plane: np.ndarray) -> np.ndarray:
    """3x3 rotation whose columns are the plane's (right, away, up) axes in the optical frame:
    right = the camera x axis projected onto the plane, up = the normal, away = up x right."""
    up = np.asarray(plane[:3], dtype=np.float64)
    right = np.array([1.0, 0.0, 0.0]) - up[0] * up
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(up, right), up], axis=1)


def pixel_grid(height: int, width: int) -> np.ndarray:
    """[H*W, 2] (u, v) pixel-centre coordinates in row-major order."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)


def plane_depth(camera: PinholeCamera, plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [H, W] z of the plane at every pixel centre; NaN where the ray misses it."""
    rays = camera.rays(pixel_grid(height, width))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = -plane[3] / (rays @ np.asarray(plane[:3]))
    z[~(np.isfinite(z) & (z > 0))] = np.nan
    return z.reshape(height, width).astype(np.float32)


@dataclass(frozen=True)
class Box:
    """A box standing on the plane: its footprint centre `ground` (a point of the plane, optical
    frame), `size` (along right, away, up of `plane_axes`), metres."""

    ground: np.ndarray
    size: tuple[float, float, float]

    def front_centre(self, plane: np.ndarray) -> np.ndarray:
        """Middle of the footprint's edge nearest the camera (the silhouette's bottom-centre when the
        camera looks down at the table without roll)."""
        return np.asarray(self.ground, dtype=np.float64) - plane_axes(plane)[:, 1] * self.size[1] / 2

    def hit_depth(self, rays: np.ndarray, plane: np.ndarray) -> np.ndarray:
        """z of the nearest hit of each ray [N, 3] (z = 1) with the box; NaN for a miss (slab method)."""
        axes = plane_axes(plane)
        centre = np.asarray(self.ground, dtype=np.float64) + axes[:, 2] * self.size[2] / 2
        origin = axes.T @ -centre  # camera centre in box coordinates
        directions = rays @ axes  # [N, 3] in box coordinates
        half = np.asarray(self.size) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - origin) / directions, (half - origin) / directions
        near = np.nanmax(np.minimum(t1, t2), axis=1)
        far = np.nanmin(np.maximum(t1, t2), axis=1)
        hit = (near <= far) & (near > 0)
        return np.where(hit, near * rays[:, 2], np.nan)


def render(camera: PinholeCamera, plane: np.ndarray, height: int, width: int,
           boxes: Sequence[Box] = ()) -> tuple[np.ndarray, list[np.ndarray]]:
    """Depth (float32 [H, W], metres, NaN = no surface) of the plane and boxes, and each box's
    silhouette (bool [H, W], including parts hidden behind other boxes)."""
    rays = camera.rays(pixel_grid(height, width))
    depth = plane_depth(camera, plane, height, width).reshape(-1).astype(np.float64)
    silhouettes = []
    for box in boxes:
        z = box.hit_depth(rays, plane)
        silhouettes.append(np.isfinite(z).reshape(height, width))
        depth = np.fmin(depth, z)
    return depth.reshape(height, width).astype(np.float32), silhouettes


def metres_to_16uc1(depth_m: np.ndarray) -> np.ndarray:
    """uint16 millimetres (16UC1) of a depth in metres; NaN / out of range -> 0 (no measurement)."""
    millimetres = np.round(np.nan_to_num(np.asarray(depth_m, np.float64), nan=0.0) * 1000.0)
    millimetres[(millimetres < 0) | (millimetres > 65535)] = 0
    return millimetres.astype(np.uint16)


def default_camera(height: int = 480, width: int = 640, focal_px: Optional[float] = None) -> PinholeCamera:
    """A VGA-like pinhole camera (focal length 0.9375 x width, principal point at the centre)."""
    focal = 0.9375 * width if focal_px is None else focal_px
    return PinholeCamera(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)
