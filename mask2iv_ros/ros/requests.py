"""Turning ROS inputs (an Imagine goal, or a synchronized topic set) into a checked request.

All input checks the node makes happen here, before a request is queued, so a bad request is
answered at once with an error naming the field, and never occupies the model: message layout
(encoding, `data` length = height x step), size (`max_input_pixels`, at least 8 x 8), masks (not
empty, not covering the whole image), mode, prompt (present; within the text encoder's token
limit), sampling overrides (within what the checkpoint accepts: `ModelCapabilities`),
`timeout_s`, the number of hypotheses (`max_samples`) and depth + camera_info (layout, encoding,
the image's size, calibrated intrinsics). Each error carries a `cause` key (e.g.
"object_mask:empty") that the node uses to log each cause once.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from mask2iv_ros.geometry.camera import PinholeCamera
from mask2iv_ros.ros.capabilities import ModelCapabilities
from mask2iv_ros.ros.depth_image import camera_from_camera_info, depth_image_to_metres
from mask2iv_ros.ros.image_conversion import ImageConversionError, image_msg_to_mask, image_msg_to_rgb, is_empty
from mask2iv_ros.ros.parameters import MODES, ImagineParameters
from mask2iv_ros.ros.synchronizer import NANOSECONDS_PER_SECOND, stamp_to_ns


_MAX_SEED = 2**63 - 1  # the pipeline's (mask2iv_ros.pipeline.validation.MAX_SEED)


class InvalidInput(ValueError):
    """A request that cannot be run; the message names the field and the expected form."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


@dataclass
class ImagineRequest:
    """Everything one pipeline call needs, already checked and converted to NumPy."""

    request_id: str
    stamp: Any  # builtin_interfaces/Time of the input image
    frame_id: str
    image: np.ndarray  # uint8 [H, W, 3] RGB
    object_mask: np.ndarray  # bool [H, W]
    mode: str
    prompt: str
    placement_mask: Optional[np.ndarray]
    actor_mask: Optional[np.ndarray]
    num_frames: Optional[int]  # None = the model's default
    num_inference_steps: int  # the steps that run (an override or the checkpoint's default)
    guidance_scale: float  # likewise
    seed: int
    trajectory_only: bool
    timeout_s: float = 0.0  # seconds from acceptance until the goal is aborted; 0 = none
    # Sampling arguments set by the goal or a node parameter; the others are left to the
    # pipeline, which then uses the checkpoint's recorded defaults.
    sampling_overrides: dict[str, Any] = field(default_factory=dict)
    prompt_read: str = ""  # the part of the prompt the text encoder reads (differs when truncated)
    warnings: list[str] = field(default_factory=list)
    num_samples: int = 1  # hypotheses (one batch; seeds seed, seed + 1, ...)
    videos_for_all_samples: bool = False
    depth_m: Optional[np.ndarray] = None  # float32 [H, W] metres (NaN = none), the image's grid
    camera: Optional[PinholeCamera] = None  # with depth_m: the image's intrinsics

    def pipeline_kwargs(self) -> dict[str, Any]:
        return dict(
            image=self.image,
            object_mask=self.object_mask,
            prompt=self.prompt if self.mode == "text" else None,
            placement_mask=self.placement_mask if self.mode == "position" else None,
            actor_mask=self.actor_mask,
            num_frames=self.num_frames,
            seed=self.seed,
            trajectory_only=self.trajectory_only,
            **self.sampling_overrides,
            # only when asked for: pipeline stand-ins of one sample need not know these arguments
            **(dict(num_samples=self.num_samples, videos_for_all_samples=self.videos_for_all_samples)
               if self.num_samples > 1 else {}),
        )


