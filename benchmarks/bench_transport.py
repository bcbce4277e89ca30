"""Publish-to-receive latency of one imagined 16 x 320 x 512 rollout on loopback, per payload
layout and Fast DDS transport configuration; prints a markdown table (median / p90 ms).

    python benchmarks/bench_transport.py                 # every payload x transport, 20 rollouts each
    python benchmarks/bench_transport.py --quick         # node / node-rollout / current / png x 2 transports, 6 rollouts
    python benchmarks/bench_transport.py --payloads current mono8+video --transports default shm

Publisher and subscriber are separate processes (as node and planner are), started with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and this run's own ROS_DOMAIN_ID. QoS is the node's for
results (ros/parameters.py, ros/node.py): reliable, transient local, keep last
``output_qos_depth``; the PNG variant sends one message per mask on a reliable, transient-local
stream deep enough for a whole rollout. The publisher stamps the message right before
``publish()``; the subscriber takes the time when its callback gets the (deserialised) message,
then acknowledges, and the next rollout is sent only after the acknowledgement, so each number
is one rollout's delivery, not a queue. Content: a synthetic episode at 320 x 512 (real masks,
so PNG sizes are realistic).

Columns: payload MB (serialised CDR), build ms (numpy -> message(s), PNG encoding included; best
of 3),
publish ms (the ``publish()`` calls; Fast DDS publishes synchronously), latency median / p90
(stamp -> callback of the last message), decode ms (message(s) -> numpy arrays in the
subscriber, PNG decoding included) and end-to-end = build + median latency + decode.

Transports: ``default`` (no profile: Fast DDS' builtin SHM with a 512 kB segment + UDPv4),
``shm`` (config/fastdds_shm.xml: 128 MiB SHM segment + UDPv4), ``shm-only``
(config/fastdds_shm_only.xml), ``large-data`` (FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA: Fast DDS'
builtin SHM + TCP set-up for large samples, no file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = {
    "node": "what imagine_node publishes on its mask_trajectory topic, built by its own code (ros/outputs.py) "
            "with the default trajectory_encoding ('masks': actor + object mono8 masks)",
    "node-rollout": "what imagine_node publishes on its rollout topic, built by its own code: the video, "
                    "the trajectory's header/region/palette but not its images (those are on the trajectory topic)",
    "current": "colour frames + actor/object mono8 masks + video in one ImaginedRollout (the rollout topic before "
               "trajectory_encoding; trajectory_encoding 'both' in an action result)",
    "colour": "colour mask frames only (MaskTrajectory.frames)",
    "mono8": "actor + object mono8 masks only (MaskTrajectory)",
    "video": "video frames only (ImaginedRollout.video_frames)",
    "mono8+video": "mono8 masks + video (ImaginedRollout without colour frames)",
    "colour+video": "colour frames + video (ImaginedRollout without mono8 masks)",
    "png": "actor + object masks as sensor_msgs/CompressedImage PNG, one message per mask",
}
TRANSPORTS = {
    "default": {},
    "shm": {"profile": ROOT / "config" / "fastdds_shm.xml"},
    "shm-only": {"profile": ROOT / "config" / "fastdds_shm_only.xml"},
    "large-data": {"env": {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}},
}
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
DATA_TOPIC, PNG_TOPIC, ACK_TOPIC = "bench_transport/rollout", "bench_transport/masks_png", \
    "bench_transport/ack"
RESULT_PREFIX = "RESULT "


# ---------------------------------------------------------------------------- content + messages
def rollout_content(frames: int, height: int, width: int, seed: int = 7777) -> dict[str, np.ndarray]:
    """A synthetic episode: video [T, H, W, 3], actor/object masks [T, H, W], colour frames."""
    from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode
    from mask2iv_ros.masks import encode_mask_video

    clip = generate_episode(seed, 0, SyntheticConfig(height=height, width=width,
                                                     num_frames=max(frames, 6)))
    actor, obj = clip.actor_masks[:frames], clip.object_masks[:frames]
    return {"video": clip.frames[:frames], "actor": actor, "object": obj,
            "colour": encode_mask_video(obj, actor)}


def message_type(payload: str):
    from sensor_msgs.msg import CompressedImage

    from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory

    if payload == "png":
        return CompressedImage
    return MaskTrajectory if payload in ("colour", "mono8", "node") else ImaginedRollout


def node_messages(payload: str, content: dict[str, np.ndarray]) -> list:
    """The node's own messages (ros/outputs.py, default parameters) for these arrays."""
    from builtin_interfaces.msg import Time

    from mask2iv_ros.pipeline import Mask2IVOutput
    from mask2iv_ros.ros import outputs
    from mask2iv_ros.ros.parameters import ImagineParameters
    from mask2iv_ros.ros.requests import ImagineRequest

    params = ImagineParameters()
    output = Mask2IVOutput(mask_trajectory=content["colour"], actor_masks=content["actor"],
                           object_masks=content["object"], video=content["video"], fps=8.0)
    first = content["video"][0]
    request = ImagineRequest(request_id="bench", stamp=Time(), frame_id="camera", image=first,
                             object_mask=content["object"][0], mode="text", prompt="push", placement_mask=None,
                             actor_mask=None, num_frames=len(content["video"]), num_inference_steps=4, guidance_scale=1.0,
                             seed=0, trajectory_only=False)
    header = outputs.input_header(request)
    trajectory = outputs.mask_trajectory_msg(output, header, 8.0, encoding=params.trajectory_encoding)
    if payload == "node":
        return [trajectory]
    rollout = outputs.rollout_msg(request, output, trajectory, fps=8.0, model_id="bench", total_seconds=0.0)
    return [outputs.with_trajectory(rollout, outputs.without_images(trajectory))]


