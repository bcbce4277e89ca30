"""Bag replay: write an input bag with rosbags, replay it into the node, read the output bag back."""

import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from ros_test_helpers import SIZE, sample_image  # noqa: E402

from mask2iv_ros.data.sample import InteractionClip  # noqa: E402
from mask2iv_ros.eval import replay  # noqa: E402
from mask2iv_ros.ros.image_conversion import image_msg_to_mask  # noqa: E402
from mask2iv_ros.ros.synchronizer import stamp_to_ns  # noqa: E402

FRAMES = 4


def moving_box_clip(seed: int, prompt: str) -> InteractionClip:
    """A clip whose object box slides right while the actor box follows it."""
    object_masks = np.zeros((FRAMES,) + SIZE, bool)
    actor_masks = np.zeros((FRAMES,) + SIZE, bool)
    for t in range(FRAMES):
        object_masks[t, 10:20, 8 + 4 * t : 18 + 4 * t] = True
        actor_masks[t, 0:12, 2 + 4 * t : 8 + 4 * t] = True
    frames = np.stack([sample_image(seed + t) for t in range(FRAMES)])
    return InteractionClip(frames=frames, actor_masks=actor_masks, object_masks=object_masks, prompt=prompt, fps=4.0)


@pytest.fixture(params=["mcap", "sqlite3"])
def input_bag(request, tmp_path):
    clips = [moving_box_clip(0, "push right"), moving_box_clip(10, "push it again")]
    return replay.write_input_bag(tmp_path / f"inputs_{request.param}", [replay.request_from_clip(c) for c in clips],
                                  storage=request.param)


def test_written_bag_groups_into_requests_with_ground_truth(input_bag):
    sets, truth = replay.read_input_bag(input_bag, replay.package_typestore())
    assert [s.is_request for s in sets] == [True, True]
    assert [m.topic for m in sets[0].messages][0] == replay.PROMPT_TOPIC  # the prompt goes first
    assert {m.topic for m in sets[0].messages} == {replay.PROMPT_TOPIC, replay.IMAGE_TOPIC, replay.OBJECT_MASK_TOPIC}
    assert sorted(truth) == [s.stamp_ns for s in sets]
    assert truth[sets[0].stamp_ns].object_masks.shape == (FRAMES,) + SIZE


def test_replay_as_fast_as_consumed_records_outputs_and_reports(input_bag, start_node, ros_context, tmp_path):
    h = start_node(use_sim_time=True)  # replay publishes /clock: recorded stamps are not "too old"
    output_bag = tmp_path / "outputs"
    report = replay.replay_bag(input_bag, output_bag, namespace=h.namespace, context=ros_context, progress=False,
                               request_timeout_s=30.0)
    assert len(report.requests) == len(report.answered) == 2
    assert all(r.latency_s > 0 and r.node_total_seconds > 0 for r in report.requests)

    recorded = replay.read_bag(output_bag)
    ns = h.namespace
    assert {topic: len(msgs) for topic, msgs in recorded.items()} == {
        f"{ns}/imagination/rollout": 2, f"{ns}/imagination/mask_trajectory": 2,
        f"{ns}/imagination/overlay": 2 * FRAMES, f"{ns}/imagination/video": 2 * FRAMES,
    }
    # the geometry topic is recorded too; without depth in the inputs it stays empty
    assert report.outputs_received == {**{topic: len(msgs) for topic, msgs in recorded.items()},
                                       f"{ns}/imagination/geometry": 0}
    rollouts = recorded[f"{ns}/imagination/rollout"]
    assert [stamp_to_ns(r.header.stamp) for r in rollouts] == [r.stamp_ns for r in report.requests]
    assert [r.prompt for r in rollouts] == ["push right", "push it again"]
    # the trajectory's images are on its own topic (same stamps), not again in the rollout
    trajectories = recorded[f"{ns}/imagination/mask_trajectory"]
    assert [t.header.stamp for t in trajectories] == [r.header.stamp for r in rollouts]
    assert all(not len(r.mask_trajectory.object_masks) for r in rollouts)
    first_mask = image_msg_to_mask(trajectories[0].object_masks[0])  # rosbags message decodes too
    assert first_mask.shape == SIZE

    for record in report.requests:
        m = record.metrics
        assert m is not None and m.frames_compared == FRAMES and len(m.actor_iou) == len(m.object_iou) == FRAMES
        assert all(0.0 <= v <= 1.0 for v in m.actor_iou + m.object_iou + [m.final_placement_iou])
        assert record.outputs[f"{ns}/imagination/overlay"] == FRAMES

    json_path, markdown_path = report.write(tmp_path / "report")
    data = json.loads(json_path.read_text())
    assert data["summary"]["answered"] == 2 and data["summary"]["with_ground_truth"] == 2
    assert "| # | stamp (s) | latency (s)" in markdown_path.read_text()


def test_replay_cli_at_recorded_rate(tmp_path, start_node, ros_context):
    clips = [moving_box_clip(0, "push right")] * 2
    bag = replay.write_input_bag(tmp_path / "inputs", [replay.request_from_clip(c) for c in clips], period_s=0.5)
    h = start_node(use_sim_time=True, image_topic="cam/rgb")  # the bag says /camera/image: remapped
    exit_code = replay.main([str(bag), "--rate", "2", "--namespace", h.namespace, "--request-timeout", "30",
                             "--remap", "/camera/image:=/cam/rgb",
                             "--output-bag", str(tmp_path / "out"), "--report-dir", str(tmp_path)])
    assert exit_code == 0
    data = json.loads((tmp_path / "out_report.json").read_text())
    assert data["mode"] == "rate x2" and data["summary"]["answered"] == 2
    # Recorded period 0.5 s at rate 2: the second set is published about 0.25 s after the first.
    published = [r["published_at_s"] for r in data["requests"]]
    assert 0.15 < published[1] - published[0] < 1.0


def test_position_mode_clip_writes_placement_mask(tmp_path):
    clip = moving_box_clip(0, "unused in position mode")
    request = replay.request_from_clip(clip, mode="position")
    assert request.prompt == "" and np.array_equal(request.placement_mask, clip.object_masks[-1])
    bag = replay.write_input_bag(tmp_path / "bag", [request])
    sets, _ = replay.read_input_bag(bag, replay.package_typestore())
    assert {m.topic for m in sets[0].messages} == {replay.IMAGE_TOPIC, replay.OBJECT_MASK_TOPIC, replay.PLACEMENT_MASK_TOPIC}
    with pytest.raises(ValueError, match="^mode: expected 'text' or 'position'"):
        replay.request_from_clip(clip, mode="video")


def test_first_request_messages_gives_rclpy_messages(input_bag):
    image, object_mask, prompt = replay.first_request_messages(input_bag)
    assert type(image).__module__.startswith("sensor_msgs.msg") and image.encoding == "rgb8"
    assert (image.height, image.width) == SIZE and object_mask.encoding == "mono8"
    assert image.header.stamp == object_mask.header.stamp and prompt == "push right"
