"""Bad input: a clear error naming the field, logged once per cause, and the node keeps serving."""

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from rclpy.duration import Duration  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_test_helpers import SIZE, GatedPipeline, box_mask, sample_image, wait_for  # noqa: E402
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


def data_longer_than_height_times_step(h):
    goal = h.goal()
    goal.image.data = bytes(goal.image.data) + bytes(10)
    return goal


def tiny_image(h):
    return h.goal(image=np.zeros((4, 6, 3), np.uint8), object_mask=np.eye(4, 6, dtype=bool))


def with_depth(h, depth, camera_info=True):
    from mask2iv_ros.geometry.synthetic import default_camera
    from mask2iv_ros.ros.depth_image import camera_info_msg, depth_to_image_msg

    goal = h.goal()
    goal.depth = depth_to_image_msg(depth, goal.image.header)
    if camera_info:
        goal.camera_info = camera_info_msg(default_camera(*SIZE), goal.image.header)
    return goal


def depth_bad_encoding(h):
    goal = with_depth(h, np.ones(SIZE, np.uint16))
    goal.depth.encoding = "mono8"
    return goal


def camera_info_of_another_size(h):
    from mask2iv_ros.geometry.synthetic import default_camera
    from mask2iv_ros.ros.depth_image import camera_info_msg

    goal = with_depth(h, np.ones(SIZE, np.uint16))
    goal.camera_info = camera_info_msg(default_camera(SIZE[0] * 2, SIZE[1] * 2), goal.image.header)
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
    # issue 11 #8: trailing bytes after height x step, and a mask that is the whole image
    (data_longer_than_height_times_step, "image.data:size", "image.data: expected height x step = 32 x 144 = 4608 bytes, got 4618"),
    (lambda h: h.goal(object_mask=np.ones(SIZE, bool)), "object_mask:full", "object_mask: every pixel is set (the whole image)"),
    (tiny_image, "image:too_small", "image: expected at least 8 x 8 pixels, got 6 x 4"),
    # issue 11 #6: sampling overrides the pipeline would refuse are refused before queueing
    (lambda h: h.goal(num_frames=100000), "num_frames:range", "num_frames: expected an int in [2, 128] (0 = the model's default), got 100000"),
    (lambda h: h.goal(num_inference_steps=5000), "num_inference_steps:range", "num_inference_steps: expected an int in [1, 1000]"),
    (lambda h: h.goal(guidance_scale=500.0), "guidance_scale:range", "guidance_scale: expected a number in (0, 100]"),
    (lambda h: h.goal(timeout_s=-1.0), "timeout_s:range", "timeout_s: expected seconds >= 0 (0 = no deadline), got -1.0"),
    # issue 12: hypotheses and depth
    (lambda h: h.goal(num_samples=9), "num_samples:too_many", "num_samples: 9 hypotheses is above the node's max_samples limit of 8"),
    (lambda h: h.goal(num_samples=-2), "num_samples:range", "num_samples: expected an int >= 0 (0 or 1 = one hypothesis), got -2"),
    (lambda h: with_depth(h, np.ones(SIZE, np.uint16), camera_info=False), "camera_info:missing",
     "camera_info: depth was given without the image's camera_info"),
    (lambda h: with_depth(h, np.ones((SIZE[0], SIZE[1] - 8), np.float32)), "depth:size",
     "depth: expected the image's pixel grid, height x width 32 x 48, got 32 x 40"),
    (depth_bad_encoding, "depth.encoding:conversion", "depth.encoding: expected a depth encoding"),
    (camera_info_of_another_size, "camera_info:size", "image: expected an image of the camera_info size (64, 96), got (32, 48)"),
]


def test_each_bad_goal_gets_its_error_while_accepted_work_completes(start_node):
    h = start_node(max_input_age_s=5.0)
    gated = GatedPipeline.install(h)  # the accepted goal holds the model until the gate opens
    running = h.send(h.goal(num_inference_steps=3, trajectory_only=True))
    wait_for(gated.holding.is_set, 20.0, "a goal running")
    for make_goal, cause, error_start in BAD_GOALS:
        for _ in range(2):  # the same cause twice: counted twice, warned once
            result = h.result(h.send(make_goal(h)))
            assert result.status == Imagine.Result.STATUS_INVALID_INPUT, (cause, result.error)
            assert result.error.startswith(error_start), (cause, result.error)
        assert h.node.causes.counts[cause] == 2
    # Every bad goal was answered while the accepted one still held the model (none was queued).
    assert gated.holding.is_set() and len(gated.calls) == 1
    gated.gate.set()
    assert h.result(running).status == Imagine.Result.STATUS_SUCCEEDED
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED


def test_different_pipeline_errors_are_each_warned_the_first_time(start_node):
    # Faults the pipeline itself raises (past the node's checks) get one cause each (issue 11 #11).
    h = start_node()
    gated = GatedPipeline.install(h, open_gate=True)
    errors = [ValueError("alpha: expected something else"), ValueError("beta: expected another thing"),
              RuntimeError("device lost"), ValueError("alpha: expected something else")]
    statuses = []
    for error in errors:
        gated.error = error
        result = h.result(h.send(h.goal(trajectory_only=True)))
        statuses.append(result.status)
        assert str(error) in result.error
    assert statuses == ["invalid_input", "invalid_input", "failed", "invalid_input"]
    counts = h.node.causes.counts
    assert counts["pipeline:alpha"] == 2 and counts["pipeline:beta"] == 1
    assert [c for c in counts if c.startswith("failed:RuntimeError")] != []


@pytest.mark.parametrize("policy", ["refuse", "truncate"])
def test_prompt_longer_than_the_token_limit(start_node, policy):
    # The tiny pipeline's byte-level text encoder reads 16 tokens: start + 14 bytes + end.
    h = start_node(prompt_overflow=policy)
    prompt = "push the red block to the left " * 600  # ~18,600 characters
    result = h.result(h.send(h.goal(prompt=prompt, trajectory_only=True)))
    tokens = len(prompt.strip()) + 2
    if policy == "refuse":
        assert result.status == Imagine.Result.STATUS_INVALID_INPUT
        assert result.error == (f"prompt: {tokens} tokens, longer than the text encoder's limit of 16 "
                                "tokens (start/end tokens included); shorten the action description")
    else:
        assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
        assert result.rollout.prompt == "push the red b"  # what the model read, not the 18,600 characters
        assert list(result.warnings) == [
            f"prompt: {tokens} tokens, longer than the text encoder's limit of 16 tokens; "
            "the model read only 'push the red b'"]
    fits = h.result(h.send(h.goal(prompt="push it left", trajectory_only=True)))
    assert fits.status == Imagine.Result.STATUS_SUCCEEDED and list(fits.warnings) == []
    assert fits.rollout.prompt == "push it left"


def test_max_input_pixels_refuses_larger_images_naming_the_limit(start_node):
    h = start_node(max_input_pixels=1000)  # the 48 x 32 test image has 1536
    result = h.result(h.send(h.goal()))
    assert result.status == Imagine.Result.STATUS_INVALID_INPUT
    assert result.error.startswith("image: 48 x 32 = 1536 pixels is above the node's max_input_pixels 1000")
    assert h.node.set_parameters([Parameter("max_input_pixels", value=0)])[0].successful  # 0 = no limit
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