def build_messages(payload: str, content: dict[str, np.ndarray]) -> list:
    """The message(s) one rollout is sent as, built from the arrays the way the node does."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory
    from mask2iv_ros.ros.image_conversion import mask_to_image_msg, rgb_to_image_msg

    if payload in ("node", "node-rollout"):
        return node_messages(payload, content)
    if payload == "png":
        messages = []
        for masks in (content["actor"], content["object"]):
            for mask in masks:
                ok, png = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
                messages.append(CompressedImage(format="mono8; png compressed", data=png.tobytes()))
        return messages
    parts = set(payload.split("+")) if payload != "current" else {"colour", "mono8", "video"}
    trajectory = MaskTrajectory(fps=8.0)
    if "colour" in parts:
        trajectory.frames = [rgb_to_image_msg(frame) for frame in content["colour"]]
    if "mono8" in parts:
        trajectory.actor_masks = [mask_to_image_msg(mask) for mask in content["actor"]]
        trajectory.object_masks = [mask_to_image_msg(mask) for mask in content["object"]]
    if message_type(payload) is MaskTrajectory:
        return [trajectory]
    rollout = ImaginedRollout(mask_trajectory=trajectory, fps=8.0)
    if "video" in parts:
        rollout.video_frames = [rgb_to_image_msg(frame) for frame in content["video"]]
    return [rollout]


def decode_messages(messages: list) -> list[np.ndarray]:
    """What a planner does first: the received message(s) -> numpy arrays."""
    import cv2

    from mask2iv_ros.ros.image_conversion import image_msg_to_array

    arrays = []
    for message in messages:
        if hasattr(message, "format"):                      # CompressedImage
            arrays.append(cv2.imdecode(np.frombuffer(message.data, np.uint8), cv2.IMREAD_UNCHANGED))
            continue
        trajectory = getattr(message, "mask_trajectory", message)
        images = [*trajectory.frames, *trajectory.actor_masks, *trajectory.object_masks,
                  *getattr(message, "video_frames", [])]
        arrays.extend(image_msg_to_array(image) for image in images)
    return arrays


def qos_profiles(payload: str, messages_per_rollout: int):
    """The node's result QoS (reliable, transient local, keep last output_qos_depth)."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from mask2iv_ros.ros.parameters import ImagineParameters
    from mask2iv_ros.ros.qos import latched_qos

    depth = messages_per_rollout if payload == "png" else ImagineParameters().output_qos_depth
    data = latched_qos(depth)
    ack = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)
    return data, ack


