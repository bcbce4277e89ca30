"""Quality of embedded-size models on unseen synthetic episodes; prints markdown tables.

- VAE: L1 reconstruction error of RGB clips and colour-coded mask clips (8 frames, in [-1, 1]).
- Pipelines: per-frame IoU and boundary F-score of the imagined actor / object masks against
  the ground truth (frames 1..T-1), final placement IoU, for PT-Gen (placement mask) and TT-Gen
  (prompt), and the PSNR of the PT-Gen video against the real frames (mean per-frame PSNR,
  frames 1..T-1); cases and scores from mask2iv_ros.eval.heldout (as mask2iv-bench-sampling).

Episodes come from the generator with the demo seed (7777; the demo bag holds its first three),
never used in training. Seeds are fixed, so a run is repeatable on one machine.

    python benchmarks/eval_embedded_quality.py --episodes 12 --vae runs/embedded_vae \
        --pipeline mask2iv_ros/assets/default_model
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mask2iv_ros.data.dataset import Mask2IVDataset
from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode
from mask2iv_ros.demo import EMBEDDED_MODEL
from mask2iv_ros.eval.heldout import (DEMO_SEED, MODE_TAGS, SYNTHETIC_STRIDE, case_scores,
                                      mean_scores, run_case, synthetic_cases)
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.pipeline import Mask2IVPipeline

STRIDE = SYNTHETIC_STRIDE  # 16 frames at 4 fps seen as 8 frames at 2 fps, as in training


def episodes(count: int):
    config = SyntheticConfig(height=64, width=64, num_frames=16, fps=4.0)
    return [generate_episode(DEMO_SEED, index, config) for index in range(count)]


@torch.no_grad()
def vae_errors(folder: str, clips) -> tuple[float, float]:
    vae = VideoVAE.from_pretrained(folder).eval()
    dataset = Mask2IVDataset(clips, num_frames=8, frame_stride=STRIDE, resolution=(64, 64),
                             split="all")
    rgb, masks = [], []
    for item in (dataset[i] for i in range(len(dataset))):
        for key, errors in (("video", rgb), ("mask_video", masks)):
            video = item[key][None]
            errors.append((vae.decode(vae.encode(video)) - video).abs().mean().item())
    return float(np.mean(rgb)), float(np.mean(masks))


def pipeline_scores(folder: str, count: int, steps: int,
                    guidance_scale: float | None = None) -> dict[str, float]:
    """``guidance_scale`` None: the checkpoint's recorded default."""
    pipe = Mask2IVPipeline.from_pretrained(folder)
    guidance = {} if guidance_scale is None else {"guidance_scale": guidance_scale}
    cases = synthetic_cases(count, DEMO_SEED, (64, 64), num_frames=8, fps=2.0, stride=STRIDE)
    rows = []
    for mode in ("position", "text"):
        for case in cases:  # TT-Gen: the trajectory only
            out, seconds = run_case(pipe, case, mode, trajectory_only=mode == "text",
                                    num_inference_steps=steps, **guidance)
            row = {f"{MODE_TAGS[mode]} {name}": value
                   for name, value in case_scores(out, case).items()}
            if mode == "position":
                row["s per PT imagination"] = seconds
            rows.append(row)
    return mean_scores(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps per stage")
    parser.add_argument("--vae", nargs="*", default=[], help="VAE folders")
    parser.add_argument("--pipeline", nargs="*", default=[str(EMBEDDED_MODEL)],
                        help="pipeline folders")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    clips = episodes(args.episodes)
    if args.vae:
        print(f"\nVAE reconstruction, {args.episodes} unseen episodes (L1 in [-1, 1] units)\n")
        print("| VAE | RGB L1 | mask L1 |\n|---|---|---|")
        for folder in args.vae:
            rgb, masks = vae_errors(folder, clips)
            print(f"| {folder} | {rgb:.4f} | {masks:.4f} |", flush=True)
    if args.pipeline:
        print(f"\nImagination quality, {args.episodes} unseen episodes, {args.steps} steps\n")
        rows = []
        for folder in args.pipeline:
            start = time.perf_counter()
            rows.append((folder, pipeline_scores(folder, args.episodes, args.steps),
                         time.perf_counter() - start))
        names = list(rows[0][1])
        print("| pipeline | " + " | ".join(names) + " | seconds |")
        print("|---" * (len(names) + 2) + "|")
        for folder, scores, seconds in rows:
            print(f"| {folder} | " + " | ".join(f"{scores[n]:.3f}" for n in names)
                  + f" | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
