"""sensor_msgs/Image depth <-> metres (16UC1 / mono16 millimetres, 32FC1 metres; REP 118), CameraInfo <-> PinholeCamera.

Reads rclpy and rosbags messages alike (fields only, no ROS import); `depth_to_image_msg` /
`camera_info_msg` build rclpy messages (imported when called). 16-bit images go through
`image_conversion.image_msg_to_array` (row padding, byte order); 32FC1 is read here the same way.
Errors are `ImageConversionError`s naming the field, e.g. ``depth.encoding: ...``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mask2iv_ros.geometry.camera import PinholeCamera
from mask2iv_ros.geometry.depth import DEPTH_ENCODINGS, METRE_ENCODINGS, decode_depth
from mask2iv_ros.ros.image_conversion import ImageConversionError, image_msg_to_array


def _float_image(msg: Any, field: str) -> np.ndarray:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(field, f"expected a non-empty image, got height={height} width={width}")
    if step < width * 4:
        raise ImageConversionError(f"{field}.step", f"expected at least {width * 4} bytes per row for 32FC1, got {step}")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageConversionError(f"{field}.data", f"expected {step * height} bytes (height {height} x step {step}), got {buffer.size}")
    rows = np.ascontiguousarray(buffer[: step * height].reshape(height, step)[:, : width * 4])
    return rows.view(np.dtype(">f4" if msg.is_bigendian else "<f4")).astype(np.float32).reshape(height, width)


def depth_image_to_metres(msg: Any, field: str = "depth") -> np.ndarray:
    """float32 [H, W] metres, NaN where there is no measurement (0, NaN, inf), of a depth Image."""
    encoding = str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise ImageConversionError(f"{field}.encoding", f"expected a depth encoding {list(DEPTH_ENCODINGS)}, got {encoding!r}")
    raw = _float_image(msg, field) if encoding in METRE_ENCODINGS else image_msg_to_array(msg, field)
    return decode_depth(raw, encoding, field)


def camera_from_camera_info(msg: Any, field: str = "camera_info") -> PinholeCamera:
    """PinholeCamera of a sensor_msgs/CameraInfo (errors name `field`)."""
    return PinholeCamera.from_camera_info(msg, field)


def depth_to_image_msg(depth: Any, header: Any = None) -> Any:
    """sensor_msgs/Image (rclpy, little endian, unpadded rows) of a depth array: uint16 millimetres
    -> 16UC1, float metres -> 32FC1 (NaN / 0 = no measurement)."""
    from sensor_msgs.msg import Image

    depth = np.asarray(depth)
    if depth.ndim != 2 or not (depth.dtype == np.uint16 or np.issubdtype(depth.dtype, np.floating)):
        raise ImageConversionError("depth", f"expected [H, W] uint16 millimetres or float metres, got {depth.dtype} "
                                   f"{depth.shape}")
    pixels = depth if depth.dtype == np.uint16 else depth.astype(np.float32)
    pixels = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder("<")))
    msg = Image(height=depth.shape[0], width=depth.shape[1], encoding="16UC1" if depth.dtype == np.uint16 else "32FC1",
                is_bigendian=0, step=depth.shape[1] * pixels.itemsize)
    msg.data = pixels.tobytes()
    if header is not None:
        msg.header.stamp, msg.header.frame_id = header.stamp, header.frame_id
    return msg


def camera_info_msg(camera: PinholeCamera, header: Any = None, height: int = 0, width: int = 0) -> Any:
    """sensor_msgs/CameraInfo (rclpy) of a PinholeCamera: k, p, plumb_bob d (zeros unless the camera
    has distortion), the camera's size (or height / width when it has none)."""
    from sensor_msgs.msg import CameraInfo

    projection = np.zeros((3, 4))
    projection[:, :3] = camera.matrix
    msg = CameraInfo(height=int(camera.height or height), width=int(camera.width or width), distortion_model="plumb_bob")
    msg.d = [float(x) for x in (camera.distortion or (0.0,) * 5)]
    msg.k = [float(x) for x in camera.matrix.reshape(-1)]
    msg.r = [float(x) for x in np.eye(3).reshape(-1)]
    msg.p = [float(x) for x in projection.reshape(-1)]
    if header is not None:
        msg.header.stamp, msg.header.frame_id = header.stamp, header.frame_id
    return msg
