"""`mask2iv-tables`: Mask2IV Table 1 (baselines) and Table 2 (ablation) at tiny scale.

Every stage-2 variant is a set of training-config overrides (:data:`STAGE2_VARIANTS`) trained
with ``mask2iv-train`` at the same budget (``--steps``) on the same data, then evaluated on the
held-out split of ``--data``:

- Table 1 rows get the trajectories predicted by one shared stage-1 model (PT-Gen, trained
  once), as in the paper where every baseline receives "the same pseudo control signals";
- Table 2 rows get the ground-truth trajectories.

Variants whose training configs coincide (CosHand-style = MaskLatent, InterDyn-style =
ControlNet, Mask2IV = "+ contact loss") are trained once and evaluated in both tables. The
untuned DynamiCrafter row of the paper needs its pretrained weights and is left out.

Outputs in ``--out``: ``table1.md``, ``table2.md``, ``stage1_trajectories.md``,
``results.json``, ``table1.png`` / ``table2.png`` (bar plots), and per variant the training run
(``runs/``), pipeline (``pipelines/``) and evaluation report with example frames (``eval/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from .evaluate import (MetricSuite, add_metric_arguments, build_suite, clip_trajectory_metrics, save_examples,
                       score_videos, summarize_trajectory_metrics, write_report)
from .generation import (CONTROLNET_COMPONENT, VideoControl, generate_videos,
                         ground_truth_trajectories, load_controlnet, load_eval_clips,
                         predict_trajectories)

logger = logging.getLogger(__name__)

DEFAULT_STAGE1_CONFIG = "training/tiny_stage1_position.yaml"
DEFAULT_STAGE2_CONFIG = "training/tiny_stage2.yaml"

# Stage-2 training variants: the training config's ``stage2`` switches.
STAGE2_VARIANTS: dict[str, dict[str, Any]] = {
    "no_control": {"stage2.control": "none", "stage2.trajectory_content": "actor_object",
                   "stage2.random_dilate_erode": False, "stage2.contact_loss_lambda": 1.0},
    "actor_concat": {"stage2.control": "concat", "stage2.trajectory_content": "actor_only",
                     "stage2.random_dilate_erode": False, "stage2.contact_loss_lambda": 1.0},
    "actor_controlnet": {"stage2.control": "controlnet", "stage2.trajectory_content": "actor_only",
                         "stage2.random_dilate_erode": False, "stage2.contact_loss_lambda": 1.0},
    "actor_object_concat": {"stage2.control": "concat", "stage2.trajectory_content": "actor_object",
                            "stage2.random_dilate_erode": False, "stage2.contact_loss_lambda": 1.0},
    "actor_object_concat_de": {"stage2.control": "concat", "stage2.trajectory_content": "actor_object",
                               "stage2.random_dilate_erode": True, "stage2.contact_loss_lambda": 1.0},
    "mask2iv": {"stage2.control": "concat", "stage2.trajectory_content": "actor_object",
                "stage2.random_dilate_erode": True, "stage2.contact_loss_lambda": 5.0},
}


@dataclass(frozen=True)
class TableRow:
    label: str
    variant: str            # key of STAGE2_VARIANTS


# Paper Table 1 (baselines, predicted trajectories) and Table 2 (ablation, GT trajectories).
TABLE1 = (TableRow("DynamiCrafter-ft", "no_control"), TableRow("CosHand", "actor_concat"),
          TableRow("InterDyn", "actor_controlnet"), TableRow("Mask2IV (Ours)", "mask2iv"))
TABLE2 = (TableRow("ControlNet", "actor_controlnet"), TableRow("MaskLatent", "actor_concat"),
          TableRow("+ object mask", "actor_object_concat"),
          TableRow("+ random d/e", "actor_object_concat_de"), TableRow("+ contact loss", "mask2iv"))
TABLE1_METRICS = ("fvd", "lpips", "psnr", "ssim", "v2v_sim", "t2v_sim")
TABLE2_METRICS = ("fvd", "lpips", "psnr", "ssim")
LOWER_IS_BETTER = {"fvd", "lpips", "centroid_error_px"}
HEADERS = {"fvd": "FVD", "lpips": "LPIPS", "psnr": "PSNR", "ssim": "SSIM", "v2v_sim": "V2V-Sim",
           "t2v_sim": "T2V-Sim"}


def video_control(variant: str) -> VideoControl:
    overrides = STAGE2_VARIANTS[variant]
    return VideoControl(overrides["stage2.control"], overrides["stage2.trajectory_content"])


# scripts/reproduce_tables.sh: every variant trains with the embedded default's VAE and text
# encoder, whose PT-Gen is the shared stage 1 (copied to <out>/pipelines/stage1).
EMBEDDED_MODEL_FOLDER = "mask2iv_ros/assets/default_model"
EMBEDDED_OVERRIDES = (f"model.vae.path={EMBEDDED_MODEL_FOLDER}/vae", "model.text_encoder.type=folder",
                      f"model.text_encoder.path={EMBEDDED_MODEL_FOLDER}/text_encoder")


def _model_id(folder: Path) -> str:
    return str(json.loads((folder / "model_index.json").read_text()).get("config", {}).get("model_id", "?"))


def override_args(overrides: dict[str, Any]) -> list[str]:
    """``{"a.b": value}`` -> ``["a.b=value", ...]`` with YAML-readable values."""
    def fmt(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return [f"{key}={fmt(value)}" for key, value in overrides.items()]


def run_overrides(data_root: str, run_dir: Path, export_dir: Path, steps: int) -> list[str]:
    """Overrides every run shares: data, budget, where to write."""
    return [f"data.root={data_root}", f"output_dir={run_dir}", f"export_dir={export_dir}",
            f"max_steps={steps}", f"checkpoint_every={steps}", f"plot_every={steps}",
            "export_at_end=true"]


def default_train(config_path: str, overrides: Sequence[str]) -> None:
    """Run ``mask2iv-train`` in this process; raises on a non-zero exit."""
    from ..training.train import main as train_main

    argv = ["--config", config_path, "--no-progress"]
    for item in overrides:
        argv += ["--override", item]
    code = train_main(argv)
    if code:
        raise RuntimeError(f"mask2iv-train exited with {code} for {config_path} {list(overrides)}")


def check_overrides(config_path: str, overrides: Sequence[str]) -> Optional[str]:
    """None if the training config accepts the overrides, else the reason (e.g. no controlnet)."""
    from ..training.config import load_config

    try:
        load_config(config_path, overrides)
    except ValueError as error:
        return str(error)
    return None


def format_value(value: Optional[float], metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric in ("fvd", "psnr", "centroid_error_px"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown_table(rows: Sequence[tuple[str, dict[str, float]]], metrics: Sequence[str],
                   sources: dict[str, str], caption: str, notes: Sequence[str] = ()) -> str:
    """Paper-style table: one row per method, arrows for the better direction, best in bold."""
    arrows = {m: ("↓" if m in LOWER_IS_BETTER else "↑") for m in metrics}
    header = "| Method | " + " | ".join(f"{HEADERS.get(m, m)}{arrows[m]}" for m in metrics) + " |"
    lines = [header, "|---|" + "---|" * len(metrics)]
    best: dict[str, float] = {}
    for m in metrics:
        values = [r.get(sources.get(m, m)) for _, r in rows]
        values = [v for v in values if v is not None and not math.isnan(v)]
        if values:
            best[m] = min(values) if m in LOWER_IS_BETTER else max(values)
    for label, result in rows:
        cells = []
        for m in metrics:
            value = result.get(sources.get(m, m))
            text = format_value(value, m)
            if value is not None and m in best and value == best[m] and len(rows) > 1:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    computed = [f"{HEADERS.get(m, m)} = `{sources[m]}`" for m in metrics if m in sources and sources[m] != m]
    footer = [f"\n{caption}"]
    if computed:
        footer.append("Computed as: " + ", ".join(computed) +
                      " (offline fallbacks; not comparable to the paper's numbers).")
    footer += list(notes)
    return "\n".join(lines + footer) + "\n"


def bar_plot(rows: Sequence[tuple[str, dict[str, float]]], metrics: Sequence[str],
             sources: dict[str, str], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if m in sources]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(2.6 * max(1, len(shown)), 3.2), squeeze=False)
    labels = [label for label, _ in rows]
    for ax, m in zip(axes[0], shown):
        values = [r.get(sources[m], float("nan")) for _, r in rows]
        ax.bar(range(len(labels)), [0.0 if math.isnan(v) else v for v in values],
               color=["#4c72b0" if not math.isnan(v) else "#cccccc" for v in values])
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{HEADERS.get(m, m)} {'↓' if m in LOWER_IS_BETTER else '↑'}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reproduce_tables(data_root: str | Path, out_dir: str | Path, steps: int,
                     stage1_config: str = DEFAULT_STAGE1_CONFIG,
                     stage2_config: str = DEFAULT_STAGE2_CONFIG, stage1_steps: Optional[int] = None,
                     max_clips: Optional[int] = None, sample_steps: Optional[int] = None,
                     guidance_scale: Optional[float] = None, seed: int = 0, device: str = "cpu",
                     suite: Optional[MetricSuite] = None, extra_overrides: Sequence[str] = (),
                     tables: Sequence[int] = (1, 2), reuse: bool = False,
                     train_fn: Callable[[str, Sequence[str]], None] = default_train,
                     example_images: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train all variants at ``steps`` and write both tables; returns the results dict.

    ``reuse`` skips training a variant whose pipeline folder already has its stage-2 model.
    ``sample_steps``/``guidance_scale`` None: each checkpoint's recorded sampling defaults.
    ``train_fn(config_path, overrides)`` runs one training (tests substitute a stub).
    """
    from ..pipeline import Mask2IVPipeline
    from ..training.config import load_config

    if steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps}")
    out = Path(out_dir)
    data_root = str(data_root)
    rows_by_table = {1: TABLE1, 2: TABLE2}
    unknown = [t for t in tables if t not in rows_by_table]
    if unknown:
        raise ValueError(f"tables: expected a subset of (1, 2), got {list(tables)}")
    needed = sorted({row.variant for t in tables for row in rows_by_table[t]}, key=list(STAGE2_VARIANTS).index)

    # ---- stage 1 (shared PT-Gen model; its trajectories feed every Table 1 row)
    stage1_pipeline = out / "pipelines" / "stage1"
    stage1_reused = reuse and (stage1_pipeline / "model_index.json").is_file()
    if not stage1_reused:
        train_fn(stage1_config, [*run_overrides(data_root, out / "runs" / "stage1", stage1_pipeline,
                                                stage1_steps or steps), *extra_overrides])
    data_cfg = load_config(stage2_config, [*run_overrides(data_root, out, out, steps), *extra_overrides]).data

    # ---- stage 2 variants
    skipped: dict[str, str] = {}
    for variant in needed:
        variant_pipeline = out / "pipelines" / variant
        overrides = [*run_overrides(data_root, out / "runs" / variant, variant_pipeline, steps),
                     *override_args(STAGE2_VARIANTS[variant]), *extra_overrides]
        reason = check_overrides(stage2_config, overrides)
        if reason is not None:
            skipped[variant] = reason
            logger.warning("variant %s not trained: %s", variant, reason)
            continue
        trained_parts = ["video_unet"] + (
            [CONTROLNET_COMPONENT] if video_control(variant).control == "controlnet" else [])
        if reuse and all((variant_pipeline / part).is_dir() for part in trained_parts):
            continue
        # The stage-2 export lands next to the shared stage-1 model (same VAE / text encoder).
        if variant_pipeline.exists():
            shutil.rmtree(variant_pipeline)
        shutil.copytree(stage1_pipeline, variant_pipeline)
        train_fn(stage2_config, overrides)

    # ---- evaluation
    torch_device = torch.device(device)
    suite = MetricSuite.offline_defaults() if suite is None else suite
    stage1 = Mask2IVPipeline.from_pretrained(stage1_pipeline, device=torch_device)
    clips = load_eval_clips(data_root, stage1.config.num_frames, stage1.resolution, "test", max_clips,
                            data_cfg.test_fraction, data_cfg.split_seed, data_cfg.frame_stride)
    sampling = stage1.sampling_settings(sample_steps, guidance_scale)  # what "None" resolves to
    trajectories = {"predicted": predict_trajectories(stage1, clips, "position", sample_steps,
                                                      guidance_scale, seed, progress),
                    "ground_truth": ground_truth_trajectories(clips)}
    stage1_summary = summarize_trajectory_metrics(
        [clip_trajectory_metrics(c, t) for c, t in zip(clips, trajectories["predicted"])])
    results: dict[str, Any] = {"settings": {"data": data_root, "steps": steps,
                                            # a reused stage 1 was not trained by this run
                                            "stage1_steps": None if stage1_reused else stage1_steps or steps,
                                            "stage1_model": str(stage1_pipeline) + (
                                                " (reused: " + _model_id(stage1_pipeline) + ")"
                                                if stage1_reused else ""),
                                            "sample_steps": sample_steps, "sampling": sampling,
                                            "num_clips": len(clips),
                                            "stage1_config": stage1_config,
                                            "stage2_config": stage2_config},
                               "stage1_trajectories": stage1_summary,
                               "skipped": skipped, "tables": {}}
    sources: dict[str, str] = {}
    for table in tables:
        kind = "predicted" if table == 1 else "ground_truth"
        table_rows = []
        for row in rows_by_table[table]:
            if row.variant in skipped:
                table_rows.append((row.label, {}))
                continue
            pipe = Mask2IVPipeline.from_pretrained(out / "pipelines" / row.variant, device=torch_device)
            control = video_control(row.variant)
            controlnet = load_controlnet(out / "pipelines" / row.variant, torch_device) \
                if control.control == "controlnet" else None
            videos = list(generate_videos(pipe, clips, trajectories[kind], control, controlnet,
                                          sample_steps, guidance_scale, seed, progress))
            result = score_videos(clips, videos, suite)
            sources.update(result.metric_sources)
            report_dir = out / "eval" / f"table{table}" / row.variant
            write_report(result, report_dir, {"label": row.label, "variant": row.variant,
                                              "trajectory": kind})
            if example_images:
                save_examples(clips, videos, trajectories[kind], report_dir / "examples.png",
                              title=f"{row.label} ({kind} trajectories)")
            table_rows.append((row.label, result.summary))
        results["tables"][f"table{table}"] = {label: summary for label, summary in table_rows}
        metrics = TABLE1_METRICS if table == 1 else TABLE2_METRICS
        notes = [f"Not trained: {row.label} — {skipped[row.variant]}"
                 for row in rows_by_table[table] if row.variant in skipped]
        caption = (f"Table {table}: {'baselines with stage-1 predicted' if table == 1 else 'ablation with ground-truth'} "
                   f"trajectories; synthetic held-out split ({len(clips)} clips), {steps} training steps "
                   f"per variant, {sampling['num_inference_steps']} DDIM steps (eta "
                   f"{sampling['eta']:g}, guidance {sampling['guidance_scale']:g}).")
        (out / f"table{table}.md").write_text(markdown_table(table_rows, metrics, sources, caption, notes))
        bar_plot(table_rows, metrics, sources, out / f"table{table}.png", f"Table {table}")
    traj = results["stage1_trajectories"]
    (out / "stage1_trajectories.md").write_text(
        "| actor IoU↑ | object IoU↑ | placement IoU↑ | centroid error (px)↓ | direction agreement↑ |\n"
        "|---|---|---|---|---|\n" + "| " + " | ".join(format_value(traj.get(k), k) for k in (
            "actor_iou", "object_iou", "placement_iou", "centroid_error_px", "direction_agreement"))
        + " |\n\nStage-1 (PT-Gen) predicted trajectories vs ground truth on the held-out split.\n")
    results["metric_sources"] = sources
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mask2iv-tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="synthetic dataset root (generated if empty)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--steps", type=int, required=True, help="training steps of every stage-2 variant")
    parser.add_argument("--stage1-steps", type=int, default=None, help="stage-1 steps (default --steps)")
    parser.add_argument("--stage1-config", default=DEFAULT_STAGE1_CONFIG)
    parser.add_argument("--stage2-config", default=DEFAULT_STAGE2_CONFIG)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="training override applied to every run (repeatable)")
    parser.add_argument("--tables", default="1,2", help="which tables, e.g. 1 or 1,2")
    parser.add_argument("--max-clips", type=int, default=None, help="held-out clips to evaluate")
    parser.add_argument("--sample-steps", type=int, default=None,
                        help="DDIM steps per stage (default: the checkpoints')")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale (default: the checkpoints')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reuse", action="store_true", help="skip variants already trained in --out")
    add_metric_arguments(parser)
    parser.add_argument("--no-examples", action="store_true", help="skip the per-variant example PNGs")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        tables = [int(t) for t in args.tables.split(",") if t.strip()]
        suite = build_suite(args, torch.device(args.device))
        results = reproduce_tables(
            args.data, args.out, args.steps, args.stage1_config, args.stage2_config, args.stage1_steps,
            args.max_clips, args.sample_steps, args.guidance, args.seed, args.device, suite,
            args.override, tables, args.reuse, example_images=not args.no_examples,
            progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as error:
        print(f"mask2iv-tables: {error}", file=sys.stderr)
        return 2
    for table in tables:
        print((Path(args.out) / f"table{table}.md").read_text())
    for variant, reason in results["skipped"].items():
        print(f"not trained: {variant}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
