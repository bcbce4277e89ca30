"""Turning ROS inputs (an Imagine goal, or a synchronized topic set) into a checked request.

All input checks the node makes happen here, before a request is queued, so a bad request is
answered at once with an error naming the field, and never occupies the model. Each error carries
a `cause` key (e.g. "object_mask:empty") that the node uses to log each cause once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from mask2iv_ros.ros.image_conversion import ImageConversionError, image_msg_to_mask, image_msg_to_rgb, is_empty
from mask2iv_ros.ros.parameters import MODES, ImagineParameters
from mask2iv_ros.ros.synchronizer import NANOSECONDS_PER_SECOND, stamp_to_ns


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
    num_inference_steps: int
    guidance_scale: float
    seed: int
    trajectory_only: bool

    def pipeline_kwargs(self) -> dict[str, Any]:
        return dict(
            image=self.image,
            object_mask=self.object_mask,
            prompt=self.prompt if self.mode == "text" else None,
            placement_mask=self.placement_mask if self.mode == "position" else None,
            actor_mask=self.actor_mask,
            num_frames=self.num_frames,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            seed=self.seed,
            trajectory_only=self.trajectory_only,
        )


def _rgb(msg: Any, field: str) -> np.ndarray:
    try:
        return image_msg_to_rgb(msg, field)
    except ImageConversionError as error:
        raise InvalidInput(f"{error.field}:conversion", str(error)) from None


def _mask(msg: Any, field: str, image_shape: Sequence[int]) -> np.ndarray:
    try:
        mask = image_msg_to_mask(msg, field)
    except ImageConversionError as error:
        raise InvalidInput(f"{error.field}:conversion", str(error)) from None
    if mask.shape != tuple(image_shape):
        raise InvalidInput(
            f"{field}:size",
            f"{field}: expected a mask of height x width {image_shape[0]} x {image_shape[1]} matching image, "
            f"got {mask.shape[0]} x {mask.shape[1]}",
        )
    if not mask.any():
        raise InvalidInput(f"{field}:empty", f"{field}: the mask is empty; expected nonzero pixels on the object")
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
    available_modes: Sequence[str] = MODES,
    now_ns: int,
    num_frames: int = 0,
    num_inference_steps: int = 0,
    guidance_scale: float = 0.0,
    seed: int = -1,
    trajectory_only: bool = False,
    prompt_source: str = "prompt",
) -> ImagineRequest:
    """Check and convert one request; overrides <= 0 (seed < 0) fall back to `params`.

    `prompt_source` names where a missing prompt should come from in the error (goal field or topic).
    """
    mode = mode or params.mode
    if mode not in MODES:
        raise InvalidInput("mode:unknown", f"mode: expected one of {list(MODES)} or empty, got {mode!r}")
    if mode not in available_modes:
        raise InvalidInput(
            "mode:unavailable",
            f"mode: {mode!r} is not available in this checkpoint, which supports {list(available_modes)}",
        )
    if image_msg is None or is_empty(image_msg):
        raise InvalidInput("image:missing", "image: expected a camera image, got an empty one (width or height 0)")
    check_input_age(image_msg.header.stamp, now_ns, params.max_input_age_s)
    image = _rgb(image_msg, "image")
    if object_mask_msg is None or is_empty(object_mask_msg):
        raise InvalidInput("object_mask:missing", "object_mask: expected a mask of the object, got an empty image")
    object_mask = _mask(object_mask_msg, "object_mask", image.shape[:2])

    placement_mask = None
    if mode == "text":
        prompt = (prompt or "").strip()
        if not prompt:
            raise InvalidInput("prompt:missing", f"{prompt_source}: mode 'text' needs an action description, got none")
    else:
        prompt = (prompt or "").strip()
        if placement_mask_msg is None or is_empty(placement_mask_msg):
            raise InvalidInput(
                "placement_mask:missing", "placement_mask: mode 'position' needs a target placement mask, got none"
            )
        placement_mask = _mask(placement_mask_msg, "placement_mask", image.shape[:2])

    # Unlike the object mask, an all-zero actor mask is valid: no actor visible in the first frame.
    actor_mask = None
    if actor_mask_msg is not None and not is_empty(actor_mask_msg):
        try:
            actor_mask = image_msg_to_mask(actor_mask_msg, "actor_mask")
        except ImageConversionError as error:
            raise InvalidInput(f"{error.field}:conversion", str(error)) from None
        if actor_mask.shape != image.shape[:2]:
            raise InvalidInput(
                "actor_mask:size",
                f"actor_mask: expected height x width {image.shape[0]} x {image.shape[1]} matching image, "
                f"got {actor_mask.shape[0]} x {actor_mask.shape[1]}",
            )

    frames = num_frames if num_frames > 0 else params.num_frames
    if seed < 0:
        seed = params.seed if params.seed >= 0 else secrets.randbelow(2**31)
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
        num_frames=frames if frames > 0 else None,
        num_inference_steps=num_inference_steps if num_inference_steps > 0 else params.num_inference_steps,
        guidance_scale=guidance_scale if guidance_scale > 0 else params.guidance_scale,
        seed=int(seed),
        trajectory_only=trajectory_only,
    )
