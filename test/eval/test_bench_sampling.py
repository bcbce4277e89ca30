"""mask2iv-bench-sampling on the tiny pipeline: 1-2 held-out episodes, 2 settings."""

import csv
import dataclasses
import json

import diffusers
import numpy as np
import pytest

from mask2iv_ros.eval import bench_sampling
from mask2iv_ros.eval.bench_sampling import (QUALITY, Setting, SettingResult, make_scheduler,
                                             recommend, run_sweep, write_defaults)
from mask2iv_ros.eval.heldout import bag_cases, synthetic_cases
from mask2iv_ros.pipeline import build_tiny_pipeline
from mask2iv_ros.pipeline.pipeline import PipelineConfig

TWO_SETTINGS = [Setting("DDIMScheduler", 2, 7.5), Setting("DPMSolverMultistepScheduler", 2, 1.0)]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_pipeline(seed=0)


def test_setting_parse_names_and_errors():
    assert Setting.parse("ddim:10:7.5") == Setting("SafeDDIMScheduler", 10, 7.5)
    assert Setting.parse("dpm++:4:1") == Setting("DPMSolverMultistepScheduler", 4, 1.0)
    assert Setting.parse("UniPCMultistepScheduler:6:2").label == "UniPC 6, g 2"
    for bad in ("ddim:10", "nosuch:4:1", "ddim:0:1", "ddim:four:1"):
        with pytest.raises(ValueError, match="--setting"):
            Setting.parse(bad)
    grid = bench_sampling.setting_grid(["ddim", "euler"], [4, 2], [7.5])
    assert [s.label for s in grid] == ["DDIM 4, g 7.5", "DDIM 2, g 7.5", "Euler 4, g 7.5",
                                       "Euler 2, g 7.5"]


def test_schedulers_keep_the_folder_schedule(tiny):
    base = tiny.scheduler.config
    for name in ("dpm++", "unipc", "euler", "lcm"):
        scheduler = make_scheduler(name, base)
        for key in ("beta_start", "beta_end", "prediction_type", "rescale_betas_zero_snr",
                    "timestep_spacing", "num_train_timesteps"):
            assert scheduler.config[key] == base[key], (name, key)
    assert make_scheduler("dpm++", base).config.algorithm_type == "dpmsolver++"


def test_synthetic_cases_are_at_the_model_resolution():
    cases = synthetic_cases(2, resolution=(32, 48), num_frames=4, fps=4.0)
    assert [c.name for c in cases] == ["synthetic-7777-00000", "synthetic-7777-00001"]
    case = cases[0]
    assert case.image.shape == (32, 48, 3) and case.frames.shape == (4, 32, 48, 3)
    assert case.object_masks.shape == case.actor_masks.shape == (4, 32, 48)
    assert (case.placement_mask == case.object_masks[-1]).all()
    assert case.modes == ("position", "text") and case.prompt


def test_sweep_scores_every_setting_and_restores_the_scheduler(tiny):
    cases = synthetic_cases(2, resolution=tiny.resolution, num_frames=tiny.config.num_frames,
                            fps=tiny.config.fps)
    scheduler = tiny.scheduler
    results = run_sweep(tiny, cases, TWO_SETTINGS)
    assert tiny.scheduler is scheduler
    assert [r.setting for r in results] == TWO_SETTINGS
    for result in results:
        for mode in ("PT", "TT"):
            for name in ("actor IoU", "object IoU", "placement IoU", "actor BF", "object BF"):
                assert 0.0 <= result.scores[f"{mode} {name}"] <= 1.0
        assert np.isfinite(result.scores["PT video PSNR (dB)"])
        assert result.seconds["PT s/imagination"] > 0 and result.seconds["TT s/trajectory"] > 0
        assert result.speed == result.seconds["PT s/imagination"]
        assert result.scores[QUALITY] == pytest.approx(np.mean(
            [v for k, v in result.scores.items() if k.endswith(("IoU", "BF"))]))
    # different solvers and guidance sample different videos from the same seed
    assert results[0].scores["PT video PSNR (dB)"] != results[1].scores["PT video PSNR (dB)"]


