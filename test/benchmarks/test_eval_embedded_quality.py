"""benchmarks/eval_embedded_quality.py: one row per model with the added columns, on a tiny
pipeline; the direction agreement it reports is 1 on the ground truth of its episodes."""

import dataclasses
import json
import math

import numpy as np

from mask2iv_ros.eval.heldout import synthetic_cases
from mask2iv_ros.eval.metrics_trajectory import direction_agreement
from mask2iv_ros.pipeline.tiny import build_tiny_pipeline
from benchmark_scripts import load_benchmark  # noqa: E402



def _script():
    return load_benchmark("eval_embedded_quality")


def test_one_row_per_model_with_the_new_columns(tmp_path, capsys):
    quality = _script()
    folder = tmp_path / "tiny"
    build_tiny_pipeline(resolution=(64, 64), num_frames=8).save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["config"]["sampling"]["num_inference_steps"] = 2  # the default --steps reads this
    (folder / "model_index.json").write_text(json.dumps(index))
    report = tmp_path / "report.json"
    assert quality.main(["--episodes", "2", "--seed", "11", "--pipeline", str(folder),
                         str(folder), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "2 unseen episodes of seed 11, recorded default steps (tiny: 2, tiny: 2)" in out
    rows = [line for line in out.splitlines() if line.startswith(f"| {folder}")]
    assert len(rows) == 2  # one row per model
    cells = [row.strip("|").split("|") for row in rows]
    assert cells[0][1:6] == cells[1][1:6]  # same model, same seeds: same mask scores
    scores = json.loads(report.read_text())["pipeline"][str(folder)]
    # recorded default "imagined": the model's-background columns are the same numbers
    assert scores[quality.OWN_PSNR] == scores["PT video PSNR (dB)"]
    assert scores[quality.OWN_FIRST_FRAME] == scores[quality.FIRST_FRAME]
    today = ["PT actor IoU", "PT object IoU", "PT placement IoU", "PT actor BF", "PT object BF",
             "PT video PSNR (dB)", "s per PT imagination", "TT actor IoU", "TT object IoU",
             "TT placement IoU", "TT actor BF", "TT object BF"]
    added = [quality.FIRST_FRAME, quality.NO_ACTOR, quality.OWN_PSNR, quality.OWN_FIRST_FRAME,
             quality.DIRECTION, quality.NO_ACTOR_RATIO]
    assert list(scores)[:len(today) + len(added)] == today + added
    assert math.isclose(scores[quality.NO_ACTOR_RATIO],
                        scores[quality.NO_ACTOR] / scores["PT object IoU"])
    assert 0 < scores[quality.FIRST_FRAME] < 60

    # recorded "input": the default columns are composited onto the input image, the others not
    index["config"]["sampling"]["video_background"] = "input"
    (folder / "model_index.json").write_text(json.dumps(index))
    composited = quality.pipeline_scores(str(folder), 2, seed=11)
    assert composited[quality.OWN_FIRST_FRAME] == scores[quality.FIRST_FRAME]
    assert composited[quality.FIRST_FRAME] > composited[quality.OWN_FIRST_FRAME]
    assert composited["PT object IoU"] == scores["PT object IoU"]


def test_direction_agreement_of_the_ground_truth_is_one():
    for prompt_variety in (False, True):
        cases = synthetic_cases(24, prompt_variety=prompt_variety)
        checks = [direction_agreement(case.object_masks, case.prompt) for case in cases]
        known = [check.agrees for check in checks if check.agrees is not None]
        assert len(known) >= 12  # push / pull / pick up; put names no direction
        assert all(known)
        # a trajectory that stays put does not agree
        still = [direction_agreement(np.repeat(case.object_masks[:1], 8, 0), case.prompt)
                 for case in cases]
        assert not any(check.agrees for check in still)
    varied = synthetic_cases(4, prompt_variety=True)
    plain = synthetic_cases(4)
    assert [c.prompt for c in varied] != [c.prompt for c in plain]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(varied, plain))
    assert dataclasses.replace(plain[0], actor_mask=None).actor_mask is None


def test_main_leaves_the_callers_grad_mode_alone(tmp_path):
    """A benchmark run inside the test session must not switch autograd off for later tests
    (it once did: every training test after it failed)."""
    import torch

    folder = tmp_path / "tiny"
    build_tiny_pipeline(resolution=(64, 64), num_frames=8).save_pretrained(folder)
    assert torch.is_grad_enabled()
    assert _script().main(["--episodes", "1", "--steps", "1", "--pipeline", str(folder)]) == 0
    assert torch.is_grad_enabled()


class _FadingVAE:
    """A stand-in VAE whose round trip keeps the masks' places but fades every colour 40 % of
    the way to black (as a decoder's blur fades thin regions): nearest-colour snapping keeps
    them, an object weight of 4 hands the faded object to the background."""

    def eval(self):
        return self

    def encode(self, video):
        return video

    def decode(self, latents):
        return latents * 0.6 - 0.4


def test_vae_rows_snap_with_the_given_weights_and_score_the_final_placement(tmp_path, capsys, monkeypatch):
    quality = _script()
    monkeypatch.setattr(quality.VideoVAE, "from_pretrained", classmethod(lambda cls, folder: _FadingVAE()))
    report = tmp_path / "report.json"
    assert quality.main(["--episodes", "2", "--seed", "11", "--vae", "fading", "--pipeline",
                         "--json", str(report)]) == 0
    assert "decoded masks: nearest palette colour" in capsys.readouterr().out
    plain = json.loads(report.read_text())["vae"]["fading"]
    assert (plain["decoded actor IoU"], plain["decoded object IoU"], plain["decoded placement IoU"]) == (1, 1, 1)
    assert quality.main(["--episodes", "2", "--seed", "11", "--vae", "fading", "--pipeline",
                         "--vae-snap-weights", "4", "1", "--json", str(report)]) == 0
    assert "decoded masks: snap weights (1, 4, 1)" in capsys.readouterr().out
    written = json.loads(report.read_text())
    weighted = written["vae"]["fading"]
    assert written["vae_snap_weights"] == [1, 4, 1]
    assert weighted["decoded actor IoU"] == 1
    assert weighted["decoded object IoU"] == 0 and weighted["decoded placement IoU"] == 0
    assert weighted["mask PSNR (dB)"] == plain["mask PSNR (dB)"]  # the weights only change the snap


def test_bad_vae_snap_weights_name_the_option(capsys):
    quality = _script()
    try:
        quality.main(["--vae", "x", "--vae-snap-weights", "0", "1"])
    except SystemExit as exit_info:
        assert exit_info.code == 2
    else:
        raise AssertionError("expected a usage error")
    assert "--vae-snap-weights: expected 2 positive numbers (object, actor), got [0.0, 1.0]" in capsys.readouterr().err


def test_vae_rows_can_vote_as_a_pipeline_palette_does(tmp_path, capsys, monkeypatch):
    quality = _script()
    monkeypatch.setattr(quality.VideoVAE, "from_pretrained", classmethod(lambda cls, folder: _FadingVAE()))
    report = tmp_path / "report.json"
    assert quality.main(["--episodes", "2", "--seed", "11", "--vae", "fading", "--pipeline",
                         "--vae-vote-kernel", "3", "--json", str(report)]) == 0
    assert "decoded masks: nearest palette colour, then a 3x3 majority vote" in capsys.readouterr().out
    written = json.loads(report.read_text())
    assert written["vae_vote_kernel"] == 3
    voted = written["vae"]["fading"]
    # the round trip keeps every mask; the vote only trims corners and thin tips
    assert 0.8 < voted["decoded object IoU"] < 1 and 0.5 < voted["decoded actor IoU"] <= 1
    try:
        quality.main(["--vae", "x", "--vae-vote-kernel", "4"])
    except SystemExit as exit_info:
        assert exit_info.code == 2
    else:
        raise AssertionError("expected a usage error")
    assert "--vae-vote-kernel: expected an odd int >= 1, got 4" in capsys.readouterr().err


def test_trajectory_votes_override_the_recorded_default_and_are_reported(tmp_path, capsys):
    quality = _script()
    folder = tmp_path / "tiny"
    build_tiny_pipeline(resolution=(64, 64), num_frames=8).save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    index["config"]["sampling"].update(num_inference_steps=1, trajectory_votes=3)
    (folder / "model_index.json").write_text(json.dumps(index))
    assert quality.recorded_steps(str(folder)) == "1, 3 votes"
    report = tmp_path / "report.json"
    assert quality.main(["--episodes", "1", "--seed", "11", "--pipeline", str(folder),
                         "--trajectory-votes", "1", "--json", str(report)]) == 0
    assert "recorded default steps (tiny: 1, 3 votes), 1 trajectory votes" in capsys.readouterr().out
    assert json.loads(report.read_text())["trajectory_votes"] == 1
    one = quality.pipeline_scores(str(folder), 1, seed=11, trajectory_votes=1)
    voted = quality.pipeline_scores(str(folder), 1, seed=11)   # the recorded 3
    assert one["PT object IoU"] == json.loads(report.read_text())["pipeline"][str(folder)]["PT object IoU"]
    assert voted["PT object IoU"] != one["PT object IoU"]      # the votes change the trajectory
    try:
        quality.main(["--pipeline", str(folder), "--trajectory-votes", "0"])
    except SystemExit as exit_info:
        assert exit_info.code == 2
    else:
        raise AssertionError("expected a usage error")
    assert "--trajectory-votes: expected a positive integer, got 0" in capsys.readouterr().err
