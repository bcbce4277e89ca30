"""The planner-side client library against the node (arrays in, result out; busy -> status rejected)."""

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from ros_test_helpers import GatedPipeline, box_mask, sample_image, wait_for  # noqa: E402

from mask2iv_ros.action import Imagine  # noqa: E402
from mask2iv_ros.ros.planner_client import ImagineClient, trajectory_masks  # noqa: E402


def test_client_sends_arrays_and_follows_feedback(start_node, ros_context):
    h = start_node()
    with ImagineClient(f"{h.namespace}/imagine", context=ros_context) as client:
        assert client.wait_for_server(10.0)
        feedback = []
        goal = client.make_goal(sample_image(), box_mask(), prompt="push it", num_inference_steps=2,
                                trajectory_only=True)
        assert goal.image.encoding == "rgb8" and goal.placement_mask.width == 0
        result = client.imagine(goal, timeout_s=30.0, on_feedback=feedback.append)
        assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
        wait_for(lambda: len(feedback) >= 3, 5.0, "feedback in flight")  # a topic, apart from the result
        assert [(f.step, f.trajectory_ready) for f in feedback] == [(1, False), (2, False), (2, True)]
        assert result.rollout.prompt == "push it"


def test_client_gets_the_reason_when_the_node_is_busy(start_node, ros_context):
    h = start_node(busy_policy="reject")
    with ImagineClient(f"{h.namespace}/imagine", context=ros_context) as client:
        assert client.wait_for_server(10.0)
        feedback = []
        running = h.send(h.goal(num_inference_steps=20, trajectory_only=True), feedback)
        wait_for(lambda: feedback, 10.0, "a goal running")
        result = client.imagine(client.make_goal(sample_image(), box_mask(), prompt="push"), timeout_s=10.0)
        assert (result.status, result.error) == (Imagine.Result.STATUS_REJECTED,
                                                 "busy: an imagination is running (busy_policy 'reject')")
        assert h.result(running).status == Imagine.Result.STATUS_SUCCEEDED


def test_client_gets_the_trajectory_before_the_video(start_node, ros_context):
    h = start_node(trajectory_encoding="colour")
    gated = GatedPipeline.install(h, hold_stage="video")  # stage 2 waits until the trajectory arrived
    early = []

    def on_trajectory(msg):
        early.append(msg)
        gated.gate.set()

    with ImagineClient(f"{h.namespace}/imagine", context=ros_context,
                       trajectory_topic=f"{h.namespace}/imagination/mask_trajectory") as client:
        assert client.wait_for_server(10.0)
        goal = client.make_goal(sample_image(), box_mask(), prompt="push it", num_inference_steps=2)
        result = client.imagine(goal, timeout_s=60.0, on_trajectory=on_trajectory)
        assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
        (msg,) = early
        assert msg.header.stamp == goal.image.header.stamp and len(result.rollout.video_frames) == 4
        for early_masks, result_masks in zip(trajectory_masks(msg), trajectory_masks(result.rollout.mask_trajectory)):
            assert early_masks.shape == (4, 32, 48) and (early_masks == result_masks).all()
        with pytest.raises(ValueError, match="^on_trajectory: needs the goal's own image"):
            client.imagine(client.make_goal(None, box_mask()), on_trajectory=on_trajectory)
