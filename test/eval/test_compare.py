"""mask2iv-compare on bags whose truth is known: an imagination equal to what happened scores IoU 1
and zero errors; a truth shifted by a known amount gives the expected lower IoU and 3D error."""

import json

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from mask2iv_ros.eval.bag_io import _BagMessages, package_typestore
from mask2iv_ros.eval.compare import (
    Imagination, compare, main, nearest_frames, read_imagination, save_imagination_npz, target_times)
from mask2iv_ros.eval.observed_bag import read_observed_bag, write_observed_bag
from mask2iv_ros.geometry.synthetic import default_camera, metres_to_16uc1, plane_depth, push_scene, tabletop_plane

START_NS = 1_700_000_000 * 1_000_000_000
NS = 1_000_000_000


def write_rollout_bag(path, imaginations):
    """An output bag like mask2iv-replay records: /imagination/rollout (ImaginedRollout) per request."""
    typestore = package_typestore()
    build = _BagMessages(typestore)
    types = typestore.types
    msgtype = "mask2iv_ros/msg/ImaginedRollout"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection("/imagination/rollout", msgtype, typestore=typestore)
        for stamp, actor, obj, fps in imaginations:
            header = build.header(stamp, "camera")
            rollout = types[msgtype](
                header=header, request_id=f"topic-{stamp}", input_stamp=header.stamp,
                mask_trajectory=build.trajectory(actor, obj, header, fps), video_frames=[], fps=fps, mode="position",
                prompt="", num_frames=len(obj), num_inference_steps=4, guidance_scale=1.0, seed=0, model_id="test",
                trajectory_seconds=0.1, video_seconds=0.0, total_seconds=0.1, hypothesis_index=0, num_hypotheses=1,
                hypothesis_score=1.0, agreement=1.0, ranking="single")
            writer.write(connection, stamp, typestore.serialize_cdr(rollout, msgtype))
    return path


def write_node_bag(path, imaginations):
    """An output bag as imagine_node publishes now: bare rollouts (no trajectory images) and the
    trajectory on its own topic, here colour frames only (trajectory_encoding 'colour')."""
    typestore = package_typestore()
    build = _BagMessages(typestore)
    rollout_type, trajectory_type = "mask2iv_ros/msg/ImaginedRollout", "mask2iv_ros/msg/MaskTrajectory"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        rollouts = writer.add_connection("/imagination/rollout", rollout_type, typestore=typestore)
        trajectories = writer.add_connection("/imagination/mask_trajectory", trajectory_type, typestore=typestore)
        for stamp, actor, obj, fps in imaginations:
            header = build.header(stamp, "camera")
            trajectory = build.trajectory(actor, obj, header, fps)
            bare = build.trajectory(actor[:0], obj[:0], header, fps)
            trajectory.actor_masks, trajectory.object_masks = [], []
            rollout = typestore.types[rollout_type](
                header=header, request_id=f"topic-{stamp}", input_stamp=header.stamp, mask_trajectory=bare,
                video_frames=[], fps=fps, mode="position", prompt="", num_frames=len(obj), num_inference_steps=4,
                guidance_scale=1.0, seed=0, model_id="test", trajectory_seconds=0.1, video_seconds=0.0,
                total_seconds=0.1, hypothesis_index=0, num_hypotheses=1, hypothesis_score=1.0, agreement=1.0,
                ranking="single")
            writer.write(trajectories, stamp, typestore.serialize_cdr(trajectory, trajectory_type))
            writer.write(rollouts, stamp + 1, typestore.serialize_cdr(rollout, rollout_type))
    return path


def test_a_node_bag_is_read_from_its_trajectory_topic(tmp_path):
    rng = np.random.default_rng(3)
    obj = rng.random((4, 24, 32)) > 0.7
    actor = (rng.random((4, 24, 32)) > 0.8) & ~obj
    bag = write_node_bag(tmp_path / "node", [(START_NS, actor, obj, 5.0), (START_NS + NS, obj, actor, 5.0)])
    first = read_imagination(bag)
    assert first.stamp_ns == START_NS and first.fps == 5.0 and "/imagination/mask_trajectory" in first.source
    np.testing.assert_array_equal(first.object_masks, obj)
    np.testing.assert_array_equal(first.actor_masks, actor)
    np.testing.assert_array_equal(read_imagination(bag, request=1).object_masks, actor)


@pytest.fixture(scope="module")
def executed_push():
    """15 observed frames at 10 Hz of a finger pushing a box (contact at frame 6), with depth."""
    return push_scene(default_camera(240, 320), start_pixel=(135.0, 165.0), frames=15, contact_frame=6,
                      push_per_frame=(0.01, 0.005), approach_per_frame_m=0.02)


