"""`mask2iv-replay`: replay a rosbag2 into a running imagine_node, record its outputs, report.

Reads an input bag (MCAP or sqlite3; layout in `mask2iv_ros.eval.bag_io`) with `rosbags` (no
rosbag2_py / `ros2 bag` needed), publishes its input topics as recorded (the serialized bytes,
`Publisher.publish(bytes(raw))`), records every output topic into an MCAP bag, and writes a report
(JSON + markdown): per-request latency, outputs received, and trajectory metrics against ground
truth when the bag has it.

Timing: `rate=None` publishes a set, waits for the node's ImaginedRollout with that stamp (or
`request_timeout_s`), then publishes the next ("as fast as the node consumes"); `rate=r` publishes
every message at its recorded time divided by r and does not wait in between.

Recorded stamps are in the past, so the node must not refuse them as too old: the replay publishes
/clock with the recorded times (like `ros2 bag play --clock`); run the node with
`use_sim_time:=true`, or with `max_input_age_s:=0`. The node's `trigger` must be `each`.

A bag's /actor_mask (first-frame actor mask) is replayed like the other inputs; the node uses it
only with `use_actor_mask:=true`, and then answers only sets that include one.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from mask2iv_ros.eval.bag_io import (  # bag helpers re-exported: the replay's public API (__all__)
    ACTOR_MASK_TOPIC,
    GROUND_TRUTH_TOPIC,
    IMAGE_TOPIC,
    OBJECT_MASK_TOPIC,
    OUTPUT_TOPICS,
    PLACEMENT_MASK_TOPIC,
    PROMPT_TOPIC,
    ROLLOUT_TOPIC,
    TRAJECTORY_TOPIC,
    BagRequest,
    first_request_actor_mask,
    first_request_depth,
    first_request_messages,
    package_typestore,
    read_bag,
    read_input_bag,
    request_from_clip,
    write_input_bag,
)
from mask2iv_ros.eval.replay_report import ReplayReport, RequestRecord, trajectory_metrics
from mask2iv_ros.ros.image_conversion import has_trajectory_images, trajectory_masks
from mask2iv_ros.ros.synchronizer import stamp_to_ns

__all__ = [
    "ACTOR_MASK_TOPIC", "GROUND_TRUTH_TOPIC", "IMAGE_TOPIC", "OBJECT_MASK_TOPIC", "OUTPUT_TOPICS", "PLACEMENT_MASK_TOPIC",
    "PROMPT_TOPIC", "ROLLOUT_TOPIC", "BagRequest", "ReplayReport", "first_request_actor_mask", "first_request_depth", "first_request_messages", "main",
    "package_typestore", "read_bag", "read_input_bag", "replay_bag", "request_from_clip", "write_input_bag",
]
_NS = 1_000_000_000


def _ros_message_class(msgtype: str) -> Any:
    """rclpy message class of 'pkg/msg/Name'."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


# ---- replay ------------------------------------------------------------------------------------
class _OutputRecorder:
    """Raw subscriptions on the output topics: writes every message to the output bag."""

    def __init__(self, node: Any, typestore: Any, writer: Writer, topics: dict[str, str]):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self._typestore = typestore
        self._writer = writer
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)
        self.counts: dict[str, int] = {topic: 0 for topic in topics}
        self.per_stamp: dict[int, dict[str, int]] = {}
        self.rollouts: dict[int, tuple[float, Any]] = {}  # stamp -> (monotonic receipt time, rollout)
        self.trajectories: dict[int, Any] = {}  # stamp -> MaskTrajectory (the rollout topic's has no images)
        self._connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore) for topic, msgtype in topics.items()}
        # Volatile: only outputs made during this replay, not the node's latched earlier ones.
        qos = QoSProfile(
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
            history=HistoryPolicy.KEEP_LAST,
            depth=200,
        )
        self.subscriptions = [
            node.create_subscription(_ros_message_class(msgtype), topic, self._callback(topic, msgtype), qos, raw=True)
            for topic, msgtype in topics.items()
        ]

    def _callback(self, topic: str, msgtype: str) -> Any:
        def on_message(raw: bytes) -> None:
            received = time.monotonic()
            message = self._typestore.deserialize_cdr(raw, msgtype)
            stamp = stamp_to_ns(message.header.stamp)
            with self._condition:
                self._writer.write(self._connections[topic], time.time_ns(), raw)
                self.counts[topic] += 1
                stamp_counts = self.per_stamp.setdefault(stamp, {})
                stamp_counts[topic] = stamp_counts.get(topic, 0) + 1
                if msgtype == OUTPUT_TOPICS[ROLLOUT_TOPIC]:
                    self.rollouts[stamp] = (received, message)
                    self._condition.notify_all()
                elif msgtype == OUTPUT_TOPICS[TRAJECTORY_TOPIC]:
                    self.trajectories[stamp] = message

        return on_message

    def wait_for_rollouts(self, stamps: Iterable[int], deadline: float) -> bool:
        wanted = set(stamps)
        with self._condition:
            while not wanted <= set(self.rollouts):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True


