"""What the loaded checkpoint accepts, so every request is checked before it is queued.

`capabilities_of(pipeline)` reads the pipeline once, at configure: its modes, whether it has a
video model, its frame count and sampling defaults, the pipeline's argument limits and the text
encoder's token limit. `ros/requests.py` checks goals and topic sets against it, so a request the
pipeline would refuse never waits behind a running goal.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Optional

from mask2iv_ros.ros.parameters import MODES, ImagineParameters
from mask2iv_ros.ros.prompt_limit import PromptLimit

# The pipeline's own defaults before checkpoints recorded theirs (model_index.json "sampling").
_FALLBACK_STEPS = 50
_FALLBACK_GUIDANCE = 7.5


@dataclass(frozen=True)
class ModelCapabilities:
    modes: tuple[str, ...] = MODES
    has_video_model: bool = True
    default_num_frames: int = 16
    # A per-frame image projection makes context tokens for exactly this many frames (else None).
    fixed_num_frames: Optional[int] = None
    default_num_inference_steps: int = _FALLBACK_STEPS
    default_guidance_scale: float = _FALLBACK_GUIDANCE
    max_num_frames: int = 128
    max_num_inference_steps: int = 1000
    max_guidance_scale: float = 100.0
    min_image_side: int = 8
    prompt_limit: Optional[PromptLimit] = None
    # pipeline(...) takes callback_on_trajectory (Mask2IVPipeline does; test stand-ins may not):
    # the node publishes the trajectory when stage 1 ends
    accepts_trajectory_callback: bool = False

    def check_parameters(self, params: ImagineParameters) -> None:
        """Raise ValueError naming a sampling parameter this checkpoint cannot run."""
        if params.num_frames and not 2 <= params.num_frames <= self.max_num_frames:
            raise ValueError(f"num_frames: expected 0 (the model's default) or an int in [2, {self.max_num_frames}], "
                             f"got {params.num_frames}")
        if self.fixed_num_frames is not None and params.num_frames not in (0, self.fixed_num_frames):
            raise ValueError(f"num_frames: this checkpoint only makes {self.fixed_num_frames} frames; expected 0 or "
                             f"{self.fixed_num_frames}, got {params.num_frames}")
        if params.num_inference_steps > self.max_num_inference_steps:
            raise ValueError(f"num_inference_steps: expected 0 (the checkpoint's default) or an int in "
                             f"[1, {self.max_num_inference_steps}], got {params.num_inference_steps}")
        if params.guidance_scale > self.max_guidance_scale:
            raise ValueError(f"guidance_scale: expected a negative number (the checkpoint's default) or one in "
                             f"[0, {self.max_guidance_scale:g}], got {params.guidance_scale:g}")


def _call_parameter(pipeline: Any, name: str) -> Optional[inspect.Parameter]:
    """The parameter `name` of `pipeline(...)` (an instance's __call__ or a plain function), or None."""
    try:
        return inspect.signature(pipeline).parameters.get(name)
    except (TypeError, ValueError):
        return None


def _call_default(pipeline: Any, name: str) -> Any:
    parameter = _call_parameter(pipeline, name)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def _sampling_default(pipeline: Any, config: Any, name: str, fallback: Any) -> Any:
    """The checkpoint's recorded default (config.sampling), else the pipeline's argument default."""
    sampling = getattr(config, "sampling", None)
    value = getattr(sampling, name, None) if sampling is not None else None
    if value is None:
        value = _call_default(pipeline, name)
    return fallback if value is None else value


def capabilities_of(pipeline: Any) -> ModelCapabilities:
    """Read a Mask2IVPipeline (or a stand-in with the same attributes) once."""
    from mask2iv_ros.pipeline import validation

    config = getattr(pipeline, "config", None)
    projection = getattr(pipeline, "image_projection", None)
    fixed_frames = getattr(getattr(projection, "config", None), "video_length", None)
    unets = [getattr(pipeline, name, None) for name in ("trajectory_unet_text", "trajectory_unet_position", "video_unet")]
    if not any(getattr(getattr(u, "config", None), "image_cross_attention", False) for u in unets if u is not None):
        fixed_frames = None  # the projection only matters to UNets that attend to image tokens
    return ModelCapabilities(
        modes=tuple(getattr(pipeline, "modes", MODES)),
        has_video_model=getattr(pipeline, "video_unet", True) is not None,
        default_num_frames=int(getattr(config, "num_frames", 16)),
        fixed_num_frames=fixed_frames,
        default_num_inference_steps=int(_sampling_default(pipeline, config, "num_inference_steps", _FALLBACK_STEPS)),
        default_guidance_scale=float(_sampling_default(pipeline, config, "guidance_scale", _FALLBACK_GUIDANCE)),
        max_num_frames=validation.MAX_FRAMES,
        max_num_inference_steps=validation.MAX_INFERENCE_STEPS,
        max_guidance_scale=validation.MAX_GUIDANCE_SCALE,
        prompt_limit=PromptLimit.of(getattr(pipeline, "text_encoder", None)),
        accepts_trajectory_callback=_call_parameter(pipeline, "callback_on_trajectory") is not None,
    )
