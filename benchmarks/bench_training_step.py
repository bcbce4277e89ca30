"""Where one training step's time goes: data loading, stage inputs (VAE encodes, masks, the
condition), and the full optimizer step, on the run's device; optionally the profiler's top ops.

    python benchmarks/bench_training_step.py --config training/embedded_stage1_position.yaml \
        --override data.root=runs/gpu12/train --override optim.batch_size=32 [--profile]
    python benchmarks/bench_training_step.py --tiny      # tiny config, generated data (tests, CPU)

Why: the embedded default's GPU continuation (scripts/train_embedded_gpu_step.sh) ran three
runs side by side at about 0.5 s per batch-32 step on an H200, far from what a 2.4 M-parameter
UNet at 16 x 16 latents needs; this splits the step so the cost can be named. ``--vae-chunk-size``
times the same with the VAE encoding more frames per call (the training VAE's default is 8).
Each row is the median of ``--steps`` timed repetitions after ``--warmup``, with a device sync
around each; a table is printed (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mask2iv_ros.training.config import load_config  # noqa: E402
from mask2iv_ros.training.train import Trainer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _step_on(trainer: Trainer, batch: dict) -> None:
    """One optimizer step on an already loaded batch (every micro-batch the same)."""
    trainer.train_step(iter([batch] * trainer.config.optim.gradient_accumulation_steps))


def measure(trainer: Trainer, batches, cached: dict, warmup: int, steps: int) -> dict[str, float]:
    device = trainer.device
    rows = {"data: next batch": _median_seconds(lambda: next(batches), device, warmup, steps)}
    rows["stage inputs (VAE encodes, condition)"] = _median_seconds(
        lambda: trainer.stage_inputs(cached, trainer.host_rng, trainer.generator), device, warmup, steps)
    rows["optimizer step on a loaded batch"] = _median_seconds(lambda: _step_on(trainer, cached),
                                                              device, warmup, steps)
    rows["optimizer step with loading"] = _median_seconds(lambda: trainer.train_step(batches),
                                                         device, warmup, steps)
    return rows


def profile(trainer: Trainer, cached: dict, steps: int, rows: int = 18) -> str:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            _step_on(trainer, cached)
        _sync(trainer.device)
    key = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "training" / "embedded_stage1_position.yaml")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tiny", action="store_true",
                        help="training/tiny_stage1_position.yaml on 6 generated episodes")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--vae-chunk-size", type=int, nargs="*", default=[],
                        help="also time with the VAE encoding this many frames per call")
    parser.add_argument("--profile", action="store_true", help="print the profiler's top ops")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"output_dir={tmp}/run", f"export_dir={tmp}/pipeline", "export_at_end=false",
                     "time_budget_minutes=null"]
        config_path = args.config
        if args.tiny:
            config_path = REPO / "training" / "tiny_stage1_position.yaml"
            overrides += [f"data.root={tmp}/data", "data.synthetic_episodes=6"]
        config = load_config(config_path, overrides + list(args.override))
        trainer = Trainer(config, show_progress=False)
        device = trainer.device
        name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"CPU, {torch.get_num_threads()} threads")
        print(f"{config.stage} at batch {config.optim.batch_size}, {config.data.num_frames} frames "
              f"{config.data.height}x{config.data.width}, mixed precision "
              f"{trainer.accelerator.mixed_precision}, data workers {config.data.num_workers}; {name}")
        # one data loader (its workers start once) for every column and the profile
        batches = trainer._batches()
        cached = next(batches)
        results = {f"VAE chunk {trainer.vae.chunk_size}": measure(trainer, batches, cached,
                                                                  args.warmup, args.steps)}
        for chunk in args.vae_chunk_size:
            trainer.vae.chunk_size = chunk
            results[f"VAE chunk {chunk}"] = measure(trainer, batches, cached, args.warmup, args.steps)
        columns = list(results)
        print("\n| part | " + " | ".join(f"s, {c}" for c in columns) + " |")
        print("| --- |" + " ---: |" * len(columns))
        for row in results[columns[0]]:
            print(f"| {row} | " + " | ".join(f"{results[c][row]:.4f}" for c in columns) + " |")
        if args.profile:
            print("\n" + profile(trainer, cached, max(2, args.steps // 2)))
        if args.json:
            args.json.write_text(json.dumps({"device": name, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
