"""Pictures of a demo run: per request a GIF and a contact sheet of what the node imagined.

Reads the input bag (camera image, object mask, ground truth) and the recorded output bag
(ImaginedRollout messages) with rosbags only, so it also works on bags from a robot.
Panels, left to right: input image with the object mask | imagined mask trajectory (masks over
the input) | imagined video (laid over the input in the imagined region) | ground truth (when the
bag has it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from mask2iv_ros.eval.bag_io import (IMAGE_TOPIC, OBJECT_MASK_TOPIC, package_typestore, read_bag,
                                     read_input_bag)
from mask2iv_ros.masks import overlay_masks
from mask2iv_ros.pipeline.preview import save_gif
from mask2iv_ros.pipeline.resize import paste_frames_into_image
from mask2iv_ros.ros.image_conversion import image_msg_to_mask, image_msg_to_rgb, trajectory_masks

ROLLOUT_TOPIC = "/imagination/rollout"
TRAJECTORY_TOPIC = "/imagination/mask_trajectory"
DEFAULT_DEMO_STEPS = 25
PANEL_SIZE = 192  # pixels per panel side in the previews: the model works at 64x64


def _recorded_sampling(model: Path) -> dict:
    """model_index.json's ``config.sampling`` ({} when the folder has none)."""
    index = Path(model) / "model_index.json"
    if not index.is_file():
        return {}
    return json.loads(index.read_text()).get("config", {}).get("sampling") or {}


def default_steps(model: Path) -> int:
    """Denoising steps the checkpoint records (model_index.json config.sampling), else the model
    card's demo steps (model_card.json), else 25."""
    steps = _recorded_sampling(model).get("num_inference_steps")
    if steps:
        return int(steps)
    card = Path(model) / "model_card.json"
    if card.is_file():
        return int(json.loads(card.read_text()).get("demo_num_inference_steps", DEFAULT_DEMO_STEPS))
    return DEFAULT_DEMO_STEPS


def requested_steps(model: Path, steps: int | None = None) -> tuple[int, str]:
    """The steps the demo asks the node for and how it describes them: ``steps`` when given;
    else 0 (the checkpoint's own per-stage defaults) for a folder that records its sampling
    (``config.sampling``: the video stage may have its own ``video_num_inference_steps``), else
    :func:`default_steps`, sent explicitly."""
    if steps:
        return steps, f"{steps} denoising steps per stage"
    sampling = _recorded_sampling(model)
    if not sampling.get("num_inference_steps"):
        steps = default_steps(model)
        return steps, f"{steps} denoising steps per stage"
    trajectory = int(sampling["num_inference_steps"])
    video = int(sampling.get("video_num_inference_steps") or trajectory)
    return 0, (f"{trajectory} denoising steps per stage" if video == trajectory else
               f"{trajectory} denoising steps for the mask trajectory, {video} for the video")


def _upscale(frames: np.ndarray) -> np.ndarray:
    """Nearest-neighbour upscale so 64-px frames stay crisp in a GIF viewer."""
    return np.stack([cv2.resize(np.ascontiguousarray(f), (PANEL_SIZE, PANEL_SIZE), interpolation=cv2.INTER_NEAREST)
                     for f in frames])


def _label(frames: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(frames.copy())
    for frame in out:
        cv2.putText(frame, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def rollout_panels(image: np.ndarray, object_mask: np.ndarray, rollout: Any,
                   ground_truth: Optional[Any] = None, trajectory: Any = None) -> np.ndarray:
    """uint8 [T, S, k*S, 3] side-by-side frames of one rollout (S = PANEL_SIZE). `trajectory`: its
    MaskTrajectory from the trajectory topic (the rollout topic's has no images); default the rollout's."""
    trajectory = rollout.mask_trajectory if trajectory is None else trajectory
    actor, obj = trajectory_masks(trajectory)
    frames = len(obj)
    still = np.repeat(image[None], frames, 0)
    panels = [_label(_upscale(overlay_masks(still, np.repeat(object_mask[None], frames, 0))), "input + object"),
              _label(_upscale(overlay_masks(still, obj, actor)), "imagined masks")]
    if len(rollout.video_frames):
        video = np.stack([image_msg_to_rgb(m, "video_frames") for m in rollout.video_frames])
        # the video covers imagined_region of the camera image, at model resolution
        region = trajectory.imagined_region
        box = (region.x_offset, region.y_offset, region.width, region.height)
        panels.append(_label(_upscale(paste_frames_into_image(video, box, image)), "imagined video"))
    if ground_truth is not None:
        steps = np.linspace(0, len(ground_truth.object_masks) - 1, frames).round().astype(int)
        gt = overlay_masks(still, ground_truth.object_masks[steps], ground_truth.actor_masks[steps])
        panels.append(_label(_upscale(gt), "ground truth masks"))
    return np.concatenate(panels, axis=2)


def contact_sheet(panels: np.ndarray, max_rows: int = 8) -> np.ndarray:
    """Frames of `panels` stacked vertically (at most `max_rows`, evenly spaced)."""
    rows = np.linspace(0, len(panels) - 1, min(max_rows, len(panels))).round().astype(int)
    return np.concatenate([panels[r] for r in rows], axis=0)


def write_previews(bag: Path, output_bag: Path, out_dir: Path, planner_result: Any = None) -> list[Path]:
    """GIF + contact-sheet PNG per answered request (and for the planner's action result)."""
    typestore = package_typestore()
    sets, ground_truth = read_input_bag(bag, typestore)
    recorded = read_bag(output_bag, typestore)

    def by_stamp(messages: list) -> dict[int, Any]:
        return {m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec: m for m in messages}

    rollouts = by_stamp(recorded.get(ROLLOUT_TOPIC, []))
    trajectories = by_stamp(recorded.get(TRAJECTORY_TOPIC, []))
    out_dir = Path(out_dir)
    written: list[Path] = []
    first_input = None
    for number, input_set in enumerate(s for s in sets if s.is_request):
        by_topic = {m.topic: typestore.deserialize_cdr(m.raw, m.msgtype) for m in input_set.messages}
        image = image_msg_to_rgb(by_topic[IMAGE_TOPIC], "image")
        object_mask = image_msg_to_mask(by_topic[OBJECT_MASK_TOPIC], "object_mask")
        first_input = first_input or (image, object_mask, ground_truth.get(input_set.stamp_ns))
        rollout = rollouts.get(input_set.stamp_ns)
        if rollout is None:
            continue
        panels = rollout_panels(image, object_mask, rollout, ground_truth.get(input_set.stamp_ns),
                                trajectories.get(input_set.stamp_ns))
        written += _write(panels, out_dir / f"request_{number:02d}_{rollout.mode}", rollout.fps)
    if planner_result is not None and first_input is not None and planner_result.status == "succeeded":
        panels = rollout_panels(*first_input[:2], planner_result.rollout, first_input[2])
        written += _write(panels, out_dir / "planner_action_text", planner_result.rollout.fps)
    return written


def _write(panels: np.ndarray, stem: Path, fps: float) -> list[Path]:
    gif, png = stem.with_suffix(".gif"), stem.with_name(stem.name + "_contact_sheet.png")
    save_gif(panels, gif, fps=max(float(fps), 1.0))
    cv2.imwrite(str(png), cv2.cvtColor(contact_sheet(panels), cv2.COLOR_RGB2BGR))
    return [gif, png]
