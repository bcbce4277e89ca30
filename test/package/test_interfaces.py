"""The package's own interfaces: they import next to the hand-written modules, a MaskTrajectory
round-trips through rclpy publish/subscribe on loopback, and an Imagine action round-trips
(goal, feedback, result) against a trivial server defined here."""
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from rclpy.action import ActionClient, ActionServer  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

import mask2iv_ros  # noqa: E402
from mask2iv_ros.action import Imagine  # noqa: E402
from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory  # noqa: E402


def _mono_image(values: np.ndarray) -> Image:
    img = Image(height=values.shape[0], width=values.shape[1], encoding="mono8", step=values.shape[1])
    img.data = values.astype(np.uint8).tobytes()
    return img


@pytest.fixture()
def ros_context():
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    yield context, executor, spinner
    executor.shutdown()
    rclpy.shutdown(context=context)


def _wait_for(predicate, timeout=60.0):
    # Polls, so the generous limit only matters when something is broken (CI shares 2 cores).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_interfaces_live_in_the_python_package():
    assert MaskTrajectory.__module__.startswith("mask2iv_ros.msg")
    assert Imagine.__module__.startswith("mask2iv_ros.action")
    # The hand-written library and the generated interfaces are one package.
    assert any(str(p).endswith("mask2iv_ros") for p in mask2iv_ros.__path__)
    rollout = ImaginedRollout()
    assert isinstance(rollout.mask_trajectory, MaskTrajectory)
    assert Imagine.Result.STATUS_SUCCEEDED == "succeeded"
    assert {"stage", "step", "total_steps", "elapsed_seconds", "trajectory_ready"} <= \
        set(Imagine.Feedback.get_fields_and_field_types())


def test_mask_trajectory_round_trips_over_loopback(ros_context):
    context, executor, spinner = ros_context
    node = rclpy.create_node("mask_trajectory_round_trip", context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    received = []
    node.create_subscription(MaskTrajectory, "test_mask_trajectory", received.append, qos)
    publisher = node.create_publisher(MaskTrajectory, "test_mask_trajectory", qos)
    spinner.start()

    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, size=(3, 6, 8)) * 255
    msg = MaskTrajectory(fps=8.0)
    msg.header.frame_id = "camera_optical"
    msg.header.stamp.sec = 42
    msg.object_masks = [_mono_image(m) for m in masks]
    msg.object_color = np.array([255, 0, 0], dtype=np.uint8)
    assert _wait_for(lambda: publisher.get_subscription_count() > 0)
    publisher.publish(msg)
    assert _wait_for(lambda: len(received) > 0), "no MaskTrajectory received on loopback"

    got = received[0]
    assert got.header.frame_id == "camera_optical" and got.header.stamp.sec == 42
    assert got.fps == pytest.approx(8.0)
    assert list(got.object_color) == [255, 0, 0]
    decoded = np.stack([np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width) for m in got.object_masks])
    np.testing.assert_array_equal(decoded, masks)


def test_imagine_action_round_trip_with_feedback(ros_context):
    context, executor, spinner = ros_context
    server_node = rclpy.create_node("trivial_imagine_server", context=context)
    client_node = rclpy.create_node("trivial_imagine_client", context=context)

    def execute(goal_handle):
        # A trivial server: echoes the mode/prompt, sends three feedback steps.
        for step in range(1, 4):
            goal_handle.publish_feedback(Imagine.Feedback(stage="trajectory", step=step, total_steps=3))
            time.sleep(0.05)
        goal_handle.succeed()
        result = Imagine.Result(status=Imagine.Result.STATUS_SUCCEEDED)
        result.rollout.mode = goal_handle.request.mode
        result.rollout.prompt = goal_handle.request.prompt
        result.rollout.mask_trajectory.object_masks = [goal_handle.request.object_mask]
        return result

    ActionServer(server_node, Imagine, "imagine", execute)
    client = ActionClient(client_node, Imagine, "imagine")
    executor.add_node(server_node)
    executor.add_node(client_node)
    spinner.start()
    assert client.wait_for_server(timeout_sec=60.0)

    feedback = []
    goal = Imagine.Goal(mode="text", prompt="push the red block to the left")
    goal.object_mask = _mono_image(np.eye(4) * 255)
    send_future = client.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback))
    assert _wait_for(send_future.done)
    handle = send_future.result()
    assert handle.accepted
    result_future = handle.get_result_async()
    assert _wait_for(result_future.done)
    result = result_future.result().result
    # Feedback (a topic) and the result (a service) travel separately: the last feedback message
    # may still be on its way when the result arrives.
    assert _wait_for(lambda: len(feedback) >= 3), f"feedback received: {[f.step for f in feedback]}"
    assert result.status == "succeeded"
    assert result.rollout.prompt == "push the red block to the left" and result.rollout.mode == "text"
    assert bytes(result.rollout.mask_trajectory.object_masks[0].data) == bytes(goal.object_mask.data)
    assert [f.step for f in feedback] == [1, 2, 3]
    assert all(f.stage == "trajectory" and f.total_steps == 3 for f in feedback)