def _result(label_steps: int, quality: float, seconds: float,
            scheduler: str = "DDIMScheduler") -> SettingResult:
    return SettingResult(Setting(scheduler, label_steps, 7.5), {QUALITY: quality},
                         {"PT s/imagination": seconds})


def test_recommend_takes_the_fastest_within_the_tolerance():
    results = [_result(50, 0.500, 30.0), _result(10, 0.492, 6.0), _result(4, 0.489, 2.5)]
    assert recommend(results).setting.steps == 10         # 0.489 < 0.98 x 0.5
    assert recommend(results, tolerance=0.03).setting.steps == 4
    assert recommend(results, tolerance=0.0).setting.steps == 50
    with pytest.raises(ValueError, match="quality"):
        recommend(results, quality="nope")


def test_recommend_treats_timing_noise_as_a_tie():
    # same work, same samples (DPM-Solver++ at 2 steps is first-order), 0.3 % apart in time
    dpm = _result(2, 0.443, 3.07, "DPMSolverMultistepScheduler")
    ddim = _result(2, 0.443, 3.08)
    slower = _result(4, 0.450, 4.3)
    assert recommend([dpm, ddim, slower], prefer_scheduler="DDIMScheduler") is ddim
    assert recommend([dpm, ddim, slower], prefer_scheduler=None).setting.scheduler in (
        "DDIMScheduler", "DPMSolverMultistepScheduler")
    # outside the speed tolerance the faster one wins whatever its scheduler
    fast_dpm = _result(2, 0.443, 2.5, "DPMSolverMultistepScheduler")
    assert recommend([fast_dpm, ddim, slower], prefer_scheduler="DDIMScheduler") is fast_dpm