def _check_layout(msg: Any, field_name: str, max_pixels: int) -> None:
    """`data` holds exactly height x step bytes, and the image is not above max_input_pixels."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if max_pixels > 0 and height * width > max_pixels:
        raise InvalidInput(
            f"{field_name}:too_large",
            f"{field_name}: {width} x {height} = {width * height} pixels is above the node's max_input_pixels "
            f"{max_pixels}; send a smaller (e.g. downscaled) image or raise max_input_pixels",
        )
    expected = height * step
    if len(msg.data) != expected:
        raise InvalidInput(
            f"{field_name}.data:size",
            f"{field_name}.data: expected height x step = {height} x {step} = {expected} bytes, got {len(msg.data)}",
        )


def _rgb(msg: Any, field_name: str) -> np.ndarray:
    try:
        return image_msg_to_rgb(msg, field_name)
    except ImageConversionError as error:
        raise InvalidInput(f"{error.field}:conversion", str(error)) from None


def _mask(msg: Any, field_name: str, image_shape: tuple[int, ...], max_pixels: int, *, object_like: bool = True) -> np.ndarray:
    """A mask the size of the image; `object_like` masks must be neither empty nor everything."""
    _check_layout(msg, field_name, max_pixels)
    try:
        mask = image_msg_to_mask(msg, field_name)
    except ImageConversionError as error:
        raise InvalidInput(f"{error.field}:conversion", str(error)) from None
    if mask.shape != tuple(image_shape):
        raise InvalidInput(
            f"{field_name}:size",
            f"{field_name}: expected a mask of height x width {image_shape[0]} x {image_shape[1]} matching image, "
            f"got {mask.shape[0]} x {mask.shape[1]}",
        )
    if object_like and not mask.any():
        raise InvalidInput(f"{field_name}:empty", f"{field_name}: the mask is empty; expected nonzero pixels on the object")
    if object_like and mask.all():
        raise InvalidInput(
            f"{field_name}:full",
            f"{field_name}: every pixel is set (the whole image); expected nonzero pixels on the object only and 0 elsewhere",
        )
    return mask


def check_input_age(stamp: Any, now_ns: int, max_input_age_s: float, field: str = "image.header.stamp") -> None:
    """Refuse inputs older than `max_input_age_s` on the node clock (<= 0 disables; stamp 0 = unset)."""
    stamp_ns = stamp_to_ns(stamp)
    if max_input_age_s <= 0 or stamp_ns == 0:
        return
    age_s = (now_ns - stamp_ns) / NANOSECONDS_PER_SECOND
    if age_s > max_input_age_s:
        raise InvalidInput(
            f"{field}:too_old",
            f"{field}: input is {age_s:.3f} s old, older than max_input_age_s {max_input_age_s:g} s",
        )


def _override(goal_value: float, parameter_value: float, goal_set: bool, parameter_set: bool) -> tuple[Any, str]:
    """(value, source) of a sampling setting: the goal's, else the node parameter's, else None."""
    if goal_set:
        return goal_value, "goal"
    if parameter_set:
        return parameter_value, "parameter"
    return None, "checkpoint"


def _sampling(num_frames: int, num_inference_steps: int, guidance_scale: float, params: ImagineParameters,
              caps: ModelCapabilities) -> tuple[Optional[int], int, float, dict[str, Any]]:
    """Resolve and check the sampling settings: (num_frames, steps, guidance, pipeline overrides)."""
    frames, source = _override(num_frames, params.num_frames, num_frames > 0, params.num_frames > 0)
    if frames is not None:
        where = "" if source == "goal" else " (the node's num_frames parameter)"
        if not 2 <= frames <= caps.max_num_frames:
            raise InvalidInput("num_frames:range", f"num_frames: expected an int in [2, {caps.max_num_frames}] "
                               f"(0 = the model's default){where}, got {frames}")
        if caps.fixed_num_frames is not None and frames != caps.fixed_num_frames:
            raise InvalidInput("num_frames:fixed", f"num_frames: this checkpoint's image projection makes tokens for "
                               f"{caps.fixed_num_frames} frames; expected {caps.fixed_num_frames} or 0{where}, got {frames}")
    steps, source = _override(num_inference_steps, params.num_inference_steps, num_inference_steps > 0,
                              params.num_inference_steps > 0)
    overrides: dict[str, Any] = {}
    if steps is not None:
        if steps > caps.max_num_inference_steps:
            where = "" if source == "goal" else " (the node's num_inference_steps parameter)"
            raise InvalidInput("num_inference_steps:range", f"num_inference_steps: expected an int in "
                               f"[1, {caps.max_num_inference_steps}] (0 = the node's default){where}, got {steps}")
        overrides["num_inference_steps"] = int(steps)
    guidance, source = _override(guidance_scale, params.guidance_scale, guidance_scale > 0, params.guidance_scale >= 0)
    if guidance is not None:
        if not (math.isfinite(guidance) and guidance <= caps.max_guidance_scale):
            where = "" if source == "goal" else " (the node's guidance_scale parameter)"
            raise InvalidInput("guidance_scale:range", f"guidance_scale: expected a number in "
                               f"(0, {caps.max_guidance_scale:g}] (0 = the node's default){where}, got {guidance}")
        overrides["guidance_scale"] = float(guidance)
    if params.video_background != "checkpoint":  # only when set: test stand-ins need not know it
        overrides["video_background"] = params.video_background
    if params.trajectory_votes > 0:  # likewise
        overrides["trajectory_votes"] = params.trajectory_votes
    return (frames, int(overrides.get("num_inference_steps", caps.default_num_inference_steps)),
            float(overrides.get("guidance_scale", caps.default_guidance_scale)), overrides)


def _prompt(prompt: str, prompt_source: str, params: ImagineParameters, caps: ModelCapabilities) -> tuple[str, list[str]]:
    """(the part the text encoder reads, warnings); refuses an over-long prompt if so configured."""
    if caps.prompt_limit is None:
        return prompt, []
    fit = caps.prompt_limit.check(prompt)
    if not fit.truncated:
        return prompt, []
    if params.prompt_overflow == "refuse":
        raise InvalidInput(
            "prompt:too_long",
            f"{prompt_source}: {fit.tokens} tokens, longer than the text encoder's limit of {fit.max_tokens} tokens "
            "(start/end tokens included); shorten the action description",
        )
    return fit.read_text, [
        f"prompt: {fit.tokens} tokens, longer than the text encoder's limit of {fit.max_tokens} tokens; "
        f"the model read only {fit.read_text!r}"
    ]


def _num_samples(num_samples: int, params: ImagineParameters) -> int:
    """0 or 1 = one hypothesis; at most the node's max_samples."""
    if num_samples < 0:
        raise InvalidInput("num_samples:range", f"num_samples: expected an int >= 0 (0 or 1 = one hypothesis), "
                           f"got {num_samples}")
    if num_samples > params.max_samples:
        raise InvalidInput("num_samples:too_many",
                           f"num_samples: {num_samples} hypotheses is above the node's max_samples limit of "
                           f"{params.max_samples}; ask for at most {params.max_samples} (or raise max_samples)")
    return max(1, int(num_samples))


