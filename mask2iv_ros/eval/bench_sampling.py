"""``mask2iv-bench-sampling <model_folder>``: speed against quality of samplers, step counts and
guidance scales for one checkpoint, on held-out episodes or a user's bag.

For every setting (scheduler x steps x guidance) each held-out case is imagined with PT-Gen
(both stages, timed as "s per imagination") and TT-Gen (the trajectory), and scored with the
mask metrics of :mod:`mask2iv_ros.eval.heldout`: IoU and boundary F-score (which, unlike IoU,
does not reward blobby masks) of the actor and object masks, final placement IoU, and the PT
video PSNR. One scalar, the *mask score* (mean of every IoU and boundary-F column), ranks the
settings; the recommendation is the fastest setting whose quality is within ``--tolerance``
(2 %) of the best (times within 5 % count as equal: then the folder's own scheduler, then
quality). ``--write-defaults`` records it in the folder's ``model_index.json``
(``config.sampling``, see docs/ARCHITECTURE.md), so the pipeline and the node use it.

Schedulers are diffusers classes built from the folder's own scheduler config (same betas,
zero-SNR rescale, prediction type, timestep spacing), so only the solver changes. Cases are
processed one at a time with every setting in turn, so slow phases of a shared machine spread
over all settings alike.

    mask2iv-bench-sampling mask2iv_ros/assets/default_model --episodes 8 \\
        --setting ddim:25:7.5 --setting ddim:4:7.5 --setting dpm++:10:1.0 --output-dir results/
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from ..data.bridge import atomic_write_bytes
from .heldout import (DEMO_SEED, MODE_TAGS, HeldOutCase, bag_cases, case_scores, mean_scores,
                      run_case, synthetic_cases)

SCHEDULERS = {
    "ddim": "SafeDDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpmsolver++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "lcm": "LCMScheduler",
}
SHORT_NAMES = {"SafeDDIMScheduler": "DDIM", "DDIMScheduler": "DDIM (diffusers)", "DPMSolverMultistepScheduler": "DPM-Solver++",
               "UniPCMultistepScheduler": "UniPC", "EulerDiscreteScheduler": "Euler",
               "LCMScheduler": "LCM"}
# DynamiCrafter's dynamic rescale is undone by the DDIM step only.
DDIM_SCHEDULERS = ("SafeDDIMScheduler", "DDIMScheduler")
# Settings built from the folder's scheduler config need these to mean the named solver.
_SCHEDULER_OPTIONS = {"DPMSolverMultistepScheduler": {"algorithm_type": "dpmsolver++"}}
DEFAULT_SCHEDULERS = ("ddim", "dpm++", "unipc", "euler")
DEFAULT_STEPS = (50, 25, 10, 6, 4, 2)
DEFAULT_GUIDANCE = (7.5, 1.0)
QUALITY = "mask score"
OUTPUT_STEM = "sampling_sweep"
MODEL_INDEX = "model_index.json"
# config.sampling keys (docs/ARCHITECTURE.md, "Sampler defaults"); older folders keep the last
# three at the top level of config.
SAMPLING_KEYS = ("num_inference_steps", "guidance_scale", "eta", "guidance_rescale",
                 "dynamic_rescale", "scheduler")
LEGACY_SAMPLING_KEYS = ("eta", "guidance_rescale", "dynamic_rescale")


def scheduler_class_name(name: str) -> str:
    """'ddim' / 'dpm++' / 'unipc' / 'euler' / 'lcm' or a diffusers scheduler class name."""
    from ..pipeline.ddim import scheduler_class

    resolved = SCHEDULERS.get(name.lower(), name)
    try:
        cls = scheduler_class(resolved)
    except ValueError:
        cls = None
    if cls is None:
        raise ValueError(f"scheduler: expected one of {sorted(SCHEDULERS)} or a diffusers "
                         f"scheduler class name, got {name!r}")
    return resolved


def make_scheduler(class_name: str, base_config: Any) -> Any:
    """A ``class_name`` scheduler with the schedule of ``base_config`` (the folder's scheduler)."""
    from ..pipeline.ddim import scheduler_class

    cls = scheduler_class(scheduler_class_name(class_name))
    return cls.from_config(base_config, **_SCHEDULER_OPTIONS.get(cls.__name__, {}))


@dataclass(frozen=True)
class Setting:
    scheduler: str        # diffusers class name
    steps: int
    guidance: float

    @property
    def label(self) -> str:
        return f"{SHORT_NAMES.get(self.scheduler, self.scheduler)} {self.steps}, g {self.guidance:g}"

    @classmethod
    def parse(cls, text: str) -> "Setting":
        """'scheduler:steps:guidance', e.g. 'ddim:10:7.5' or 'UniPCMultistepScheduler:4:1'."""
        parts = text.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            scheduler, steps, guidance = scheduler_class_name(parts[0]), int(parts[1]), float(parts[2])
        except ValueError as error:
            detail = f" ({error})" if str(error) else ""
            raise ValueError(f"--setting: expected 'scheduler:steps:guidance' like 'ddim:10:7.5', "
                             f"got {text!r}{detail}") from None
        if steps < 1 or guidance < 0:
            raise ValueError(f"--setting: expected steps >= 1 and guidance >= 0, got {text!r}")
        return cls(scheduler, steps, guidance)


def setting_grid(schedulers: Sequence[str], steps: Sequence[int],
                 guidance: Sequence[float]) -> list[Setting]:
    """Every scheduler x step count x guidance scale."""
    return [Setting(scheduler_class_name(s), int(n), float(g))
            for s, n, g in itertools.product(schedulers, steps, guidance)]


@dataclass
class SettingResult:
    setting: Setting
    scores: dict[str, float]              # mean metrics, "PT object IoU", ... and QUALITY
    seconds: dict[str, float]             # "PT s/imagination", "TT s/trajectory"
    notes: list[str] = field(default_factory=list)
    cases: int = 0                        # held-out cases scored

    @property
    def speed(self) -> float:
        """Seconds per imagination: PT-Gen's two stages, else TT-Gen's trajectory."""
        return self.seconds.get("PT s/imagination", self.seconds.get("TT s/trajectory", float("nan")))

    def row(self) -> dict[str, Any]:
        return {"setting": self.setting.label, "scheduler": self.setting.scheduler,
                "steps": self.setting.steps, "guidance": self.setting.guidance,
                **self.scores, **self.seconds, "notes": "; ".join(self.notes)}


# ---------------------------------------------------------------------------- running
def recorded_default(pipe: Any, name: str) -> Any:
    """A sampling default of the loaded pipeline: ``config.sampling.<name>`` where the folder
    format has it, else the older top-level ``config.<name>``."""
    sampling = getattr(pipe.config, "sampling", None)
    if sampling is not None and hasattr(sampling, name):
        return getattr(sampling, name)
    return getattr(pipe.config, name, None)


def _set_dynamic_rescale(pipe: Any, value: Any) -> None:
    """Set the recorded dynamic rescale where the folder format keeps it (``config.sampling``,
    possibly a frozen dataclass, or the older top-level ``config.dynamic_rescale``)."""
    sampling = getattr(pipe.config, "sampling", None)
    if sampling is not None and hasattr(sampling, "dynamic_rescale"):
        try:
            sampling.dynamic_rescale = value
        except dataclasses.FrozenInstanceError:
            pipe.config.sampling = dataclasses.replace(sampling, dynamic_rescale=value)
    else:
        pipe.config.dynamic_rescale = value


@contextmanager
def sampler(pipe: Any, setting: Setting, base_config: Any) -> Iterator[list[str]]:
    """Install ``setting``'s scheduler on ``pipe``; yields notes about what had to change.

    DynamiCrafter's dynamic rescale is a DDIM-only correction in this project's sampler, so it
    is switched off for other solvers (noted in the table).
    """
    notes: list[str] = []
    saved_scheduler = pipe.scheduler
    saved_rescale = recorded_default(pipe, "dynamic_rescale")
    pipe.scheduler = make_scheduler(setting.scheduler, base_config)
    if saved_rescale is not None and setting.scheduler not in DDIM_SCHEDULERS:
        _set_dynamic_rescale(pipe, None)
        notes.append("dynamic rescale off (DDIM only)")
    try:
        yield notes
    finally:
        pipe.scheduler = saved_scheduler
        if saved_rescale is not None:
            _set_dynamic_rescale(pipe, saved_rescale)


def run_sweep(pipe: Any, cases: Sequence[HeldOutCase], settings: Sequence[Setting],
              modes: Sequence[str] = ("position", "text"), seed: int = 0,
              log: Optional[Callable[[str], None]] = None,
              time_budget_s: Optional[float] = None) -> list[SettingResult]:
    """Imagine every case with every setting; mean scores and seconds per setting.

    PT-Gen runs both stages when the pipeline has a video model; TT-Gen the trajectory only.
    ``time_budget_s``: start no new case once this much time has passed (at least one case
    runs); every setting is still scored on the same cases.
    """
    if not settings:
        raise ValueError("settings: expected at least one sampler setting, got none")
    base_config = pipe.scheduler.config
    modes = [m for m in modes if m in pipe.modes]
    if not modes:
        raise ValueError(f"modes: the pipeline serves {pipe.modes}, none of which was asked for")
    runnable = [(case, mode) for case in cases for mode in modes if mode in case.modes]
    if not runnable:
        raise ValueError(f"cases: none has the input for modes {modes} "
                         "(PT-Gen needs a placement mask, TT-Gen a prompt)")
    # one untimed call: first-call costs (allocator, lazy imports, thread pools) are not a setting's
    case, mode = runnable[0]
    run_case(pipe, case, mode, trajectory_only=True, seed=seed, num_inference_steps=1,
             guidance_scale=settings[0].guidance)
    scores: dict[Setting, list[dict[str, float]]] = {s: [] for s in settings}
    seconds: dict[Setting, dict[str, list[float]]] = {s: {} for s in settings}
    notes: dict[Setting, list[str]] = {s: [] for s in settings}
    sweep_start = time.perf_counter()
    for number, case in enumerate(cases, 1):
        if number > 1 and time_budget_s is not None and \
                time.perf_counter() - sweep_start > time_budget_s:
            if log is not None:
                log(f"time budget of {time_budget_s:.0f} s spent: {number - 1} of {len(cases)} cases")
            break
        start = time.perf_counter()
        for setting in settings:
            row: dict[str, float] = {}
            for mode in (m for m in modes if m in case.modes):
                tag = MODE_TAGS[mode]
                video = mode == "position" and pipe.video_unet is not None
                with sampler(pipe, setting, base_config) as changed:
                    out, took = run_case(pipe, case, mode, trajectory_only=not video, seed=seed,
                                         num_inference_steps=setting.steps,
                                         guidance_scale=setting.guidance)
                notes[setting] = changed
                row.update({f"{tag} {name}": value for name, value in case_scores(out, case).items()})
                key = f"{tag} s/imagination" if video else f"{tag} s/trajectory"
                seconds[setting].setdefault(key, []).append(took)
            scores[setting].append(row)
        if log is not None:
            log(f"case {number}/{len(cases)} ({case.name}): {len(settings)} settings in "
                f"{time.perf_counter() - start:.1f} s")
    results = []
    for setting in settings:
        mean = mean_scores(scores[setting])
        mean[QUALITY] = mask_score(mean)
        timing = {key: sum(values) / len(values) for key, values in seconds[setting].items()}
        results.append(SettingResult(setting, mean, timing, notes[setting], len(scores[setting])))
    return results


def mask_score(scores: dict[str, float]) -> float:
    """Mean of every IoU and boundary-F column: one number that rewards right *and* sharp masks."""
    values = [v for k, v in scores.items() if k.endswith((" IoU", " BF"))]
    return float(sum(values) / len(values)) if values else float("nan")


def recommend(results: Sequence[SettingResult], quality: str = QUALITY,
              tolerance: float = 0.02, prefer_scheduler: Optional[str] = None,
              speed_tolerance: float = 0.05) -> SettingResult:
    """The fastest setting whose ``quality`` is at least ``(1 - tolerance)`` x the best one.

    Settings within ``speed_tolerance`` of the fastest one count as equally fast (timing noise:
    e.g. DPM-Solver++ at 2 steps is DDIM's first-order update, same work, same samples); among
    those, ``prefer_scheduler`` (the folder's own) wins, then the higher quality.
    """
    if not results:
        raise ValueError("results: expected at least one setting result, got none")
    if quality not in results[0].scores:
        raise ValueError(f"quality: expected one of {sorted(results[0].scores)}, got {quality!r}")
    best = max(r.scores[quality] for r in results)
    good = [r for r in results if r.scores[quality] >= best - tolerance * abs(best)]
    fastest = min(r.speed for r in good)
    ties = [r for r in good if r.speed <= fastest * (1 + speed_tolerance)]
    return max(ties, key=lambda r: (r.setting.scheduler == prefer_scheduler, r.scores[quality],
                                    -r.speed))


# ---------------------------------------------------------------------------- outputs
def markdown_table(results: Sequence[SettingResult], chosen: Optional[SettingResult] = None) -> str:
    columns = list(dict.fromkeys(k for r in results for k in (*r.scores, *r.seconds)))
    lines = ["| setting | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for result in results:
        values = {**result.scores, **result.seconds}
        cells = [f"{values[c]:.2f}" if c.endswith(("(dB)", "s/imagination", "s/trajectory"))
                 else f"{values[c]:.3f}" for c in columns]
        label = f"**{result.setting.label}**" if result is chosen else result.setting.label
        if result.notes:
            label += f" ({'; '.join(result.notes)})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results: Sequence[SettingResult], chosen: SettingResult, out_dir: str | Path,
                  meta: dict[str, Any], quality: str = QUALITY, tolerance: float = 0.02) -> dict[str, Path]:
    """``sampling_sweep.md/.csv/.json/.png`` in ``out_dir``; returns the paths by suffix."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {suffix: out_dir / f"{OUTPUT_STEM}.{suffix}" for suffix in ("md", "csv", "json", "png")}
    rows = [r.row() for r in results]
    fieldnames = list(dict.fromkeys(k for row in rows for k in row))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    paths["json"].write_text(json.dumps({**meta, "quality": quality, "tolerance": tolerance,
                                         "recommended": asdict(chosen.setting), "results": rows},
                                        indent=2))
    header = (f"Sampling sweep of `{meta['model']}` on {meta['cases']} held-out cases "
              f"({meta['source']}), seed {meta['seed']}, {meta['threads']} torch threads. "
              f"Means over cases; IoU/BF over frames 1..T-1; BF = boundary F-score "
              f"(DAVIS tolerance); {QUALITY} = mean of the IoU and BF columns.\n\n")
    footer = (f"\n\nRecommended ({quality} within {tolerance:.0%} of the best, then fastest; "
              f"within 5 % of the fastest time the folder's scheduler, then quality): "
              f"**{chosen.setting.label}** with {chosen.setting.scheduler} "
              f"({quality} {chosen.scores[quality]:.3f}, {chosen.speed:.2f} s per imagination).\n")
    paths["md"].write_text(header + markdown_table(results, chosen) + footer)
    plot_results(results, chosen, paths["png"], quality, tolerance)
    return paths


def plot_results(results: Sequence[SettingResult], chosen: SettingResult, path: Path,
                 quality: str = QUALITY, tolerance: float = 0.02) -> None:
    """Left: quality against seconds per imagination; right: object IoU and boundary F."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = dict(zip(SHORT_NAMES, "os^Dv"))
    best = max(r.scores[quality] for r in results)
    for result in results:
        marker = markers.get(result.setting.scheduler, "x")
        filled = result.setting.guidance != 1.0
        style = dict(marker=marker, s=48, edgecolors="C0",
                     facecolors="C0" if filled else "none")
        left.scatter(result.speed, result.scores[quality], **style)
        left.annotate(result.setting.label, (result.speed, result.scores[quality]), fontsize=7,
                      xytext=(4, 3), textcoords="offset points")
        for name, colour in (("object IoU", "C1"), ("object BF", "C2")):
            values = [v for k, v in result.scores.items() if k.endswith(name)]
            if values:
                right.scatter(result.speed, sum(values) / len(values), marker=marker, s=40,
                              edgecolors=colour, facecolors=colour if filled else "none")
    left.scatter(chosen.speed, chosen.scores[quality], s=260, facecolors="none", edgecolors="red",
                 linewidths=1.5, label="recommended")
    left.axhline(best * (1 - tolerance), color="grey", linestyle="--", linewidth=0.8,
                 label=f"best - {tolerance:.0%}")
    left.set(xscale="log", xlabel="seconds per imagination (log)", ylabel=quality,
             title="quality vs speed (filled: guided, open: guidance 1)")
    left.legend(fontsize=8)
    right.scatter([], [], color="C1", label="object IoU")
    right.scatter([], [], color="C2", label="object boundary F")
    right.set(xscale="log", xlabel="seconds per imagination (log)", ylabel="mean over modes",
              title="object IoU and boundary F-score")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_defaults(folder: str | Path, setting: Setting, recorded: dict[str, Any],
                   base_scheduler_config: Any) -> Path:
    """Record ``setting`` as the folder's sampling defaults in ``model_index.json``
    ``config.sampling`` (eta / guidance_rescale / dynamic_rescale: the ``recorded`` values the
    sweep ran with). Older top-level keys move into ``config.sampling``. When the scheduler
    class changes, the folder's ``scheduler/`` config and ``components.scheduler`` follow, so
    loaders that build the scheduler from either place agree. Written atomically."""
    folder = Path(folder)
    index_path = folder / MODEL_INDEX
    index = json.loads(index_path.read_text())
    config = index.setdefault("config", {})
    sampling = {key: config.pop(key) for key in LEGACY_SAMPLING_KEYS if key in config}
    sampling.update(config.get("sampling") or {})
    sampling.update({key: recorded[key] for key in LEGACY_SAMPLING_KEYS if key in recorded})
    sampling.update(num_inference_steps=setting.steps, guidance_scale=setting.guidance,
                    scheduler=setting.scheduler)
    if setting.scheduler not in DDIM_SCHEDULERS:
        sampling["dynamic_rescale"] = None    # DDIM-only correction; the sweep ran without it
    config["sampling"] = {key: sampling.get(key) for key in SAMPLING_KEYS} | {
        k: v for k, v in sampling.items() if k not in SAMPLING_KEYS}
    components = index.setdefault("components", {})
    if components.get("scheduler") != setting.scheduler:
        make_scheduler(setting.scheduler, base_scheduler_config).save_pretrained(folder / "scheduler")
        components["scheduler"] = setting.scheduler
    atomic_write_bytes(index_path, (json.dumps(index, indent=2) + "\n").encode())
    return index_path


# ---------------------------------------------------------------------------- CLI
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mask2iv-bench-sampling",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", help="pipeline folder (model_index.json + components)")
    parser.add_argument("--bag", help="score on this input bag (mask2iv-replay layout with "
                        "/ground_truth/mask_trajectory) instead of generated episodes")
    parser.add_argument("--bag-stride", type=int, default=1,
                        help="keep every n-th ground-truth frame of the bag")
    parser.add_argument("--episodes", type=int, default=12, help="generated held-out episodes")
    parser.add_argument("--episode-seed", type=int, default=DEMO_SEED,
                        help="generator seed of the held-out episodes (never used in training)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of every call")
    parser.add_argument("--schedulers", nargs="+", default=list(DEFAULT_SCHEDULERS),
                        help=f"grid: {sorted(SCHEDULERS)} or diffusers class names")
    parser.add_argument("--steps", nargs="+", type=int, default=list(DEFAULT_STEPS), help="grid")
    parser.add_argument("--guidance", nargs="+", type=float, default=list(DEFAULT_GUIDANCE),
                        help="grid")
    parser.add_argument("--setting", action="append", default=[], metavar="SCHED:STEPS:GUIDANCE",
                        help="explicit settings (repeatable); replaces the grid")
    parser.add_argument("--modes", nargs="+", default=["position", "text"],
                        choices=["position", "text"])
    parser.add_argument("--quality", default=QUALITY, help="column that ranks the settings")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="relative quality loss allowed for a faster setting")
    parser.add_argument("--output-dir", default="sampling_sweep", help="table, CSV, JSON, plot")
    parser.add_argument("--write-defaults", action="store_true",
                        help="record the recommended setting in the folder's model_index.json")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="start no new case after this long (every setting keeps the same cases)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's own")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        settings = ([Setting.parse(text) for text in args.setting] if args.setting
                    else setting_grid(args.schedulers, args.steps, args.guidance))
    except ValueError as error:
        print(f"mask2iv-bench-sampling: {error}", file=sys.stderr)
        return 2
    import torch

    from ..pipeline import Mask2IVPipeline

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    pipe = Mask2IVPipeline.from_pretrained(args.model, device=args.device)
    if args.bag:
        cases, source = bag_cases(args.bag, stride=args.bag_stride), f"bag {args.bag}"
    else:
        cases = synthetic_cases(args.episodes, args.episode_seed, pipe.resolution,
                                pipe.config.num_frames, pipe.config.fps)
        source = f"synthetic, generator seed {args.episode_seed}"
    print(f"{len(settings)} settings x {len(cases)} cases ({source})", flush=True)
    recorded = {key: recorded_default(pipe, key) for key in LEGACY_SAMPLING_KEYS}
    base_config = pipe.scheduler.config
    results = run_sweep(pipe, cases, settings, args.modes, args.seed,
                        log=lambda line: print(line, flush=True), time_budget_s=args.time_budget)
    chosen = recommend(results, args.quality, args.tolerance,
                       prefer_scheduler=type(pipe.scheduler).__name__)
    meta = {"model": str(args.model), "source": source, "cases": results[0].cases,
            "seed": args.seed,
            "threads": torch.get_num_threads(), "device": args.device, "modes": args.modes,
            "recorded_defaults": recorded, "folder_scheduler": type(pipe.scheduler).__name__}
    paths = write_results(results, chosen, args.output_dir, meta, args.quality, args.tolerance)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    if args.write_defaults:
        path = write_defaults(args.model, chosen.setting, recorded, base_config)
        print(f"recorded {chosen.setting.label} ({chosen.setting.scheduler}) in {path} config.sampling")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
