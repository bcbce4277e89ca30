"""mask2iv_ros/InteractionGeometry messages from `mask2iv_ros.geometry.InteractionGeometry`.

Invalid points are NaN in the message, with their flag false (see msg/InteractionGeometry.msg).
Poses of the paths are stamped input stamp + i / fps, in the input image's frame_id.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mask2iv_ros.geometry import InteractionGeometry

_NS = 1_000_000_000


def _point(value: np.ndarray, valid: bool) -> Any:
    from geometry_msgs.msg import Point

    x, y, z = (float(v) for v in value) if valid else (float("nan"),) * 3
    return Point(x=x, y=y, z=z)


def _path(points: np.ndarray, valid: np.ndarray, header: Any, fps: float) -> Any:
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path
    from std_msgs.msg import Header

    start_ns = int(header.stamp.sec) * _NS + int(header.stamp.nanosec)
    poses = []
    for index, (point, ok) in enumerate(zip(points, valid)):
        stamp_ns = start_ns + int(round(index * _NS / fps))
        pose = PoseStamped(header=Header(stamp=Time(sec=stamp_ns // _NS, nanosec=stamp_ns % _NS), frame_id=header.frame_id))
        pose.pose.position = _point(point, bool(ok))
        pose.pose.orientation.w = 1.0
        poses.append(pose)
    return Path(header=header, poses=poses)


def interaction_geometry_msg(geometry: InteractionGeometry, header: Any, fps: float, hypothesis_index: int = 0) -> Any:
    """The InteractionGeometry message of one hypothesis. `header`: the input image's (std_msgs/Header);
    `fps`: the trajectory's playback rate (frame i is at header.stamp + i / fps)."""
    from mask2iv_ros.msg import InteractionGeometry as InteractionGeometryMsg

    if not fps > 0:
        raise ValueError(f"fps: expected the trajectory's frames per second > 0, got {fps}")
    plane = geometry.support_plane
    return InteractionGeometryMsg(
        header=header,
        hypothesis_index=int(hypothesis_index),
        contact_frame=int(geometry.contact_frame),
        contact_point=_point(geometry.contact_point, geometry.contact_point_valid),
        contact_point_valid=bool(geometry.contact_point_valid),
        object_path=_path(geometry.object_path, geometry.object_path_valid, header, fps),
        object_path_valid=[bool(v) for v in geometry.object_path_valid],
        placement_point=_point(geometry.placement_point, geometry.placement_point_valid),
        placement_point_valid=bool(geometry.placement_point_valid),
        placement_frame=int(geometry.placement_frame),
        actor_path=_path(geometry.actor_path, geometry.actor_path_valid, header, fps),
        actor_path_valid=[bool(v) for v in geometry.actor_path_valid],
        support_plane=np.asarray(plane.coefficients if plane.valid else np.full(4, np.nan), dtype=np.float64),
        support_plane_valid=bool(plane.valid),
        support_plane_rmse=float(plane.rmse_m) if plane.valid else float("nan"),
        support_plane_inlier_ratio=float(plane.inliers / plane.points) if plane.points else 0.0,
    )
