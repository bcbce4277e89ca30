"""`mask2iv-eval`: score a Mask2IV pipeline (or a baseline variant) on held-out clips.

Runs stage 1 on each held-out clip (or takes the ground-truth trajectory), stage 2 with the
chosen :class:`~mask2iv_ros.eval.generation.VideoControl`, then writes

- ``metrics.json``: set-level numbers (FVD, means of LPIPS/PSNR/SSIM/V2V/T2V, trajectory metrics)
  and which feature extractor / encoders produced them;
- ``per_clip.csv``: one row per clip;
- ``examples.png``: first frames / middle / last frame of ground truth, generated video and
  trajectory for the first clips.

Metric availability: PSNR, SSIM and trajectory metrics always; LPIPS only with local weights
(``--lpips-backbone``/``--lpips-linear``); FVD with I3D (``--i3d``) or, otherwise, with the
pixel-statistics fallback reported as ``fvd_pixelstats`` (not comparable to published FVD);
V2V/T2V with a user encoder (``--video-text-encoder``) or the offline defaults reported as
``v2v_sim_framefeature`` / ``t2v_sim_motioncaption`` (not comparable to ViCLIP/EgoVLP numbers).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .fvd import PixelStatsVideoFeatures, TorchScriptI3D, VideoFeatureExtractor, fvd_from_features
from .generation import (CONTROLS, TRAJECTORY_CONTENTS, EvalClip, Trajectory, VideoControl,
                         generate_videos, ground_truth_trajectories, load_controlnet,
                         load_eval_clips, predict_trajectories)
from .lpips import LPIPS, lpips_video
from .metrics_trajectory import agreement_rate, trajectory_metrics
from .metrics_video import finite_mean, psnr, ssim
from .similarity import (FrameFeatureVideoEncoder, MiniLMTextEncoder, MotionCaptionVideoEncoder,
                         cosine_rows, load_encoder_factory)

logger = logging.getLogger(__name__)

VIDEO_METRICS = ("fvd", "lpips", "psnr", "ssim", "v2v_sim", "t2v_sim")
TRAJECTORY_METRICS = ("actor_iou", "object_iou", "placement_iou", "centroid_error_px",
                      "direction_agreement")


@dataclass
class MetricSuite:
    """Which networks score the videos; ``None`` leaves that metric out.

    ``video_text_encoder`` embeds videos and texts in one space (T2V and V2V); without it V2V uses
    ``v2v_encoder`` and T2V uses ``t2v_video_encoder`` + ``text_encoder``.
    """

    fvd_extractor: Optional[VideoFeatureExtractor] = field(default_factory=PixelStatsVideoFeatures)
    lpips: Optional[LPIPS] = None
    v2v_encoder: Any = field(default_factory=FrameFeatureVideoEncoder)
    t2v_video_encoder: Any = None
    text_encoder: Any = None

    @classmethod
    def offline_defaults(cls, with_text: bool = True) -> "MetricSuite":
        """Pixel-statistics FVD, frame-feature V2V, motion-caption + MiniLM T2V (if installed)."""
        suite = cls()
        if with_text:
            try:
                suite.text_encoder = MiniLMTextEncoder()
                suite.t2v_video_encoder = MotionCaptionVideoEncoder(suite.text_encoder)
            except (ValueError, ImportError, OSError) as error:
                logger.warning("T2V-Sim left out: %s", error)
        return suite

    def names(self) -> dict[str, str]:
        """Reported metric name -> what computed it (non-comparable fallbacks are suffixed)."""
        names = {"psnr": "psnr", "ssim": "ssim"}
        if self.lpips is not None:
            names["lpips"] = f"lpips ({self.lpips.net_name})"
        if self.fvd_extractor is not None:
            names["fvd"] = "fvd" if self.fvd_extractor.name == "i3d" else f"fvd_{self.fvd_extractor.name}"
        if self.v2v_encoder is not None:
            names["v2v_sim"] = _suffixed("v2v_sim", self.v2v_encoder.name)
        if self.t2v_video_encoder is not None and self.text_encoder is not None:
            names["t2v_sim"] = _suffixed("t2v_sim", self.t2v_video_encoder.name.split("+")[0])
        return names


def _suffixed(metric: str, encoder_name: str) -> str:
    return metric if encoder_name.lower() in ("viclip", "egovlp") else f"{metric}_{encoder_name}"


@dataclass
class EvaluationResult:
    summary: dict[str, float]              # reported name -> value
    per_clip: list[dict[str, Any]]
    metric_sources: dict[str, str]         # metric -> reported name (what computed it)


def score_videos(clips: Sequence[EvalClip], videos: Sequence[np.ndarray], suite: MetricSuite,
                 trajectories: Optional[Sequence[Trajectory]] = None,
                 progress: bool = False) -> EvaluationResult:
    """Video metrics of ``videos`` against the clips (and trajectory metrics when given)."""
    if len(videos) != len(clips):
        raise ValueError(f"videos: expected one per clip ({len(clips)}), got {len(videos)}")
    per_clip: list[dict[str, Any]] = []
    for k, (clip, video) in enumerate(tqdm(list(zip(clips, videos)), desc="scoring", disable=not progress)):
        row: dict[str, Any] = {"episode_id": clip.episode_id, "prompt": clip.prompt,
                               "psnr": psnr(video, clip.frames), "ssim": ssim(video, clip.frames)}
        if suite.lpips is not None:
            row["lpips"] = lpips_video(suite.lpips, video, clip.frames)
        if trajectories is not None:
            row.update(clip_trajectory_metrics(clip, trajectories[k]))
        per_clip.append(row)

    names = suite.names()
    if suite.v2v_encoder is not None:
        sims = cosine_rows(suite.v2v_encoder.encode_videos(list(videos)),
                           suite.v2v_encoder.encode_videos([c.frames for c in clips]))
        for row, value in zip(per_clip, sims):
            row["v2v_sim"] = float(value)
    if "t2v_sim" in names:
        sims = cosine_rows(suite.t2v_video_encoder.encode_videos(list(videos)),
                           suite.text_encoder.encode_texts([c.prompt for c in clips]))
        for row, value in zip(per_clip, sims):
            row["t2v_sim"] = float(value)

    summary: dict[str, float] = {}
    for metric in ("lpips", "psnr", "ssim", "v2v_sim", "t2v_sim"):
        if per_clip and metric in per_clip[0]:
            # PSNR of a frame identical to the reference is inf; average the finite ones.
            summary[names[metric]] = finite_mean(row[metric] for row in per_clip)
    if suite.fvd_extractor is not None:
        if len(clips) >= 2:
            summary[names["fvd"]] = fvd_from_features(suite.fvd_extractor([c.frames for c in clips]),
                                                      suite.fvd_extractor(list(videos)))
        else:
            logger.warning("FVD left out: it needs at least 2 clips, got %d", len(clips))
    if trajectories is not None:
        summary.update(summarize_trajectory_metrics(per_clip))
    summary["num_clips"] = float(len(clips))
    return EvaluationResult(summary, per_clip, names)


def clip_trajectory_metrics(clip: EvalClip, trajectory: Trajectory) -> dict[str, float]:
    metrics = trajectory_metrics(trajectory.actor_masks, trajectory.object_masks, clip.actor_masks,
                                 clip.object_masks, prompt=clip.prompt)
    metrics["direction_agreement"] = metrics.pop("direction_agrees")
    return metrics


def summarize_trajectory_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Means over clips; direction agreement over clips whose prompt names a direction."""
    summary = {}
    for metric in TRAJECTORY_METRICS:
        values = [row[metric] for row in rows]
        summary[metric] = agreement_rate(values) if metric == "direction_agreement" else _nanmean(values)
    return summary


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def write_report(result: EvaluationResult, out_dir: str | Path, extra: Optional[dict] = None) -> Path:
    """``metrics.json`` + ``per_clip.csv`` in ``out_dir``; returns the JSON path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"summary": result.summary, "metric_sources": result.metric_sources, **(extra or {})}
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(payload, indent=2, default=_json_default))
    columns = sorted({key for row in result.per_clip for key in row}, key=_column_order)
    with open(out_dir / "per_clip.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(result.per_clip)
    return path


def _column_order(name: str) -> tuple[int, str]:
    order = ["episode_id", "prompt", *VIDEO_METRICS, *TRAJECTORY_METRICS]
    return (order.index(name) if name in order else len(order), name)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def save_examples(clips: Sequence[EvalClip], videos: Sequence[np.ndarray],
                  trajectories: Optional[Sequence[Trajectory]], path: str | Path,
                  max_clips: int = 3, title: str = "") -> Path:
    """PNG grid: per clip, first/middle/last frame of GT, generated and the trajectory overlay."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..masks import overlay_masks

    count = min(max_clips, len(clips))
    rows = 3 if trajectories is not None else 2
    fig, axes = plt.subplots(count * rows, 3, figsize=(7.5, 2.0 * count * rows), squeeze=False)
    for k in range(count):
        clip, video = clips[k], videos[k]
        frames = [0, clip.frames.shape[0] // 2, clip.frames.shape[0] - 1]
        panels = [("ground truth", clip.frames), ("generated", video)]
        if trajectories is not None:
            t = trajectories[k]
            panels.append(("trajectory", overlay_masks(clip.frames, t.object_masks, t.actor_masks)))
        for r, (label, frames_array) in enumerate(panels):
            for c, index in enumerate(frames):
                ax = axes[k * rows + r, c]
                ax.imshow(frames_array[index])
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(label, fontsize=8)
                if r == 0:
                    ax.set_title(f"{clip.prompt[:40]} | t={index}" if c == 0 else f"t={index}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_suite(args: argparse.Namespace, device: torch.device) -> MetricSuite:
    suite = MetricSuite.offline_defaults(with_text=not args.no_t2v)
    if args.i3d:
        suite.fvd_extractor = TorchScriptI3D(args.i3d, device=device)
    if bool(args.lpips_backbone) != bool(args.lpips_linear):
        raise ValueError("--lpips-backbone/--lpips-linear: give both local weight files or neither")
    if args.lpips_backbone:
        suite.lpips = LPIPS.from_local_weights(args.lpips_backbone, args.lpips_linear, args.lpips_net).to(device)
    if args.video_text_encoder:
        encoder = load_encoder_factory(args.video_text_encoder)
        suite.v2v_encoder = encoder
        if hasattr(encoder, "encode_texts") and not args.no_t2v:
            suite.t2v_video_encoder, suite.text_encoder = encoder, encoder
    return suite


def evaluate_pipeline(pipeline_folder: str | Path, data_root: str | Path, out_dir: str | Path,
                      control: VideoControl = VideoControl(), trajectory: str = "predicted",
                      condition: str = "position", split: str = "test",
                      max_clips: Optional[int] = None, num_inference_steps: Optional[int] = None,
                      guidance_scale: Optional[float] = None, seed: int = 0, device: str = "cpu",
                      suite: Optional[MetricSuite] = None,
                      trajectory_pipeline: Optional[str | Path] = None,
                      progress: bool = True) -> EvaluationResult:
    """Generate and score; writes the report files into ``out_dir``.

    ``trajectory_pipeline`` (default: ``pipeline_folder``) supplies stage 1 when
    ``trajectory="predicted"``; Table 1 feeds every variant the same Mask2IV stage-1 output.
    ``num_inference_steps``/``guidance_scale`` None: each checkpoint's recorded default.
    """
    from ..pipeline import Mask2IVPipeline

    if trajectory not in ("predicted", "ground_truth"):
        raise ValueError(f"trajectory: expected 'predicted' or 'ground_truth', got {trajectory!r}")
    torch_device = torch.device(device)
    pipe = Mask2IVPipeline.from_pretrained(pipeline_folder, device=torch_device)
    clips = load_eval_clips(data_root, pipe.config.num_frames, pipe.resolution, split, max_clips)
    if trajectory == "predicted":
        stage1 = pipe if trajectory_pipeline is None else \
            Mask2IVPipeline.from_pretrained(trajectory_pipeline, device=torch_device)
        trajectories = predict_trajectories(stage1, clips, condition, num_inference_steps,
                                            guidance_scale, seed, progress)
    else:
        trajectories = ground_truth_trajectories(clips)
    controlnet = load_controlnet(pipeline_folder, torch_device) if control.control == "controlnet" else None
    videos = list(generate_videos(pipe, clips, trajectories, control, controlnet,
                                  num_inference_steps, guidance_scale, seed, progress))
    suite = MetricSuite.offline_defaults() if suite is None else suite
    result = score_videos(clips, videos, suite,
                          trajectories if trajectory == "predicted" else None, progress)
    settings = {"pipeline": str(pipeline_folder), "data": str(data_root), "split": split,
                "trajectory": trajectory, "condition": condition, "control": control.control,
                "trajectory_content": control.trajectory_content,
                "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
                "sampling": pipe.sampling_settings(num_inference_steps, guidance_scale),
                "seed": seed}
    write_report(result, out_dir, {"settings": settings})
    save_examples(clips, videos, trajectories, Path(out_dir) / "examples.png",
                  title=f"{control.control}/{control.trajectory_content}, {trajectory} trajectories")
    return result


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mask2iv-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", required=True, help="Mask2IV pipeline folder (stage 2 model)")
    parser.add_argument("--data", required=True, help="dataset root (BridgeData raw layout / synthetic)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, per_clip.csv, examples.png")
    parser.add_argument("--split", default="test", choices=("train", "test", "all"))
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--trajectory", default="predicted", choices=("predicted", "ground_truth"),
                        help="stage-2 input: stage-1 output (Table 1) or ground truth (Table 2)")
    parser.add_argument("--trajectory-pipeline", default=None,
                        help="pipeline folder supplying stage 1 (default: --pipeline)")
    parser.add_argument("--condition", default="position", choices=("position", "text"),
                        help="stage-1 mode: PT-Gen (placement = last GT object mask) or TT-Gen")
    parser.add_argument("--control", default="concat", choices=CONTROLS)
    parser.add_argument("--trajectory-content", default="actor_object", choices=TRAJECTORY_CONTENTS)
    parser.add_argument("--steps", type=int, default=None,
                        help="DDIM steps per stage (default: the checkpoint's)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_metric_arguments(parser)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def add_metric_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the metric backbones (read by :func:`build_suite`), shared with mask2iv-tables."""
    parser.add_argument("--i3d", default=None, help="local I3D TorchScript file for comparable FVD")
    parser.add_argument("--lpips-backbone", default=None, help="local torchvision alexnet/vgg16 weights")
    parser.add_argument("--lpips-linear", default=None, help="local LPIPS v0.1 linear-head weights")
    parser.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    parser.add_argument("--video-text-encoder", default=None, metavar="MODULE:FACTORY",
                        help="user encoder (e.g. a ViCLIP wrapper loading local weights) with "
                             "encode_videos() and encode_texts()")
    parser.add_argument("--no-t2v", action="store_true", help="skip T2V-Sim")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        device = torch.device(args.device)
        suite = build_suite(args, device)
        result = evaluate_pipeline(
            args.pipeline, args.data, args.out,
            VideoControl(args.control, args.trajectory_content), args.trajectory, args.condition,
            args.split, args.max_clips, args.steps, args.guidance, args.seed, args.device, suite,
            args.trajectory_pipeline, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        print(f"mask2iv-eval: {error}", file=sys.stderr)
        return 2
    for name, value in result.summary.items():
        print(f"{name:>28s}: {value:.4f}")
    print(f"report: {Path(args.out) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
