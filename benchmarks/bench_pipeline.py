"""Per-stage latency of Mask2IVPipeline: stage 1 (trajectory) and stage 2 (video), and the time to
the first trajectory.

Prints a table for the tiny random pipeline (the test configuration) and, when present, the
embedded default model, on this machine's CPU (and on CUDA where a GPU exists):

    python benchmarks/bench_pipeline.py [--steps 25] [--repeats 3]
    python benchmarks/bench_pipeline.py --steps 0      # each checkpoint's recorded default steps

Time to trajectory: from the call until ``callback_on_trajectory`` gets the stage-1 result (what
imagine_node publishes at that moment), against the whole call (video included).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mask2iv_ros.demo import EMBEDDED_MODEL
from mask2iv_ros.pipeline import Mask2IVPipeline, build_tiny_pipeline


def scene(resolution: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey table, a red block, and a placement mask to its left."""
    h, w = resolution
    image = np.full((h, w, 3), 140, np.uint8)
    mask = np.zeros((h, w), bool)
    mask[h // 2: h // 2 + h // 8, w // 2: w // 2 + w // 8] = True
    image[mask] = (200, 30, 30)
    placement = np.roll(mask, -w // 4, axis=1)
    return image, mask, placement


def measure(pipe: Mask2IVPipeline, steps: int, repeats: int) -> dict[str, float]:
    image, mask, placement = scene(pipe.resolution)
    kwargs = dict(num_inference_steps=steps or None, seed=0)  # None: the checkpoint's recorded default
    if "position" in pipe.modes:
        kwargs["placement_mask"] = placement
    else:
        kwargs["prompt"] = "push the red block to the left"
    pipe(image, mask, **{**kwargs, "num_inference_steps": 2})  # warm-up (allocations, kernels)
    timings, to_trajectory, totals = [], [], []
    for _ in range(repeats):
        early: list[float] = []
        begun = time.perf_counter()
        out = pipe(image, mask, **kwargs, callback_on_trajectory=lambda _p, _o: early.append(time.perf_counter()))
        totals.append(time.perf_counter() - begun)
        to_trajectory.append(early[0] - begun)
        timings.append(out.timings)
    result = {stage: statistics.median(t[stage] for t in timings) for stage in ("trajectory", "video")}
    result["to_trajectory"], result["total"] = statistics.median(to_trajectory), statistics.median(totals)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps per stage; 0 = each checkpoint's default")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    candidates = {"tiny random (tests)": lambda: build_tiny_pipeline()}
    if (Path(EMBEDDED_MODEL) / "model_index.json").is_file():
        candidates["embedded default"] = lambda: Mask2IVPipeline.from_pretrained(EMBEDDED_MODEL)
    steps_text = f"{args.steps} DDIM steps per stage" if args.steps else "each checkpoint's default steps"
    print(f"torch threads: {torch.get_num_threads()}, {steps_text}, median of {args.repeats}")
    print("| model | device | resolution x frames | steps | stage 1 trajectory (s) | stage 2 video (s) | per step (ms) "
          "| time to trajectory (s) | total (s) | trajectory at |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, build in candidates.items():
        for device in devices:
            pipe = build().to(device)
            steps = args.steps or pipe.config.sampling.num_inference_steps
            result = measure(pipe, args.steps, args.repeats)
            per_step = 1000 * (result["trajectory"] + result["video"]) / (2 * steps)
            h, w = pipe.resolution
            print(f"| {name} | {device} | {h}x{w} x {pipe.config.num_frames} | {steps} | {result['trajectory']:.2f} | "
                  f"{result['video']:.2f} | {per_step:.0f} | {result['to_trajectory']:.2f} | {result['total']:.2f} | "
                  f"{100 * result['to_trajectory'] / result['total']:.0f}% of the call |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
