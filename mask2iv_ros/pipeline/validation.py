"""Argument checks of :class:`~mask2iv_ros.pipeline.Mask2IVPipeline` with clear errors.

Every error is a :class:`Mask2IVInputError` (a ``ValueError``) whose message starts with the
argument name and states the expected form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Sequence

import numpy as np

MAX_FRAMES = 128
MAX_INFERENCE_STEPS = 1000
MAX_GUIDANCE_SCALE = 100.0
MAX_SAMPLES = 64          # hypotheses per call (one batch through the UNet)
MAX_TRAJECTORY_VOTES = 16  # stage-1 samples voted into one hypothesis (hypotheses.py)
MAX_SEED = 2**63 - 1


class Mask2IVInputError(ValueError):
    """Bad input to the pipeline; the message names the argument and the expected form."""


@dataclass(frozen=True)
class PipelineInputs:
    """Validated, normalised inputs (masks bool, image uint8, mode resolved)."""

    image: np.ndarray                 # uint8 [H, W, 3]
    object_mask: np.ndarray           # bool [H, W]
    actor_mask: np.ndarray | None     # bool [H, W]
    placement_mask: np.ndarray | None  # bool [H, W]
    prompt: str | None
    mode: str                          # "text" | "position"


def _type_name(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def check_image(image: Any) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB (float in [0, 1] is accepted and converted)."""
    if not isinstance(image, np.ndarray):
        raise Mask2IVInputError(f"image: expected a numpy uint8 array [H, W, 3] (RGB), got "
                                f"{_type_name(image)}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise Mask2IVInputError(f"image: expected shape [H, W, 3] (RGB, 3 channels), got "
                                f"{image.shape}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise Mask2IVInputError(f"image: expected at least 8x8 pixels, got {image.shape[:2]}")
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise Mask2IVInputError("image: contains NaN or infinite values")
        if image.min() < 0.0 or image.max() > 1.0:
            raise Mask2IVInputError(f"image: float images must be in [0, 1], got range "
                                    f"[{image.min():.3g}, {image.max():.3g}]; pass uint8 for [0, 255]")
        return np.round(image * 255.0).astype(np.uint8)
    raise Mask2IVInputError(f"image: expected dtype uint8 (or float in [0, 1]), got {image.dtype}")


def check_mask(name: str, mask: Any, shape: Sequence[int], allow_empty: bool = False) -> np.ndarray:
    """bool/integer (non-zero = inside) or float (> 0.5 = inside) ``[H, W]`` -> bool."""
    if not isinstance(mask, np.ndarray):
        raise Mask2IVInputError(f"{name}: expected a numpy bool/uint8 array [H, W], got "
                                f"{_type_name(mask)}")
    if mask.shape != tuple(shape):
        raise Mask2IVInputError(f"{name}: expected a 2-D mask of shape {tuple(shape)} matching "
                                f"image, got {mask.shape}")
    if mask.dtype == bool:
        result = mask
    elif np.issubdtype(mask.dtype, np.integer):
        result = mask != 0
    elif np.issubdtype(mask.dtype, np.floating):
        if not np.isfinite(mask).all():
            raise Mask2IVInputError(f"{name}: contains NaN or infinite values")
        result = mask > 0.5
    else:
        raise Mask2IVInputError(f"{name}: expected dtype bool, integer or float, got {mask.dtype}")
    if not allow_empty and not result.any():
        raise Mask2IVInputError(f"{name}: the mask is empty; expected at least one pixel set")
    return result


def check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
        raise Mask2IVInputError(f"{name}: expected an int in [{low}, {high}], got {value!r}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or not low <= value <= high:
        raise Mask2IVInputError(f"{name}: expected a finite number in [{low}, {high}], got {value!r}")
    return float(value)


def check_seed(seed: Any, num_samples: int = 1) -> int | None:
    """``num_samples`` hypotheses use seeds ``seed .. seed + num_samples - 1``: all must fit."""
    if seed is None:
        return None
    return check_int("seed", seed, 0, MAX_SEED - num_samples + 1)


def check_inputs(image: Any, object_mask: Any, prompt: Any, placement_mask: Any,
                 actor_mask: Any, modes: Sequence[str]) -> PipelineInputs:
    """Validate the per-call data inputs and pick the trajectory mode."""
    image = check_image(image)
    shape = image.shape[:2]
    object_mask = check_mask("object_mask", object_mask, shape)
    if actor_mask is not None:
        actor_mask = check_mask("actor_mask", actor_mask, shape, allow_empty=True)
    if prompt is not None and placement_mask is not None:
        raise Mask2IVInputError("prompt/placement_mask: expected exactly one of them (text or "
                                "position conditioning), got both")
    if prompt is None and placement_mask is None:
        raise Mask2IVInputError("prompt/placement_mask: expected exactly one of them (text or "
                                "position conditioning), got neither")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise Mask2IVInputError(f"prompt: expected a non-empty string, got {prompt!r}")
        mode = "text"
    else:
        placement_mask = check_mask("placement_mask", placement_mask, shape)
        mode = "position"
    if mode not in modes:
        argument = "prompt" if mode == "text" else "placement_mask"
        other = {"text": "placement_mask", "position": "prompt"}[mode]
        hint = f"; pass {other} instead" if modes else ""
        raise Mask2IVInputError(f"{argument}: this checkpoint has no {mode}-conditioned trajectory "
                                f"model (available modes: {tuple(modes)}){hint}")
    return PipelineInputs(image=image, object_mask=object_mask, actor_mask=actor_mask,
                          placement_mask=placement_mask, prompt=prompt, mode=mode)
