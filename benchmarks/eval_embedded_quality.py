"""Quality of embedded-size models on unseen synthetic episodes; prints markdown tables.

- VAE: reconstruction of RGB clips and colour-coded mask clips (8 frames, in [-1, 1]): L1, PSNR,
  the actor / object IoU of the decoded masks (frames 1..T-1, as the pipelines' rows) and the
  final placement IoU (the clip's last frame), snapped to the nearest palette colour or with
  ``--vae-snap-weights`` (a pipeline's calibrated ``config.palette.snap_weights``), and the CPU
  time of one clip's encode + decode: can the latent grid hold the arm and the blocks, and what
  is the most a model that samples the true latents could score?
- Pipelines, one row each: per-frame IoU and boundary F-score of the imagined actor / object
  masks against the ground truth (frames 1..T-1), final placement IoU, for PT-Gen (placement
  mask) and TT-Gen (prompt), the PSNR of the PT-Gen video against the real frames (mean
  per-frame PSNR, frames 1..T-1) and seconds per PT-Gen imagination; then the first imagined
  frame's PSNR against the input image (is the scene kept?), the PT-Gen object IoU without the
  first-frame actor mask (the node's ``use_actor_mask: false``) and its ratio to the one with
  it, the two PSNRs again with the model's own pixels everywhere (when the checkpoint's
  recorded ``video_background`` is "input", the first ones are composited onto the input image),
  and the TT-Gen direction agreement: the share of TT cases whose imagined object moves
  within 45 degrees of the direction parsed from the prompt (at least 1 px; cases whose prompt
  names no direction, e.g. "put ... behind ...", are skipped). Cases and scores from
  mask2iv_ros.eval.heldout (as mask2iv-bench-sampling).

Episodes come from the generator with ``--seed`` (default: the demo seed 7777, never used in
training; the demo bag holds its first three); ``--prompt-variety`` gives the same scenes with
paraphrased prompts. ``--steps`` (both stages) defaults to each pipeline's recorded sampling
default (``model_index.json`` ``config.sampling``, with the video stage's own steps where
recorded). Seeds are fixed, so a run is repeatable on one machine.

    python benchmarks/eval_embedded_quality.py --vae mask2iv_ros/assets/default_model/vae \\
        --pipeline mask2iv_ros/assets/default_model runs/v2_pipeline
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from mask2iv_ros.data.dataset import Mask2IVDataset
from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode
from mask2iv_ros.demo import EMBEDDED_MODEL
from mask2iv_ros.eval.heldout import (DEMO_SEED, MODE_TAGS, SYNTHETIC_STRIDE, case_scores,
                                      mean_scores, run_case, synthetic_cases)
from mask2iv_ros.eval.metrics_trajectory import direction_agreement, per_frame_iou
from mask2iv_ros.eval.metrics_video import psnr
from mask2iv_ros.masks import ACTOR, DEFAULT_PALETTE, OBJECT, MaskPalette, palette_labels
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.pipeline import Mask2IVPipeline

STRIDE = SYNTHETIC_STRIDE  # 16 frames at 4 fps seen as 8 frames at 2 fps, as in training
NO_ACTOR = "PT object IoU, no actor mask"
NO_ACTOR_RATIO = "PT object IoU no-actor / with-actor"
FIRST_FRAME = "PT first-frame PSNR (dB)"
DIRECTION = "TT direction agreement"
OWN_PSNR = "PT video PSNR, model's background (dB)"
OWN_FIRST_FRAME = "PT first-frame PSNR, model's background (dB)"


def episodes(count: int, seed: int = DEMO_SEED):
    config = SyntheticConfig(height=64, width=64, num_frames=16, fps=4.0)
    return [generate_episode(seed, index, config) for index in range(count)]


def _unit_psnr(reconstruction: torch.Tensor, video: torch.Tensor) -> float:
    """Mean per-frame PSNR of ``[1, 3, T, H, W]`` clips in [-1, 1] (peak = the full range)."""
    error = ((reconstruction.clamp(-1, 1) - video) / 2).pow(2).mean(dim=(0, 1, 3, 4))
    return float((10 * torch.log10(1 / error)).mean())


def _labels(video: torch.Tensor, palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """``[1, 3, T, H, W]`` in [-1, 1] -> palette labels ``[T, H, W]``."""
    return palette_labels(((video[0].permute(1, 2, 3, 0) + 1) / 2).numpy(), palette)


@torch.no_grad()
def vae_scores(folder: str, clips, palette: MaskPalette = DEFAULT_PALETTE) -> dict[str, float]:
    """Reconstruction scores of the VAE in ``folder``; decoded masks snapped with ``palette``."""
    vae = VideoVAE.from_pretrained(folder).eval()
    dataset = Mask2IVDataset(clips, num_frames=8, frame_stride=STRIDE, resolution=(64, 64),
                             split="all")
    rows = []
    for item in (dataset[i] for i in range(len(dataset))):
        row = {}
        start = time.perf_counter()
        for key, tag in (("video", "RGB"), ("mask_video", "mask")):
            video = item[key][None]
            reconstruction = vae.decode(vae.encode(video))
            row[f"{tag} L1"] = (reconstruction - video).abs().mean().item()
            row[f"{tag} PSNR (dB)"] = _unit_psnr(reconstruction, video)
            if tag == "mask":
                decoded, truth = _labels(reconstruction, palette), _labels(video)
                for label, name in ((ACTOR, "actor"), (OBJECT, "object")):
                    row[f"decoded {name} IoU"] = float(
                        per_frame_iou(decoded == label, truth == label)[1:].mean())
                row["decoded placement IoU"] = float(
                    per_frame_iou(decoded[-1:] == OBJECT, truth[-1:] == OBJECT)[0])
        row["s per clip pair (CPU)"] = time.perf_counter() - start
        rows.append(row)
    return mean_scores(rows)


def pipeline_scores(folder: str, count: int, steps: int | None = None,
                    guidance_scale: float | None = None, seed: int = DEMO_SEED,
                    prompt_variety: bool = False,
                    trajectory_votes: int | None = None) -> dict[str, float]:
    """Mean scores of one pipeline; ``steps`` / ``guidance_scale`` / ``trajectory_votes`` None:
    the checkpoint's recorded default. Today's columns first, then those this script added later."""
    pipe = Mask2IVPipeline.from_pretrained(folder)
    settings = {key: value for key, value in (("num_inference_steps", steps),
                                              ("guidance_scale", guidance_scale),
                                              ("trajectory_votes", trajectory_votes))
                if value is not None}
    background = pipe.config.sampling.video_background
    cases = synthetic_cases(count, seed, (64, 64), num_frames=8, fps=2.0, stride=STRIDE,
                            prompt_variety=prompt_variety)
    rows, extra = [], []
    for mode in ("position", "text"):
        for case in cases:  # TT-Gen: the trajectory only
            out, seconds = run_case(pipe, case, mode, trajectory_only=mode == "text", **settings)
            scores = case_scores(out, case)
            row = {f"{MODE_TAGS[mode]} {name}": value for name, value in scores.items()}
            more = {}
            if mode == "position":
                row["s per PT imagination"] = seconds
                more[FIRST_FRAME] = psnr(out.video[:1], case.image[None])
                without, _ = run_case(pipe, dataclasses.replace(case, actor_mask=None), mode,
                                      trajectory_only=True, **settings)
                more[NO_ACTOR] = case_scores(without, case)["object IoU"]
                # the same imagination with the model's own pixels everywhere (no compositing onto
                # the input image); equal to the columns above when the recorded default is that
                own = out if background == "imagined" else run_case(
                    pipe, case, mode, video_background="imagined", **settings)[0]
                more[OWN_PSNR] = case_scores(own, case)["video PSNR (dB)"]
                more[OWN_FIRST_FRAME] = psnr(own.video[:1], case.image[None])
            else:
                check = direction_agreement(out.object_masks, case.prompt)
                if check.agrees is not None:  # the prompt names a direction
                    more[DIRECTION] = float(check.agrees)
            rows.append(row)
            extra.append(more)
    result = mean_scores(rows)
    result.update(mean_scores(extra))
    result.setdefault(DIRECTION, float("nan"))
    result[NO_ACTOR_RATIO] = result[NO_ACTOR] / result["PT object IoU"] \
        if result["PT object IoU"] > 0 else float("nan")
    return result


def recorded_steps(folder: str) -> str:
    """The folder's recorded DDIM steps: "2", or "3 / video 2" when the video stage has its own,
    and its recorded trajectory votes when more than one ("2, 4 votes")."""
    sampling = json.loads((Path(folder) / "model_index.json").read_text())["config"]["sampling"]
    video = sampling.get("video_num_inference_steps")
    votes = sampling.get("trajectory_votes", 1)
    return (str(sampling["num_inference_steps"]) + ("" if video is None else f" / video {video}")
            + ("" if votes == 1 else f", {votes} votes"))


@torch.no_grad()  # not torch.set_grad_enabled(False): callers (tests) keep their grad mode
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--seed", type=int, default=DEMO_SEED,
                        help="generator seed of the unseen episodes (default: the demo seed)")
    parser.add_argument("--steps", type=int, default=None,
                        help="DDIM steps per stage (default: each pipeline's recorded default)")
    parser.add_argument("--trajectory-votes", type=int, default=None, metavar="K",
                        help="stage-1 samples voted into each trajectory (default: each "
                             "pipeline's recorded config.sampling.trajectory_votes)")
    parser.add_argument("--prompt-variety", action="store_true",
                        help="TT-Gen with paraphrased prompts (same scenes)")
    parser.add_argument("--vae", nargs="*", default=[], help="VAE folders")
    parser.add_argument("--vae-snap-weights", type=float, nargs=2, default=(1.0, 1.0),
                        metavar=("OBJECT", "ACTOR"),
                        help="snap the VAE rows' decoded masks with weights (1, OBJECT, ACTOR), e.g. "
                             "a pipeline's config.palette.snap_weights (default: nearest colour)")
    parser.add_argument("--vae-vote-kernel", type=int, default=1, metavar="K",
                        help="then the majority vote of a pipeline's config.palette.vote_kernel "
                             "(odd; default 1: none)")
    parser.add_argument("--pipeline", nargs="*", default=[str(EMBEDDED_MODEL)],
                        help="pipeline folders")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes: expected a positive integer, got {args.episodes}")
    if args.trajectory_votes is not None and args.trajectory_votes < 1:
        parser.error(f"--trajectory-votes: expected a positive integer, got {args.trajectory_votes}")
    try:
        palette = dataclasses.replace(DEFAULT_PALETTE, snap_weights=(1.0, *args.vae_snap_weights))
    except ValueError:
        parser.error("--vae-snap-weights: expected 2 positive numbers (object, actor), got "
                     f"{list(args.vae_snap_weights)}")
    try:
        palette = dataclasses.replace(palette, vote_kernel=args.vae_vote_kernel)
    except ValueError:
        parser.error(f"--vae-vote-kernel: expected an odd int >= 1, got {args.vae_vote_kernel}")
    torch.manual_seed(0)
    report: dict[str, dict] = {"vae": {}, "pipeline": {}}
    where = f"{args.episodes} unseen episodes of seed {args.seed}"
    if args.vae:
        clips = episodes(args.episodes, args.seed)
        snap = ("nearest palette colour" if palette.snap_weights == (1.0, 1.0, 1.0) else
                "snap weights (" + ", ".join(f"{w:g}" for w in palette.snap_weights) + ")")
        if palette.vote_kernel != 1:
            snap += f", then a {palette.vote_kernel}x{palette.vote_kernel} majority vote"
        print(f"\nVAE reconstruction, {where} (L1 in [-1, 1] units; decoded masks: {snap})\n")
        rows = [(folder, vae_scores(folder, clips, palette)) for folder in args.vae]
        names = list(rows[0][1])
        print("| VAE | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|")
        for folder, scores in rows:
            report["vae"][folder] = scores
            print(f"| {folder} | " + " | ".join(f"{scores[n]:.4f}" for n in names) + " |",
                  flush=True)
    if args.pipeline:
        steps = (f"{args.steps} steps" if args.steps else "recorded default steps ("
                 + ", ".join(f"{Path(f).name}: {recorded_steps(f)}" for f in args.pipeline) + ")")
        prompts = ", paraphrased prompts" if args.prompt_variety else ""
        votes = "" if args.trajectory_votes is None else f", {args.trajectory_votes} trajectory votes"
        print(f"\nImagination quality, {where}, {steps}{votes}{prompts}\n")
        rows = []
        for folder in args.pipeline:
            start = time.perf_counter()
            rows.append((folder, pipeline_scores(folder, args.episodes, args.steps,
                                                 seed=args.seed,
                                                 prompt_variety=args.prompt_variety,
                                                 trajectory_votes=args.trajectory_votes),
                         time.perf_counter() - start))
        names = list(rows[0][1])
        print("| pipeline | " + " | ".join(names) + " | seconds |")
        print("|---" * (len(names) + 2) + "|")
        for folder, scores, seconds in rows:
            report["pipeline"][folder] = dict(scores, seconds=seconds)
            print(f"| {folder} | " + " | ".join(f"{scores[n]:.3f}" for n in names)
                  + f" | {seconds:.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(report, episodes=args.episodes, seed=args.seed,
                                             steps=args.steps,
                                             trajectory_votes=args.trajectory_votes,
                                             prompt_variety=args.prompt_variety,
                                             vae_snap_weights=list(palette.snap_weights),
                                             vae_vote_kernel=palette.vote_kernel), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
