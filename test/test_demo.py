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


def test_demo_replays_the_embedded_bag_and_writes_previews(tmp_path):
    out = tmp_path / "out"
    assert demo.main(["--model", "tiny-random", "--steps", "2", "--output", str(out)]) == 0
    rollouts = read_bag(out / "imagination_bag")["/imagination/rollout"]
    requests = len(demo_requests_in_bag())
    assert len(rollouts) == requests
    assert all(r.mode == "position" and len(r.video_frames) == len(r.mask_trajectory.frames) > 0 for r in rollouts)
    for number in range(requests):
        assert (out / f"request_{number:02d}_position.gif").stat().st_size > 0
        assert (out / f"request_{number:02d}_position_contact_sheet.png").stat().st_size > 0
    assert (out / "planner_action_text.gif").is_file()  # the TT-Gen action call succeeded
    assert (out / "replay_report.json").is_file()


def demo_requests_in_bag():
    from mask2iv_ros.eval.bag_io import package_typestore, read_input_bag

    sets, _ = read_input_bag(Path(demo.EMBEDDED_DEMO_BAG), package_typestore())
    return [s for s in sets if s.is_request]
