"""Calibrate a pipeline folder's palette snap weights (``MaskPalette.snap_weights``) on
generated episodes of its training distribution; prints a markdown table, best first.

A VAE decoder blurs the edges of the colour-coded masks, and plain nearest-colour snapping may
hand the blurred edge to the object (decoded objects come out too large). The stage-1 samples
are drawn once (fixed seeds); each candidate (object, actor) weight pair snaps the same
decodings, so a grid of pairs costs one sampling pass. ``--vote-kernels 1 3`` adds the
majority-vote window (``MaskPalette.vote_kernel``) to the grid. A pair is scored by the
sum of PT actor, PT object, PT final placement and TT object IoU (the modes the folder has);
TT direction agreement is shown, not optimised. Calibrate on the seed the model was trained on
(the embedded default: 2026), never on the episodes it is evaluated on (7777).

    python -m mask2iv_ros.eval.calibrate_snap mask2iv_ros/assets/default_model --seed 2026 \\
        --object-weights 1 2 3 4 5 6 8 10 --write
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..data.bridge import atomic_write_bytes
from ..masks import ACTOR, OBJECT, MaskPalette, palette_labels
from .heldout import MODE_TAGS, HeldOutCase, case_scores, mean_scores, run_case, synthetic_cases
from .metrics_trajectory import direction_agreement

OPTIMISED = (("PT", "actor IoU"), ("PT", "object IoU"), ("PT", "placement IoU"), ("TT", "object IoU"))
SHOWN = OPTIMISED + (("TT", "direction agreement"),)


def _positive(name: str, values: Sequence[float]) -> list[float]:
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name}: expected one or more positive numbers, got {values}")
    return values


@dataclasses.dataclass(frozen=True)
class _Snapped:
    """What ``case_scores`` reads of a pipeline output: the masks of one snap of its decoding."""
    actor_masks: np.ndarray
    object_masks: np.ndarray
    video: None = None


@torch.no_grad()
def sample_cases(pipe: Any, cases: Sequence[HeldOutCase], steps: int | None = None,
                 progress: bool = False) -> dict[str, list[tuple[HeldOutCase, np.ndarray]]]:
    """Each case's stage-1 decoding before the snap (``Mask2IVOutput.decoded_trajectory``), per
    mode of the folder: the samples do not depend on the snap weights (fixed seeds), so one
    sampling pass serves every weight pair. One stage-1 sample per case (trajectory_votes 1):
    the weights are calibrated on single decodings, which a recorded vote then combines."""
    settings = {"trajectory_votes": 1}
    if steps is not None:
        settings["num_inference_steps"] = steps
    modes = [mode for mode in ("position", "text") if mode in pipe.modes]
    samples: dict[str, list[tuple[HeldOutCase, np.ndarray]]] = {mode: [] for mode in modes}
    with tqdm(total=len(modes) * len(cases), desc="stage-1 samples", disable=not progress) as bar:
        for mode in modes:
            for case in cases:
                out, _ = run_case(pipe, case, mode, trajectory_only=True, **settings)
                samples[mode].append((case, out.decoded_trajectory))
                bar.update()
    return samples


def score_samples(samples: dict[str, list[tuple[HeldOutCase, np.ndarray]]], palette: MaskPalette,
                  object_weight: float, actor_weight: float,
                  vote_kernel: int | None = None) -> dict[str, float]:
    """Mean scores of ``samples`` snapped with weights (1, object, actor) of ``palette`` and its
    majority vote (``vote_kernel``: None = the palette's own)."""
    palette = dataclasses.replace(palette, snap_weights=(1.0, object_weight, actor_weight),
                                  vote_kernel=palette.vote_kernel if vote_kernel is None else vote_kernel)
    result: dict[str, float] = {}
    for mode, items in samples.items():
        rows, directions = [], []
        for case, decoded in items:
            labels = palette_labels(decoded, palette)
            snapped = _Snapped(actor_masks=labels == ACTOR, object_masks=labels == OBJECT)
            rows.append(case_scores(snapped, case))
            if mode == "text":
                check = direction_agreement(snapped.object_masks, case.prompt)
                if check.agrees is not None:
                    directions.append(float(check.agrees))
        tag = MODE_TAGS[mode]
        result.update({f"{tag} {name}": value for name, value in mean_scores(rows).items()})
        if mode == "text":
            result["TT direction agreement"] = float(np.mean(directions)) if directions else float("nan")
    result["objective"] = float(sum(result[f"{tag} {name}"] for tag, name in OPTIMISED
                                    if f"{tag} {name}" in result))
    return result


def score_weights(pipe: Any, cases: Sequence[HeldOutCase], object_weight: float,
                  actor_weight: float, steps: int | None = None) -> dict[str, float]:
    """Mean scores of ``pipe``'s stage 1 on ``cases`` with snap weights (1, object, actor)."""
    return score_samples(sample_cases(pipe, cases, steps), pipe.palette, object_weight, actor_weight)


def calibrate(pipe: Any, cases: Sequence[HeldOutCase], object_weights: Sequence[float],
              actor_weights: Sequence[float] = (1.0,), steps: int | None = None,
              progress: bool = True,
              vote_kernels: Sequence[int] | None = None) -> list[dict[str, float]]:
    """One row per (object, actor, vote kernel) triple, best objective first (ties: the plainer
    rule). ``vote_kernels`` None: the folder's own kernel only. The cases are sampled once; each
    triple re-snaps the same decodings."""
    object_weights = _positive("object_weights", object_weights)
    actor_weights = _positive("actor_weights", actor_weights)
    kernels = _vote_kernels([pipe.palette.vote_kernel] if vote_kernels is None else vote_kernels)
    grid = [(o, a, k) for k in kernels for o in object_weights for a in actor_weights]
    samples = sample_cases(pipe, cases, steps, progress)
    rows = []
    for object_weight, actor_weight, kernel in tqdm(grid, desc="snap weights", disable=not progress):
        row = {"object weight": object_weight, "actor weight": actor_weight, "vote kernel": kernel}
        row.update(score_samples(samples, pipe.palette, object_weight, actor_weight, kernel))
        rows.append(row)
    distance = lambda row: (abs(math.log(row["object weight"])) + abs(math.log(row["actor weight"]))
                            + row["vote kernel"] - 1)
    return sorted(rows, key=lambda row: (-row["objective"], distance(row)))


def _vote_kernels(values: Sequence[int]) -> list[int]:
    kernels = list(values)
    if not kernels or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                              and k >= 1 and k % 2 == 1 for k in kernels):
        raise ValueError(f"vote_kernels: expected one or more odd ints >= 1, got {kernels}")
    return [int(k) for k in kernels]


