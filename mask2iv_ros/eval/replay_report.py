"""The report of a bag replay: per-request latency, outputs received, trajectory metrics.

Trajectory metrics compare the node's MaskTrajectory with the bag's ground truth (same header
stamp): per-frame IoU of the actor masks and of the object masks, and the final placement IoU
(object mask of the last predicted frame vs. the last ground-truth frame). When the two disagree in
frame count, the first min(T_pred, T_gt) frames are compared; when they disagree in size, the
prediction is resized (nearest) to the ground truth.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from . import metrics_trajectory


def mask_iou(predicted: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty); a prediction of
    another size is resized (nearest) to the target first."""
    predicted, target = np.asarray(predicted, bool), np.asarray(target, bool)
    if predicted.shape != target.shape:
        predicted = cv2.resize(predicted.astype(np.uint8), target.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    return metrics_trajectory.mask_iou(predicted, target)


@dataclass
class TrajectoryMetrics:
    actor_iou: list[float]  # per compared frame
    object_iou: list[float]
    final_placement_iou: float
    frames_compared: int
    predicted_frames: int
    ground_truth_frames: int

    @property
    def mean_actor_iou(self) -> float:
        return float(np.mean(self.actor_iou)) if self.actor_iou else math.nan

    @property
    def mean_object_iou(self) -> float:
        return float(np.mean(self.object_iou)) if self.object_iou else math.nan


def trajectory_metrics(
    predicted_actor: np.ndarray,
    predicted_object: np.ndarray,
    ground_truth_actor: np.ndarray,
    ground_truth_object: np.ndarray,
) -> TrajectoryMetrics:
    """IoU metrics of bool [T, H, W] mask videos (prediction vs ground truth)."""
    frames = min(len(predicted_object), len(ground_truth_object))
    if frames == 0:
        raise ValueError("predicted_object / ground_truth_object: expected at least one frame each, got none")
    return TrajectoryMetrics(
        actor_iou=[mask_iou(predicted_actor[t], ground_truth_actor[t]) for t in range(frames)],
        object_iou=[mask_iou(predicted_object[t], ground_truth_object[t]) for t in range(frames)],
        final_placement_iou=mask_iou(predicted_object[-1], ground_truth_object[-1]),
        frames_compared=frames,
        predicted_frames=len(predicted_object),
        ground_truth_frames=len(ground_truth_object),
    )


@dataclass
class RequestRecord:
    """One replayed input set and what came back for it."""

    index: int
    stamp_ns: int  # header stamp of the input image = header stamp of the outputs
    published_at_s: float  # seconds since the replay started
    latency_s: Optional[float] = None  # last input published -> rollout received; None if none came
    outputs: dict[str, int] = field(default_factory=dict)  # topic -> messages received with this stamp
    node_total_seconds: Optional[float] = None  # as reported in the rollout
    metrics: Optional[TrajectoryMetrics] = None


@dataclass
class ReplayReport:
    input_bag: str
    output_bag: str
    mode: str  # "as_fast_as_consumed" or "rate x<factor>"
    requests: list[RequestRecord]
    outputs_received: dict[str, int]  # topic -> all messages recorded
    wall_seconds: float

    @property
    def answered(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.latency_s is not None]

    def summary(self) -> dict:
        latencies = [r.latency_s for r in self.answered]
        with_metrics = [r.metrics for r in self.requests if r.metrics is not None]

        def stat(values: list[float], fn) -> Optional[float]:
            return float(fn(values)) if values else None

        return {
            "requests": len(self.requests),
            "answered": len(latencies),
            "latency_mean_s": stat(latencies, np.mean),
            "latency_p50_s": stat(latencies, np.median),
            "latency_max_s": stat(latencies, np.max),
            "with_ground_truth": len(with_metrics),
            "mean_actor_iou": stat([m.mean_actor_iou for m in with_metrics], np.mean),
            "mean_object_iou": stat([m.mean_object_iou for m in with_metrics], np.mean),
            "mean_final_placement_iou": stat([m.final_placement_iou for m in with_metrics], np.mean),
        }

    def to_dict(self) -> dict:
        requests = []
        for record in self.requests:
            entry = asdict(record)
            if record.metrics is not None:
                entry["metrics"]["mean_actor_iou"] = record.metrics.mean_actor_iou
                entry["metrics"]["mean_object_iou"] = record.metrics.mean_object_iou
            requests.append(entry)
        return {
            "input_bag": self.input_bag,
            "output_bag": self.output_bag,
            "mode": self.mode,
            "wall_seconds": self.wall_seconds,
            "summary": self.summary(),
            "outputs_received": self.outputs_received,
            "requests": requests,
        }

    def to_markdown(self) -> str:
        s = self.summary()

        def fmt(value: Optional[float], digits: int = 3) -> str:
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

        lines = [
            f"# Replay of `{self.input_bag}` ({self.mode})",
            "",
            f"- requests answered: {s['answered']} / {s['requests']} in {self.wall_seconds:.1f} s",
            f"- latency (s): mean {fmt(s['latency_mean_s'])}, p50 {fmt(s['latency_p50_s'])}, max {fmt(s['latency_max_s'])}",
            f"- with ground truth: {s['with_ground_truth']}: mean actor IoU {fmt(s['mean_actor_iou'])}, "
            f"mean object IoU {fmt(s['mean_object_iou'])}, final placement IoU {fmt(s['mean_final_placement_iou'])}",
            f"- outputs recorded in `{self.output_bag}`: "
            + ", ".join(f"{topic} x{count}" for topic, count in sorted(self.outputs_received.items())),
            "",
            "| # | stamp (s) | latency (s) | node total (s) | actor IoU | object IoU | final placement IoU |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.requests:
            m = r.metrics
            lines.append(
                f"| {r.index} | {r.stamp_ns / 1e9:.3f} | {fmt(r.latency_s)} | {fmt(r.node_total_seconds)} | "
                f"{fmt(m.mean_actor_iou if m else None)} | {fmt(m.mean_object_iou if m else None)} | "
                f"{fmt(m.final_placement_iou if m else None)} |"
            )
        return "\n".join(lines) + "\n"

    def write(self, folder: Path | str, stem: str = "replay_report") -> tuple[Path, Path]:
        """Write `<stem>.json` and `<stem>.md` into `folder`; returns both paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, markdown_path = folder / f"{stem}.json", folder / f"{stem}.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False, default=_json_default))
        markdown_path.write_text(self.to_markdown())
        return json_path, markdown_path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