def _depth(depth_msg: Any, camera_info_msg: Any, image_shape: tuple[int, ...],
           max_pixels: int) -> tuple[Optional[np.ndarray], Optional[PinholeCamera]]:
    """(depth in metres, camera) of a goal's / topic set's depth, or (None, None) without one."""
    if depth_msg is None or is_empty(depth_msg):
        return None, None
    _check_layout(depth_msg, "depth", max_pixels)
    if (int(depth_msg.height), int(depth_msg.width)) != tuple(image_shape):
        raise InvalidInput("depth:size", f"depth: expected the image's pixel grid, height x width {image_shape[0]} x "
                           f"{image_shape[1]}, got {depth_msg.height} x {depth_msg.width}")
    try:
        depth_m = depth_image_to_metres(depth_msg, "depth")
    except ImageConversionError as error:
        raise InvalidInput(f"{error.field}:conversion", str(error)) from None
    if camera_info_msg is None or not np.any(np.asarray(camera_info_msg.k, dtype=np.float64)):
        raise InvalidInput("camera_info:missing", "camera_info: depth was given without the image's camera_info; "
                           "expected a sensor_msgs/CameraInfo with the intrinsics k (all zero = none)")
    try:
        camera = camera_from_camera_info(camera_info_msg, "camera_info")
    except ValueError as error:
        raise InvalidInput(f"{str(error).split(':', 1)[0]}:invalid", str(error)) from None
    try:
        camera.check_image_size(*image_shape, field="image")
    except ValueError as error:
        raise InvalidInput("camera_info:size", str(error)) from None
    return depth_m, camera


