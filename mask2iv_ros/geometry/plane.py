"""Support plane of the manipulated object: RANSAC on the current depth around the object mask.

The plane is fitted once, to the valid depth pixels in a ring around the first-frame object mask
(the table the object stands on), with NumPy RANSAC (3-point hypotheses, vectorised) and a
least-squares (SVD) refit on the inliers. Deterministic for a given seed.

Plane convention: coefficients (a, b, c, d) with a x + b y + c z + d = 0 in the camera optical
frame (metres), (a, b, c) a unit normal oriented toward the camera, i.e. d > 0 is the camera's
distance to the plane and a point p is above the surface (camera side) when n . p + d > 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from .camera import PinholeCamera
from .depth import valid_depth


@dataclass(frozen=True)
class SupportPlane:
    coefficients: np.ndarray  # float64 [4] (a, b, c, d); NaN when not valid
    valid: bool
    inliers: int = 0  # points within the RANSAC threshold of the final plane
    points: int = 0  # points the fit used
    rmse_m: float = float("nan")  # RMS point-to-plane distance of the inliers
    reason: str = ""  # why the plane is not valid ("" when it is)
    ring: Optional[np.ndarray] = field(default=None, repr=False, compare=False)  # bool [H, W] pixels considered

    @property
    def normal(self) -> np.ndarray:
        return self.coefficients[:3]

    @property
    def offset(self) -> float:
        return float(self.coefficients[3])

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """n . p + d for points [N, 3]: > 0 on the camera's side."""
        return np.asarray(points, dtype=np.float64).reshape(-1, 3) @ self.normal + self.offset

    def intersect_rays(self, rays: np.ndarray, min_cosine: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
        """Points [N, 3] where rays from the camera centre (directions [N, 3]) meet the plane, and
        validity [N]: False (points NaN) when the plane is not valid, a ray is (nearly) parallel to
        it (|cos| of the ray-plane-normal angle < min_cosine) or meets it behind the camera."""
        rays = np.asarray(rays, dtype=np.float64).reshape(-1, 3)
        points = np.full(rays.shape, np.nan)
        if not self.valid:
            return points, np.zeros(len(rays), bool)
        denominator = rays @ self.normal
        cosine = np.abs(denominator) / np.linalg.norm(rays, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -self.offset / denominator
        valid = (cosine >= min_cosine) & np.isfinite(t) & (t > 0)
        points[valid] = rays[valid] * t[valid, None]
        return points, valid


def invalid_plane(reason: str, points: int = 0, ring: Optional[np.ndarray] = None) -> SupportPlane:
    return SupportPlane(np.full(4, np.nan), False, 0, points, float("nan"), reason, ring)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """bool mask grown by a disc of `radius_px` pixels (radius 0 = unchanged)."""
    mask = np.asarray(mask, bool)
    if radius_px <= 0:
        return mask.copy()
    return cv2.dilate(mask.astype(np.uint8), _disc(int(radius_px))) > 0


def support_ring(object_mask: np.ndarray, inner_px: int, outer_px: int) -> np.ndarray:
    """Pixels at distance (inner_px, outer_px] from the object mask: the surface around it."""
    if not 0 <= inner_px < outer_px:
        raise ValueError(f"ring: expected 0 <= inner_px < outer_px, got inner_px={inner_px}, outer_px={outer_px}")
    return dilate(object_mask, outer_px) & ~dilate(object_mask, inner_px)


def _orient(normal: np.ndarray, offset: float) -> tuple[np.ndarray, float]:
    """Unit normal toward the camera (offset > 0)."""
    scale = np.linalg.norm(normal)
    normal, offset = normal / scale, offset / scale
    return (-normal, -offset) if offset < 0 else (normal, offset)


def _least_squares_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1]
    return _orient(normal, -float(normal @ centroid))


def fit_plane_ransac(points: np.ndarray, *, threshold_m: float = 0.01, iterations: int = 256,
                     seed: int = 0, min_points: int = 50, min_inlier_ratio: float = 0.25,
                     refine_steps: int = 3) -> SupportPlane:
    """RANSAC plane of points [N, 3] (metres), refined by least squares on the inliers.

    Hypotheses: `iterations` random 3-point samples (NumPy Generator seeded with `seed`), scored
    by the number of points within `threshold_m`; the best one's inliers are refitted by SVD
    `refine_steps` times (inliers recomputed each time). Not valid when there are fewer than
    `min_points` points, fewer than `min_inlier_ratio` of them are inliers, or the plane passes
    through the camera centre (seen edge-on).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if threshold_m <= 0:
        raise ValueError(f"threshold_m: expected a distance > 0 in metres, got {threshold_m}")
    if len(points) < max(3, min_points):
        return invalid_plane(f"{len(points)} valid depth points around the object (need {max(3, min_points)})", len(points))
    rng = np.random.default_rng(seed)
    samples = points[rng.integers(0, len(points), size=(iterations, 3))]  # [K, 3 points, 3]
    normals = np.cross(samples[:, 1] - samples[:, 0], samples[:, 2] - samples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    usable = lengths > 1e-12  # repeated or collinear samples give no plane
    if not usable.any():
        return invalid_plane("all RANSAC samples were degenerate (collinear points)", len(points))
    normals = normals[usable] / lengths[usable, None]
    offsets = -np.einsum("kj,kj->k", normals, samples[usable, 0])
    counts = (np.abs(points @ normals.T + offsets) < threshold_m).sum(axis=0)
    best = int(np.argmax(counts))
    inliers = np.abs(points @ normals[best] + offsets[best]) < threshold_m
    normal, offset = _orient(normals[best], float(offsets[best]))
    for _ in range(refine_steps):
        if inliers.sum() < 3:
            break
        normal, offset = _least_squares_plane(points[inliers])
        inliers = np.abs(points @ normal + offset) < threshold_m
    count = int(inliers.sum())
    residual = points[inliers] @ normal + offset if count else np.zeros(0)
    rmse = float(np.sqrt(np.mean(residual**2))) if count else float("nan")
    coefficients = np.append(normal, offset)
    if count < min_inlier_ratio * len(points):
        return SupportPlane(np.full(4, np.nan), False, count, len(points), rmse,
                            f"only {count} of {len(points)} points lie within {threshold_m} m of the best plane "
                            f"(need {min_inlier_ratio:.0%})")
    if offset < 1e-6:
        return SupportPlane(np.full(4, np.nan), False, count, len(points), rmse,
                            "the plane passes through the camera centre (seen edge-on)")
    return SupportPlane(coefficients, True, count, len(points), rmse)


def default_ring_px(height: int, width: int) -> tuple[int, int]:
    """(inner, outer) ring radii: skip 3 px of mixed object/table depth at the mask's edge, take
    up to a tenth of the image's short side (at least 10 px) of the surface around it."""
    return 3, max(10, round(0.1 * min(height, width)))


def fit_support_plane(depth_m: np.ndarray, camera: PinholeCamera, object_mask: np.ndarray, *,
                      exclude_mask: Optional[np.ndarray] = None, inner_px: Optional[int] = None,
                      outer_px: Optional[int] = None, max_points: int = 4000, seed: int = 0,
                      **ransac_kwargs) -> SupportPlane:
    """Plane of the surface around `object_mask` (bool [H, W]) in the decoded depth (metres, NaN
    invalid). `exclude_mask` (e.g. the actor) is left out of the ring. At most `max_points` ring
    pixels (a seeded random subset) go into `fit_plane_ransac`."""
    depth_m = np.asarray(depth_m)
    object_mask = np.asarray(object_mask, bool)
    if not object_mask.any():
        return invalid_plane("the first-frame object mask is empty: no neighbourhood to fit the support plane to")
    default_inner, default_outer = default_ring_px(*depth_m.shape)
    ring = support_ring(object_mask, default_inner if inner_px is None else inner_px,
                        default_outer if outer_px is None else outer_px)
    if exclude_mask is not None:
        ring &= ~np.asarray(exclude_mask, bool)
    rows, cols = np.nonzero(ring & valid_depth(depth_m))
    rng = np.random.default_rng(seed)
    if len(rows) > max_points:
        keep = np.sort(rng.choice(len(rows), size=max_points, replace=False))
        rows, cols = rows[keep], cols[keep]
    points = camera.back_project(np.stack([cols, rows], axis=1), depth_m[rows, cols])
    plane = fit_plane_ransac(points, seed=seed, **ransac_kwargs)
    return SupportPlane(plane.coefficients, plane.valid, plane.inliers, plane.points, plane.rmse_m, plane.reason, ring)
