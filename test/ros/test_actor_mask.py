"""First-frame actor mask input: synchronized with the image when use_actor_mask, passed to the
pipeline as actor_mask, checked (errors name actor_mask), and carried by input bags."""

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_test_helpers import SIZE, box_mask, sample_image, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

from mask2iv_ros.eval import replay  # noqa: E402
from mask2iv_ros.msg import ImaginedRollout  # noqa: E402
from mask2iv_ros.ros.image_conversion import image_msg_to_mask, mask_to_image_msg, rgb_to_image_msg  # noqa: E402

ARM = box_mask(top=0, left=0, size=8)  # the robot arm, top left, away from the object box


class PipelineSpy:
    """Records the keyword arguments of each pipeline call, then runs the real pipeline."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.pipeline(**kwargs)


class TopicInputs:
    """Publishers of the node's inputs (prompt already sent) and a spy on its pipeline."""

    def __init__(self, h, actor_mask_subscribed: bool):
        self.h = h
        self.spy = PipelineSpy(h.node.pipeline)
        h.node.pipeline = self.spy
        self.rollouts = h.subscribe(ImaginedRollout, "imagination/rollout")
        self.pubs = {name: h.client.create_publisher(Image, name, qos_profile_sensor_data)
                     for name in ("camera/image", "object_mask", "actor_mask")}
        prompt_pub = h.client.create_publisher(String, "prompt", 1)
        wait_for(lambda: self.pubs["camera/image"].get_subscription_count() and self.pubs["object_mask"].get_subscription_count()
                 and prompt_pub.get_subscription_count(), what="node subscriptions")
        assert bool(self.pubs["actor_mask"].get_subscription_count()) == actor_mask_subscribed
        prompt_pub.publish(String(data="push right"))
        wait_for(lambda: h.node._latest_prompt, what="prompt received")

    def publish(self, actor_mask_msg=None):
        """Image + object mask (+ actor mask message, restamped like the image); returns the header."""
        header = Header(stamp=self.h.now_stamp(), frame_id="cam")
        self.pubs["camera/image"].publish(rgb_to_image_msg(sample_image(), header))
        self.pubs["object_mask"].publish(mask_to_image_msg(box_mask(), header))
        if actor_mask_msg is not None:
            actor_mask_msg.header = header
            self.pubs["actor_mask"].publish(actor_mask_msg)
        return header

    def rollout_for(self, stamp, timeout_s: float = 20.0):
        return wait_for(lambda: next((r for r in self.rollouts if r.header.stamp == stamp), None), timeout_s, "rollout")


def test_synchronized_actor_mask_reaches_the_pipeline(start_node):
    h = start_node(use_actor_mask=True, publish_video=False)
    inputs = TopicInputs(h, actor_mask_subscribed=True)
    # Image and object mask alone are an incomplete set: nothing runs until the actor mask arrives.
    header = inputs.publish()
    time.sleep(0.3)
    assert inputs.spy.calls == [] and inputs.rollouts == []
    inputs.pubs["actor_mask"].publish(mask_to_image_msg(ARM, header))
    rollout = inputs.rollout_for(header.stamp)
    assert rollout.mode == "text" and rollout.num_frames > 0
    assert len(inputs.spy.calls) == 1
    np.testing.assert_array_equal(inputs.spy.calls[0]["actor_mask"], ARM)

    # All zero = no actor visible: a valid input, passed on as an empty mask.
    inputs.rollout_for(inputs.publish(mask_to_image_msg(np.zeros(SIZE, bool))).stamp)
    actor_mask = inputs.spy.calls[-1]["actor_mask"]
    assert actor_mask.shape == SIZE and not actor_mask.any()


def test_actor_mask_topic_is_ignored_without_use_actor_mask(start_node):
    h = start_node(publish_video=False)  # use_actor_mask defaults to false
    inputs = TopicInputs(h, actor_mask_subscribed=False)
    inputs.rollout_for(inputs.publish(mask_to_image_msg(ARM)).stamp)
    assert [call["actor_mask"] for call in inputs.spy.calls] == [None]


