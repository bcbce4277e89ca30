"""Quality of embedded-size models on unseen synthetic episodes; prints markdown tables.

- VAE: L1 reconstruction error of RGB clips and colour-coded mask clips (8 frames, in [-1, 1]).
- Pipelines: per-frame IoU of the imagined actor / object masks against the ground truth
  (frames 1..T-1), final placement IoU, for PT-Gen (placement mask) and TT-Gen (prompt), and
  the PSNR of the PT-Gen video against the real frames (mean per-frame PSNR, frames 1..T-1).

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
from mask2iv_ros.eval.metrics_trajectory import per_frame_iou, placement_metrics
from mask2iv_ros.eval.metrics_video import psnr
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.pipeline import Mask2IVPipeline

DEMO_SEED = 7777
STRIDE = 2  # 16 frames at 4 fps seen as 8 frames at 2 fps, as in training


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


def pipeline_scores(folder: str, clips, steps: int,
                    guidance_scale: float | None = None) -> dict[str, float]:
    """``guidance_scale`` None: the pipeline's default."""
    pipe = Mask2IVPipeline.from_pretrained(folder)
    guidance = {} if guidance_scale is None else {"guidance_scale": guidance_scale}
    scores: dict[str, list[float]] = {}
    for mode in ("position", "text"):
        for clip in clips:
            actor, obj, frames = (clip.actor_masks[::STRIDE], clip.object_masks[::STRIDE],
                                  clip.frames[::STRIDE])
            condition = ({"placement_mask": clip.object_masks[-1]} if mode == "position"
                         else {"prompt": clip.prompt})
            out = pipe(clip.frames[0], clip.object_masks[0], actor_mask=clip.actor_masks[0],
                       num_inference_steps=steps, seed=0, trajectory_only=mode == "text",
                       **condition, **guidance)
            tag = "PT" if mode == "position" else "TT"
            scores.setdefault(f"{tag} actor IoU", []).append(
                per_frame_iou(out.actor_masks, actor)[1:].mean())
            scores.setdefault(f"{tag} object IoU", []).append(
                per_frame_iou(out.object_masks, obj)[1:].mean())
            scores.setdefault(f"{tag} placement IoU", []).append(
                placement_metrics(out.object_masks, obj[-1])["placement_iou"])
            if out.video is not None:  # frame 0 is the given image
                scores.setdefault("PT video PSNR (dB)", []).append(psnr(out.video[1:], frames[1:]))
                scores.setdefault("s per PT imagination", []).append(sum(out.timings.values()))
    return {name: float(np.mean(values)) for name, values in scores.items()}


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
            rows.append((folder, pipeline_scores(folder, clips, args.steps),
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
