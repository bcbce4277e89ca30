"""imagine_node on loopback with the tiny random pipeline: topics, action, cancel, busy policy."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_test_helpers import SIZE, box_mask, sample_image, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

from mask2iv_ros.action import Imagine  # noqa: E402
from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory  # noqa: E402
from mask2iv_ros.ros.image_conversion import image_msg_to_mask, image_msg_to_rgb, mask_to_image_msg, rgb_to_image_msg  # noqa: E402

NUM_FRAMES = 4  # the tiny pipeline's default


def test_synchronized_topic_set_publishes_all_outputs(start_node):
    h = start_node(num_inference_steps=2, trajectory_encoding="both")
    trajectories = h.subscribe(MaskTrajectory, "imagination/mask_trajectory")
    rollouts = h.subscribe(ImaginedRollout, "imagination/rollout")
    overlays = h.subscribe(Image, "imagination/overlay")
    videos = h.subscribe(Image, "imagination/video")
    image_pub = h.client.create_publisher(Image, "camera/image", qos_profile_sensor_data)
    mask_pub = h.client.create_publisher(Image, "object_mask", qos_profile_sensor_data)
    prompt_pub = h.client.create_publisher(String, "prompt", 1)
    wait_for(lambda: image_pub.get_subscription_count() and mask_pub.get_subscription_count()
             and prompt_pub.get_subscription_count(), what="node subscriptions")

    prompt_pub.publish(String(data="pick up block"))
    wait_for(lambda: h.node._latest_prompt, what="prompt received")
    stamp = h.now_stamp()
    mask_stamp = h.now_stamp()  # a few microseconds later: within sync_slop_s
    image_pub.publish(rgb_to_image_msg(sample_image(), Header(stamp=stamp, frame_id="cam")))
    mask_pub.publish(mask_to_image_msg(box_mask(), Header(stamp=mask_stamp, frame_id="cam")))

    rollout = wait_for(lambda: rollouts and rollouts[0], 20.0, "rollout")
    wait_for(lambda: trajectories and len(overlays) == NUM_FRAMES and len(videos) == NUM_FRAMES, 5.0, "all outputs")
    assert rollout.request_id == "topic-1" and rollout.mode == "text" and rollout.prompt == "pick up block"
    assert (rollout.header.stamp, rollout.header.frame_id, rollout.input_stamp) == (stamp, "cam", stamp)
    assert rollout.num_frames == NUM_FRAMES and len(rollout.video_frames) == NUM_FRAMES
    assert rollout.model_id == "tiny-test" and rollout.fps > 0 and rollout.total_seconds > 0
    trajectory = trajectories[0]
    assert len(trajectory.frames) == len(trajectory.actor_masks) == len(trajectory.object_masks) == NUM_FRAMES
    assert list(trajectory.object_color) == [255, 0, 0] and list(trajectory.actor_color) == [0, 255, 0]
    for msg in [trajectory, *trajectory.frames, *trajectory.object_masks, *overlays, *videos]:
        assert (msg.header.stamp, msg.header.frame_id) == (stamp, "cam")
    # The rollout topic does not send the trajectory again: its header, region and palette only.
    bare = rollout.mask_trajectory
    assert not bare.frames and not bare.actor_masks and not bare.object_masks
    assert (bare.header, bare.imagined_region, list(bare.object_color)) == \
        (trajectory.header, trajectory.imagined_region, [255, 0, 0])
    # The colour frames are palette-coded and agree with the binary masks.
    frame = image_msg_to_rgb(trajectory.frames[0])
    assert frame.shape == SIZE + (3,)
    np.testing.assert_array_equal(np.all(frame == [255, 0, 0], axis=-1), image_msg_to_mask(trajectory.object_masks[0]))
    np.testing.assert_array_equal(np.all(frame == [0, 255, 0], axis=-1), image_msg_to_mask(trajectory.actor_masks[0]))


def test_goal_gives_feedback_for_every_step_and_a_result(start_node):
    h = start_node()
    feedback = []
    goal_handle = h.send(h.goal(num_inference_steps=3, seed=7), feedback)
    assert goal_handle.accepted
    result = h.result(goal_handle)
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
    # One more message says the trajectory is on its topic (sent from the output thread while
    # stage 2 runs, so it may come after a video step); from then on trajectory_ready stays true.
    wait_for(lambda: len(feedback) == 7, 5.0, "all feedback")
    ready = [f.trajectory_ready for f in feedback]
    turned = ready.index(True)
    assert all(ready[turned:]) and (feedback[turned].stage, feedback[turned].step) == ("trajectory", 3)
    steps = [(f.stage, f.step, f.total_steps) for i, f in enumerate(feedback) if i != turned]
    assert steps == [("trajectory", 1, 3), ("trajectory", 2, 3), ("trajectory", 3, 3),
                     ("video", 1, 3), ("video", 2, 3), ("video", 3, 3)]
    assert not any(f.trajectory_ready for f in feedback if f.stage == "trajectory" and f is not feedback[turned])
    assert all(b.elapsed_seconds >= a.elapsed_seconds for a, b in zip(feedback, feedback[1:]))
    rollout = result.rollout
    assert rollout.request_id == bytes(goal_handle.goal_id.uuid).hex()
    assert (rollout.seed, rollout.num_inference_steps, rollout.mode) == (7, 3, "text")
    assert len(rollout.video_frames) == NUM_FRAMES and rollout.video_frames[0].encoding == "rgb8"
    assert rollout.trajectory_seconds > 0 and rollout.video_seconds > 0


def test_trajectory_only_goal_in_position_mode(start_node):
    h = start_node()
    placement = box_mask(top=15, left=30, size=8)
    goal = h.goal(prompt="", mode="position", trajectory_only=True)
    goal.placement_mask = mask_to_image_msg(placement, goal.image.header)
    result = h.result(h.send(goal))
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
    assert result.rollout.mode == "position" and len(result.rollout.video_frames) == 0
    assert len(result.rollout.mask_trajectory.object_masks) == NUM_FRAMES


def test_cancel_stops_the_run_within_a_step_and_node_serves_next_goal(start_node):
    h = start_node()
    feedback = []
    goal_handle = h.send(h.goal(num_inference_steps=100), feedback)
    wait_for(lambda: len(feedback) >= 2, 10.0, "two denoising steps")
    cancel_response = wait_for(lambda: goal_handle.cancel_goal_async(), what="cancel sent")
    wait_for(cancel_response.done, 5.0, "cancel response")
    result = h.result(goal_handle, timeout_s=10.0)
    assert result.status == Imagine.Result.STATUS_CANCELED
    # Stopped early. A bound from the client's feedback count raced under CPU load (feedback
    # travels apart from the cancel response and steps go on while the cancel is in flight);
    # stopping within one step of the cancel flag is asserted exactly in test_inference_worker.
    assert len(feedback) < 100 and all(f.step < 100 for f in feedback), [f.step for f in feedback]
    assert all(f.stage == "trajectory" for f in feedback)
    assert h.result(h.send(h.goal())).status == Imagine.Result.STATUS_SUCCEEDED


def test_busy_policy_queue_runs_goals_in_order(start_node):
    h = start_node(busy_policy="queue", max_queue=2)
    first_feedback, second_feedback = [], []
    first = h.send(h.goal(num_inference_steps=8, trajectory_only=True), first_feedback)
    wait_for(lambda: first_feedback, 10.0, "first goal running")
    second = h.send(h.goal(num_inference_steps=2, trajectory_only=True), second_feedback)
    assert first.accepted and second.accepted
    assert h.result(first).status == h.result(second).status == Imagine.Result.STATUS_SUCCEEDED
    # Feedback (a topic) may still be in flight when the result (a service) arrives.
    wait_for(lambda: len(second_feedback) >= 4, 5.0, "all feedback of the second goal")
    assert second_feedback[0].stage == "queued"
    assert [(f.stage, f.trajectory_ready) for f in second_feedback[1:]] == \
        [("trajectory", False), ("trajectory", False), ("trajectory", True)]


def test_busy_policy_reject_set_at_runtime_tells_the_client_why(start_node):
    h = start_node(busy_policy="queue")
    result = h.node.set_parameters([Parameter("busy_policy", value="reject")])[0]
    assert result.successful and h.node.params.busy_policy == "reject"
    assert not h.node.set_parameters([Parameter("busy_policy", value="drop")])[0].successful
    assert not h.node.set_parameters([Parameter("device", value="cuda")])[0].successful  # only while unconfigured
    feedback = []
    first = h.send(h.goal(num_inference_steps=20, trajectory_only=True), feedback)
    wait_for(lambda: feedback, 10.0, "first goal running")
    # The busy goal is accepted and ends at once, its result saying why it was not run.
    second = h.result(h.send(h.goal()))
    assert second.status == Imagine.Result.STATUS_REJECTED
    assert second.error == "busy: an imagination is running (busy_policy 'reject')"
    assert h.result(first).status == Imagine.Result.STATUS_SUCCEEDED
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED  # free again


def test_on_demand_goal_with_empty_image_uses_latest_topic_set(start_node):
    h = start_node(trigger="on_demand")
    rollouts = h.subscribe(ImaginedRollout, "imagination/rollout")
    image_pub = h.client.create_publisher(Image, "camera/image", qos_profile_sensor_data)
    mask_pub = h.client.create_publisher(Image, "object_mask", qos_profile_sensor_data)
    wait_for(lambda: image_pub.get_subscription_count() and mask_pub.get_subscription_count(), what="subscriptions")
    empty_goal = Imagine.Goal(prompt="push the block", num_inference_steps=2, trajectory_only=True)
    early = h.result(h.send(empty_goal))
    assert early.status == Imagine.Result.STATUS_INVALID_INPUT and early.error.startswith("image: empty in the goal")

    header = Header(stamp=h.now_stamp(), frame_id="cam")
    image_pub.publish(rgb_to_image_msg(sample_image(), header))
    mask_pub.publish(mask_to_image_msg(box_mask(), header))
    wait_for(lambda: h.node._latest_set, what="synchronized set")
    assert rollouts == []  # on_demand: topics alone start nothing
    result = h.result(h.send(empty_goal))
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
    assert result.rollout.header.stamp == header.stamp


def test_rate_trigger_runs_only_the_latest_set(start_node):
    h = start_node(trigger="rate", max_rate_hz=4.0, publish_video=False)
    rollouts = h.subscribe(ImaginedRollout, "imagination/rollout")
    image_pub = h.client.create_publisher(Image, "camera/image", qos_profile_sensor_data)
    mask_pub = h.client.create_publisher(Image, "object_mask", qos_profile_sensor_data)
    prompt_pub = h.client.create_publisher(String, "prompt", 1)
    wait_for(lambda: image_pub.get_subscription_count() and prompt_pub.get_subscription_count(), what="subscriptions")
    prompt_pub.publish(String(data="push"))
    wait_for(lambda: h.node._latest_prompt, what="prompt received")
    stamps = []
    for _ in range(5):  # a burst, faster than the rate
        header = Header(stamp=h.now_stamp(), frame_id="cam")
        image_pub.publish(rgb_to_image_msg(sample_image(), header))
        mask_pub.publish(mask_to_image_msg(box_mask(), header))
        stamps.append(header.stamp)
    wait_for(lambda: h.node._latest_set and h.node._latest_set["image"].header.stamp == stamps[-1], what="burst")
    wait_for(lambda: rollouts and rollouts[-1].header.stamp == stamps[-1], 10.0, "rollout of the newest set")
    wait_for(lambda: h.node.worker.busy is False, 5.0, "idle")
    # One run per timer tick on the newest set; a tick may fall inside the burst (then two runs).
    assert len(rollouts) <= 2 and h.node._pending_rate_set is None


def test_parameters_are_declared_from_the_dataclass(start_node):
    import dataclasses

    from mask2iv_ros.ros.parameters import ImagineParameters

    h = start_node(max_queue=3)
    fields = dataclasses.fields(ImagineParameters)
    descriptors = h.node.describe_parameters([f.name for f in fields])
    for f, descriptor in zip(fields, descriptors):
        harness = {"max_queue": 3, "num_inference_steps": 2, "torch_threads": 1}  # set by the test / harness
        expected = harness.get(f.name, f.default)
        assert h.node.get_parameter(f.name).value == expected, f.name
        assert descriptor.read_only == f.metadata["read_only"] and descriptor.description, f.name
    assert h.node.executor_threads() == 3 + 5
