"""Bags of what actually happened after an imagination: per-frame tracked masks (and optionally
the camera images, depth and camera_info), read and written with `rosbags` (no ROS install).

Layout (topics configurable; defaults below). Every message is stamped (header.stamp) with the
time its camera frame was taken; mask and depth images are in the camera image's pixel grid.

| topic (default)       | type                     | content                                        |
|-----------------------|--------------------------|------------------------------------------------|
| /camera/image         | sensor_msgs/msg/Image    | camera frames (rgb8/bgr8...), optional (PNG)   |
| /object_mask          | sensor_msgs/msg/Image    | tracked object mask per frame (mono8)          |
| /actor_mask           | sensor_msgs/msg/Image    | tracked actor (arm / hand) mask, optional      |
| /camera/depth         | sensor_msgs/msg/Image    | depth, 16UC1 mm or 32FC1 m, optional           |
| /camera/camera_info   | sensor_msgs/msg/CameraInfo | intrinsics of the depth / image, optional    |

Masks may come from a tracker on the robot or from the curation annotators
(`mask2iv_ros.data.annotate`); `write_observed_bag` writes such a bag from arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from mask2iv_ros.eval.bag_io import (ACTOR_MASK_TOPIC, CAMERA_INFO_TOPIC, DEPTH_TOPIC, IMAGE_TOPIC,  # noqa: F401
                                     OBJECT_MASK_TOPIC, camera_info_message, depth_image_message,
                                     package_typestore)
from mask2iv_ros.geometry import PinholeCamera
from mask2iv_ros.ros.depth_image import camera_from_camera_info, depth_image_to_metres
from mask2iv_ros.ros.image_conversion import image_msg_to_mask, image_msg_to_rgb
from mask2iv_ros.ros.synchronizer import stamp_to_ns

_NS = 1_000_000_000


@dataclass
class ObservedSequence:
    """What happened: masks per observed frame with their stamps (ns), sorted by time."""

    object_masks: np.ndarray  # bool [N, H, W]
    object_stamps_ns: np.ndarray  # int64 [N]
    actor_masks: Optional[np.ndarray] = None  # bool [M, H, W]
    actor_stamps_ns: Optional[np.ndarray] = None
    images: Optional[np.ndarray] = None  # uint8 [K, H, W, 3] RGB
    image_stamps_ns: Optional[np.ndarray] = None
    depth_m: Optional[np.ndarray] = None  # float32 [H, W] the depth frame nearest the start (NaN = invalid)
    depth_stamp_ns: Optional[int] = None
    camera: Optional[PinholeCamera] = None


def _sorted(stamps: list[int], arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(stamps, kind="stable")
    return np.stack([arrays[i] for i in order]), np.asarray(stamps, np.int64)[order]


def read_observed_bag(path: Path | str, *, object_topic: str = OBJECT_MASK_TOPIC,
                      actor_topic: Optional[str] = ACTOR_MASK_TOPIC, image_topic: Optional[str] = IMAGE_TOPIC,
                      depth_topic: Optional[str] = DEPTH_TOPIC, camera_info_topic: Optional[str] = CAMERA_INFO_TOPIC,
                      depth_near_ns: Optional[int] = None) -> ObservedSequence:
    """The observed sequence of a bag. Optional topics that the bag lacks are skipped; the object
    mask topic is required. Only one depth frame is kept: the one stamped nearest `depth_near_ns`
    (default: the first object mask's stamp), i.e. the depth at the time of the imagination."""
    typestore = package_typestore()
    wanted = {object_topic: "object", actor_topic: "actor", image_topic: "image", depth_topic: "depth",
              camera_info_topic: "camera_info"}
    wanted.pop(None, None)
    collected: dict[str, tuple[list[int], list[Any]]] = {role: ([], []) for role in wanted.values()}
    with Reader(path) as reader:
        available = {c.topic for c in reader.connections}
        if object_topic not in available:
            raise ValueError(f"object_topic: {object_topic!r} is not in the observed bag {path}, which has {sorted(available)}")
        connections = [c for c in reader.connections if c.topic in wanted]
        for connection, _, raw in reader.messages(connections=connections):
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            stamps, messages = collected[wanted[connection.topic]]
            stamps.append(stamp_to_ns(message.header.stamp))
            messages.append(message)

    object_stamps, object_messages = collected["object"]
    if not object_messages:
        raise ValueError(f"object_topic: {object_topic!r} has no messages in {path}")
    objects, object_stamps_ns = _sorted(object_stamps, [image_msg_to_mask(m, object_topic) for m in object_messages])
    observed = ObservedSequence(objects, object_stamps_ns)
    if collected.get("actor", ([], []))[1]:
        stamps, messages = collected["actor"]
        observed.actor_masks, observed.actor_stamps_ns = _sorted(stamps, [image_msg_to_mask(m, actor_topic) for m in messages])
    if collected.get("image", ([], []))[1]:
        stamps, messages = collected["image"]
        observed.images, observed.image_stamps_ns = _sorted(stamps, [image_msg_to_rgb(m, image_topic) for m in messages])
    if collected.get("depth", ([], []))[1]:
        stamps, messages = collected["depth"]
        target = object_stamps_ns[0] if depth_near_ns is None else depth_near_ns
        nearest = int(np.argmin(np.abs(np.asarray(stamps, np.int64) - target)))
        observed.depth_m = depth_image_to_metres(messages[nearest], depth_topic)
        observed.depth_stamp_ns = int(stamps[nearest])
    if collected.get("camera_info", ([], []))[1]:
        observed.camera = camera_from_camera_info(collected["camera_info"][1][0], camera_info_topic)
    return observed


# ---- writing --------------------------------------------------------------------------------------
def _header(types: Any, stamp_ns: int, frame_id: str) -> Any:
    stamp = types["builtin_interfaces/msg/Time"](sec=int(stamp_ns) // _NS, nanosec=int(stamp_ns) % _NS)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def _image(types: Any, pixels: np.ndarray, header: Any, encoding: str) -> Any:
    pixels = np.ascontiguousarray(pixels)
    data = pixels.astype(pixels.dtype.newbyteorder("<")).view(np.uint8).reshape(-1)
    return types["sensor_msgs/msg/Image"](header=header, height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                                          is_bigendian=0, step=data.size // pixels.shape[0], data=data)


def write_observed_bag(path: Path | str, stamps_ns: Sequence[int], object_masks: np.ndarray, *,
                       actor_masks: Optional[np.ndarray] = None, images: Optional[np.ndarray] = None,
                       depth: Optional[np.ndarray] = None, camera: Optional[PinholeCamera] = None,
                       frame_id: str = "camera", storage: str = "mcap") -> Path:
    """Write an observed bag (layout in the module doc): frame i stamped `stamps_ns[i]`.

    `depth`: one raw depth image (uint16 mm -> 16UC1, float32 m -> 32FC1) stamped with the first
    frame, or one per frame [N, H, W]; `camera`: written as camera_info with the first frame.
    """
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage: expected one of {list(plugins)}, got {storage!r}")
    object_masks = np.asarray(object_masks, bool)
    stamps = [int(s) for s in stamps_ns]
    if object_masks.ndim != 3 or len(object_masks) != len(stamps):
        raise ValueError(f"object_masks: expected [N, H, W] with N = {len(stamps)} stamps, got {object_masks.shape}")
    typestore = package_typestore()
    types = typestore.types
    topics = {OBJECT_MASK_TOPIC: "sensor_msgs/msg/Image"}
    if actor_masks is not None:
        topics[ACTOR_MASK_TOPIC] = "sensor_msgs/msg/Image"
    if images is not None:
        topics[IMAGE_TOPIC] = "sensor_msgs/msg/Image"
    if depth is not None:
        topics[DEPTH_TOPIC] = "sensor_msgs/msg/Image"
    if camera is not None:
        topics[CAMERA_INFO_TOPIC] = "sensor_msgs/msg/CameraInfo"
    depth_frames = None if depth is None else (np.asarray(depth)[None] if np.asarray(depth).ndim == 2 else np.asarray(depth))
    height, width = object_masks.shape[1:]
    with Writer(Path(path), version=9, storage_plugin=plugins[storage]) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore) for topic, msgtype in topics.items()}

        def write(topic: str, message: Any, stamp_ns: int) -> None:
            writer.write(connections[topic], stamp_ns, typestore.serialize_cdr(message, topics[topic]))

        for index, stamp in enumerate(stamps):
            header = _header(types, stamp, frame_id)
            if index == 0 and camera is not None:
                write(CAMERA_INFO_TOPIC, camera_info_message(types, camera, header, height, width), stamp)
            if images is not None:
                write(IMAGE_TOPIC, _image(types, np.asarray(images[index], np.uint8), header, "rgb8"), stamp)
            if depth_frames is not None and index < len(depth_frames):
                write(DEPTH_TOPIC, depth_image_message(types, depth_frames[index], header), stamp)
            write(OBJECT_MASK_TOPIC, _image(types, np.where(object_masks[index], 255, 0).astype(np.uint8), header, "mono8"), stamp)
            if actor_masks is not None:
                write(ACTOR_MASK_TOPIC, _image(types, np.where(actor_masks[index], 255, 0).astype(np.uint8), header, "mono8"), stamp)
    return Path(path)
