"""`interaction_geometry`: the 3D geometry of one imagined interaction, for a planner.

From a mask trajectory (actor and object masks, in the camera image's pixel grid), the current
depth image and the camera intrinsics it computes, in the camera optical frame (x right, y down,
z forward, metres):

- the support plane: RANSAC on the current depth around the first-frame object mask (`plane.py`);
- `object_path`: per frame, the ray through the object mask's bottom-centre (`lifting.py`)
  intersected with the support plane: where the object stands on the surface. Exact for objects
  that slide or are placed on that surface; while an object is carried in the air the point is
  where its silhouette's bottom meets the table behind it (still valid, but not the object);
- `placement_point`: the last valid point of `object_path` (frame `placement_frame`);
- `contact_frame`: the first frame where actor and object touch (`contact.py`), or -1;
- `contact_point`: the contact region of that frame lifted with the current depth: the object has
  not moved yet at contact, so the current depth sees its surface there. Pixels of the region that
  also belong to the first-frame object mask are used when there are any (the current depth shows
  the object there), else the whole region;
- `actor_path`: per frame, the actor mask's bottom-centre (its tip for an arm reaching down into
  the image) lifted with the current depth at that pixel (median over a small window): the first
  surface of the current scene along the ray through the tip. Exact while the tip touches a
  surface (contact, pushing along the table); behind the tip while it is in the air.

Every point comes with a validity flag (False where a mask is empty, depth is missing, the plane
could not be fitted, or a ray is parallel to the plane or meets it behind the camera); invalid
points are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .camera import PinholeCamera
from .contact import DEFAULT_DILATE_PX, contact_frame, contact_region
from .depth import decode_depth
from .lifting import bottom_centres, lift_region, lift_to_plane, lift_with_depth
from .plane import SupportPlane, dilate, fit_support_plane


@dataclass
class InteractionGeometry:
    """Geometry of one imagined interaction (module doc); arrays are float64, metres."""

    camera: PinholeCamera
    support_plane: SupportPlane
    contact_frame: int  # -1: actor and object never touch
    contact_point: np.ndarray  # [3]
    contact_point_valid: bool
    object_pixels: np.ndarray  # [T, 2] bottom-centre (u, v) per frame, NaN for an empty mask
    object_path: np.ndarray  # [T, 3]
    object_path_valid: np.ndarray  # bool [T]
    placement_frame: int  # frame of placement_point; -1 when no path point is valid
    placement_point: np.ndarray  # [3]
    placement_point_valid: bool
    actor_pixels: np.ndarray  # [T, 2]
    actor_path: np.ndarray  # [T, 3]
    actor_path_valid: np.ndarray  # bool [T]

    @property
    def num_frames(self) -> int:
        return len(self.object_path)

    def to_dict(self) -> dict:
        """JSON-friendly summary: points as [x, y, z] lists, None where not valid."""

        def point(value: np.ndarray, valid: bool) -> Optional[list[float]]:
            return [float(x) for x in value] if valid else None

        return {
            "frame": "camera optical frame (x right, y down, z forward), metres",
            "support_plane": {
                "coefficients": point(self.support_plane.coefficients, self.support_plane.valid),
                "valid": self.support_plane.valid,
                "inliers": self.support_plane.inliers,
                "points": self.support_plane.points,
                "rmse_m": float(self.support_plane.rmse_m) if self.support_plane.valid else None,
                "reason": self.support_plane.reason,
            },
            "contact_frame": self.contact_frame,
            "contact_point": point(self.contact_point, self.contact_point_valid),
            "object_path": [point(p, v) for p, v in zip(self.object_path, self.object_path_valid)],
            "placement_frame": self.placement_frame,
            "placement_point": point(self.placement_point, self.placement_point_valid),
            "actor_path": [point(p, v) for p, v in zip(self.actor_path, self.actor_path_valid)],
        }


def _camera(k: Any, distortion: Sequence[float]) -> PinholeCamera:
    if isinstance(k, PinholeCamera):
        return k
    if hasattr(k, "k") and hasattr(k, "distortion_model"):  # a sensor_msgs/CameraInfo
        return PinholeCamera.from_camera_info(k)
    return PinholeCamera.from_k(k, distortion=distortion)


def _mask_video(masks: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"{name}: expected a bool mask video [T, H, W], got shape {masks.shape}")
    if masks.shape[1:] != shape:
        raise ValueError(f"{name}: expected masks in the depth image's pixel grid {shape} (H, W), got {masks.shape[1:]}; "
                         "masks must be in the camera image's pixel grid")
    return masks.astype(bool, copy=False)


def interaction_geometry(actor_masks: Any, object_masks: Any, depth: Any, K: Any, *,
                         depth_encoding: Optional[str] = None, distortion: Sequence[float] = (),
                         dilate_px: int = DEFAULT_DILATE_PX, actor_window_px: int = 2,
                         plane: Optional[SupportPlane] = None, seed: int = 0,
                         **plane_kwargs) -> InteractionGeometry:
    """Geometry of one imagined interaction (module doc).

    actor_masks: bool [T, H, W] or None (no actor: no contact, no actor path); object_masks: bool
    [T, H, W]; both in the pixel grid of `depth`. depth: the current depth image [H, W], uint16
    millimetres (16UC1) or float metres (32FC1), 0/NaN/inf = no measurement (`decode_depth`;
    `depth_encoding` to state it explicitly). K: the 3x3 intrinsics (9 numbers, as in
    sensor_msgs/CameraInfo.k), a CameraInfo message, or a PinholeCamera; `distortion`: OpenCV
    coefficients for a K array (default none: a rectified image). `plane`: a support plane
    fitted before (e.g. shared between hypotheses of one input); else it is fitted here with
    `seed` and `plane_kwargs` (`fit_support_plane` / `fit_plane_ransac` arguments).
    """
    depth_m = decode_depth(depth, depth_encoding)
    shape = depth_m.shape
    camera = _camera(K, distortion)
    camera.check_image_size(*shape, field="depth")
    object_video = _mask_video(object_masks, "object_masks", shape)
    frames = len(object_video)
    if frames == 0:
        raise ValueError("object_masks: expected at least one frame, got none")
    actor_video = (np.zeros_like(object_video) if actor_masks is None
                   else _mask_video(actor_masks, "actor_masks", shape))
    if len(actor_video) != frames:
        raise ValueError(f"actor_masks: expected {frames} frames like object_masks, got {len(actor_video)}")

    if plane is None:
        plane = fit_support_plane(depth_m, camera, object_video[0], exclude_mask=dilate(actor_video[0], dilate_px),
                                  seed=seed, **plane_kwargs)

    object_pixels = bottom_centres(object_video)
    object_path, object_valid = lift_to_plane(object_pixels, camera, plane)
    valid_frames = np.flatnonzero(object_valid)
    placement_frame = int(valid_frames[-1]) if valid_frames.size else -1
    placement_point = object_path[placement_frame].copy() if placement_frame >= 0 else np.full(3, np.nan)

    first_contact = contact_frame(actor_video, object_video, dilate_px)
    contact_point, contact_valid = np.full(3, np.nan), False
    if first_contact >= 0:
        region = contact_region(actor_video[first_contact], object_video[first_contact], dilate_px)
        on_current_object = region & object_video[0]
        contact_point, contact_valid = lift_region(on_current_object if on_current_object.any() else region, depth_m, camera)

    actor_pixels = bottom_centres(actor_video)
    actor_path, actor_valid = lift_with_depth(actor_pixels, depth_m, camera, actor_window_px)

    return InteractionGeometry(
        camera=camera,
        support_plane=plane,
        contact_frame=first_contact,
        contact_point=contact_point,
        contact_point_valid=bool(contact_valid),
        object_pixels=object_pixels,
        object_path=object_path,
        object_path_valid=object_valid,
        placement_frame=placement_frame,
        placement_point=placement_point,
        placement_point_valid=placement_frame >= 0,
        actor_pixels=actor_pixels,
        actor_path=actor_path,
        actor_path_valid=actor_valid,
    )
