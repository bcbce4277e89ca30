"""`mask2iv-compare`: score an imagination against what then actually happened.

Inputs
- the imagination: a bag of the node's outputs (recorded by `mask2iv-replay`, or `ros2 bag
  record` of imagination/rollout or imagination/mask_trajectory; one request picked by index or
  stamp), or a pipeline output saved with `save_imagination_npz` (keys actor_masks, object_masks:
  bool [T, H, W]; fps; stamp_ns: the input image's stamp, optional);
- the observed bag (`mask2iv_ros.eval.observed_bag`): tracked object / actor masks per camera frame,
  optionally camera images (for the PNG), depth and camera_info (for the 3D scores).

Time alignment: the imagination's T frames start at its input image's stamp (`stamp_ns`; the
first observed frame when unknown). Observed frames from then on are resampled to T frames by their
header stamps, nearest frame to each target time (masks are not interpolated):
- `span` (default): the targets are spread evenly over the observed motion, from the start to the
  last observed frame (the imagined clip stands for the whole execution, whatever its speed);
- `fps`: target i is start + i / fps, the imagined playback timing (observed frames past the last
  one are clamped to it; `observed_coverage` in the report says how much of the span was covered).

Scores: per-frame IoU of the object and actor masks and their means, the final placement IoU and
centroid error (`metrics_trajectory`), the contact frame of each and their difference (frames and
seconds), and with depth + camera_info the 3D placement (endpoint) error, contact point error and
mean object path error in metres (`mask2iv_ros.geometry`, one support plane fitted to the observed
depth and shared by both, so the two are lifted identically). Output: JSON, a short markdown
report and a PNG with imagined and observed masks side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from rosbags.rosbag2 import Reader

from mask2iv_ros.eval import metrics_trajectory
from mask2iv_ros.eval.bag_io import ACTOR_MASK_TOPIC, IMAGE_TOPIC, OBJECT_MASK_TOPIC, package_typestore
from mask2iv_ros.eval.observed_bag import CAMERA_INFO_TOPIC, DEPTH_TOPIC, ObservedSequence, read_observed_bag
from mask2iv_ros.geometry import contact_frame, fit_support_plane, interaction_geometry
from mask2iv_ros.geometry.contact import DEFAULT_DILATE_PX
from mask2iv_ros.geometry.plane import dilate
from mask2iv_ros.masks import overlay_masks
from mask2iv_ros.ros.image_conversion import has_trajectory_images, trajectory_masks
from mask2iv_ros.ros.synchronizer import stamp_to_ns

ROLLOUT_TYPE = "mask2iv_ros/msg/ImaginedRollout"
TRAJECTORY_TYPE = "mask2iv_ros/msg/MaskTrajectory"
ALIGN_MODES = ("span", "fps")
_NS = 1_000_000_000


# ---- the imagination ------------------------------------------------------------------------------
@dataclass
class Imagination:
    actor_masks: np.ndarray  # bool [T, H, W]
    object_masks: np.ndarray  # bool [T, H, W]
    fps: float
    stamp_ns: Optional[int]  # the input image's stamp; None = unknown
    source: str = ""


def save_imagination_npz(path: Path | str, actor_masks: Any, object_masks: Any, fps: float,
                         stamp_ns: Optional[int] = None) -> Path:
    """Save a pipeline output (`out.actor_masks`, `out.object_masks`, `out.fps`) for `mask2iv-compare`."""
    path = Path(path)
    arrays = {"actor_masks": np.asarray(actor_masks, bool), "object_masks": np.asarray(object_masks, bool),
              "fps": np.float64(fps)}
    if stamp_ns is not None:
        arrays["stamp_ns"] = np.int64(stamp_ns)
    np.savez_compressed(path, **arrays)
    return path


def _load_npz(path: Path) -> Imagination:
    with np.load(path, allow_pickle=False) as data:
        missing = {"actor_masks", "object_masks"} - set(data.files)
        if missing:
            raise ValueError(f"imagination: {path} lacks {sorted(missing)}; expected actor_masks and object_masks "
                             "(bool [T, H, W]), fps and optionally stamp_ns")
        stamp = int(data["stamp_ns"]) if "stamp_ns" in data.files else None
        fps = float(data["fps"]) if "fps" in data.files else 5.0
        return Imagination(data["actor_masks"].astype(bool), data["object_masks"].astype(bool), fps, stamp, str(path))


def read_imagination(path: Path | str, *, request: Optional[int] = None, stamp_ns: Optional[int] = None) -> Imagination:
    """The imagination of an .npz file or of an output bag (its request number `request`, 0-based in
    stamp order, or the one with input stamp `stamp_ns`; default the first)."""
    path = Path(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    typestore = package_typestore()
    found: dict[int, Imagination] = {}
    with Reader(path) as reader:
        # imagine_node's rollout topic has the trajectory's header only; its images are on the
        # trajectory topic (older bags: in the rollout), so both are read, the first with images kept
        connections = [c for c in reader.connections if c.msgtype in (ROLLOUT_TYPE, TRAJECTORY_TYPE)]
        if not connections:
            raise ValueError(f"imagination: {path} has no {ROLLOUT_TYPE} or {TRAJECTORY_TYPE} messages (topics: "
                             f"{sorted(c.topic for c in reader.connections)})")
        for connection, _, raw in reader.messages(connections=connections):
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            trajectory = message.mask_trajectory if connection.msgtype == ROLLOUT_TYPE else message
            stamp = stamp_to_ns(message.header.stamp)
            if not has_trajectory_images(trajectory) or stamp in found:
                continue
            actor, obj = trajectory_masks(trajectory)
            found[stamp] = Imagination(actor, obj, float(trajectory.fps or getattr(message, "fps", 0.0) or 5.0), stamp,
                                       f"{path}:{connection.topic}@{stamp}")
    stamps = sorted(found)
    if not stamps:
        raise ValueError(f"imagination: {path} has no imagination with masks")
    if stamp_ns is not None:
        if stamp_ns not in found:
            raise ValueError(f"stamp_ns: no imagination with input stamp {stamp_ns} in {path}; it has {stamps}")
        return found[stamp_ns]
    index = 0 if request is None else request
    if not 0 <= index < len(stamps):
        raise ValueError(f"request: expected 0..{len(stamps) - 1} ({len(stamps)} imaginations in {path}), got {index}")
    return found[stamps[index]]


# ---- time alignment -------------------------------------------------------------------------------
def target_times(start_ns: int, end_ns: int, frames: int, fps: float, align: str) -> np.ndarray:
    """int64 [frames] times the imagined frames stand for (module doc)."""
    if align not in ALIGN_MODES:
        raise ValueError(f"align: expected one of {list(ALIGN_MODES)}, got {align!r}")
    if align == "span":
        return np.round(np.linspace(start_ns, end_ns, frames)).astype(np.int64)
    if not fps > 0:
        raise ValueError(f"fps: expected the imagination's frames per second > 0 for align 'fps', got {fps}")
    return start_ns + np.round(np.arange(frames) * _NS / fps).astype(np.int64)


def nearest_frames(stamps_ns: np.ndarray, targets_ns: np.ndarray) -> np.ndarray:
    """Index of the frame stamped nearest each target time (earlier one on ties)."""
    stamps_ns = np.asarray(stamps_ns, np.int64)
    if len(stamps_ns) == 1:
        return np.zeros(len(targets_ns), int)
    right = np.clip(np.searchsorted(stamps_ns, targets_ns), 1, len(stamps_ns) - 1)
    left = right - 1
    return np.where(np.abs(targets_ns - stamps_ns[left]) <= np.abs(stamps_ns[right] - targets_ns), left, right)


# ---- scoring --------------------------------------------------------------------------------------
@dataclass
class Comparison:
    imagination: str
    observed: str
    align: str
    frames: int
    target_times_s: list[float]  # since the start
    observed_frames: dict[str, list[int]]  # role -> index of the observed frame used per imagined frame
    observed_coverage: float  # share of the target span that observed frames cover (1.0 = all)
    object_iou: list[float]
    actor_iou: Optional[list[float]]
    placement_iou: float
    placement_centroid_error_px: float
    contact_frame_imagined: int
    contact_frame_observed: Optional[int]
    # imagined - observed (frames); 0 when neither touches; None when only one does or no observed actor
    contact_frame_error: Optional[int]
    contact_time_error_s: Optional[float]
    geometry: Optional[dict] = None  # 3D scores when depth + camera_info are present
    notes: list[str] = field(default_factory=list)
    # For the PNG (not in the JSON).
    _panels: Optional[tuple] = field(default=None, repr=False)

    @property
    def mean_object_iou(self) -> float:
        return float(np.mean(self.object_iou))

    @property
    def mean_actor_iou(self) -> Optional[float]:
        return None if self.actor_iou is None else float(np.mean(self.actor_iou))

    def to_dict(self) -> dict:
        data = {key: value for key, value in self.__dict__.items() if not key.startswith("_")}
        data["mean_object_iou"] = self.mean_object_iou
        data["mean_actor_iou"] = self.mean_actor_iou
        return data

    def to_markdown(self) -> str:
        def fmt(value: Optional[float], digits: int = 3) -> str:
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

        g = self.geometry or {}
        lines = [
            "# Imagination vs. observation",
            "",
            f"- imagination: `{self.imagination}`; observed: `{self.observed}`",
            f"- {self.frames} frames, alignment `{self.align}` over {fmt(self.target_times_s[-1], 2)} s "
            f"(observed coverage {fmt(self.observed_coverage, 2)})",
            f"- mean object IoU {fmt(self.mean_object_iou)}, mean actor IoU {fmt(self.mean_actor_iou)}",
            f"- final placement IoU {fmt(self.placement_iou)}, centroid error {fmt(self.placement_centroid_error_px, 1)} px",
            f"- contact frame: imagined {self.contact_frame_imagined}, observed {self.contact_frame_observed if self.contact_frame_observed is not None else '-'}, "
            f"error {self.contact_frame_error if self.contact_frame_error is not None else '-'} frames "
            f"({fmt(self.contact_time_error_s, 2)} s)",
        ]
        if self.geometry is not None:
            lines.append(f"- 3D (camera optical frame, m): endpoint error {fmt(g.get('endpoint_error_m'), 4)}, "
                         f"contact point error {fmt(g.get('contact_point_error_m'), 4)}, "
                         f"mean object path error {fmt(g.get('mean_path_error_m'), 4)}")
        lines += [f"- note: {note}" for note in self.notes]
        lines += ["", "| frame | t (s) | object IoU | actor IoU |", "|---|---|---|---|"]
        for index in range(self.frames):
            actor = self.actor_iou[index] if self.actor_iou is not None else None
            lines.append(f"| {index} | {self.target_times_s[index]:.2f} | {self.object_iou[index]:.3f} | {fmt(actor)} |")
        return "\n".join(lines) + "\n"

    def side_by_side(self, max_frames: int = 8, tile_width: int = 160) -> np.ndarray:
        """uint8 [2 * tile_h, k * tile_w, 3] RGB: imagined masks (top row) over observed (bottom row),
        on the observed camera frames when the bag has them."""
        imagined_actor, imagined_object, observed_actor, observed_object, backgrounds = self._panels
        columns = np.linspace(0, self.frames - 1, min(max_frames, self.frames)).round().astype(int)
        height, width = imagined_object.shape[1:]
        tile_height = max(1, round(height * tile_width / width))
        rows = []
        for label, actor, obj in (("imagined", imagined_actor, imagined_object), ("observed", observed_actor, observed_object)):
            tiles = []
            for index in columns:
                tile = overlay_masks(backgrounds[index], obj[index], None if actor is None else actor[index], alpha=0.6)
                tile = cv2.resize(tile, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
                cv2.putText(tile, f"{label} {index}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
                tiles.append(tile)
            rows.append(np.concatenate(tiles, axis=1))
        return np.concatenate(rows, axis=0)

    def write(self, folder: Path | str, stem: str = "compare_report") -> tuple[Path, Path, Path]:
        """`<stem>.json`, `<stem>.md` and `<stem>.png` in `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, markdown_path, png_path = (folder / f"{stem}{suffix}" for suffix in (".json", ".md", ".png"))
        json_path.write_text(json.dumps(_finite(self.to_dict()), indent=2, allow_nan=False))
        markdown_path.write_text(self.to_markdown())
        cv2.imwrite(str(png_path), cv2.cvtColor(self.side_by_side(), cv2.COLOR_RGB2BGR))
        return json_path, markdown_path, png_path


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN -> None, NumPy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _geometry_scores(imagination: Imagination, observed_actor: Optional[np.ndarray], observed_object: np.ndarray,
                     observed: ObservedSequence, dilate_px: int) -> dict:
    """3D scores with one support plane, fitted to the observed depth around the observed first-frame object."""
    exclude = None if observed_actor is None else dilate(observed_actor[0], dilate_px)
    plane = fit_support_plane(observed.depth_m, observed.camera, observed_object[0], exclude_mask=exclude)
    imagined = interaction_geometry(imagination.actor_masks, imagination.object_masks, observed.depth_m, observed.camera,
                                    dilate_px=dilate_px, plane=plane)
    actual = interaction_geometry(observed_actor, observed_object, observed.depth_m, observed.camera,
                                  dilate_px=dilate_px, plane=plane)

    def distance(a: np.ndarray, b: np.ndarray, valid: bool) -> Optional[float]:
        return float(np.linalg.norm(a - b)) if valid else None

    both = imagined.object_path_valid & actual.object_path_valid
    return {
        "support_plane_valid": plane.valid,
        "support_plane_reason": plane.reason,
        "endpoint_error_m": distance(imagined.placement_point, actual.placement_point,
                                     imagined.placement_point_valid and actual.placement_point_valid),
        "contact_point_error_m": distance(imagined.contact_point, actual.contact_point,
                                          imagined.contact_point_valid and actual.contact_point_valid),
        "mean_path_error_m": float(np.linalg.norm(imagined.object_path[both] - actual.object_path[both], axis=1).mean())
        if both.any() else None,
        "path_frames_compared": int(both.sum()),
        "imagined": imagined.to_dict(),
        "observed": actual.to_dict(),
    }


def compare(imagination: Imagination, observed: ObservedSequence, *, align: str = "span",
            dilate_px: int = DEFAULT_DILATE_PX, observed_source: str = "") -> Comparison:
    """Score `imagination` against `observed` (module doc)."""
    frames, height, width = imagination.object_masks.shape
    if imagination.actor_masks.shape != imagination.object_masks.shape:
        raise ValueError(f"imagination.actor_masks: expected shape {imagination.object_masks.shape} like object_masks, "
                         f"got {imagination.actor_masks.shape}")
    if observed.object_masks.shape[1:] != (height, width):
        raise ValueError(f"observed object masks: expected the imagination's pixel grid ({height}, {width}), got "
                         f"{observed.object_masks.shape[1:]}; both must be in the camera image's pixel grid")
    notes = []
    start = observed.object_stamps_ns[0] if imagination.stamp_ns is None else imagination.stamp_ns
    if start < observed.object_stamps_ns[0]:
        notes.append(f"the observation starts {(observed.object_stamps_ns[0] - start) / _NS:.3f} s after the imagination's input")
        start = int(observed.object_stamps_ns[0])
    end = int(observed.object_stamps_ns[-1])
    if end < start:
        raise ValueError(f"observed: every object mask is stamped before the imagination's input ({start} ns)")
    targets = target_times(start, end, frames, imagination.fps, align)
    span = targets[-1] - targets[0]
    coverage = 1.0 if span == 0 else float(min(1.0, (end - targets[0]) / span))

    def resample(masks: np.ndarray, stamps: np.ndarray) -> tuple[np.ndarray, list[int]]:
        index = nearest_frames(stamps, targets)
        return masks[index], [int(i) for i in index]

    observed_object, object_index = resample(observed.object_masks, observed.object_stamps_ns)
    used = {"object": object_index}
    observed_actor = None
    if observed.actor_masks is not None:
        if observed.actor_masks.shape[1:] != (height, width):
            raise ValueError(f"observed actor masks: expected ({height}, {width}), got {observed.actor_masks.shape[1:]}")
        observed_actor, used["actor"] = resample(observed.actor_masks, observed.actor_stamps_ns)
    if observed.images is not None and observed.images.shape[1:3] == (height, width):
        backgrounds, used["image"] = resample(observed.images, observed.image_stamps_ns)
        backgrounds = (backgrounds * 0.6).astype(np.uint8)  # dimmed so the masks stand out
    else:
        backgrounds = np.zeros((frames, height, width, 3), np.uint8)

    object_iou = metrics_trajectory.per_frame_iou(imagination.object_masks, observed_object)
    actor_iou = None if observed_actor is None else metrics_trajectory.per_frame_iou(imagination.actor_masks, observed_actor)
    placement = metrics_trajectory.placement_metrics(imagination.object_masks, observed_object[-1])

    imagined_contact = contact_frame(imagination.actor_masks, imagination.object_masks, dilate_px)
    observed_contact = None if observed_actor is None else contact_frame(observed_actor, observed_object, dilate_px)
    contact_error = None
    if observed_contact is not None and (imagined_contact >= 0) == (observed_contact >= 0):
        contact_error = imagined_contact - observed_contact if imagined_contact >= 0 else 0
    frame_interval_s = (span / _NS / (frames - 1)) if frames > 1 else 0.0
    if observed_actor is None:
        notes.append("the observed bag has no actor masks: no actor IoU or contact frame error")

    geometry = None
    if observed.depth_m is not None and observed.camera is not None:
        if observed.depth_m.shape != (height, width):
            notes.append(f"depth {observed.depth_m.shape} is not in the masks' pixel grid ({height}, {width}): no 3D scores")
        else:
            geometry = _geometry_scores(imagination, observed_actor, observed_object, observed, dilate_px)
    elif observed.depth_m is not None or observed.camera is not None:
        notes.append("3D scores need both depth and camera_info in the observed bag")

    return Comparison(
        imagination=imagination.source,
        observed=observed_source,
        align=align,
        frames=frames,
        target_times_s=[float((t - targets[0]) / _NS) for t in targets],
        observed_frames=used,
        observed_coverage=coverage,
        object_iou=[float(v) for v in object_iou],
        actor_iou=None if actor_iou is None else [float(v) for v in actor_iou],
        placement_iou=float(placement["placement_iou"]),
        placement_centroid_error_px=float(placement["centroid_error_px"]),
        contact_frame_imagined=int(imagined_contact),
        contact_frame_observed=observed_contact,
        contact_frame_error=contact_error,
        contact_time_error_s=None if contact_error is None else contact_error * frame_interval_s,
        geometry=geometry,
        notes=notes,
        _panels=(imagination.actor_masks, imagination.object_masks, observed_actor, observed_object, backgrounds),
    )


def compare_files(imagination: Path | str, observed_bag: Path | str, *, request: Optional[int] = None,
                  stamp_ns: Optional[int] = None, align: str = "span", dilate_px: int = DEFAULT_DILATE_PX,
                  **topics: Any) -> Comparison:
    """`compare` of an imagination file/bag and an observed bag (topics: `read_observed_bag` keywords)."""
    imagined = read_imagination(imagination, request=request, stamp_ns=stamp_ns)
    observed = read_observed_bag(observed_bag, depth_near_ns=imagined.stamp_ns, **topics)
    return compare(imagined, observed, align=align, dilate_px=dilate_px, observed_source=str(observed_bag))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mask2iv-compare",
        description="Score an imagination (node output bag or pipeline .npz) against the recorded bag of what then "
        "happened (tracked masks; optional depth + camera_info for 3D errors). Writes JSON, markdown and a PNG.")
    parser.add_argument("imagination", type=Path, help="output bag of the node (mask2iv-replay / ros2 bag record) or .npz")
    parser.add_argument("observed", type=Path, help="bag with the observed masks (and optionally images, depth, camera_info)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--request", type=int, default=None, help="which imagination of the bag (0-based, by stamp)")
    which.add_argument("--stamp-ns", type=int, default=None, help="the imagination whose input image has this stamp")
    parser.add_argument("--align", choices=ALIGN_MODES, default="span",
                        help="span: spread the imagined frames over the observed motion; fps: at the imagined frame rate")
    parser.add_argument("--dilate-px", type=int, default=DEFAULT_DILATE_PX, help="contact: actor-object gap in pixels")
    parser.add_argument("--object-topic", default=OBJECT_MASK_TOPIC)
    parser.add_argument("--actor-topic", default=ACTOR_MASK_TOPIC)
    parser.add_argument("--image-topic", default=IMAGE_TOPIC)
    parser.add_argument("--depth-topic", default=DEPTH_TOPIC)
    parser.add_argument("--camera-info-topic", default=CAMERA_INFO_TOPIC)
    parser.add_argument("--output-dir", type=Path, default=Path("compare_report"), help="where the report files go")
    parser.add_argument("--stem", default="compare_report", help="file name stem of the report files")
    args = parser.parse_args(argv)
    comparison = compare_files(
        args.imagination, args.observed, request=args.request, stamp_ns=args.stamp_ns, align=args.align,
        dilate_px=args.dilate_px, object_topic=args.object_topic, actor_topic=args.actor_topic,
        image_topic=args.image_topic, depth_topic=args.depth_topic, camera_info_topic=args.camera_info_topic)
    paths = comparison.write(args.output_dir, args.stem)
    print(comparison.to_markdown())
    print("report: " + " , ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
