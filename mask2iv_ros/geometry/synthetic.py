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

    def corners(self, plane: np.ndarray) -> np.ndarray:
        """[8, 3] corners in the optical frame."""
        axes = plane_axes(plane)
        signs = np.array([[i, j, k] for i in (-0.5, 0.5) for j in (-0.5, 0.5) for k in (0.0, 1.0)])
        return np.asarray(self.ground, dtype=np.float64) + (signs * np.asarray(self.size)) @ axes.T

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
    depth = plane_depth(camera, plane, height, width).astype(np.float64)
    silhouettes = []
    for box in boxes:
        silhouette = np.zeros((height, width), bool)
        corners = box.corners(plane)
        if (corners[:, 2] <= 0).any():
            raise ValueError("boxes: expected boxes entirely in front of the camera (z > 0)")
        # A box in front of the camera projects inside the hull of its corners: cast only those rays.
        uv = camera.project(corners)
        c0, r0 = np.maximum(np.floor(uv.min(axis=0)).astype(int) - 1, 0)
        c1, r1 = np.minimum(np.ceil(uv.max(axis=0)).astype(int) + 2, [width, height])
        if c0 < c1 and r0 < r1:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            z = box.hit_depth(camera.rays(np.stack([cols.ravel(), rows.ravel()], axis=1)), plane).reshape(rows.shape)
            silhouette[r0:r1, c0:c1] = np.isfinite(z)
            depth[r0:r1, c0:c1] = np.fmin(depth[r0:r1, c0:c1], z)
        silhouettes.append(silhouette)
    return depth.astype(np.float32), silhouettes


def metres_to_16uc1(depth_m: np.ndarray) -> np.ndarray:
    """uint16 millimetres (16UC1) of a depth in metres; NaN / out of range -> 0 (no measurement)."""
    millimetres = np.round(np.nan_to_num(np.asarray(depth_m, np.float64), nan=0.0) * 1000.0)
    millimetres[(millimetres < 0) | (millimetres > 65535)] = 0
    return millimetres.astype(np.uint16)


def default_camera(height: int = 480, width: int = 640, focal_px: Optional[float] = None) -> PinholeCamera:
    """A VGA-like pinhole camera (focal length 0.9375 x width, principal point at the centre)."""
    focal = 0.9375 * width if focal_px is None else focal_px
    return PinholeCamera(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)


@dataclass
class PushScene:
    """A finger (tall thin box) slides along the table, touches a box and pushes it: everything a
    test of `interaction_geometry` needs, with the exact answers."""

    camera: PinholeCamera
    plane: np.ndarray  # (a, b, c, d)
    depth_m: np.ndarray  # float32 [H, W] current depth (frame 0), NaN = no surface
    actor_masks: np.ndarray  # bool [T, H, W] finger silhouettes minus the object's (the object wins)
    object_masks: np.ndarray  # bool [T, H, W]
    object_boxes: list[Box]
    actor_boxes: list[Box]
    contact_frame: int  # first frame with the finger against the box

    @property
    def object_path(self) -> np.ndarray:
        """[T, 3] exact bottom-centre ground points of the box (front edge middle)."""
        return np.stack([box.front_centre(self.plane) for box in self.object_boxes])

    @property
    def actor_path(self) -> np.ndarray:
        """[T, 3] exact tip ground points of the finger (front edge middle of its footprint)."""
        return np.stack([box.front_centre(self.plane) for box in self.actor_boxes])


def push_scene(camera: Optional[PinholeCamera] = None, plane: Optional[np.ndarray] = None, *,
               start_pixel: tuple[float, float] = (270.0, 330.0), frames: int = 8, contact_frame: int = 3,
               push_per_frame: tuple[float, float] = (0.02, 0.01), box_size: tuple[float, float, float] = (0.06, 0.06, 0.05),
               finger_size: tuple[float, float, float] = (0.02, 0.02, 0.25), approach_per_frame_m: float = 0.04) -> PushScene:
    """The box stands where the ray through `start_pixel` meets the table; the finger starts
    `contact_frame * approach_per_frame_m` to its left, reaches it at `contact_frame` and then
    pushes it by `push_per_frame` (right, away; metres) each frame."""
    camera = camera or default_camera()
    plane = tabletop_plane(0.6, 50.0) if plane is None else np.asarray(plane, dtype=np.float64)
    height, width = camera.height or 480, camera.width or 640
    right, away = plane_axes(plane)[:, 0], plane_axes(plane)[:, 1]
    ray = camera.rays([start_pixel])[0]
    start = ray * (-plane[3] / (ray @ plane[:3]))
    touching = (box_size[0] + finger_size[0]) / 2  # centre distance when the faces meet
    object_boxes, actor_boxes = [], []
    for index in range(frames):
        pushed = max(0, index - contact_frame)
        ground = start + right * push_per_frame[0] * pushed + away * push_per_frame[1] * pushed
        gap = approach_per_frame_m * max(0, contact_frame - index)
        object_boxes.append(Box(ground, box_size))
        actor_boxes.append(Box(ground - right * (touching + gap), finger_size))
    depth_m, _ = render(camera, plane, height, width, [object_boxes[0], actor_boxes[0]])
    object_masks = np.stack([render(camera, plane, height, width, [box])[1][0] for box in object_boxes])
    actor_masks = np.stack([render(camera, plane, height, width, [box])[1][0] for box in actor_boxes]) & ~object_masks
    return PushScene(camera, plane, depth_m, actor_masks, object_masks, object_boxes, actor_boxes, contact_frame)
