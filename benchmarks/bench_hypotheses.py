"""What several hypotheses per call cost against one (``pipe(..., num_samples=N)``).

The N samples run as one batch through the trajectory UNet (N x 2 with classifier-free
guidance); stage 2 runs for the first-ranked sample only, or for all of them with
``videos_for_all_samples``. Prints, per N, the median seconds of a call and its ratio to
N = 1: a ratio well under N means batching pays (a GPU has idle width at batch 2; a CPU that is
already busy with one sample gains little). ``--votes K ...`` repeats the table with K trajectory
votes per hypothesis (N x K stage-1 samples in the batch, ``pipe(..., trajectory_votes=K)``); the
ratio stays against the first N at the first K.

    python benchmarks/bench_hypotheses.py                    # embedded default, CPU (+ CUDA)
    python benchmarks/bench_hypotheses.py --samples 1 2 4 --steps 25 --repeats 3
    python benchmarks/bench_hypotheses.py --samples 1 --votes 1 3 4    # what trajectory votes cost
    python benchmarks/bench_hypotheses.py --tiny --steps 2 --repeats 1   # the tests' pipeline
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from mask2iv_ros.demo import EMBEDDED_MODEL
from mask2iv_ros.pipeline import Mask2IVPipeline, build_tiny_pipeline

VARIANTS = (  # (name, call keywords)
    ("trajectories only", dict(trajectory_only=True)),
    ("+ video of the first", dict()),
    ("+ videos of all", dict(videos_for_all_samples=True)),
)


# The benchmarks' shared test scene lives in bench_pipeline.py (loaded by path: the
# benchmarks are scripts, not a package).
_bench_pipeline_spec = importlib.util.spec_from_file_location(
    "bench_pipeline", Path(__file__).with_name("bench_pipeline.py"))
_bench_pipeline = importlib.util.module_from_spec(_bench_pipeline_spec)
_bench_pipeline_spec.loader.exec_module(_bench_pipeline)
scene = _bench_pipeline.scene


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(pipe: Mask2IVPipeline, num_samples: int, steps: int | None, repeats: int,
                     votes: int = 1, **variant) -> float:
    """Median wall seconds of one call with ``num_samples`` hypotheses of ``votes`` trajectory
    votes each (after a warm-up call)."""
    image, mask, placement = scene(pipe.resolution)
    kwargs = dict(num_inference_steps=steps, seed=0, num_samples=num_samples,
                  trajectory_votes=votes, **variant)
    if "position" in pipe.modes:
        kwargs["placement_mask"] = placement
    else:
        kwargs["prompt"] = "push the red block to the left"
    pipe(image, mask, **{**kwargs, "num_inference_steps": 1})   # warm-up at this batch size
    times = []
    for _ in range(repeats):
        _synchronize(pipe.device)
        start = time.perf_counter()
        pipe(image, mask, **kwargs)
        _synchronize(pipe.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(build: Callable[[], Mask2IVPipeline], name: str, devices: list[str],
          samples: list[int], steps: int | None, repeats: int,
          votes: tuple[int, ...] = (1,)) -> list[str]:
    """One row per device, variant, trajectory votes and N; speed-up = N x votes / ratio."""
    lines = []
    for device in devices:
        pipe = build().to(device)
        steps_used = pipe.sampling_settings(steps)["num_inference_steps"]
        h, w = pipe.resolution
        for variant, keywords in VARIANTS:
            base = None
            for vote in votes:
                for count in samples:
                    seconds = seconds_per_call(pipe, count, steps, repeats, vote, **keywords)
                    base = seconds if base is None else base
                    ratio = seconds / base
                    lines.append(f"| {name} | {device} | {h}x{w} x {pipe.config.num_frames}, "
                                 f"{steps_used} steps | {variant} | {vote} | {count} | "
                                 f"{seconds:.2f} | {ratio:.2f} | {count * vote / ratio:.2f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 2, 4],
                        help="hypotheses per call; the first is the reference (default 1 2 4)")
    parser.add_argument("--steps", type=int, default=None,
                        help="DDIM steps per stage (default: the model's recorded setting)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--votes", type=int, nargs="+", default=[1],
                        help="trajectory votes per hypothesis (default 1)")
    parser.add_argument("--tiny", action="store_true",
                        help="the tests' tiny random pipeline instead of the embedded default")
    parser.add_argument("--device", nargs="+", default=None,
                        help="devices (default: cpu, and cuda where present)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads than "
                             "free cores make OpenMP spin, and every timing 10x noisier)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    if args.tiny:
        name, build = "tiny random (tests)", lambda: build_tiny_pipeline()
    else:
        name, build = "embedded default", lambda: Mask2IVPipeline.from_pretrained(EMBEDDED_MODEL)
    if min(args.votes) < 1:
        parser.error(f"--votes: expected positive integers, got {args.votes}")
    print(f"torch threads: {torch.get_num_threads()}, median of {args.repeats}; ratio = seconds / "
          f"seconds at N = {args.samples[0]}, votes = {args.votes[0]}; speed-up = N x votes / ratio "
          f"(N x votes separate calls = N x votes)")
    print("| model | device | resolution x frames, steps | stages | votes | N | s per call | ratio | "
          "speed-up vs separate calls |")
    print("|---|---|---|---|---|---|---|---|---|")
    for line in table(build, name, devices, args.samples, args.steps, args.repeats,
                      tuple(args.votes)):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