def _wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def replay_bag(
    bag: Path | str,
    output_bag: Path | str,
    *,
    rate: Optional[float] = None,
    request_timeout_s: float = 300.0,
    discovery_timeout_s: float = 15.0,
    settle_s: float = 0.5,
    headerless_lead_s: float = 0.1,
    publish_clock: bool = True,
    topics: Optional[Sequence[str]] = None,
    remap: Optional[dict[str, str]] = None,
    namespace: str = "",
    overwrite: bool = False,
    context: Any = None,
    progress: bool = True,
) -> ReplayReport:
    """Replay `bag` into a running imagine_node and record its outputs into `output_bag` (MCAP).

    `topics`: bag topics to replay (default: all but ground truth and outputs). `remap`: bag topic
    -> topic to publish on, e.g. {"/camera/color/image_raw": "/camera/image"} for a robot bag.
    `namespace`: that of the node; it prefixes the published input topics and the output topics
    (/clock stays global). `headerless_lead_s`: as-fast mode waits this long after a set's
    header-less messages (the prompt) before its stamped ones. `context`: an initialised rclpy
    Context to use (default: a new one).
    """
    import rclpy
    from rclpy.duration import Duration
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    if rate is not None and not rate > 0:
        raise ValueError(f"rate: expected a factor > 0 (1.0 = recorded speed) or None (as fast as consumed), got {rate}")
    output_bag = Path(output_bag)
    if output_bag.exists():
        if not overwrite:
            raise FileExistsError(f"output_bag: {output_bag} already exists (pass overwrite=True / --overwrite)")
        shutil.rmtree(output_bag)
    remap = dict(remap or {})
    bag_image_topic = next((bag_topic for bag_topic, topic in remap.items() if topic == IMAGE_TOPIC), IMAGE_TOPIC)
    typestore = package_typestore()
    input_sets, ground_truth = read_input_bag(bag, typestore, topics=topics, image_topic=bag_image_topic)
    requests = [s for s in input_sets if s.is_request]
    if not requests:
        raise ValueError(f"bag: no input set contains {bag_image_topic}; nothing for the node to answer (see remap)")
    prefix = namespace.rstrip("/")
    output_topics = {f"{prefix}{topic}": msgtype for topic, msgtype in OUTPUT_TOPICS.items()}
    rollout_topic = f"{prefix}{ROLLOUT_TOPIC}"

    own_context = context is None
    if own_context:
        context = rclpy.Context()
        rclpy.init(context=context)
    node = rclpy.create_node("mask2iv_replay", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, name="mask2iv-replay-spin", daemon=True)
    writer = Writer(output_bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    try:
        recorder = _OutputRecorder(node, typestore, writer, output_topics)
        input_qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)
        publishers = {}
        for input_set in input_sets:
            for message in input_set.messages:
                if message.topic not in publishers:
                    publishers[message.topic] = node.create_publisher(
                        _ros_message_class(message.msgtype), f"{prefix}{remap.get(message.topic, message.topic)}", input_qos
                    )
        clock_publisher = node.create_publisher(Clock, "/clock", 10) if publish_clock else None
        spinner.start()

        _wait_until(
            lambda: publishers[bag_image_topic].get_subscription_count() > 0 and node.count_publishers(rollout_topic) > 0,
            discovery_timeout_s,
            f"no imagine_node found within {discovery_timeout_s:g} s: nothing subscribes to {prefix}{IMAGE_TOPIC} or publishes "
            f"{rollout_topic}; start it in the same ROS_DOMAIN_ID (and namespace) first",
        )

        def publish_clock_at(ns: int) -> None:
            if clock_publisher is not None:
                clock = Clock()
                clock.clock.sec, clock.clock.nanosec = ns // _NS, ns % _NS
                clock_publisher.publish(clock)

        replay_started = time.monotonic()
        published_at: dict[int, float] = {}
        bar = tqdm(total=len(requests), desc="replay", unit="request", disable=not progress)
        if rate is None:
            for input_set in input_sets:
                publish_clock_at(max(m.log_ns for m in input_set.messages))
                headerless = [m for m in input_set.messages if m.stamp_ns is None]
                for message in headerless:
                    publishers[message.topic].publish(message.raw)
                if headerless:
                    # Topics are not ordered against each other: let the prompt reach the node (and
                    # its callback run) before the images that trigger a run are sent.
                    for topic in {m.topic for m in headerless}:
                        publishers[topic].wait_for_all_acked(Duration(seconds=2))
                    time.sleep(headerless_lead_s)
                for message in input_set.messages:
                    if message.stamp_ns is not None:
                        publishers[message.topic].publish(message.raw)
                if input_set.is_request:
                    published_at[input_set.index] = time.monotonic()
                    recorder.wait_for_rollouts([input_set.stamp_ns], time.monotonic() + request_timeout_s)
                    bar.update(1)
        else:
            first_log = min(m.log_ns for s in input_sets for m in s.messages)
            for input_set in input_sets:
                for message in input_set.messages:
                    delay = replay_started + (message.log_ns - first_log) / _NS / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    publish_clock_at(message.log_ns)
                    publishers[message.topic].publish(message.raw)
                if input_set.is_request:
                    published_at[input_set.index] = time.monotonic()
            recorder.wait_for_rollouts([s.stamp_ns for s in requests], time.monotonic() + request_timeout_s)
            bar.update(len(recorder.rollouts))
        bar.close()
        time.sleep(settle_s)  # frame streams published just before/after the rollout
        wall_seconds = time.monotonic() - replay_started
    finally:
        executor.shutdown()
        if spinner.is_alive():
            spinner.join(timeout=5.0)
        node.destroy_node()
        if own_context:
            rclpy.try_shutdown(context=context)
        writer.close()

    records = []
    for input_set in requests:
        record = RequestRecord(
            index=input_set.index,
            stamp_ns=input_set.stamp_ns,
            published_at_s=published_at[input_set.index] - replay_started,
            outputs=dict(recorder.per_stamp.get(input_set.stamp_ns, {})),
        )
        if input_set.stamp_ns in recorder.rollouts:
            received, rollout = recorder.rollouts[input_set.stamp_ns]
            record.latency_s = received - published_at[input_set.index]
            record.node_total_seconds = float(rollout.total_seconds)
            truth = ground_truth.get(input_set.stamp_ns)
            trajectory = recorder.trajectories.get(input_set.stamp_ns, rollout.mask_trajectory)
            if truth is not None and has_trajectory_images(trajectory):
                actor, obj = trajectory_masks(trajectory)
                record.metrics = trajectory_metrics(actor, obj, truth.actor_masks, truth.object_masks)
        records.append(record)
    return ReplayReport(
        input_bag=str(bag),
        output_bag=str(output_bag),
        mode="as_fast_as_consumed" if rate is None else f"rate x{rate:g}",
        requests=records,
        outputs_received=dict(recorder.counts),
        wall_seconds=wall_seconds,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mask2iv-replay",
        description="Replay a rosbag2 (MCAP or sqlite3) into a running imagine_node, record its outputs into an "
        "MCAP bag and write a report. Start the node with use_sim_time:=true (this publishes /clock) and trigger each.",
    )
    parser.add_argument("bag", type=Path, help="input bag folder (or .mcap file)")
    parser.add_argument("--output-bag", type=Path, default=None, help="output MCAP bag folder (default: <bag>_outputs)")
    parser.add_argument("--report-dir", type=Path, default=None, help="where replay_report.json/.md go (default: the output bag's parent)")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--rate", type=float, default=None, help="replay at the recorded timing times this factor")
    timing.add_argument("--as-fast-as-consumed", action="store_true", help="wait for each output before the next input set (default)")
    parser.add_argument("--request-timeout", type=float, default=300.0, help="seconds to wait for one output")
    parser.add_argument("--discovery-timeout", type=float, default=60.0,
                        help="seconds to wait for the node to appear (it loads its model first)")
    parser.add_argument("--topics", nargs="+", default=None, help="input topics to replay (default: all but ground truth)")
    parser.add_argument("--remap", nargs="+", default=[], metavar="BAG_TOPIC:=TOPIC",
                        help="publish a bag topic under another name, e.g. /camera/color/image_raw:=/camera/image")
    parser.add_argument("--namespace", default="", help="namespace of the node (prefixes input and output topics)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
    args = parser.parse_args(argv)

    bad = [r for r in args.remap if ":=" not in r]
    if bad:
        parser.error(f"--remap: expected BAG_TOPIC:=TOPIC, got {bad}")
    output_bag = args.output_bag or args.bag.with_name(f"{args.bag.stem}_outputs")
    report = replay_bag(
        args.bag,
        output_bag,
        rate=args.rate,
        request_timeout_s=args.request_timeout,
        discovery_timeout_s=args.discovery_timeout,
        publish_clock=not args.no_clock,
        topics=args.topics,
        remap=dict(r.split(":=", 1) for r in args.remap),
        namespace=args.namespace,
        overwrite=args.overwrite,
    )
    json_path, markdown_path = report.write(args.report_dir or output_bag.parent, stem=f"{output_bag.name}_report")
    print(report.to_markdown())
    print(f"report: {json_path} , {markdown_path}")
    return 0 if len(report.answered) == len(report.requests) else 1


if __name__ == "__main__":
    sys.exit(main())