@pytest.mark.parametrize("source", ["npz", "bag"])
def test_an_imagination_equal_to_what_happened_scores_perfectly(tmp_path, executed_push, source):
    scene = executed_push
    stamps = START_NS + np.arange(15) * NS // 10
    images = np.full((15, 240, 320, 3), 90, np.uint8)
    observed_bag = write_observed_bag(tmp_path / "observed", stamps, scene.object_masks, actor_masks=scene.actor_masks,
                                      images=images, depth=metres_to_16uc1(scene.depth_m), camera=scene.camera)
    # The imagination: 8 frames spread over the 1.4 s execution = every other observed frame.
    actor, obj = scene.actor_masks[::2], scene.object_masks[::2]
    if source == "npz":
        imagination = save_imagination_npz(tmp_path / "imagined.npz", actor, obj, fps=5.0, stamp_ns=START_NS)
        request = []
    else:
        other = np.zeros_like(obj)
        imagination = write_rollout_bag(tmp_path / "imagined", [(START_NS - 5 * NS, other, other, 5.0),
                                                                  (START_NS, actor, obj, 5.0)])
        request = ["--request", "1"]

    assert main([str(imagination), str(observed_bag), "--output-dir", str(tmp_path / "report"), *request]) == 0
    report = json.loads((tmp_path / "report" / "compare_report.json").read_text())
    assert report["frames"] == 8 and report["align"] == "span"
    assert report["observed_frames"]["object"] == list(range(0, 15, 2))
    assert report["target_times_s"] == pytest.approx(np.arange(8) * 0.2)
    assert report["object_iou"] == [1.0] * 8 and report["actor_iou"] == [1.0] * 8
    assert report["placement_iou"] == 1.0 and report["placement_centroid_error_px"] == 0.0
    assert report["contact_frame_imagined"] == report["contact_frame_observed"] == 3
    assert report["contact_frame_error"] == 0 and report["contact_time_error_s"] == 0.0
    geometry = report["geometry"]
    assert geometry["support_plane_valid"]
    assert geometry["endpoint_error_m"] == 0.0 and geometry["contact_point_error_m"] == 0.0
    assert geometry["mean_path_error_m"] == 0.0 and geometry["path_frames_compared"] == 8
    # The observed placement is where the box really ended up (the lifted path, a few mm).
    placement = np.array(geometry["observed"]["placement_point"])
    assert np.linalg.norm(placement - scene.object_path[14]) < 0.004
    markdown = (tmp_path / "report" / "compare_report.md").read_text()
    assert "mean object IoU 1.000" in markdown and "endpoint error 0.0000" in markdown
    import cv2

    png = cv2.imread(str(tmp_path / "report" / "compare_report.png"))
    assert png.shape == (2 * 120, 8 * 160, 3)  # imagined row over observed row, 8 frames


def _rectangles(frames, top, left, step):
    """bool [frames, 240, 320]: a 20 x 20 object moving right by `step` px a frame, and an actor
    bar moving in from the left that reaches it at frame 2."""
    obj = np.zeros((frames, 240, 320), bool)
    actor = np.zeros_like(obj)
    for index in range(frames):
        x = left + step * index
        obj[index, top:top + 20, x:x + 20] = True
        gap = 8 * max(0, 2 - index)
        actor[index, top - 30:top + 10, x - 6 - gap:x - gap] = True
    return actor, obj


def test_a_shifted_truth_gives_the_expected_iou_and_3d_error(tmp_path):
    camera = default_camera(240, 320)
    plane = tabletop_plane(0.6, 50.0)
    depth = plane_depth(camera, plane, 240, 320)
    actor, obj = _rectangles(6, 150, 100, 4)
    shift = 5
    observed_actor, observed_object = np.roll(actor, shift, axis=2), np.roll(obj, shift, axis=2)
    stamps = START_NS + np.arange(6) * NS // 5
    bag = write_observed_bag(tmp_path / "observed", stamps, observed_object, actor_masks=observed_actor,
                             depth=depth, camera=camera)
    result = compare(Imagination(actor, obj, 5.0, START_NS, "rectangles"), read_observed_bag(bag))
    expected_iou = (20 - shift) / (20 + shift)  # 20-px squares overlapping by 15 columns
    np.testing.assert_allclose(result.object_iou, expected_iou)
    assert result.placement_iou == pytest.approx(expected_iou)
    assert result.placement_centroid_error_px == pytest.approx(shift)
    assert result.contact_frame_error == 0  # both touch at frame 2
    # 3D: both bottom-centres lie in row 169 (v = 169.5); their rays meet the table 5 px apart.
    u_imagined = 100 + 4 * 5 + 9.5
    rays = camera.rays(np.array([[u_imagined, 169.5], [u_imagined + shift, 169.5]]))
    points = rays * (-plane[3] / (rays @ plane[:3]))[:, None]
    assert result.geometry["endpoint_error_m"] == pytest.approx(np.linalg.norm(points[1] - points[0]), abs=5e-4)
    assert result.geometry["endpoint_error_m"] > 0.005


