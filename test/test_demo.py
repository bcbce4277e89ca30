"""`make demo` end to end (mask2iv_ros.demo): a separate imagine_node process, the embedded demo
bag replayed into it, a planner-style action call, previews and an output bag on disk."""
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from mask2iv_ros import demo  # noqa: E402
from mask2iv_ros.eval.bag_io import read_bag  # noqa: E402


def test_demo_without_a_model_stops_with_a_clear_message(tmp_path, capsys):
    code = demo.main(["--model", str(tmp_path / "no_model_here"), "--output", str(tmp_path / "out")])
    assert code == 1
    printed = capsys.readouterr().out
    assert "no Mask2IV model is installed" in printed
    assert "model_path" in (tmp_path / "out" / "imagine_node.log").read_text()  # the node's own reason


def test_demo_replays_the_embedded_bag_and_writes_previews(tmp_path, capsys):
    out = tmp_path / "out"
    assert demo.main(["--model", "tiny-random", "--steps", "2", "--output", str(out), "--samples", "3"]) == 0
    recorded = read_bag(out / "imagination_bag")
    rollouts = recorded["/imagination/rollout"]
    requests = len(demo_requests_in_bag())
    assert len(rollouts) == requests
    # the bag's depth + camera_info reach the node: every replayed request has its geometry
    geometry = recorded["/imagination/geometry"]
    assert len(geometry) == requests and all(g.support_plane_valid for g in geometry)
    printed = capsys.readouterr().out
    assert "[demo] planner-style action call (TT-Gen), 3 hypotheses with depth" in printed
    assert "3 hypotheses ranked by medoid_object_iou" in printed and "agreement " in printed
    assert "[demo] first-ranked object path, metres in the camera optical frame" in printed
    # the trajectory goes out once, on its own topic (mono8 masks by default); the rollout has the video
    trajectories = recorded["/imagination/mask_trajectory"]
    assert len(trajectories) == requests and all(len(t.object_masks) > 0 and not len(t.frames) for t in trajectories)
    assert all(r.mode == "position" and len(r.video_frames) == len(trajectories[0].object_masks)
               and not len(r.mask_trajectory.object_masks) for r in rollouts)
    for number in range(requests):
        assert (out / f"request_{number:02d}_position.gif").stat().st_size > 0
        assert (out / f"request_{number:02d}_position_contact_sheet.png").stat().st_size > 0
    assert (out / "planner_action_text.gif").is_file()  # the TT-Gen action call succeeded
    assert (out / "replay_report.json").is_file()


def demo_requests_in_bag():
    from mask2iv_ros.eval.bag_io import package_typestore, read_input_bag

    sets, _ = read_input_bag(Path(demo.EMBEDDED_DEMO_BAG), package_typestore())
    return [s for s in sets if s.is_request]


def test_demo_bag_type_hashes_match_the_built_interfaces():
    """metadata.yaml's type_description_hash of every topic is what rclpy's built interfaces say."""
    import importlib

    import rclpy
    import yaml

    metadata = yaml.safe_load((Path(demo.EMBEDDED_DEMO_BAG) / "metadata.yaml").read_text())
    topics = [t["topic_metadata"] for t in metadata["rosbag2_bagfile_information"]["topics_with_message_count"]]
    assert {"/camera/depth", "/camera/camera_info"} <= {t["name"] for t in topics}
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("demo_bag_hash_check", context=context)
        for index, topic in enumerate(topics):
            package, _, name = topic["type"].split("/")
            message_type = getattr(importlib.import_module(f"{package}.msg"), name)
            node.create_publisher(message_type, f"hash_check_{index}", 1)
            built = node.get_publishers_info_by_topic(f"hash_check_{index}")[0].topic_type_hash
            assert str(built) == topic["type_description_hash"], topic["name"]
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