def test_bad_actor_mask_is_reported_once_per_cause_and_node_serves_next_set(start_node):
    h = start_node(use_actor_mask=True, publish_video=False)
    inputs = TopicInputs(h, actor_mask_subscribed=True)
    wrong_size = mask_to_image_msg(np.ones((SIZE[0], SIZE[1] - 8), bool))
    colour = rgb_to_image_msg(sample_image())  # rgb8, not a single-channel mask
    for message, cause, error in [
        (wrong_size, "actor_mask:size", "actor_mask: expected a mask of height x width 32 x 48 matching image, got 32 x 40"),
        (colour, "actor_mask.encoding:conversion", "actor_mask.encoding: expected a single-channel mask encoding"),
    ]:
        for count in (1, 2):  # the same cause twice: counted twice, warned once
            inputs.publish(message)
            wait_for(lambda: h.node.causes.counts[cause] == count, 5.0, f"{cause} reported")
        assert error in h.node.causes.last_message[cause]
    assert inputs.spy.calls == []
    inputs.rollout_for(inputs.publish(mask_to_image_msg(ARM)).stamp)
    np.testing.assert_array_equal(inputs.spy.calls[-1]["actor_mask"], ARM)


def test_bag_with_actor_mask_round_trips_and_replays(tmp_path, start_node, ros_context):
    request = replay.BagRequest(image=sample_image(), object_mask=box_mask(), prompt="push it", actor_mask=ARM)
    bag = replay.write_input_bag(tmp_path / "inputs", [request])
    sets, _ = replay.read_input_bag(bag, replay.package_typestore())
    assert len(sets) == 1 and sets[0].is_request
    by_topic = {m.topic: m for m in sets[0].messages}
    assert set(by_topic) == {replay.PROMPT_TOPIC, replay.IMAGE_TOPIC, replay.OBJECT_MASK_TOPIC, replay.ACTOR_MASK_TOPIC}
    assert by_topic[replay.ACTOR_MASK_TOPIC].stamp_ns == by_topic[replay.IMAGE_TOPIC].stamp_ns == sets[0].stamp_ns
    actor_msg = replay.first_request_actor_mask(bag)
    assert actor_msg.encoding == "mono8"
    np.testing.assert_array_equal(image_msg_to_mask(actor_msg), ARM)
    image_msg, _, prompt = replay.first_request_messages(bag)  # unchanged 3-tuple
    assert actor_msg.header.stamp == image_msg.header.stamp and prompt == "push it"

    # The replay publishes /actor_mask with the set; a node with use_actor_mask uses it.
    h = start_node(use_sim_time=True, use_actor_mask=True, publish_video=False)
    spy = PipelineSpy(h.node.pipeline)
    h.node.pipeline = spy
    report = replay.replay_bag(bag, tmp_path / "outputs", namespace=h.namespace, context=ros_context, progress=False,
                               request_timeout_s=30.0)
    assert len(report.answered) == 1
    np.testing.assert_array_equal(spy.calls[0]["actor_mask"], ARM)


def test_bag_without_actor_mask_has_none(tmp_path):
    bag = replay.write_input_bag(tmp_path / "inputs", [replay.BagRequest(image=sample_image(), object_mask=box_mask())])
    sets, _ = replay.read_input_bag(bag, replay.package_typestore())
    assert replay.ACTOR_MASK_TOPIC not in {m.topic for m in sets[0].messages}
    assert replay.first_request_actor_mask(bag) is None


def test_request_from_clip_can_carry_the_first_actor_mask():
    from types import SimpleNamespace

    actor_masks = np.stack([ARM, box_mask(top=4, left=4, size=8)])
    clip = SimpleNamespace(frames=np.stack([sample_image(0), sample_image(1)]), actor_masks=actor_masks,
                           object_masks=np.stack([box_mask(), box_mask()]), prompt="push", fps=4.0)
    np.testing.assert_array_equal(replay.request_from_clip(clip, with_actor_mask=True).actor_mask, ARM)
    assert replay.request_from_clip(clip).actor_mask is None
    clip.actor_masks = None
    with pytest.raises(ValueError, match="^clip.actor_masks: with_actor_mask needs"):
        replay.request_from_clip(clip, with_actor_mask=True)