def test_a_late_contact_is_a_negative_contact_error(tmp_path):
    actor, obj = _rectangles(6, 150, 100, 0)
    late_actor = np.concatenate([actor[:1], actor[:1], actor[:-2]])  # the real arm arrives 2 frames later
    stamps = START_NS + np.arange(6) * NS // 5
    bag = write_observed_bag(tmp_path / "observed", stamps, obj, actor_masks=late_actor)
    result = compare(Imagination(actor, obj, 5.0, START_NS, "rectangles"), read_observed_bag(bag))
    assert (result.contact_frame_imagined, result.contact_frame_observed) == (2, 4)
    assert result.contact_frame_error == -2 and result.contact_time_error_s == pytest.approx(-0.4)
    assert result.object_iou == [1.0] * 6 and result.geometry is None  # no depth in this bag
    no_actor = compare(Imagination(actor, obj, 5.0, START_NS), read_observed_bag(
        write_observed_bag(tmp_path / "objects_only", stamps, obj)))
    assert no_actor.actor_iou is None and no_actor.contact_frame_error is None
    assert any("no actor masks" in note for note in no_actor.notes)


def test_time_alignment_by_stamps():
    targets = target_times(10 * NS, 12 * NS, 5, 5.0, "span")
    np.testing.assert_array_equal(targets, 10 * NS + np.arange(5) * NS // 2)
    np.testing.assert_array_equal(target_times(10 * NS, 12 * NS, 5, 5.0, "fps"), 10 * NS + np.arange(5) * NS // 5)
    stamps = np.array([0, 90, 260, 300, 500]) * NS // 1000 + 10 * NS  # irregular 0.00, 0.09, 0.26, 0.30, 0.50 s
    picks = nearest_frames(stamps, 10 * NS + np.array([0, 100, 200, 400, 900]) * NS // 1000)
    np.testing.assert_array_equal(picks, [0, 1, 2, 3, 4])  # 0.4 s is as near 0.30 as 0.50: the earlier wins
    with pytest.raises(ValueError, match="align"):
        target_times(0, 1, 3, 5.0, "linear")


def test_an_observation_that_starts_late_is_noted_and_sizes_must_match(tmp_path):
    actor, obj = _rectangles(4, 150, 100, 4)
    stamps = START_NS + NS + np.arange(4) * NS // 5
    observed = read_observed_bag(write_observed_bag(tmp_path / "observed", stamps, obj, actor_masks=actor))
    result = compare(Imagination(actor, obj, 5.0, START_NS), observed)
    assert result.object_iou == [1.0] * 4 and "starts 1.000 s after" in result.notes[0]
    with pytest.raises(ValueError, match=r"observed object masks: expected the imagination's pixel grid \(120, 320\)"):
        compare(Imagination(actor[:, :120], obj[:, :120], 5.0, START_NS), observed)


def test_bad_imagination_inputs_are_refused_naming_them(tmp_path):
    np.savez(tmp_path / "bad.npz", masks=np.zeros((2, 4, 4), bool))
    with pytest.raises(ValueError, match=r"imagination: .*lacks \['actor_masks', 'object_masks'\]"):
        read_imagination(tmp_path / "bad.npz")
    actor, obj = _rectangles(3, 150, 100, 4)
    bag = write_rollout_bag(tmp_path / "imagined", [(START_NS, actor, obj, 5.0)])
    assert read_imagination(bag, stamp_ns=START_NS).stamp_ns == START_NS
    with pytest.raises(ValueError, match=r"request: expected 0..0"):
        read_imagination(bag, request=1)
    with pytest.raises(ValueError, match="stamp_ns: no imagination with input stamp 5"):
        read_imagination(bag, stamp_ns=5)
    observed = write_observed_bag(tmp_path / "observed", [START_NS], obj[:1])
    with pytest.raises(ValueError, match="imagination: .* has no mask2iv_ros/msg/ImaginedRollout"):
        read_imagination(observed)
    with pytest.raises(ValueError, match="object_topic: '/tracked/object'"):
        read_observed_bag(observed, object_topic="/tracked/object")