# ---------------------------------------------------------------------------- the two processes
def run_publisher(args: argparse.Namespace) -> dict:
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message
    from std_msgs.msg import UInt32

    content = rollout_content(args.frames, args.height, args.width)
    builds = []
    for _ in range(3):  # the best of 3: the first one also pays for imports and first-touch
        start = time.perf_counter()
        messages = build_messages(args.payload, content)
        builds.append((time.perf_counter() - start) * 1e3)
    build_ms = min(builds)
    payload_bytes = sum(len(serialize_message(m)) for m in messages)
    data_qos, ack_qos = qos_profiles(args.payload, len(messages))
    rclpy.init()
    node = rclpy.create_node("bench_transport_pub")
    topic = PNG_TOPIC if args.payload == "png" else DATA_TOPIC
    publisher = node.create_publisher(message_type(args.payload), topic, data_qos)
    acks: set[int] = set()
    node.create_subscription(UInt32, ACK_TOPIC, lambda m: acks.add(m.data), ack_qos)
    deadline = time.monotonic() + args.timeout
    while (publisher.get_subscription_count() < 1 or node.count_publishers(ACK_TOPIC) < 1) \
            and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(0.5)  # let both sides finish matching (reliable writer needs the reader's locators)
    publish_ms, lost = [], 0
    for index in range(args.warmup + args.count):
        now = time.time_ns()
        stamp = Time(sec=now // 1_000_000_000, nanosec=now % 1_000_000_000)
        for message in messages:
            message.header.stamp = stamp
            message.header.frame_id = str(index)
        begin = time.perf_counter()
        for message in messages:
            publisher.publish(message)
        if index >= args.warmup:
            publish_ms.append((time.perf_counter() - begin) * 1e3)
        wait_until = time.monotonic() + args.timeout
        while index not in acks and time.monotonic() < wait_until:
            rclpy.spin_once(node, timeout_sec=0.05)
        lost += index not in acks
    node.destroy_node()
    rclpy.shutdown()
    return {"build_ms": build_ms, "publish_ms": statistics.median(publish_ms) if publish_ms else None,
            "bytes": payload_bytes, "messages": len(messages), "lost": lost}


def run_subscriber(args: argparse.Namespace) -> dict:
    import rclpy
    from std_msgs.msg import UInt32

    expected = 2 * args.frames if args.payload == "png" else 1
    data_qos, ack_qos = qos_profiles(args.payload, expected)
    rclpy.init()
    node = rclpy.create_node("bench_transport_sub")
    ack = node.create_publisher(UInt32, ACK_TOPIC, ack_qos)
    pending: dict[int, list] = {}
    latencies, decodes, done = [], [], set()

    def on_message(message) -> None:
        received = time.time_ns()
        index = int(message.header.frame_id)
        parts = pending.setdefault(index, [])
        parts.append(message)
        if len(parts) < expected:
            return
        stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
        begin = time.perf_counter()
        decode_messages(pending.pop(index))
        if index >= args.warmup:
            latencies.append((received - stamp) / 1e6)
            decodes.append((time.perf_counter() - begin) * 1e3)
        done.add(index)
        ack.publish(UInt32(data=index))

    topic = PNG_TOPIC if args.payload == "png" else DATA_TOPIC
    node.create_subscription(message_type(args.payload), topic, on_message, data_qos)
    deadline = time.monotonic() + args.timeout * (args.warmup + args.count + 1)
    while len(done) < args.warmup + args.count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(0.3)  # let the last acknowledgement go out
    node.destroy_node()
    rclpy.shutdown()
    return {"latency_ms": latencies, "decode_ms": statistics.median(decodes) if decodes else None}


# ---------------------------------------------------------------------------- orchestration
def transport_env(name: str, base: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items()
           if k not in PROFILE_VARIABLES and k != "FASTDDS_BUILTIN_TRANSPORTS"}
    spec = TRANSPORTS[name]
    if "profile" in spec:
        env.update({variable: str(spec["profile"]) for variable in PROFILE_VARIABLES})
    env.update(spec.get("env", {}))
    return env


def _result(process: subprocess.Popen, role: str, timeout: float) -> dict:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    for line in out.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"{role} (exit {process.returncode}) printed no result:\n{err[-2000:]}")


