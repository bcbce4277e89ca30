"""Held-out imagination cases and their scores, shared by the sampling sweep
(:mod:`mask2iv_ros.eval.bench_sampling`) and ``benchmarks/eval_embedded_quality.py``.

A case is one first frame + object mask (+ first-frame actor mask) with what each mode needs
(prompt for TT-Gen, placement mask for PT-Gen) and the ground-truth mask trajectory. Cases come
from the synthetic generator with a seed never used in training (the demo seed, 7777), at the
model's resolution, or from a user's input bag (``mask2iv-replay``'s layout, with
``/ground_truth/mask_trajectory``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .metrics_trajectory import per_frame_boundary_f, per_frame_iou, placement_metrics
from .metrics_video import psnr

DEMO_SEED = 7777
# Training sees 16 generated frames at 4 fps as 8 frames at 2 fps (every second frame).
SYNTHETIC_STRIDE = 2
MODE_TAGS = {"position": "PT", "text": "TT"}


@dataclass(eq=False)
class HeldOutCase:
    """Inputs of one imagination and its ground truth (masks ``[T, H, W]`` at the input size)."""

    name: str
    image: np.ndarray                       # uint8 [H, W, 3]
    object_mask: np.ndarray                 # bool [H, W]
    actor_masks: np.ndarray                 # ground truth, frame 0 = the first-frame actor mask
    object_masks: np.ndarray                # ground truth; the last one is the placement
    prompt: str = ""
    placement_mask: Optional[np.ndarray] = None
    actor_mask: Optional[np.ndarray] = None  # first-frame actor mask given to the model
    frames: Optional[np.ndarray] = None     # ground-truth video [T, H, W, 3] (PSNR), if known

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this case can run: PT-Gen with a placement mask, TT-Gen with a prompt."""
        return tuple(mode for mode, present in (("position", self.placement_mask is not None),
                                                ("text", bool(self.prompt))) if present)


def synthetic_cases(count: int, seed: int = DEMO_SEED, resolution: tuple[int, int] = (64, 64),
                    num_frames: int = 8, fps: float = 2.0, stride: int = SYNTHETIC_STRIDE,
                    prompt_variety: bool = False) -> list[HeldOutCase]:
    """``count`` generated episodes at ``resolution`` (H, W) with ``num_frames`` frames at ``fps``
    (drawn with ``num_frames * stride`` frames at ``fps * stride``, then every ``stride``-th kept,
    as training does). With the defaults these are eval_embedded_quality's episodes;
    ``prompt_variety`` gives the same scenes with paraphrased prompts."""
    from ..data.synthetic import SyntheticConfig, generate_episode

    if count < 1:
        raise ValueError(f"count: expected at least one episode, got {count}")
    config = SyntheticConfig(height=int(resolution[0]), width=int(resolution[1]),
                             num_frames=num_frames * stride, fps=fps * stride,
                             prompt_variety=prompt_variety)
    cases = []
    for index in range(count):
        clip = generate_episode(seed, index, config)
        actor, obj, frames = (clip.actor_masks[::stride], clip.object_masks[::stride],
                              clip.frames[::stride])
        cases.append(HeldOutCase(name=clip.episode_id, image=frames[0], object_mask=obj[0],
                                 actor_masks=actor, object_masks=obj, prompt=clip.prompt,
                                 placement_mask=obj[-1], actor_mask=actor[0], frames=frames))
    return cases


def bag_cases(path: str | Path, stride: int = 1) -> list[HeldOutCase]:
    """Every input set of an input bag that has an image, an object mask and ground truth.

    The ground-truth trajectory is sub-sampled with ``stride`` (a bag recorded at twice the
    model's frame rate: 2). Prompt (latest before the set) and placement mask decide the modes.
    """
    from ..ros.image_conversion import image_msg_to_mask, image_msg_to_rgb
    from .bag_io import (ACTOR_MASK_TOPIC, IMAGE_TOPIC, OBJECT_MASK_TOPIC, PLACEMENT_MASK_TOPIC,
                         PROMPT_TOPIC, package_typestore, read_input_bag)

    typestore = package_typestore()
    sets, ground_truth = read_input_bag(path, typestore)
    cases, prompt = [], ""
    for input_set in sets:
        by_topic = {}
        for message in input_set.messages:
            decoded = typestore.deserialize_cdr(message.raw, message.msgtype)
            if message.topic == PROMPT_TOPIC:
                prompt = decoded.data
            else:
                by_topic[message.topic] = decoded
        truth = ground_truth.get(input_set.stamp_ns)
        if not input_set.is_request or OBJECT_MASK_TOPIC not in by_topic or truth is None:
            continue

        def mask(topic: str) -> Optional[np.ndarray]:
            return image_msg_to_mask(by_topic[topic], topic.strip("/")) if topic in by_topic else None

        cases.append(HeldOutCase(
            name=f"{Path(path).name}#{input_set.index}", image=image_msg_to_rgb(by_topic[IMAGE_TOPIC]),
            object_mask=mask(OBJECT_MASK_TOPIC), actor_masks=truth.actor_masks[::stride],
            object_masks=truth.object_masks[::stride], prompt=prompt,
            placement_mask=mask(PLACEMENT_MASK_TOPIC), actor_mask=mask(ACTOR_MASK_TOPIC)))
    if not cases:
        raise ValueError(f"path: no input set with {IMAGE_TOPIC}, {OBJECT_MASK_TOPIC} and "
                         f"/ground_truth/mask_trajectory in {path}")
    return cases


def run_case(pipe: Any, case: HeldOutCase, mode: str, *, trajectory_only: bool = False,
             seed: int = 0, **call_kwargs: Any) -> tuple[Any, float]:
    """One pipeline call on ``case`` in ``mode``; returns (output, wall-clock seconds)."""
    if mode not in case.modes:
        raise ValueError(f"mode: case {case.name} has no input for {mode!r} (modes {case.modes})")
    condition = ({"placement_mask": case.placement_mask} if mode == "position"
                 else {"prompt": case.prompt})
    start = time.perf_counter()
    out = pipe(case.image, case.object_mask, actor_mask=case.actor_mask, seed=seed,
               trajectory_only=trajectory_only, **condition, **call_kwargs)
    return out, time.perf_counter() - start


def case_scores(out: Any, case: HeldOutCase) -> dict[str, float]:
    """Mask metrics over frames 1..T-1 (frame 0 is given): actor/object IoU and boundary F,
    final placement IoU, and the video PSNR when both the video and its ground truth exist.

    Frames are compared up to the shorter of prediction and ground truth (as mask2iv-replay's
    report does)."""
    frames = min(len(out.object_masks), len(case.object_masks))
    actor, obj = case.actor_masks[:frames], case.object_masks[:frames]
    pred_actor, pred_obj = out.actor_masks[:frames], out.object_masks[:frames]
    scores = {
        "actor IoU": float(per_frame_iou(pred_actor, actor)[1:].mean()),
        "object IoU": float(per_frame_iou(pred_obj, obj)[1:].mean()),
        "placement IoU": placement_metrics(pred_obj, obj[-1])["placement_iou"],
        "actor BF": float(per_frame_boundary_f(pred_actor, actor)[1:].mean()),
        "object BF": float(per_frame_boundary_f(pred_obj, obj)[1:].mean()),
    }
    if out.video is not None and case.frames is not None:
        scores["video PSNR (dB)"] = psnr(out.video[1:frames], case.frames[1:frames])
    return scores


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Column-wise mean of score dicts (columns in first-seen order)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: float(np.mean([row[name] for row in rows if name in row])) for name in names}
