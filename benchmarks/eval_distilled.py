"""Distilled few-step students against their teacher on unseen synthetic episodes (embedded size).

Each row is ``folder:steps[:guidance]`` (guidance omitted: 1.0 for an LCMScheduler folder, whose
guidance is folded into the student; the pipeline's default otherwise). Scores are those of
``eval_embedded_quality.py`` (same episodes, seeds and metrics): per-frame actor / object IoU,
final placement IoU (PT-Gen, TT-Gen), PT-Gen video PSNR, and seconds per PT-Gen imagination.
Prints a markdown table; ``--json`` also writes the numbers.

    python benchmarks/eval_distilled.py --episodes 12 \\
        --row mask2iv_ros/assets/default_model:4 --row runs/embedded_distill_pipeline:4
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch

from mask2iv_ros.pipeline import Mask2IVPipeline

_spec = importlib.util.spec_from_file_location(
    "eval_embedded_quality", Path(__file__).with_name("eval_embedded_quality.py"))
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def parse_row(text: str) -> tuple[str, int, float | None]:
    folder, _, rest = text.partition(":")
    steps, _, guidance = rest.partition(":")
    try:
        return folder, int(steps), float(guidance) if guidance else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--row: expected folder:steps[:guidance], got {text!r}") from None


def scheduler_name(folder: str) -> str:
    return json.loads((Path(folder) / "model_index.json").read_text())["components"]["scheduler"]


@torch.no_grad()  # not torch.set_grad_enabled(False): callers (tests) keep their grad mode
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--row", type=parse_row, action="append", required=True,
                        metavar="FOLDER:STEPS[:GUIDANCE]")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for folder, steps, guidance in args.row:
        scheduler = scheduler_name(folder)
        if guidance is None and scheduler == "LCMScheduler":
            guidance = 1.0
        start = time.perf_counter()
        scores = quality.pipeline_scores(folder, args.episodes, steps, guidance)
        rows.append({"folder": folder, "scheduler": scheduler, "steps": steps,
                     "guidance": guidance, **scores, "seconds": time.perf_counter() - start})
        print(f"done {folder} {scheduler} {steps} steps", flush=True)
    names = [k for k in rows[0] if k not in ("folder", "scheduler", "steps", "guidance",
                                             "seconds")]
    print(f"\nUnseen episodes: {args.episodes} (seed {quality.DEMO_SEED}), seed 0 per call\n")
    print("| pipeline | sampler | steps | guidance | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 4) + "|")
    for row in rows:
        guidance = "default" if row["guidance"] is None else f"{row['guidance']:g}"
        print(f"| {row['folder']} | {row['scheduler']} | {row['steps']} | {guidance} | "
              + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
