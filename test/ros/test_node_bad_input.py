"""Bad input: a clear error naming the field, logged once per cause, and the node keeps serving."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from rclpy.duration import Duration  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_test_helpers import SIZE, box_mask, sample_image, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mask2iv_ros.action import Imagine  # noqa: E402
from mask2iv_ros.msg import ImaginedRollout  # noqa: E402
from mask2iv_ros.ros.image_conversion import mask_to_image_msg, rgb_to_image_msg  # noqa: E402


def wrong_encoding(h):
    goal = h.goal()
    goal.image.encoding = "yuv422"
    return goal


def mask_size_differs(h):
    return h.goal(object_mask=np.ones((SIZE[0], SIZE[1] - 8), bool))


def old_input(h):
    stamp = (h.client.get_clock().now() - Duration(seconds=60)).to_msg()
    return h.goal(stamp=stamp)


def unknown_mode(h):
    return h.goal(mode="video")


def bad_actor_mask(h):
    goal = h.goal()
    goal.actor_mask = rgb_to_image_msg(sample_image())  # colour, not a mask
    return goal


BAD_GOALS = [
    (wrong_encoding, "image.encoding:conversion", "image.encoding: expected a colour image encoding"),
    (mask_size_differs, "object_mask:size", "object_mask: expected a mask of height x width 32 x 48 matching image, got 32 x 40"),
    (lambda h: h.goal(object_mask=np.zeros(SIZE, bool)), "object_mask:empty", "object_mask: the mask is empty"),
    (lambda h: h.goal(prompt=""), "prompt:missing", "prompt: mode 'text' needs an action description"),
    (lambda h: h.goal(mode="position"), "placement_mask:missing", "placement_mask: mode 'position' needs a target placement mask"),
    (old_input, "image.header.stamp:too_old", "image.header.stamp: input is 60."),
    (unknown_mode, "mode:unknown", "mode: expected one of ['text', 'position']"),
    (bad_actor_mask, "actor_mask.encoding:conversion", "actor_mask.encoding: expected a single-channel mask"),
]


def test_each_bad_goal_gets_its_error_while_accepted_work_completes(start_node):
    h = start_node(max_input_age_s=5.0)
    running_feedback = []
    running = h.send(h.goal(num_inference_steps=12, trajectory_only=True), running_feedback)
    wait_for(lambda: running_feedback, 10.0, "a goal running")
    for make_goal, cause, error_start in BAD_GOALS:
        for _ in range(2):  # the same cause twice: counted twice, warned once
            result = h.result(h.send(make_goal(h)))
            assert result.status == Imagine.Result.STATUS_INVALID_INPUT, (cause, result.error)
            assert result.error.startswith(error_start), (cause, result.error)
        assert h.node.causes.counts[cause] == 2
    # Bad goals were answered while the model was busy; the accepted goal was not disturbed.
    assert h.result(running).status == Imagine.Result.STATUS_SUCCEEDED
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED


def test_pipeline_side_rejection_is_invalid_input(start_node):
    # num_frames beyond the pipeline's limit is checked by the pipeline itself (Mask2IVInputError).
    h = start_node()
    result = h.result(h.send(h.goal(num_frames=100000, trajectory_only=True)))
    assert result.status == Imagine.Result.STATUS_INVALID_INPUT and result.error.startswith("num_frames")
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED


def test_bad_topic_set_is_dropped_then_a_good_one_is_served(start_node):
    h = start_node(mode="position", publish_video=False, num_inference_steps=2)
    rollouts = h.subscribe(ImaginedRollout, "imagination/rollout")
    pubs = {name: h.client.create_publisher(Image, name, qos_profile_sensor_data)
            for name in ("camera/image", "object_mask", "placement_mask")}
    wait_for(lambda: all(p.get_subscription_count() for p in pubs.values()), what="subscriptions")

    def publish_set(placement_mask):
        header = Header(stamp=h.now_stamp(), frame_id="cam")
        pubs["camera/image"].publish(rgb_to_image_msg(sample_image(), header))
        pubs["object_mask"].publish(mask_to_image_msg(box_mask(), header))
        pubs["placement_mask"].publish(mask_to_image_msg(placement_mask, header))
        return header.stamp

    publish_set(np.zeros(SIZE, bool))
    wait_for(lambda: h.node.causes.counts["placement_mask:empty"] == 1, 5.0, "empty placement mask reported")
    good_stamp = publish_set(box_mask(top=18, left=30, size=6))
    rollout = wait_for(lambda: rollouts and rollouts[-1], 20.0, "rollout of the good set")
    assert rollout.header.stamp == good_stamp and rollout.mode == "position" and len(rollout.video_frames) == 0
    assert len(rollouts) == 1


def test_prompt_topic_missing_in_text_mode_names_the_topic(start_node):
    h = start_node()
    pubs = [h.client.create_publisher(Image, name, qos_profile_sensor_data) for name in ("camera/image", "object_mask")]
    wait_for(lambda: all(p.get_subscription_count() for p in pubs), what="subscriptions")
    header = Header(stamp=h.now_stamp(), frame_id="cam")
    pubs[0].publish(rgb_to_image_msg(sample_image(), header))
    pubs[1].publish(mask_to_image_msg(box_mask(), header))
    wait_for(lambda: h.node.causes.counts["prompt:missing"] == 1, 5.0, "missing prompt reported")
    assert f"prompt (topic {h.namespace}/prompt): mode 'text' needs" in h.node.causes.last_message["prompt:missing"]