def measure(payload: str, transport: str, args: argparse.Namespace, base_env: dict) -> dict:
    env = transport_env(transport, base_env)
    common = [sys.executable, str(Path(__file__).resolve()), "--payloads", payload,
              "--frames", str(args.frames), "--height", str(args.height), "--width", str(args.width),
              "--count", str(args.count), "--warmup", str(args.warmup), "--timeout", str(args.timeout)]
    limit = args.timeout * (args.count + args.warmup + 2) + 60
    subscriber = subprocess.Popen([*common, "--role", "sub"], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    publisher = subprocess.Popen([*common, "--role", "pub"], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pub = _result(publisher, "publisher", limit)
    sub = _result(subscriber, "subscriber", limit)
    return {"payload": payload, "transport": transport, **pub, **sub}


def table(rows: list[dict]) -> str:
    lines = ["| transport | payload | MB | build ms | publish ms | latency median ms | latency p90 ms "
             "| decode ms | end-to-end ms | received |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        latency = row["latency_ms"]
        if latency:
            median, p90 = statistics.median(latency), float(np.percentile(latency, 90))
            total = f"{row['build_ms'] + median + row['decode_ms']:.0f}"
            cells = f"{median:.1f} | {p90:.1f} | {row['decode_ms']:.1f} | {total}"
        else:
            cells = "n/a | n/a | n/a | n/a"
        publish = "n/a" if row["publish_ms"] is None else f"{row['publish_ms']:.1f}"
        lines.append(f"| {row['transport']} | {row['payload']} | {row['bytes'] / 1e6:.2f} | "
                     f"{row['build_ms']:.0f} | {publish} | {cells} | {len(latency)}/{row['count']} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payloads", nargs="+", default=list(PAYLOADS), choices=list(PAYLOADS))
    parser.add_argument("--transports", nargs="+", default=list(TRANSPORTS), choices=list(TRANSPORTS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--count", type=int, default=20, help="timed rollouts per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rollouts first")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait per rollout")
    parser.add_argument("--quick", action="store_true",
                        help="node / node-rollout / current / png over default and shm, 6 rollouts each")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--role", choices=["pub", "sub"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.role:
        args.payload = args.payloads[0]
        result = run_publisher(args) if args.role == "pub" else run_subscriber(args)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.quick:
        args.payloads = [p for p in args.payloads if p in ("node", "node-rollout", "current", "png")]
        args.transports = [t for t in args.transports if t in ("default", "shm")]
        args.count, args.warmup = 6, 1
    from mask2iv_ros.ros_env import check_local_ros_env, local_ros_env

    base_env = local_ros_env()
    check_local_ros_env(base_env)
    print(f"{args.frames} x {args.height} x {args.width} rollout, {args.count} timed + {args.warmup} "
          f"warm-up per variant, ROS_DOMAIN_ID {base_env['ROS_DOMAIN_ID']}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    rows = []
    for transport in args.transports:
        for payload in args.payloads:
            row = measure(payload, transport, args, base_env)
            row["count"] = args.count
            rows.append(row)
            print(f"  {transport:>10} {payload:<13} done", flush=True)
    print()
    print(table(rows))
    print("\npayloads: " + "; ".join(f"{k} = {PAYLOADS[k]}" for k in args.payloads))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
