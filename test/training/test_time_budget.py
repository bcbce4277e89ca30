"""A wall-clock budget shortens a fresh run and its LR schedule (time_budget_minutes)."""

import itertools

import torch
from accelerate.state import AcceleratorState

import pytest

from mask2iv_ros.training import time_budget as time_budget_module
from mask2iv_ros.training import loop as loop_module
from mask2iv_ros.training.config import ConfigError, TrainConfig
from mask2iv_ros.training.time_budget import TimeBudget
from mask2iv_ros.training.train import Trainer


class FakeClock:
    """perf_counter advancing ``step_seconds`` each time it is read."""

    def __init__(self, step_seconds: float):
        self.ticks = itertools.count()
        self.step_seconds = step_seconds

    def __call__(self) -> float:
        return next(self.ticks) * self.step_seconds


def test_budget_sets_max_steps_from_measured_speed(monkeypatch):
    config = TrainConfig(max_steps=10_000, time_budget_minutes=1.0, time_budget_probe_steps=30)
    # One clock read per step below (plus the reads inside observe): about 1 s per step.
    clock = FakeClock(1.0)
    monkeypatch.setattr(time_budget_module.time, "perf_counter", clock)
    budget = TimeBudget(config.time_budget_minutes, config.max_steps, config.time_budget_probe_steps)
    fitted = None
    for step in range(1, 31):
        clock()  # the step itself
        fitted = budget.observe(step, lambda value: value) or fitted
    # 60 s * 0.97 in all, about 2 s per step measured (the step + observe's reads): ~15 more.
    assert fitted is not None and 30 < fitted < 60
    # never above the configured maximum
    small = TrainConfig(max_steps=40, time_budget_minutes=100.0, time_budget_probe_steps=30)
    budget = TimeBudget(small.time_budget_minutes, small.max_steps, small.time_budget_probe_steps)
    for step in range(1, 31):
        fitted = budget.observe(step, lambda value: value) or fitted
    assert fitted == 40


def test_budget_validation():
    with pytest.raises(ConfigError, match="time_budget_minutes"):
        TrainConfig(time_budget_minutes=0).validate()
    with pytest.raises(ConfigError, match="time_budget_probe_steps"):
        TrainConfig(time_budget_probe_steps=2).validate()


def test_trainer_with_budget_stops_early_and_records_it(tiny_config, monkeypatch):
    config = tiny_config("tiny_stage1_position", "max_steps=1000", "time_budget_minutes=0.001",
                         "time_budget_probe_steps=6", "optim.lr_scheduler=cosine",
                         "optim.warmup_steps=0")
    trainer = Trainer(config, show_progress=False)
    trainer.train()
    # 0.06 s of budget is spent by the probe: the run ends at the probe step.
    assert trainer.global_step == 6
    assert "max_steps: 6" in (trainer.output_dir / "config.yaml").read_text()
    # the rebuilt cosine schedule ended with the run (LR at its final value, 0)
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    assert (config.resolved_export_dir / "trajectory_unet_position").is_dir()


def test_bf16_runs_keep_fp32_encoders_and_share_one_pipeline(tiny_config, monkeypatch, request):
    """bf16 training (CPU autocast here, CUDA in practice): the frozen VAE / text encoder keep
    fp32 weights, so a second stage exporting into the same pipeline folder finds the same
    encoders (casting them to bf16 made the second export fail)."""
    monkeypatch.setattr(loop_module, "resolve_mixed_precision", lambda requested, cpu: "bf16")
    # accelerate keeps one process-wide state; other tests made it with mixed_precision "no".
    AcceleratorState._reset_state(reset_partial_state=True)
    request.addfinalizer(lambda: AcceleratorState._reset_state(reset_partial_state=True))
    first = Trainer(tiny_config("tiny_stage1_position", output="pt"), show_progress=False)
    assert first.accelerator.mixed_precision == "bf16"
    assert all(p.dtype == torch.float32 for p in first.vae.parameters())
    inputs = first.stage_inputs(next(first._batches()), first.host_rng, first.generator)
    assert inputs.latents.dtype == torch.float32 and inputs.condition.dtype == torch.float32
    first.train()
    second = Trainer(tiny_config("tiny_stage2", output="video"), show_progress=False)
    second.train()
    folder = second.config.resolved_export_dir
    assert (folder / "trajectory_unet_position").is_dir() and (folder / "video_unet").is_dir()


def test_resumed_budgeted_run_keeps_its_fitted_length(tiny_config):
    """--resume with the original config (max_steps 1000) continues to the length the budget
    fitted, as recorded in the checkpoint, not to the configured 1000."""
    overrides = ("max_steps=1000", "time_budget_minutes=0.001", "time_budget_probe_steps=6",
                 "checkpoint_every=3", "export_at_end=false")
    first = Trainer(tiny_config("tiny_stage1_position", *overrides), show_progress=False)
    first.train(stop_after=6)  # killed right after the probe fitted max_steps (6)
    assert first.config.max_steps == 6
    first.save_checkpoint()
    resumed = Trainer(tiny_config("tiny_stage1_position", *overrides), resume=True, show_progress=False)
    assert resumed.global_step == 6 and resumed.config.max_steps == 6
    # without a budget the config decides: a run can be extended
    longer = Trainer(tiny_config("tiny_stage1_position", "max_steps=8", "checkpoint_every=3",
                                 "export_at_end=false"), resume=True, show_progress=False)
    assert longer.config.max_steps == 8
