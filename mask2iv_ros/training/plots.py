"""Training log (CSV of step, loss, lr, ...) and its loss-curve PNG."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Mapping, Sequence

FIELDS = ("step", "loss", "lr", "grad_norm", "seconds_per_step")


class MetricsLog:
    """Append-only CSV of per-step metrics; on resume, rows after the resumed step are dropped
    (they came from steps that are recomputed after the kill)."""

    def __init__(self, path: str | Path, resume_step: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = [r for r in read_metrics(self.path) if int(r["step"]) <= resume_step] \
            if resume_step > 0 else []
        with open(self.path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            for row in rows:
                writer.writerow({**{k: row.get(k, "") for k in FIELDS}, "step": int(row["step"])})

    def append(self, row: Mapping[str, float]) -> None:
        unknown = set(row) - set(FIELDS)
        if unknown:
            raise ValueError(f"MetricsLog.append: unknown fields {sorted(unknown)}")
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=FIELDS).writerow(dict(row))


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(handle)]


def _smooth(values: Sequence[float], weight: float) -> list[float]:
    """Bias-corrected exponential moving average (TensorBoard-style smoothing)."""
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * value
        out.append(avg / (1 - weight ** i))
    return out


def plot_loss_curve(metrics_csv: str | Path, png_path: str | Path, title: str = "") -> Path:
    """Write a PNG with the loss (raw + smoothed, log scale) and the learning rate per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_csv) if "loss" in r and math.isfinite(r["loss"])]
    png_path = Path(png_path)
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    if rows:
        steps = [r["step"] for r in rows]
        losses = [r["loss"] for r in rows]
        ax_loss.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=0.8, label="loss")
        if len(rows) > 2:
            ax_loss.plot(steps, _smooth(losses, 0.9), color="tab:blue", linewidth=1.6,
                         label="smoothed (EMA 0.9)")
        if min(losses) > 0:
            ax_loss.set_yscale("log")
        ax_lr.plot(steps, [r.get("lr", float("nan")) for r in rows], color="tab:orange")
    else:
        ax_loss.text(0.5, 0.5, "no steps logged yet", ha="center", va="center",
                     transform=ax_loss.transAxes)
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title(title or "training loss")
    ax_loss.grid(True, alpha=0.3)
    if rows:
        ax_loss.legend(loc="upper right")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("optimizer step")
    ax_lr.grid(True, alpha=0.3)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
