"""Input and output bags of the replay, read and written with `rosbags` (no ROS install needed).

Bag layout (what `write_input_bag` writes; recorded robot bags need the first two topics only):

| topic                           | type                            | role                              |
|---------------------------------|---------------------------------|-----------------------------------|
| /camera/image                   | sensor_msgs/msg/Image           | input image (rgb8)                |
| /object_mask                    | sensor_msgs/msg/Image           | input object mask (mono8)         |
| /placement_mask                 | sensor_msgs/msg/Image           | input placement mask, PT-Gen      |
| /actor_mask                     | sensor_msgs/msg/Image           | input first-frame actor mask (mono8), optional; node use_actor_mask |
| /prompt                         | std_msgs/msg/String             | input action description, TT-Gen  |
| /camera/depth                   | sensor_msgs/msg/Image           | input depth (16UC1 mm / 32FC1 m), optional; node use_depth |
| /camera/camera_info             | sensor_msgs/msg/CameraInfo      | input intrinsics, with the depth  |
| /ground_truth/mask_trajectory   | mask2iv_ros/msg/MaskTrajectory  | ground truth, header stamp = image stamp; not replayed |

Input messages whose header stamps agree (within `slop_s`) form one input set, i.e. one request;
header-less messages (the prompt) belong to the set that follows them. The package's own message
types are registered from msg/*.msg (rosbags `get_types_from_msg`), so bags carrying them can be
written and read, and the node's outputs recorded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from mask2iv_ros.ros.image_conversion import image_msg_to_mask
from mask2iv_ros.ros.synchronizer import stamp_to_ns

IMAGE_TOPIC = "/camera/image"
OBJECT_MASK_TOPIC = "/object_mask"
PLACEMENT_MASK_TOPIC = "/placement_mask"
ACTOR_MASK_TOPIC = "/actor_mask"
PROMPT_TOPIC = "/prompt"
DEPTH_TOPIC = "/camera/depth"
CAMERA_INFO_TOPIC = "/camera/camera_info"
GROUND_TRUTH_TOPIC = "/ground_truth/mask_trajectory"
GROUND_TRUTH_PREFIX = "/ground_truth/"
OUTPUT_TOPICS = {
    "/imagination/mask_trajectory": "mask2iv_ros/msg/MaskTrajectory",
    "/imagination/rollout": "mask2iv_ros/msg/ImaginedRollout",
    "/imagination/overlay": "sensor_msgs/msg/Image",
    "/imagination/video": "sensor_msgs/msg/Image",
    "/imagination/geometry": "mask2iv_ros/msg/InteractionGeometry",
}
ROLLOUT_TOPIC = "/imagination/rollout"
# The node's rollout topic leaves the trajectory's images out: they are on this topic (same stamp).
TRAJECTORY_TOPIC = "/imagination/mask_trajectory"
# Recorded times of bags written by `write_input_bag` start here (2023-11-14, a fixed, valid epoch).
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000
_NS = 1_000_000_000


# ---- message types ----------------------------------------------------------------------------
def package_msg_dir() -> Path:
    """Folder with this package's .msg files: the source tree, else the installed share folder."""
    source = Path(__file__).resolve().parents[2] / "msg"
    if (source / "MaskTrajectory.msg").is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("mask2iv_ros")) / "msg"
    except Exception:  # noqa: BLE001 - ament index absent or package not registered
        installed = Path(sys.prefix) / "share" / "mask2iv_ros" / "msg"
    if (installed / "MaskTrajectory.msg").is_file():
        return installed
    raise FileNotFoundError(f"mask2iv_ros .msg files: found neither {source} nor {installed}")


