"""Helpers of the ROS tests: test images, waiting, and a harness running the node in threads."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import numpy as np

SIZE = (32, 48)  # (H, W) of test images: the tiny pipeline's own resolution
# Every wait below polls a condition and returns as soon as it holds, so a generous limit costs
# nothing when things work; the limits written in the tests are for an idle machine, and CI
# shares 2 cores among several test processes (a DDS discovery or a tiny model step can then take
# several times longer). MASK2IV_TEST_TIMEOUT_SCALE overrides the factor.
TIMEOUT_SCALE = float(os.environ.get("MASK2IV_TEST_TIMEOUT_SCALE", "4"))


def scaled(timeout_s: float) -> float:
    return timeout_s * TIMEOUT_SCALE


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns a truthy value (returned); fail after scaled(timeout_s)."""
    limit = scaled(timeout_s)
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:g} s ({timeout_s:g} s x {TIMEOUT_SCALE:g}) waiting for {what}")
        time.sleep(0.01)


def wait_future(future: Any, timeout_s: float = 20.0, what: str = "future") -> Any:
    wait_for(future.done, timeout_s, what)
    return future.result()


def sample_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=SIZE + (3,), dtype=np.uint8)


def box_mask(top: int = 8, left: int = 10, size: int = 10) -> np.ndarray:
    mask = np.zeros(SIZE, bool)
    mask[top : top + size, left : left + size] = True
    return mask


class NodeHarness:
    """An ImagineNode plus a client node, spun by one MultiThreadedExecutor in a thread.

    The node is configured and activated as `autostart` does, unless autostart=False is passed
    (then the test drives the lifecycle).
    """

    def __init__(self, context: Any, pipeline: Any, namespace: str, **parameters: Any):
        import rclpy
        from rclpy.action import ActionClient
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from mask2iv_ros.action import Imagine
        from mask2iv_ros.ros.node import ImagineNode

        self.namespace = namespace
        self.pipeline = pipeline
        parameters.setdefault("num_inference_steps", 2)  # topic-triggered runs: keep them quick
        # One torch thread: the tiny model gains nothing from more, and a two-thread OpenMP team
        # on a loaded machine waits for both threads at every one of its many tiny operations.
        parameters.setdefault("torch_threads", 1)
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ImagineNode(
            pipeline=pipeline, model_id="tiny-test", context=context, namespace=namespace, parameter_overrides=overrides
        )
        self.client = rclpy.create_node("test_client", namespace=namespace, context=context)
        self.action_client = ActionClient(self.client, Imagine, "imagine")
        self.executor = MultiThreadedExecutor(num_threads=self.node.executor_threads() + 2, context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        if parameters.get("autostart", True):
            assert self.node.autostart(), self.node.startup_error
            assert self.action_client.wait_for_server(timeout_sec=scaled(10.0)), "action server not discovered"

    def now_stamp(self) -> Any:
        return self.client.get_clock().now().to_msg()

    def goal(self, image=None, object_mask=None, prompt="push it left", stamp=None, **fields) -> Any:
        from std_msgs.msg import Header

        from mask2iv_ros.action import Imagine
        from mask2iv_ros.ros.image_conversion import mask_to_image_msg, rgb_to_image_msg

        header = Header(stamp=stamp if stamp is not None else self.now_stamp(), frame_id="camera_optical")
        goal = Imagine.Goal(prompt=prompt, num_inference_steps=2)
        goal.image = rgb_to_image_msg(sample_image() if image is None else image, header)
        goal.object_mask = mask_to_image_msg(box_mask() if object_mask is None else object_mask, header)
        for name, value in fields.items():
            setattr(goal, name, value)
        return goal

    def send(self, goal: Any, feedback: list | None = None) -> Any:
        """Send a goal; returns the accepted/rejected goal handle."""
        callback = (lambda msg: feedback.append(msg.feedback)) if feedback is not None else None
        return wait_future(self.action_client.send_goal_async(goal, feedback_callback=callback), what="goal response")

    def result(self, goal_handle: Any, timeout_s: float = 30.0) -> Any:
        return wait_future(goal_handle.get_result_async(), timeout_s, "goal result").result

    def subscribe(self, msg_type: Any, topic: str, depth: int = 50) -> list:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        received: list = []
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.client.create_subscription(msg_type, topic, received.append, qos)
        return received

    def close(self) -> None:
        if self.node.lifecycle_state != "finalized":
            self.node.trigger_shutdown()  # while the executor still spins: goals get their results
        self.executor.shutdown()
        self.thread.join(timeout=5.0)
        if self.action_client is not None:
            self.action_client.destroy()
        self.client.destroy_node()
        self.node.destroy_node()


class GatedPipeline:
    """Wraps the node's pipeline: records each call (kwargs, thread, torch threads) and can hold runs.

    While `gate` is clear, a run waits after its first denoising step (of `hold_stage`, when
    given: "trajectory" or "video") until the gate opens or the run is cancelled, so tests keep the model busy exactly as long as they need, without
    timing assumptions. `install(h)` puts it in the node (jobs bind the pipeline when made).
    """

    def __init__(self, pipeline: Any, open_gate: bool = False, error: Exception | None = None,
                 hold_stage: str | None = None):
        self.pipeline = pipeline
        self.hold_stage = hold_stage
        self.gate = threading.Event()
        if open_gate:
            self.gate.set()
        self.error = error
        self.calls: list[dict] = []
        self.threads: list[int] = []
        self.torch_threads: list[int] = []
        self.holding = threading.Event()  # a run is waiting at the gate
        self._interrupted = threading.Event()

    @classmethod
    def install(cls, h: "NodeHarness", **kwargs: Any) -> "GatedPipeline":
        gated = cls(h.node.pipeline, **kwargs)
        h.node.pipeline = gated
        h.node.worker.interrupt = gated.interrupt
        return gated

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    def interrupt(self) -> None:
        self._interrupted.set()
        self.pipeline.interrupt()

    def __call__(self, *, callback_on_trajectory: Any = None, **kwargs: Any) -> Any:
        import torch

        self.calls.append({k: v for k, v in kwargs.items() if k != "callback_on_step_end"})
        self.threads.append(threading.get_ident())
        self.torch_threads.append(torch.get_num_threads())
        self._interrupted.clear()
        if self.error is not None:
            raise self.error
        callback = kwargs.pop("callback_on_step_end")

        def held_callback(pipe: Any, info: Any) -> None:
            callback(pipe, info)  # feedback; raises when the job was cancelled
            if self.hold_stage is not None and info.stage != self.hold_stage:
                return
            self.holding.set()
            while not (self.gate.is_set() or self._interrupted.is_set()):
                self._interrupted.wait(0.01)
            self.holding.clear()

        if callback_on_trajectory is not None:
            kwargs["callback_on_trajectory"] = callback_on_trajectory
        return self.pipeline(**kwargs, callback_on_step_end=held_callback)
