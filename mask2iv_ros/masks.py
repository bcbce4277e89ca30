"""Colour coding of actor/object masks (the paper's "mask-based interaction trajectory").

The VAE needs 3-channel input, so binary masks are painted with one colour per role
(:data:`DEFAULT_PALETTE`: background black, object red, actor green). Where actor and object
overlap, the object wins. Decoding snaps every pixel to the nearest palette colour, which
tolerates the colour drift, blur and brightness changes a VAE round trip introduces. A palette's
``snap_weights`` scale each colour's squared distance before the nearest is chosen: a VAE whose
decoder spreads a role over the blurred edges around it (decoded regions too large) is corrected
by a weight > 1 for that role (the embedded default records weights calibrated on its training
episodes; 1, 1, 1 = plain nearest colour). A palette's ``vote_kernel`` k > 1 then gives every
pixel the label most frequent in its k x k neighbourhood of the same frame (ties keep the pixel's
own label): a decoder's edge noise leaves single pixels of the wrong role along a blurred
boundary, and the vote straightens it (1 = off, every released palette).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np

RGB = tuple[int, int, int]

# Label values returned by :func:`palette_labels`.
BACKGROUND, OBJECT, ACTOR = 0, 1, 2


def _check_rgb(name: str, value: Any) -> RGB:
    color = tuple(int(v) for v in value)
    if len(color) != 3 or any(not 0 <= v <= 255 for v in color):
        raise ValueError(f"MaskPalette.{name}: expected 3 ints in [0, 255], got {value!r}")
    return color  # type: ignore[return-value]


@dataclass(frozen=True)
class MaskPalette:
    """RGB colours of the three mask roles (uint8 values)."""

    background: RGB = (0, 0, 0)
    object: RGB = (255, 0, 0)
    actor: RGB = (0, 255, 0)
    # (background, object, actor): each colour's squared distance is multiplied by its weight
    # when decoded pixels are snapped (palette_labels); > 1 makes that role rarer
    snap_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # odd k >= 1: after snapping, each pixel takes the majority label of its k x k window
    vote_kernel: int = 1

    def __post_init__(self) -> None:
        for name in ("background", "object", "actor"):
            object.__setattr__(self, name, _check_rgb(name, getattr(self, name)))
        if len({self.background, self.object, self.actor}) != 3:
            raise ValueError(f"MaskPalette: the three colours must differ, got {self}")
        weights = self.snap_weights
        try:
            weights = tuple(float(w) for w in weights)
        except (TypeError, ValueError):
            weights = ()
        if len(weights) != 3 or not all(math.isfinite(w) and w > 0 for w in weights):
            raise ValueError("MaskPalette.snap_weights: expected 3 positive numbers (background, "
                             f"object, actor), got {self.snap_weights!r}")
        object.__setattr__(self, "snap_weights", weights)
        kernel = self.vote_kernel
        if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)) or kernel < 1 \
                or kernel % 2 == 0:
            raise ValueError("MaskPalette.vote_kernel: expected an odd int >= 1 (1 = no vote), "
                             f"got {kernel!r}")
        object.__setattr__(self, "vote_kernel", int(kernel))

    def colors(self) -> np.ndarray:
        """``[3, 3]`` uint8 array indexed by label (BACKGROUND, OBJECT, ACTOR)."""
        return np.array([self.background, self.object, self.actor], dtype=np.uint8)

    def to_dict(self) -> dict[str, list]:
        data: dict[str, list] = {"background": list(self.background), "object": list(self.object),
                                 "actor": list(self.actor)}
        if self.snap_weights != (1.0, 1.0, 1.0):  # folders without the key snap to the nearest
            data["snap_weights"] = list(self.snap_weights)
        if self.vote_kernel != 1:
            data["vote_kernel"] = self.vote_kernel
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MaskPalette":
        unknown = sorted(set(data) - {"background", "object", "actor", "snap_weights", "vote_kernel"})
        if unknown:
            raise ValueError(f"MaskPalette.from_dict: unknown keys {unknown}")
        return cls(**{k: v if k == "vote_kernel" else tuple(v) for k, v in data.items()})


DEFAULT_PALETTE = MaskPalette()


def _as_bool_mask(name: str, mask: Any, ndim: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D mask, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def labels_to_rgb(labels: np.ndarray, palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """Paint an integer label map (0 background, 1 object, 2 actor) with the palette."""
    return palette.colors()[labels]


def _encode(object_masks: np.ndarray, actor_masks: np.ndarray | None,
            palette: MaskPalette) -> np.ndarray:
    labels = np.zeros(object_masks.shape, dtype=np.uint8)
    if actor_masks is not None:
        labels[actor_masks] = ACTOR
    labels[object_masks] = OBJECT  # painted last: the object wins where both overlap
    return labels_to_rgb(labels, palette)


def encode_masks(object_mask: Any, actor_mask: Any = None,
                 palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """Colour-code one frame: bool ``[H, W]`` masks -> uint8 ``[H, W, 3]``."""
    return _encode(*_object_and_actor(object_mask, actor_mask, "object_mask", "actor_mask", 2), palette)


def encode_mask_video(object_masks: Any, actor_masks: Any = None,
                      palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """Colour-code a mask video: bool ``[T, H, W]`` masks -> uint8 ``[T, H, W, 3]``."""
    return _encode(*_object_and_actor(object_masks, actor_masks, "object_masks", "actor_masks", 3), palette)


def _object_and_actor(object_mask: Any, actor_mask: Any, object_name: str, actor_name: str,
                      ndim: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Both masks as bool arrays of ``ndim`` dims; the actor's (optional) must match in shape."""
    object_mask = _as_bool_mask(object_name, object_mask, ndim)
    if actor_mask is not None:
        actor_mask = _as_bool_mask(actor_name, actor_mask, ndim)
        if actor_mask.shape != object_mask.shape:
            raise ValueError(f"{actor_name}: expected shape {object_mask.shape} matching "
                             f"{object_name}, got {actor_mask.shape}")
    return object_mask, actor_mask