def build_request(
    *,
    request_id: str,
    image_msg: Any,
    object_mask_msg: Any,
    mode: str,
    prompt: str,
    placement_mask_msg: Any = None,
    actor_mask_msg: Any = None,
    params: ImagineParameters,
    capabilities: ModelCapabilities,
    now_ns: int,
    num_frames: int = 0,
    num_inference_steps: int = 0,
    guidance_scale: float = 0.0,
    seed: int = -1,
    trajectory_only: bool = False,
    timeout_s: float = 0.0,
    prompt_source: str = "prompt",
    num_samples: int = 0,
    videos_for_all_samples: bool = False,
    depth_msg: Any = None,
    camera_info_msg: Any = None,
) -> ImagineRequest:
    """Check and convert one request; overrides <= 0 (seed < 0) fall back to `params`.

    `prompt_source` names where a missing prompt should come from in the error (goal field or topic).
    """
    caps = capabilities
    mode = mode or params.mode
    if mode not in MODES:
        raise InvalidInput("mode:unknown", f"mode: expected one of {list(MODES)} or empty, got {mode!r}")
    if mode not in caps.modes:
        raise InvalidInput(
            "mode:unavailable",
            f"mode: {mode!r} is not available in this checkpoint, which supports {list(caps.modes)}",
        )
    if not (math.isfinite(timeout_s) and timeout_s >= 0):
        raise InvalidInput("timeout_s:range", f"timeout_s: expected seconds >= 0 (0 = no deadline), got {timeout_s}")
    if not trajectory_only and not caps.has_video_model:
        raise InvalidInput("trajectory_only:no_video_model",
                           "trajectory_only: this checkpoint has no video model; set trajectory_only to true")
    frames, steps, guidance, overrides = _sampling(num_frames, num_inference_steps, guidance_scale, params, caps)
    samples = _num_samples(num_samples, params)

    if image_msg is None or is_empty(image_msg):
        raise InvalidInput("image:missing", "image: expected a camera image, got an empty one (width or height 0)")
    _check_layout(image_msg, "image", params.max_input_pixels)
    if min(int(image_msg.height), int(image_msg.width)) < caps.min_image_side:
        raise InvalidInput("image:too_small", f"image: expected at least {caps.min_image_side} x {caps.min_image_side} "
                           f"pixels, got {image_msg.width} x {image_msg.height}")
    check_input_age(image_msg.header.stamp, now_ns, params.max_input_age_s)
    image = _rgb(image_msg, "image")
    if object_mask_msg is None or is_empty(object_mask_msg):
        raise InvalidInput("object_mask:missing", "object_mask: expected a mask of the object, got an empty image")
    object_mask = _mask(object_mask_msg, "object_mask", image.shape[:2], params.max_input_pixels)

    placement_mask = None
    prompt = (prompt or "").strip()
    prompt_read, warnings = prompt, []
    if mode == "text":
        if not prompt:
            raise InvalidInput("prompt:missing", f"{prompt_source}: mode 'text' needs an action description, got none")
        prompt_read, warnings = _prompt(prompt, prompt_source, params, caps)
    else:
        if placement_mask_msg is None or is_empty(placement_mask_msg):
            raise InvalidInput(
                "placement_mask:missing", "placement_mask: mode 'position' needs a target placement mask, got none"
            )
        placement_mask = _mask(placement_mask_msg, "placement_mask", image.shape[:2], params.max_input_pixels)

    # Unlike the object mask, an all-zero actor mask is valid: no actor visible in the first frame.
    actor_mask = None
    if actor_mask_msg is not None and not is_empty(actor_mask_msg):
        actor_mask = _mask(actor_mask_msg, "actor_mask", image.shape[:2], params.max_input_pixels, object_like=False)

    depth_m, camera = _depth(depth_msg, camera_info_msg, image.shape[:2], params.max_input_pixels)

    if seed < 0:
        seed = params.seed if params.seed >= 0 else secrets.randbelow(2**31)
    if seed > _MAX_SEED - samples + 1:
        raise InvalidInput("seed:range", f"seed: {samples} hypotheses use seeds seed .. seed + {samples - 1}; expected "
                           f"seed <= {_MAX_SEED - samples + 1}, got {seed}")
    return ImagineRequest(
        request_id=request_id,
        stamp=image_msg.header.stamp,
        frame_id=image_msg.header.frame_id,
        image=image,
        object_mask=object_mask,
        mode=mode,
        prompt=prompt,
        placement_mask=placement_mask,
        actor_mask=actor_mask,
        num_frames=frames,
        num_inference_steps=steps,
        guidance_scale=guidance,
        seed=int(seed),
        trajectory_only=trajectory_only,
        timeout_s=float(timeout_s),
        sampling_overrides=overrides,
        prompt_read=prompt_read,
        warnings=warnings,
        num_samples=samples,
        videos_for_all_samples=bool(videos_for_all_samples),
        depth_m=depth_m,
        camera=camera,
    )