def package_typestore() -> Any:
    """A rosbags typestore for ROS 2 Kilted plus mask2iv_ros/msg/* (from the .msg files)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    for msg_file in sorted(package_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(msg_file.read_text(), f"mask2iv_ros/msg/{msg_file.stem}"))
    typestore.register(types)
    return typestore


def masks_from_images(images: Sequence[Any]) -> np.ndarray:
    """bool [T, H, W] from a list of mono8 Image messages (rclpy or rosbags)."""
    return np.stack([image_msg_to_mask(image, "mask") for image in images])


# ---- writing input bags ------------------------------------------------------------------------
@dataclass
class BagRequest:
    """One input set to write: the first frame, the object mask, the condition, and ground truth."""

    image: np.ndarray  # uint8 [H, W, 3] RGB
    object_mask: np.ndarray  # bool [H, W]
    prompt: str = ""
    placement_mask: Optional[np.ndarray] = None  # bool [H, W]
    actor_mask: Optional[np.ndarray] = None  # bool [H, W], first-frame actor (robot arm); all False = none visible
    ground_truth_actor_masks: Optional[np.ndarray] = None  # bool [T, H, W]
    ground_truth_object_masks: Optional[np.ndarray] = None  # bool [T, H, W]
    fps: float = 5.0
    depth: Optional[np.ndarray] = None  # [H, W] uint16 mm (16UC1) or float32 m (32FC1), the image's grid
    camera: Optional[Any] = None  # PinholeCamera of the image (written as camera_info with the depth)


def request_from_clip(clip: Any, mode: str = "text", *, with_actor_mask: bool = False) -> BagRequest:
    """BagRequest from an InteractionClip-like object (frames, actor_masks, object_masks, prompt, fps).

    mode 'text' writes the prompt, 'position' the placement mask (last object mask); the clip's
    masks become the ground truth. `with_actor_mask`: also write the clip's first actor mask as the
    first-frame actor mask input (/actor_mask), as a robot's own segmentation would give it.
    """
    if mode not in ("text", "position"):
        raise ValueError(f"mode: expected 'text' or 'position', got {mode!r}")
    if clip.object_masks is None:
        raise ValueError("clip.object_masks: expected a bool [T, H, W] mask video, got None")
    if with_actor_mask and clip.actor_masks is None:
        raise ValueError("clip.actor_masks: with_actor_mask needs a bool [T, H, W] actor mask video, got None")
    return BagRequest(
        image=clip.frames[0],
        object_mask=clip.object_masks[0],
        prompt=clip.prompt if mode == "text" else "",
        placement_mask=clip.object_masks[-1] if mode == "position" else None,
        actor_mask=clip.actor_masks[0] if with_actor_mask else None,
        ground_truth_actor_masks=clip.actor_masks,
        ground_truth_object_masks=clip.object_masks,
        fps=float(getattr(clip, "fps", 5.0)),
    )


def depth_image_message(types: Any, depth: np.ndarray, header: Any) -> Any:
    """A rosbags depth Image: uint16 millimetres -> 16UC1, float metres -> 32FC1 (little endian)."""
    depth = np.ascontiguousarray(depth)
    encoding = "16UC1" if depth.dtype == np.uint16 else "32FC1"
    pixels = depth if encoding == "16UC1" else depth.astype(np.float32)
    data = pixels.astype(pixels.dtype.newbyteorder("<")).view(np.uint8).reshape(-1)
    return types["sensor_msgs/msg/Image"](header=header, height=pixels.shape[0], width=pixels.shape[1],
                                          encoding=encoding, is_bigendian=0,
                                          step=data.size // pixels.shape[0], data=data)


def camera_info_message(types: Any, camera: Any, header: Any, height: int, width: int) -> Any:
    """A rosbags CameraInfo of a PinholeCamera (plumb_bob, no rectification)."""
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    projection = np.zeros((3, 4))
    projection[:, :3] = camera.matrix
    return types["sensor_msgs/msg/CameraInfo"](
        header=header, height=height, width=width, distortion_model="plumb_bob",
        d=np.array(camera.distortion or (0.0,) * 5, np.float64), k=camera.matrix.reshape(-1),
        r=np.eye(3).reshape(-1), p=projection.reshape(-1), binning_x=0, binning_y=0, roi=roi)


class _BagMessages:
    """Builds rosbags message instances for `write_input_bag`."""

    def __init__(self, typestore: Any):
        self.types = typestore.types

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        time_type = self.types["builtin_interfaces/msg/Time"]
        return self.types["std_msgs/msg/Header"](stamp=time_type(sec=stamp_ns // _NS, nanosec=stamp_ns % _NS), frame_id=frame_id)

    def image(self, pixels: np.ndarray, header: Any, encoding: str) -> Any:
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        return self.types["sensor_msgs/msg/Image"](
            header=header,
            height=pixels.shape[0],
            width=pixels.shape[1],
            encoding=encoding,
            is_bigendian=0,
            step=pixels.shape[1] * channels,
            data=pixels.reshape(-1),
        )

    def mask(self, mask: np.ndarray, header: Any) -> Any:
        return self.image(np.where(np.asarray(mask, bool), 255, 0).astype(np.uint8), header, "mono8")

    def trajectory(self, actor_masks: np.ndarray, object_masks: np.ndarray, header: Any, fps: float) -> Any:
        from mask2iv_ros.masks import DEFAULT_PALETTE, encode_mask_video

        colored = encode_mask_video(object_masks, actor_masks)
        height, width = np.asarray(object_masks).shape[1:3]
        # ground truth covers the whole camera image
        region = self.types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=int(height), width=int(width), do_rectify=False)
        return self.types["mask2iv_ros/msg/MaskTrajectory"](
            header=header,
            imagined_region=region,
            frames=[self.image(frame, header, "rgb8") for frame in colored],
            actor_masks=[self.mask(mask, header) for mask in actor_masks],
            object_masks=[self.mask(mask, header) for mask in object_masks],
            actor_color=np.array(DEFAULT_PALETTE.actor, np.uint8),
            object_color=np.array(DEFAULT_PALETTE.object, np.uint8),
            background_color=np.array(DEFAULT_PALETTE.background, np.uint8),
            fps=float(fps),
        )


def write_input_bag(
    path: Path | str,
    requests: Iterable[BagRequest],
    *,
    storage: str = "mcap",
    frame_id: str = "camera",
    start_ns: int = DEFAULT_START_NS,
    period_s: float = 2.0,
) -> Path:
    """Write an input bag (layout in the module docstring): request i is stamped start + i * period.

    `storage` is 'mcap' or 'sqlite3'. The bag folder must not exist yet.
    """
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage: expected one of {list(plugins)}, got {storage!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"path: the bag folder {path} already exists")
    typestore = package_typestore()
    build = _BagMessages(typestore)
    requests = list(requests)
    if not requests:
        raise ValueError("requests: expected at least one BagRequest, got none")
    topics = {
        PROMPT_TOPIC: "std_msgs/msg/String",
        IMAGE_TOPIC: "sensor_msgs/msg/Image",
        OBJECT_MASK_TOPIC: "sensor_msgs/msg/Image",
        PLACEMENT_MASK_TOPIC: "sensor_msgs/msg/Image",
        ACTOR_MASK_TOPIC: "sensor_msgs/msg/Image",
        GROUND_TRUTH_TOPIC: "mask2iv_ros/msg/MaskTrajectory",
    }
    if any(request.depth is not None for request in requests):
        topics[DEPTH_TOPIC] = "sensor_msgs/msg/Image"
        topics[CAMERA_INFO_TOPIC] = "sensor_msgs/msg/CameraInfo"
    for index, request in enumerate(requests):
        if (request.depth is None) != (request.camera is None):
            raise ValueError(f"requests[{index}]: expected depth and camera together (camera_info "
                             "goes with the depth) or neither")
        if request.depth is not None and np.asarray(request.depth).shape != request.image.shape[:2]:
            raise ValueError(f"requests[{index}].depth: expected the image's pixel grid "
                             f"{request.image.shape[:2]}, got {np.asarray(request.depth).shape}")
    with Writer(path, version=9, storage_plugin=plugins[storage]) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore) for topic, msgtype in topics.items()}

        def write(topic: str, message: Any, log_ns: int) -> None:
            writer.write(connections[topic], log_ns, typestore.serialize_cdr(message, topics[topic]))

        for index, request in enumerate(requests):
            stamp = start_ns + int(round(index * period_s * _NS))
            header = build.header(stamp, frame_id)
            if request.prompt:
                # Logged before its set, so readers order it first (it has no header stamp) and a
                # replay at the recorded rate gives the node time to take it before the images.
                prompt_ns = stamp - int(min(0.2, period_s / 4) * _NS)
                write(PROMPT_TOPIC, typestore.types["std_msgs/msg/String"](data=request.prompt), prompt_ns)
            write(IMAGE_TOPIC, build.image(request.image, header, "rgb8"), stamp)
            write(OBJECT_MASK_TOPIC, build.mask(request.object_mask, header), stamp)
            if request.placement_mask is not None:
                write(PLACEMENT_MASK_TOPIC, build.mask(request.placement_mask, header), stamp)
            if request.actor_mask is not None:
                write(ACTOR_MASK_TOPIC, build.mask(request.actor_mask, header), stamp)
            if request.depth is not None:
                height, width = request.image.shape[:2]
                write(CAMERA_INFO_TOPIC, camera_info_message(typestore.types, request.camera, header, height, width), stamp)
                write(DEPTH_TOPIC, depth_image_message(typestore.types, request.depth, header), stamp)
            if request.ground_truth_object_masks is not None:
                actor = request.ground_truth_actor_masks
                if actor is None:
                    actor = np.zeros_like(request.ground_truth_object_masks, dtype=bool)
                write(GROUND_TRUTH_TOPIC, build.trajectory(actor, request.ground_truth_object_masks, header, request.fps), stamp)
    return path


# ---- reading input bags ------------------------------------------------------------------------
@dataclass
class BagMessage:
    topic: str
    msgtype: str
    log_ns: int
    raw: bytes
    stamp_ns: Optional[int]  # header stamp; None for header-less types


@dataclass
class InputSet:
    index: int
    stamp_ns: int
    messages: list[BagMessage] = field(default_factory=list)  # in publishing order
    is_request: bool = False  # contains the image topic: the node answers it


@dataclass
class GroundTruth:
    actor_masks: np.ndarray  # bool [T, H, W]
    object_masks: np.ndarray


def read_input_bag(
    path: Path | str,
    typestore: Any,
    *,
    topics: Optional[Sequence[str]] = None,
    image_topic: str = IMAGE_TOPIC,
    slop_s: float = 0.05,
) -> tuple[list[InputSet], dict[int, GroundTruth]]:
    """Input sets (by header stamp) and ground truth (by stamp) of a bag.

    `topics`: the input topics to replay; default every topic except /ground_truth/* and the
    node's output topics.
    """
    slop_ns = int(slop_s * _NS)
    sets: list[InputSet] = []
    pending: list[BagMessage] = []  # header-less messages waiting for the next set
    ground_truth: dict[int, GroundTruth] = {}
    with Reader(path) as reader:
        available = {c.topic for c in reader.connections}
        if topics is not None and set(topics) - available:
            raise ValueError(f"topics: {sorted(set(topics) - available)} not in the bag, which has {sorted(available)}")
        connections = [
            c
            for c in reader.connections
            if (c.topic in topics if topics is not None else c.topic not in OUTPUT_TOPICS and not c.topic.startswith(GROUND_TRUTH_PREFIX))
            or c.topic == GROUND_TRUTH_TOPIC
        ]
        for connection, log_ns, raw in reader.messages(connections=connections):
            if connection.topic == GROUND_TRUTH_TOPIC:
                gt = typestore.deserialize_cdr(raw, connection.msgtype)
                ground_truth[stamp_to_ns(gt.header.stamp)] = GroundTruth(
                    masks_from_images(gt.actor_masks), masks_from_images(gt.object_masks)
                )
                continue
            fields = getattr(typestore.types.get(connection.msgtype), "__dataclass_fields__", {})
            stamp = None
            if "header" in fields:
                stamp = stamp_to_ns(typestore.deserialize_cdr(raw, connection.msgtype).header.stamp)
            message = BagMessage(connection.topic, connection.msgtype, log_ns, bytes(raw), stamp)
            if stamp is None:
                pending.append(message)
                continue
            current = sets[-1] if sets else None
            if (
                current is None
                or pending
                or abs(stamp - current.stamp_ns) > slop_ns
                or any(m.topic == message.topic for m in current.messages)
            ):
                current = InputSet(index=len(sets), stamp_ns=stamp)
                sets.append(current)
            current.messages.extend(pending)
            pending.clear()
            current.messages.append(message)
            current.is_request = current.is_request or message.topic == image_topic
            if message.topic == image_topic:
                current.stamp_ns = stamp  # outputs carry the image's stamp
    if pending:  # trailing header-less messages: publish them at the end
        sets.append(InputSet(index=len(sets), stamp_ns=pending[-1].log_ns, messages=list(pending)))
    return sets, ground_truth


def read_bag(path: Path | str, typestore: Any = None) -> dict[str, list[Any]]:
    """topic -> deserialized messages of a bag (for tests and quick looks)."""
    typestore = typestore or package_typestore()
    messages: dict[str, list[Any]] = {}
    with Reader(path) as reader:
        for connection, _, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(typestore.deserialize_cdr(raw, connection.msgtype))
    return messages


def _first_request(path: Path | str) -> tuple[list[InputSet], InputSet, dict[str, BagMessage]]:
    """All input sets, the first request (set with the image) and its messages by topic."""
    sets, _ = read_input_bag(path, package_typestore())
    request = next((s for s in sets if s.is_request), None)
    if request is None:
        raise ValueError(f"path: no input set with {IMAGE_TOPIC} in {path}")
    return sets, request, {m.topic: m for m in request.messages}


def first_request_messages(path: Path | str) -> tuple[Any, Any, str]:
    """(image, object_mask, prompt) of the bag's first request, as rclpy messages (needs rclpy).

    For sending the same input as an Imagine goal; the prompt is the last one before the request.
    The request's actor mask, if the bag has one, comes from `first_request_actor_mask`.
    """
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    sets, request, by_topic = _first_request(path)
    if OBJECT_MASK_TOPIC not in by_topic:
        raise ValueError(f"path: the first request in {path} has no {OBJECT_MASK_TOPIC} message")
    prompts = [m for s in sets[: request.index + 1] for m in s.messages if m.topic == PROMPT_TOPIC]
    prompt = package_typestore().deserialize_cdr(prompts[-1].raw, prompts[-1].msgtype).data if prompts else ""
    return (
        deserialize_message(by_topic[IMAGE_TOPIC].raw, Image),
        deserialize_message(by_topic[OBJECT_MASK_TOPIC].raw, Image),
        prompt,
    )


def first_request_depth(path: Path | str) -> tuple[Optional[Any], Optional[Any]]:
    """(depth Image, CameraInfo) rclpy messages of the bag's first request, or (None, None).

    Go with `first_request_messages` into an Imagine goal's `depth` / `camera_info` fields.
    """
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, Image

    _, _, by_topic = _first_request(path)
    if DEPTH_TOPIC not in by_topic or CAMERA_INFO_TOPIC not in by_topic:
        return None, None
    return (deserialize_message(by_topic[DEPTH_TOPIC].raw, Image),
            deserialize_message(by_topic[CAMERA_INFO_TOPIC].raw, CameraInfo))


def first_request_actor_mask(path: Path | str) -> Optional[Any]:
    """The /actor_mask message (rclpy Image) of the bag's first request, or None if it has none.

    Goes with `first_request_messages` into an Imagine goal's `actor_mask` field.
    """
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    _, _, by_topic = _first_request(path)
    message = by_topic.get(ACTOR_MASK_TOPIC)
    return None if message is None else deserialize_message(message.raw, Image)
