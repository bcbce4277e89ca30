"""mask2iv_ros.eval.calibrate_snap: snap weights chosen on generated episodes, recorded in the folder."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from mask2iv_ros.eval import calibrate_snap
from mask2iv_ros.eval.heldout import case_scores, run_case, synthetic_cases
from mask2iv_ros.masks import OBJECT, palette_labels
from mask2iv_ros.pipeline import Mask2IVPipeline, build_tiny_pipeline


@pytest.fixture()
def folder(tmp_path):
    pipe = build_tiny_pipeline(seed=0)
    generator = torch.Generator().manual_seed(0)
    for unet in (pipe.trajectory_unet_position, pipe.trajectory_unet_text):  # outputs that vary
        weight = unet.out[-1].weight
        weight.data = torch.randn(weight.shape, generator=generator) * 0.05
    pipe.save_pretrained(tmp_path / "pipe")
    return tmp_path / "pipe"


def test_plain_weights_score_the_pipeline_as_it_is_and_heavy_ones_shrink_the_object(folder):
    pipe = Mask2IVPipeline.from_pretrained(folder)
    cases = synthetic_cases(2, 3, pipe.resolution, num_frames=pipe.config.num_frames, fps=pipe.config.fps)
    plain = calibrate_snap.score_weights(pipe, cases, 1.0, 1.0, steps=1)
    direct = [case_scores(run_case(pipe, case, "position", trajectory_only=True, num_inference_steps=1)[0], case)
              for case in cases]
    assert plain["PT object IoU"] == pytest.approx(np.mean([row["object IoU"] for row in direct]))
    assert {"PT actor IoU", "PT placement IoU", "TT object IoU", "TT direction agreement"} <= set(plain)
    assert pipe.config.palette.snap_weights == (1.0, 1.0, 1.0)      # restored
    # an object weight so large that no decoded pixel is snapped to the object
    out = run_case(pipe, cases[0], "position", trajectory_only=True, num_inference_steps=1)[0]
    assert out.object_masks.any()
    heavy = calibrate_snap.score_weights(pipe, cases, 1e9, 1.0, steps=1)
    assert heavy["PT object IoU"] == 0.0 and heavy["objective"] < plain["objective"]


def test_resnapping_one_sampling_pass_scores_what_a_run_with_those_weights_scores(folder):
    pipe = Mask2IVPipeline.from_pretrained(folder)
    cases = synthetic_cases(2, 5, pipe.resolution, num_frames=pipe.config.num_frames, fps=pipe.config.fps)
    out = run_case(pipe, cases[0], "position", trajectory_only=True, num_inference_steps=1)[0]
    # the output's decoding before the snap is what its masks were snapped from
    assert out.decoded_trajectory.shape == out.mask_trajectory.shape
    assert (palette_labels(out.decoded_trajectory, pipe.palette) == OBJECT).tolist() == out.object_masks.tolist()
    samples = calibrate_snap.sample_cases(pipe, cases, steps=1)          # with the plain weights
    for object_weight, actor_weight in ((3.0, 0.5), (0.3, 4.0)):
        resnapped = calibrate_snap.score_samples(samples, pipe.palette, object_weight, actor_weight)
        weighted = dataclasses.replace(pipe.config, palette=dataclasses.replace(
            pipe.config.palette, snap_weights=(1.0, object_weight, actor_weight)))
        rerun = Mask2IVPipeline.from_pretrained(folder)
        rerun.config = weighted
        assert resnapped == calibrate_snap.score_weights(rerun, cases, object_weight, actor_weight, steps=1)
        direct = [case_scores(run_case(rerun, case, "position", trajectory_only=True,
                                       num_inference_steps=1)[0], case) for case in cases]
        assert resnapped["PT object IoU"] == pytest.approx(np.mean([row["object IoU"] for row in direct]))
        assert resnapped["PT actor IoU"] == pytest.approx(np.mean([row["actor IoU"] for row in direct]))


def test_cli_prints_the_table_and_records_the_best_pair(folder, tmp_path, capsys):
    assert calibrate_snap.main([str(folder), "--episodes", "2", "--seed", "3", "--steps", "1",
                                "--object-weights", "1", "3", "--actor-weights", "1", "2",
                                "--write", "--json", str(tmp_path / "rows.json")]) == 0
    printed = capsys.readouterr().out
    assert "| object weight | actor weight | vote kernel | PT actor IoU |" in printed
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert len(rows) == 4 and rows == sorted(rows, key=lambda row: -row["objective"])
    best = rows[0]
    loaded = Mask2IVPipeline.from_pretrained(folder).palette
    assert loaded.snap_weights == (1.0, best["object weight"], best["actor weight"])
    # the recorded weights are what the pipeline snaps with
    pixel = np.array([[[150, 0, 0]]], np.uint8)
    assert (palette_labels(pixel, loaded) == OBJECT).all() == (105 ** 2 * best["object weight"] < 150 ** 2)


def test_bad_weights_name_the_option(folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        calibrate_snap.main([str(folder), "--object-weights", "0", "2"])
    assert exit_info.value.code == 2
    assert "--object-weights: expected one or more positive numbers, got [0.0, 2.0]" in capsys.readouterr().err


def test_vote_kernels_join_the_grid_and_the_best_one_is_recorded(folder, tmp_path, capsys):
    pipe = Mask2IVPipeline.from_pretrained(folder)
    cases = synthetic_cases(2, 5, pipe.resolution, num_frames=pipe.config.num_frames, fps=pipe.config.fps)
    samples = calibrate_snap.sample_cases(pipe, cases, steps=1)
    # re-snapping with a vote scores what a pipeline whose palette votes scores
    voting = Mask2IVPipeline.from_pretrained(folder)
    voting.config = dataclasses.replace(voting.config, palette=dataclasses.replace(
        voting.config.palette, vote_kernel=3))
    resnapped = calibrate_snap.score_samples(samples, pipe.palette, 1.0, 1.0, vote_kernel=3)
    direct = [case_scores(run_case(voting, case, "position", trajectory_only=True,
                                   num_inference_steps=1)[0], case) for case in cases]
    assert resnapped["PT object IoU"] == pytest.approx(np.mean([row["object IoU"] for row in direct]))
    assert resnapped != calibrate_snap.score_samples(samples, pipe.palette, 1.0, 1.0)
    rows = calibrate_snap.calibrate(pipe, cases, [1, 3], steps=1, progress=False, vote_kernels=[1, 3])
    assert sorted((row["object weight"], row["vote kernel"]) for row in rows) == [(1, 1), (1, 3), (3, 1), (3, 3)]
    assert calibrate_snap.main([str(folder), "--episodes", "2", "--seed", "5", "--steps", "1",
                                "--object-weights", "1", "3", "--vote-kernels", "1", "3", "--write",
                                "--json", str(tmp_path / "rows.json")]) == 0
    best = json.loads((tmp_path / "rows.json").read_text())["rows"][0]
    assert Mask2IVPipeline.from_pretrained(folder).palette.vote_kernel == best["vote kernel"]
    assert f"vote_kernel {best['vote kernel']}" in capsys.readouterr().out
    # without --vote-kernels the folder's kernel is kept, and --write leaves it alone
    calibrate_snap.write_weights(folder, 1.0, 1.0, 3)
    assert calibrate_snap.main([str(folder), "--episodes", "1", "--seed", "5", "--steps", "1",
                                "--object-weights", "1", "--write"]) == 0
    assert Mask2IVPipeline.from_pretrained(folder).palette.vote_kernel == 3
    calibrate_snap.write_weights(folder, 1.0, 1.0, 1)
    assert "vote_kernel" not in json.loads((folder / "model_index.json").read_text())["config"]["palette"]


def test_bad_vote_kernels_name_the_option(folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        calibrate_snap.main([str(folder), "--vote-kernels", "1", "2"])
    assert exit_info.value.code == 2
    assert "--vote-kernels: expected one or more odd ints >= 1, got [1, 2]" in capsys.readouterr().err
