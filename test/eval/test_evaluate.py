import csv
import json
import math

import numpy as np
import pytest

from mask2iv_ros.eval.evaluate import MetricSuite, main, score_videos, write_report
from mask2iv_ros.eval.generation import Trajectory, ground_truth_trajectories, load_eval_clips


def _fast_suite():
    # Pixel-statistics FVD + frame-feature V2V; T2V left out to keep the test quick.
    return MetricSuite()


def test_scores_of_ground_truth_against_itself(synthetic_root):
    clips = load_eval_clips(synthetic_root, 4, (32, 48), "test")
    result = score_videos(clips, [c.frames for c in clips], _fast_suite(), ground_truth_trajectories(clips))
    s = result.summary
    assert s["psnr"] == math.inf and s["ssim"] == pytest.approx(1.0)
    assert s["fvd_pixelstats"] == pytest.approx(0.0, abs=1e-6)
    assert s["v2v_sim_framefeature"] == pytest.approx(1.0)
    assert s["actor_iou"] == 1.0 and s["object_iou"] == 1.0 and s["placement_iou"] == 1.0
    assert s["centroid_error_px"] == 0.0 and s["num_clips"] == 2.0
    assert "lpips" not in s and "t2v_sim" not in result.metric_sources


def test_scores_drop_for_worse_videos_and_trajectories(synthetic_root):
    clips = load_eval_clips(synthetic_root, 4, (32, 48), "test")
    blurred = [np.full_like(c.frames, int(c.frames.mean())) for c in clips]
    shifted = [Trajectory(np.roll(c.actor_masks, 5, axis=2), np.roll(c.object_masks, 5, axis=2)) for c in clips]
    result = score_videos(clips, blurred, _fast_suite(), shifted)
    s = result.summary
    assert 5.0 < s["psnr"] < 40.0 and s["ssim"] < 0.9 and s["fvd_pixelstats"] > 0.0
    assert s["object_iou"] < 1.0 and s["centroid_error_px"] == pytest.approx(5.0, abs=0.5)
    assert len(result.per_clip) == 2 and result.per_clip[0]["episode_id"] == clips[0].episode_id
    with pytest.raises(ValueError, match="videos"):
        score_videos(clips, blurred[:1], _fast_suite())


def test_write_report(tmp_path, synthetic_root):
    clips = load_eval_clips(synthetic_root, 4, (32, 48), "test")
    result = score_videos(clips, [c.frames[::-1].copy() for c in clips], _fast_suite())
    path = write_report(result, tmp_path, {"settings": {"control": "concat"}})
    payload = json.loads(path.read_text())
    assert payload["summary"]["psnr"] == pytest.approx(result.summary["psnr"])
    assert payload["metric_sources"]["fvd"] == "fvd_pixelstats"
    with open(tmp_path / "per_clip.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and list(rows[0])[:4] == ["episode_id", "prompt", "psnr", "ssim"]


def test_cli_end_to_end(tmp_path, synthetic_root, tiny_pipe):
    tiny_pipe.save_pretrained(tmp_path / "pipe")
    out = tmp_path / "eval"
    code = main(["--pipeline", str(tmp_path / "pipe"), "--data", str(synthetic_root), "--out", str(out),
                 "--steps", "1", "--max-clips", "2", "--no-t2v", "--no-progress", "--device", "cpu"])
    assert code == 0
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    for key in ("psnr", "ssim", "fvd_pixelstats", "v2v_sim_framefeature", "object_iou", "direction_agreement"):
        assert key in summary
    assert (out / "examples.png").stat().st_size > 0


def test_cli_reports_bad_arguments(tmp_path, synthetic_root, capsys):
    code = main(["--pipeline", str(tmp_path / "missing"), "--data", str(synthetic_root), "--out", str(tmp_path),
                 "--no-t2v"])
    assert code == 2
    assert "model_index.json" in capsys.readouterr().err
    code = main(["--pipeline", str(tmp_path), "--data", str(synthetic_root), "--out", str(tmp_path),
                 "--no-t2v", "--lpips-backbone", "x.pth"])
    assert code == 2
    assert "--lpips-linear" in capsys.readouterr().err
