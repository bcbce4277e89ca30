"""Pinhole camera model of a sensor_msgs/CameraInfo, in the camera optical frame.

Optical frame (REP 103): x right, y down, z forward (along the optical axis), metres.
Pixel convention (ROS CameraInfo / OpenCV): the centre of the pixel in row r, column c has image
coordinates (u, v) = (c, r); pixel (r, c) covers u in [c - 0.5, c + 0.5], v in [r - 0.5, r + 0.5].
The ray through (u, v) is ((u - cx) / fx, (v - cy) / fy, 1): points on it have depth z (the
optical-axis distance a ROS depth image stores, not the Euclidean range).

Distortion: images are taken as rectified (CameraInfo `d` all zero, or `image_rect` topics). A
`plumb_bob` / `rational_polynomial` CameraInfo with nonzero `d` is handled by undistorting pixel
coordinates with OpenCV before they become rays; other distortion models are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import cv2
import numpy as np

OPENCV_DISTORTION_MODELS = ("plumb_bob", "rational_polynomial")


@dataclass(frozen=True)
class PinholeCamera:
    fx: float
    fy: float
    cx: float
    cy: float
    width: Optional[int] = None  # image size the intrinsics belong to; None = not checked
    height: Optional[int] = None
    distortion: tuple[float, ...] = ()  # OpenCV order (k1, k2, p1, p2, k3[, k4, k5, k6]); () = none

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"K.{name}: expected a finite focal length > 0 in pixels, got {value}")
        for name in ("cx", "cy"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"K.{name}: expected a finite principal point in pixels, got {getattr(self, name)}")
        if len(self.distortion) not in (0, 4, 5, 8, 12, 14):
            raise ValueError(f"distortion: expected 0, 4, 5, 8, 12 or 14 OpenCV coefficients, got {len(self.distortion)}")

    @classmethod
    def from_k(cls, k: Any, width: Optional[int] = None, height: Optional[int] = None,
               distortion: Sequence[float] = ()) -> "PinholeCamera":
        """From a CameraInfo-like K: 9 numbers (row-major 3x3) or a 3x3 array [[fx,0,cx],[0,fy,cy],[0,0,1]]."""
        k = np.asarray(k, dtype=np.float64)
        if k.size != 9:
            raise ValueError(f"K: expected the 3x3 intrinsic matrix (9 numbers, row-major), got shape {k.shape}")
        k = k.reshape(3, 3)
        if not np.allclose(k[2], [0.0, 0.0, 1.0]) or abs(k[1, 0]) > 1e-9:
            raise ValueError(f"K: expected [[fx, s, cx], [0, fy, cy], [0, 0, 1]], got {k.tolist()}")
        if abs(k[0, 1]) > 1e-9:
            raise ValueError(f"K: skew K[0][1] = {k[0, 1]} is not supported (expected 0)")
        distortion = tuple(float(x) for x in distortion)
        if distortion and not any(distortion):
            distortion = ()
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]),
                   None if width is None else int(width), None if height is None else int(height), distortion)

    @classmethod
    def from_camera_info(cls, info: Any, field: str = "camera_info") -> "PinholeCamera":
        """From a sensor_msgs/CameraInfo (rclpy or rosbags message; only its fields are read)."""
        k = np.asarray(info.k, dtype=np.float64)
        if k.size != 9 or not np.any(k):
            raise ValueError(f"{field}.k: expected the 3x3 intrinsic matrix (calibrated camera), got {k.tolist()}")
        d = tuple(float(x) for x in np.asarray(info.d, dtype=np.float64).reshape(-1))
        model = str(info.distortion_model)
        if any(d) and model not in OPENCV_DISTORTION_MODELS:
            raise ValueError(f"{field}.distortion_model: {model!r} with nonzero d is not supported; expected a "
                             f"rectified image (d all zero) or one of {list(OPENCV_DISTORTION_MODELS)}")
        try:
            return cls.from_k(k, int(info.width) or None, int(info.height) or None, d)
        except ValueError as error:
            raise ValueError(f"{field}.{error}") from None

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def check_image_size(self, height: int, width: int, field: str) -> None:
        """Raise when an image of (height, width) is not the size the intrinsics were calibrated at."""
        if self.width is not None and self.height is not None and (height, width) != (self.height, self.width):
            raise ValueError(f"{field}: expected an image of the camera_info size ({self.height}, {self.width}), "
                             f"got ({height}, {width})")

    def rays(self, uv: Any) -> np.ndarray:
        """Ray directions [N, 3] (z = 1) through pixel coordinates uv [N, 2] = (u, v)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if self.distortion and len(uv):
            normalised = cv2.undistortPoints(uv.reshape(-1, 1, 2), self.matrix, np.asarray(self.distortion)).reshape(-1, 2)
        else:
            normalised = np.stack([(uv[:, 0] - self.cx) / self.fx, (uv[:, 1] - self.cy) / self.fy], axis=1)
        return np.concatenate([normalised, np.ones((len(uv), 1))], axis=1)

    def back_project(self, uv: Any, z: Any) -> np.ndarray:
        """3D points [N, 3] at depth z (optical-axis distance, metres) through pixels uv [N, 2]."""
        return self.rays(uv) * np.asarray(z, dtype=np.float64).reshape(-1, 1)

    def project(self, points: Any) -> np.ndarray:
        """Pixel coordinates [N, 2] of 3D points [N, 3] (z > 0) in the optical frame (with distortion, if any)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if self.distortion:
            uv, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), self.matrix, np.asarray(self.distortion))
            return uv.reshape(-1, 2)
        return np.stack([self.fx * points[:, 0] / points[:, 2] + self.cx,
                         self.fy * points[:, 1] / points[:, 2] + self.cy], axis=1)
