"""``model_index.json``'s ``"config"``: what the models work at, how they were trained and how they
are meant to be sampled.

```json
"config": {"resolution": [320, 512], "num_frames": 16, ...,
           "sampling": {"num_inference_steps": 50, "guidance_scale": 1.0, "eta": 1.0,
                        "guidance_rescale": 0.7, "dynamic_rescale": 0.7,
                        "scheduler": "SafeDDIMScheduler"},
           "training": {"condition_dropout": 0.0}}
```

:class:`SamplingDefaults` defaults are the released Mask2IV inference settings
(``run_bdv2_2stage.sh``: DDIM 50 steps, eta 1.0, no classifier-free guidance, guidance rescale
0.7, DynamiCrafter's dynamic rescale with base scale 0.7). ``condition_dropout`` is the
probability the checkpoint's conditions were dropped in training (None = unknown): guidance
needs it > 0. Folders written before these sections existed (top-level ``guidance_rescale``,
``eta``, ``dynamic_rescale``) load with the settings they were sampled with then.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

from ..masks import DEFAULT_PALETTE, MaskPalette
from .validation import MAX_GUIDANCE_SCALE, MAX_INFERENCE_STEPS, MAX_TRAJECTORY_VOTES

MODEL_INDEX = "model_index.json"
# Top-level keys of folders written before "sampling" existed, and what those folders were
# sampled with when a call did not say (the pipeline's former argument defaults).
# config.sampling.video_background (and the pipeline argument): the model's pixels everywhere, or
# composited onto the input image outside the moving regions (pipeline/background.py)
VIDEO_BACKGROUNDS = ("imagined", "input")
# config.sampling.stage2_masks: how the decoded stage-1 video becomes stage 2's mask condition.
# "channel_sign": each RGB channel set to +-1 by its sign (the release's inference_bdv2_2stage /
# inference_hoi4d_2stage: where(sample >= 0, 1, -1)); "palette": every pixel snapped to the
# nearest palette colour (with the palette's snap_weights), as the output masks are.
STAGE2_MASKS = ("channel_sign", "palette")
LEGACY_SAMPLING_KEYS = ("guidance_rescale", "eta", "dynamic_rescale")
LEGACY_SAMPLING = {"num_inference_steps": 50, "guidance_scale": 7.5, "eta": 0.0,
                   "guidance_rescale": 0.7, "dynamic_rescale": None, "stage2_masks": "palette"}


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"{name}: expected a finite number in [{low}, {high}], got {value!r}")
    return float(value)


def _steps(name: str, steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, Integral) \
            or not 1 <= steps <= MAX_INFERENCE_STEPS:
        raise ValueError(f"{name}: expected an int in [1, {MAX_INFERENCE_STEPS}], got {steps!r}")
    return int(steps)


@dataclass
class SamplingDefaults:
    """How a checkpoint is meant to be sampled; every pipeline call argument left None uses these."""

    num_inference_steps: int = 50
    guidance_scale: float = 1.0        # 1 = no classifier-free guidance
    eta: float = 1.0                   # DDIM eta (SafeDDIMScheduler keeps eta > 0 finite)
    guidance_rescale: float = 0.7      # Lin et al. 2023, as DynamiCrafter's sampler applies it
    # DynamiCrafter's use_dynamic_rescale base_scale: only for models trained with
    # x_start * s(t) (sampling.dynamic_rescale_schedule); None = off. DDIM only.
    dynamic_rescale: float | None = 0.7
    scheduler: str = "SafeDDIMScheduler"   # class name of the scheduler in scheduler/
    # "imagined": the video is the model's; "input": composited onto the input image outside the
    # moving regions (pipeline/background.py)
    video_background: str = "imagined"
    # the decoded trajectory as stage 2 sees it (STAGE2_MASKS): the release's per-channel sign
    stage2_masks: str = "channel_sign"
    # the video stage's own step count when its UNet was fine-tuned for another sampler than the
    # trajectory UNets (None = num_inference_steps); a call's num_inference_steps sets both stages
    video_num_inference_steps: int | None = None
    # stage-1 samples per hypothesis whose pixelwise majority is the trajectory (hypotheses.py);
    # 1 = the sample itself, as the release does
    trajectory_votes: int = 1

    def __post_init__(self) -> None:
        self.num_inference_steps = _steps("sampling.num_inference_steps", self.num_inference_steps)
        if self.video_num_inference_steps is not None:
            self.video_num_inference_steps = _steps("sampling.video_num_inference_steps",
                                                    self.video_num_inference_steps)
        self.guidance_scale = _number("sampling.guidance_scale", self.guidance_scale, 0.0,
                                      MAX_GUIDANCE_SCALE)
        self.eta = _number("sampling.eta", self.eta, 0.0, 1.0)
        self.guidance_rescale = _number("sampling.guidance_rescale", self.guidance_rescale, 0.0, 1.0)
        if self.dynamic_rescale is not None:
            self.dynamic_rescale = _number("sampling.dynamic_rescale", self.dynamic_rescale,
                                           1e-6, 1.0)
        if self.video_background not in VIDEO_BACKGROUNDS:
            raise ValueError(f"sampling.video_background: expected "
                             f"{' or '.join(map(repr, VIDEO_BACKGROUNDS))}, got {self.video_background!r}")
        if self.stage2_masks not in STAGE2_MASKS:
            raise ValueError(f"sampling.stage2_masks: expected "
                             f"{' or '.join(map(repr, STAGE2_MASKS))}, got {self.stage2_masks!r}")
        if isinstance(self.trajectory_votes, bool) or not isinstance(self.trajectory_votes, Integral) \
                or not 1 <= self.trajectory_votes <= MAX_TRAJECTORY_VOTES:
            raise ValueError(f"sampling.trajectory_votes: expected an int in [1, "
                             f"{MAX_TRAJECTORY_VOTES}], got {self.trajectory_votes!r}")
        self.trajectory_votes = int(self.trajectory_votes)
        if not isinstance(self.scheduler, str) or not self.scheduler:
            raise ValueError(f"sampling.scheduler: expected a scheduler class name, got "
                             f"{self.scheduler!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SamplingDefaults":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{MODEL_INDEX} config.sampling: unknown keys {unknown}, expected "
                             f"some of {sorted(known)}")
        return cls(**data)


def training_sampling_defaults(condition_dropout: float, dynamic_rescale: float | None = None,
                               scheduler: str = SamplingDefaults.scheduler) -> SamplingDefaults:
    """Defaults for a model this project trained with ``condition_dropout``: DynamiCrafter's
    sampler (50 steps, eta 1, guidance rescale 0.7) with its CFG 7.5 when conditions were
    dropped in training, none (1.0) when they never were."""
    return SamplingDefaults(num_inference_steps=50, eta=1.0, guidance_rescale=0.7,
                            guidance_scale=7.5 if condition_dropout > 0 else 1.0,
                            dynamic_rescale=dynamic_rescale, scheduler=scheduler)


@dataclass
class PipelineConfig:
    """Settings stored in ``model_index.json`` next to the components."""

    resolution: tuple[int, int] = (320, 512)   # (H, W) the models work at
    num_frames: int = 16
    fps: float = 8.0                           # playback rate of the generated frames
    fs: int | None = None                      # frame-rate condition; None = each UNet's default_fs
    palette: MaskPalette = DEFAULT_PALETTE
    model_id: str = "mask2iv"
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    # Probability the conditions were dropped in training (classifier-free guidance needs > 0);
    # None = unknown. Written as "training": {"condition_dropout": ...}.
    condition_dropout: float | None = None

    def __post_init__(self) -> None:
        self.resolution = tuple(int(v) for v in self.resolution)  # type: ignore[assignment]
        if isinstance(self.palette, dict):
            self.palette = MaskPalette.from_dict(self.palette)
        if isinstance(self.sampling, dict):
            self.sampling = SamplingDefaults.from_dict(self.sampling)
        if len(self.resolution) != 2 or min(self.resolution) < 8:
            raise ValueError(f"resolution: expected (H, W) >= 8, got {self.resolution}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames: expected >= 2, got {self.num_frames}")
        if not isinstance(self.sampling, SamplingDefaults):
            raise ValueError(f"sampling: expected SamplingDefaults, got "
                             f"{type(self.sampling).__name__}")
        if self.sampling.stage2_masks == "channel_sign" and any(
                value not in (0, 255) for color in self.palette.colors() for value in color):
            raise ValueError(f"sampling.stage2_masks: 'channel_sign' needs palette colours made of "
                             f"0 and 255 per channel (the released black / red / green), got "
                             f"{self.palette.to_dict()}; record 'palette' for this palette")
        if self.condition_dropout is not None:
            self.condition_dropout = _number("training.condition_dropout",
                                             self.condition_dropout, 0.0, 1.0)

    def with_trained_component(self, condition_dropout: float) -> "PipelineConfig":
        """This config after a model trained with ``condition_dropout`` joined the folder: its
        guidance is only as safe as its least dropout-trained model (0 turns guidance off)."""
        recorded = self.condition_dropout
        dropout = condition_dropout if recorded is None else min(recorded, condition_dropout)
        sampling = self.sampling if dropout > 0 else \
            dataclasses.replace(self.sampling, guidance_scale=1.0)
        return dataclasses.replace(self, condition_dropout=dropout, sampling=sampling)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["resolution"] = list(self.resolution)
        data["palette"] = self.palette.to_dict()
        data["training"] = {"condition_dropout": data.pop("condition_dropout")}
        if data["sampling"]["video_num_inference_steps"] is None:  # folders stay as they were
            del data["sampling"]["video_num_inference_steps"]
        if data["sampling"]["trajectory_votes"] == 1:  # likewise
            del data["sampling"]["trajectory_votes"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], scheduler: str | None = None) -> "PipelineConfig":
        """``scheduler``: the folder's scheduler class name (``components.scheduler``), for
        folders without a ``sampling`` section."""
        data = dict(data)
        training = data.pop("training", {})
        if not isinstance(training, dict) or set(training) - {"condition_dropout"}:
            raise ValueError(f"{MODEL_INDEX} config.training: expected {{\"condition_dropout\": "
                             f"probability or null}}, got {training!r}")
        legacy = {key: data.pop(key) for key in LEGACY_SAMPLING_KEYS if key in data}
        if legacy and "sampling" in data:
            raise ValueError(f"{MODEL_INDEX} config: {sorted(legacy)} belong in config.sampling "
                             "(the old top-level keys), got both")
        if "sampling" not in data:  # a folder written before the section existed
            data["sampling"] = {**LEGACY_SAMPLING, **legacy,
                                "scheduler": scheduler or SamplingDefaults.scheduler}
        known = {f.name for f in dataclasses.fields(cls)} - {"condition_dropout"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{MODEL_INDEX} config: unknown keys {unknown}")
        return cls(**data, condition_dropout=training.get("condition_dropout"))