def test_cli_writes_table_plot_and_defaults(tmp_path, tiny):
    folder = tmp_path / "model"
    tiny.save_pretrained(folder)
    out = tmp_path / "out"
    code = bench_sampling.main([str(folder), "--episodes", "1", "--setting", "ddim:2:7.5",
                                "--setting", "unipc:2:1", "--output-dir", str(out),
                                "--write-defaults", "--threads", "1"])
    assert code == 0
    for suffix in ("md", "csv", "json", "png"):
        assert (out / f"sampling_sweep.{suffix}").stat().st_size > 0
    with (out / "sampling_sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["setting"] for r in rows] == ["DDIM 2, g 7.5", "UniPC 2, g 1"]
    report = json.loads((out / "sampling_sweep.json").read_text())
    chosen = report["recommended"]
    assert report["cases"] == 1 and len(report["results"]) == 2
    assert "**" + Setting(**chosen).label + "**" in (out / "sampling_sweep.md").read_text()

    index = json.loads((folder / "model_index.json").read_text())
    sampling = index["config"]["sampling"]
    assert list(sampling) == ["num_inference_steps", "guidance_scale", "eta", "guidance_rescale",
                              "dynamic_rescale", "scheduler", "video_background",
                              "stage2_masks"]  # schema; kept
    assert (sampling["num_inference_steps"], sampling["guidance_scale"], sampling["scheduler"]) == \
        (chosen["steps"], chosen["guidance"], chosen["scheduler"])
    for key in ("eta", "guidance_rescale", "dynamic_rescale"):    # what the sweep ran with
        assert sampling[key] == bench_sampling.recorded_default(tiny, key)
    for legacy in ("eta", "guidance_rescale", "dynamic_rescale"):
        assert legacy not in index["config"]                  # moved into config.sampling
    assert index["components"]["scheduler"] == chosen["scheduler"]
    scheduler_config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler_config["_class_name"] == chosen["scheduler"]
    assert getattr(diffusers, chosen["scheduler"]).from_pretrained(folder / "scheduler") \
        .config.prediction_type == "v_prediction"


@pytest.mark.skipif("sampling" not in {f.name for f in dataclasses.fields(PipelineConfig)},
                    reason="PipelineConfig.sampling (h-sampler's folder format) not merged yet")
def test_written_defaults_load_as_the_pipelines_defaults(tmp_path, tiny):
    from mask2iv_ros.pipeline import Mask2IVPipeline

    folder = tmp_path / "model"
    tiny.save_pretrained(folder)
    setting = Setting("UniPCMultistepScheduler", 3, 2.0)
    write_defaults(folder, setting, {"eta": 0.0, "guidance_rescale": 0.5, "dynamic_rescale": None},
                   tiny.scheduler.config)
    pipe = Mask2IVPipeline.from_pretrained(folder)
    sampling = pipe.config.sampling
    assert (sampling.num_inference_steps, sampling.guidance_scale, sampling.scheduler,
            sampling.guidance_rescale) == (3, 2.0, "UniPCMultistepScheduler", 0.5)
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"


def test_legacy_top_level_keys_move_into_sampling(tmp_path, tiny):
    folder = tmp_path / "model"
    tiny.save_pretrained(folder)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["config"].update(eta=0.25, dynamic_rescale=0.7)
    index_path.write_text(json.dumps(index))
    recorded = {"eta": 0.25, "guidance_rescale": 0.7, "dynamic_rescale": 0.7}
    write_defaults(folder, Setting("DDIMScheduler", 10, 7.5), recorded, tiny.scheduler.config)
    sampling = json.loads(index_path.read_text())["config"]["sampling"]
    assert sampling == {"num_inference_steps": 10, "guidance_scale": 7.5, "eta": 0.25,
                        "guidance_rescale": 0.7, "dynamic_rescale": 0.7,
                        "scheduler": "DDIMScheduler", "video_background": "imagined",
                        "stage2_masks": "channel_sign"}
    # a non-DDIM solver ran without DynamiCrafter's DDIM-only rescale, and records that
    write_defaults(folder, Setting("DPMSolverMultistepScheduler", 4, 7.5), recorded,
                   tiny.scheduler.config)
    assert json.loads(index_path.read_text())["config"]["sampling"]["dynamic_rescale"] is None


def test_bag_cases_read_a_replay_input_bag(tmp_path):
    from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode
    from mask2iv_ros.eval.bag_io import request_from_clip, write_input_bag

    clips = [generate_episode(5, i, SyntheticConfig(height=32, width=48, num_frames=6))
             for i in range(2)]
    requests = [request_from_clip(clips[0], "position", with_actor_mask=True),
                request_from_clip(clips[1], "text")]
    bag = write_input_bag(tmp_path / "bag", requests)
    cases = bag_cases(bag)
    assert [c.modes for c in cases] == [("position",), ("text",)]
    first, second = cases
    assert (first.image == clips[0].frames[0]).all()
    assert (first.object_mask == clips[0].object_masks[0]).all()
    assert (first.placement_mask == clips[0].object_masks[-1]).all()
    assert (first.actor_mask == clips[0].actor_masks[0]).all()
    assert (first.object_masks == clips[0].object_masks).all()
    assert second.prompt == clips[1].prompt and second.actor_mask is None
    assert len(bag_cases(bag, stride=2)[0].object_masks) == 3


def test_dynamic_rescale_is_ddim_only_and_restored(tiny):
    from mask2iv_ros.eval.bench_sampling import recorded_default, sampler

    base = tiny.scheduler.config
    saved = recorded_default(tiny, "dynamic_rescale")
    if hasattr(tiny.config, "sampling"):
        tiny.config.sampling = dataclasses.replace(tiny.config.sampling, dynamic_rescale=0.7)
    else:
        tiny.config.dynamic_rescale = 0.7
    try:
        with sampler(tiny, Setting("SafeDDIMScheduler", 4, 7.5), base) as notes:
            assert recorded_default(tiny, "dynamic_rescale") == 0.7 and notes == []
        with sampler(tiny, Setting("DPMSolverMultistepScheduler", 4, 7.5), base) as notes:
            assert recorded_default(tiny, "dynamic_rescale") is None
            assert type(tiny.scheduler).__name__ == "DPMSolverMultistepScheduler"
            assert notes == ["dynamic rescale off (DDIM only)"]
        assert recorded_default(tiny, "dynamic_rescale") == 0.7
        assert type(tiny.scheduler).__name__ == "SafeDDIMScheduler"
    finally:
        from mask2iv_ros.eval.bench_sampling import _set_dynamic_rescale
        _set_dynamic_rescale(tiny, saved)