def write_weights(folder: str | Path, object_weight: float, actor_weight: float,
                  vote_kernel: int | None = None) -> None:
    """Record (1, object, actor) in ``folder/model_index.json`` ``config.palette.snap_weights``
    and, unless None, ``vote_kernel`` in ``config.palette.vote_kernel`` (1: the key removed)."""
    path = Path(folder) / "model_index.json"
    index = json.loads(path.read_text())
    palette = index.setdefault("config", {}).setdefault("palette", {})
    palette["snap_weights"] = [1.0, float(object_weight), float(actor_weight)]
    if vote_kernel is not None:
        palette.pop("vote_kernel", None)
        if vote_kernel != 1:
            palette["vote_kernel"] = int(vote_kernel)
    atomic_write_bytes(path, json.dumps(index, indent=2).encode())  # a loader never sees half a file


def table(rows: Sequence[dict[str, float]]) -> str:
    columns = (["object weight", "actor weight", "vote kernel"]
               + [f"{tag} {name}" for tag, name in SHOWN] + ["objective"])
    columns = [c for c in columns if any(c in row for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row, c) for c in columns) + " |")
    return "\n".join(lines)


def _cell(row: dict[str, float], column: str) -> str:
    if column not in row:
        return ""
    return f"{row[column]:d}" if column == "vote kernel" else f"{row[column]:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    from mask2iv_ros.pipeline import Mask2IVPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", help="pipeline folder (model_index.json)")
    parser.add_argument("--seed", type=int, default=2026, help="generator seed of the episodes (the training seed)")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--object-weights", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6, 8, 10])
    parser.add_argument("--actor-weights", type=float, nargs="+", default=[1])
    parser.add_argument("--vote-kernels", type=int, nargs="+", default=None,
                        help="majority-vote windows to try (odd, 1 = none; default: the folder's own)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the recorded ones)")
    parser.add_argument("--write", action="store_true", help="record the best pair in model_index.json")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args(argv)
    try:
        _positive("--object-weights", args.object_weights)
        _positive("--actor-weights", args.actor_weights)
        if args.vote_kernels is not None:
            _vote_kernels(args.vote_kernels)
    except ValueError as error:
        if "vote_kernels" in str(error):
            parser.error(str(error).replace("vote_kernels", "--vote-kernels"))
        parser.error(str(error))
    pipe = Mask2IVPipeline.from_pretrained(args.pipeline)
    cases = synthetic_cases(args.episodes, args.seed, pipe.resolution, num_frames=pipe.config.num_frames,
                            fps=pipe.config.fps)
    rows = calibrate(pipe, cases, args.object_weights, args.actor_weights, args.steps,
                     vote_kernels=args.vote_kernels)
    print(f"Snap weights of {args.pipeline}, {args.episodes} episodes of seed {args.seed}, best first\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "episodes": args.episodes, "rows": rows}, indent=2))
    if args.write:
        best = rows[0]
        kernel = best["vote kernel"] if args.vote_kernels is not None else None
        write_weights(args.pipeline, best["object weight"], best["actor weight"], kernel)
        voted = "" if kernel is None else f" and vote_kernel {kernel}"
        print(f"\nwrote snap_weights [1, {best['object weight']:g}, {best['actor weight']:g}]{voted} to "
              f"{Path(args.pipeline) / 'model_index.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