def palette_labels(rgb: Any, palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """Label of the nearest palette colour for each pixel of ``[..., 3]`` RGB (squared
    distances scaled by ``palette.snap_weights``), then the majority vote of
    ``palette.vote_kernel`` over each ``[H, W]`` frame.

    ``rgb`` is uint8 in [0, 255] or float in [0, 1] (values outside the range, as a VAE
    decoder produces, are fine). Returns uint8 labels ``[...]`` (BACKGROUND/OBJECT/ACTOR).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb: expected [H, W, 3] or [T, H, W, 3], got shape {rgb.shape}")
    if np.issubdtype(rgb.dtype, np.floating):
        pixels = rgb.astype(np.float32) * 255.0
    elif rgb.dtype == np.uint8:
        pixels = rgb.astype(np.float32)
    else:
        raise ValueError(f"rgb: expected uint8 [0, 255] or float [0, 1], got dtype {rgb.dtype}")
    colors = palette.colors().astype(np.float32)
    # Squared distance to each of the 3 colours, one colour at a time to keep memory at
    # ~1 float per pixel per colour instead of a [..., 3, 3] broadcast.
    distances = [((pixels - c) ** 2).sum(axis=-1) for c in colors]
    # weight 1 (every released palette) costs no pass over the frames
    distances = np.stack([d if w == 1.0 else d * np.float32(w)
                          for d, w in zip(distances, palette.snap_weights)], axis=-1)
    labels = distances.argmin(axis=-1).astype(np.uint8)
    return majority_vote(labels, palette.vote_kernel)


def majority_vote(labels: np.ndarray, kernel: int) -> np.ndarray:
    """Each pixel of the label maps ``[..., H, W]`` (values 0-2) takes the label most frequent in
    its ``kernel`` x ``kernel`` window (borders replicated); a tie keeps the pixel's own label."""
    if kernel == 1:
        return labels
    if labels.ndim < 2:
        raise ValueError(f"labels: expected [..., H, W] label maps, got shape {labels.shape}")
    frames = labels.reshape(-1, *labels.shape[-2:])
    voted = np.empty_like(frames)
    for index, frame in enumerate(frames):
        own = np.stack([frame == label for label in (BACKGROUND, OBJECT, ACTOR)], axis=-1)
        own = own.astype(np.float32)
        votes = cv2.boxFilter(own, -1, (kernel, kernel), normalize=False,
                              borderType=cv2.BORDER_REPLICATE)
        # the own label's half vote breaks ties without outvoting a true majority
        voted[index] = (votes + 0.5 * own).argmax(axis=-1)
    return voted.reshape(labels.shape)


def snap_to_palette(rgb: Any, palette: MaskPalette = DEFAULT_PALETTE) -> np.ndarray:
    """Replace each pixel by its nearest palette colour (uint8, same shape as ``rgb``)."""
    return labels_to_rgb(palette_labels(rgb, palette), palette)


def decode_mask_video(rgb: Any, palette: MaskPalette = DEFAULT_PALETTE
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Colour-coded ``[T, H, W, 3]`` (or ``[H, W, 3]``) -> ``(actor_masks, object_masks)`` bool."""
    labels = palette_labels(rgb, palette)
    return labels == ACTOR, labels == OBJECT


def overlay_masks(image: Any, object_mask: Any = None, actor_mask: Any = None,
                  palette: MaskPalette = DEFAULT_PALETTE, alpha: float = 0.45,
                  contours: bool = True) -> np.ndarray:
    """Blend palette-coloured masks onto an image (or video) for visualisation.

    ``image`` uint8 ``[H, W, 3]`` or ``[T, H, W, 3]``; masks bool with the same leading shape
    (``[H, W]`` or ``[T, H, W]``). Mask regions are tinted with their palette colour and,
    with ``contours``, outlined so thin masks stay visible. Returns a new uint8 array.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(f"image: expected uint8 [H, W, 3] or [T, H, W, 3], got "
                         f"{image.dtype} {image.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a float in [0, 1], got {alpha}")
    out = image.astype(np.float32)
    layers = [(m, c) for m, c in ((actor_mask, palette.actor), (object_mask, palette.object))
              if m is not None]
    masks = []
    for mask, color in layers:
        mask = np.asarray(mask).astype(bool)
        if mask.shape != image.shape[:-1]:
            raise ValueError(f"overlay_masks: expected masks of shape {image.shape[:-1]} "
                             f"matching image, got {mask.shape}")
        out[mask] = (1.0 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
        masks.append((mask, color))
    # astype keeps a strided input's memory layout; OpenCV draws only into C-contiguous
    # frames (and the reshape below must be a view for the drawing to land in ``out``).
    out = np.ascontiguousarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    if contours:
        frames = out.reshape((-1,) + out.shape[-3:])
        for mask, color in masks:
            for frame, frame_mask in zip(frames, mask.reshape((-1,) + mask.shape[-2:])):
                found, _ = cv2.findContours(np.ascontiguousarray(frame_mask, dtype=np.uint8),
                                            cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(frame, found, -1, tuple(int(c) for c in color), 1)
        out = frames.reshape(out.shape)
    return out
