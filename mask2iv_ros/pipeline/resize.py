"""The one preprocessing of training and inference, and its inverse for the outputs.

The released Mask2IV (as DynamiCrafter) feeds frames through torchvision's
``Resize(min(H, W))`` + ``CenterCrop((H, W))``: the short side of the input is scaled to the
model's short side, then the centre ``H x W`` is cut out. Where the scaled input is narrower
than the model grid on an axis (e.g. a 640x480 BridgeData frame into 320x512: scaled to 426x320),
``CenterCrop`` pads that axis with zeros (black image, background mask) as torchvision does.
Training (:mod:`mask2iv_ros.data.dataset`) and the pipeline both call :func:`resize_center_crop`,
so inference sees what training saw.

Geometry (all integers, computed once by :func:`crop_geometry`):

- the input ``in_h x in_w`` is resized to ``resized_h x resized_w`` (torchvision's rule: short
  side = ``min(out_h, out_w)``, long side truncated);
- the model grid's pixel ``(r, c)`` shows resized pixel ``(r + top, c + left)``; negative
  ``top``/``left`` are padding (torchvision's ``(out - resized) // 2`` on the left/top), positive
  ones the crop offset (``round((resized - out) / 2)``, Python rounding as torchvision);
- :attr:`CropGeometry.window` is the part of the model grid that shows the input, and
  :attr:`CropGeometry.box` the input region it shows (``x_offset, y_offset, width, height``).

Outputs go back with :func:`paste_masks_into_frame`: the window's masks resized (nearest) to the
box and pasted at its offset; the rest of the input frame is background.

Interpolation: ``"nearest"`` for masks (torch's ``nearest``: source index
``floor(dst * in / out)`` in float32, as the release's mask transform) and ``"area"`` for images
(OpenCV INTER_AREA when shrinking, INTER_LINEAR when enlarging).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ..masks import DEFAULT_PALETTE, MaskPalette, encode_mask_video
from .validation import Mask2IVInputError

INTERPOLATIONS = ("area", "nearest")


class CropBox(NamedTuple):
    """A region of the input image in input pixels (as ``sensor_msgs/RegionOfInterest``)."""

    x_offset: int
    y_offset: int
    width: int
    height: int


@dataclass(frozen=True)
class CropGeometry:
    """How one input size maps onto one model grid (see the module docstring)."""

    in_h: int
    in_w: int
    out_h: int
    out_w: int
    resized_h: int
    resized_w: int
    top: int
    left: int

    @property
    def window(self) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)``: the model-grid rows/columns that show the input (not padding)."""
        return (max(0, -self.top), min(self.out_h, self.resized_h - self.top),
                max(0, -self.left), min(self.out_w, self.resized_w - self.left))

    @property
    def box(self) -> CropBox:
        """The input region the model grid shows, in input pixels."""
        y0, y1, x0, x1 = self.window
        top_in = _round((y0 + self.top) * self.in_h / self.resized_h)
        bottom_in = _round((y1 + self.top) * self.in_h / self.resized_h)
        left_in = _round((x0 + self.left) * self.in_w / self.resized_w)
        right_in = _round((x1 + self.left) * self.in_w / self.resized_w)
        return CropBox(left_in, top_in, right_in - left_in, bottom_in - top_in)

    @property
    def is_identity(self) -> bool:
        return (self.in_h, self.in_w) == (self.out_h, self.out_w)

    def visible(self, frames: np.ndarray) -> np.ndarray:
        """``[T, out_h, out_w, ...]`` -> the window ``[T, y1 - y0, x1 - x0, ...]`` (a view)."""
        y0, y1, x0, x1 = self.window
        return frames[:, y0:y1, x0:x1]


def _round(value: float) -> int:
    return int(math.floor(value + 0.5))


def crop_geometry(in_h: int, in_w: int, out_h: int, out_w: int) -> CropGeometry:
    """The geometry of ``Resize(min(out_h, out_w))`` + ``CenterCrop((out_h, out_w))``."""
    for name, value in (("in_h", in_h), ("in_w", in_w), ("out_h", out_h), ("out_w", out_w)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    in_h, in_w, out_h, out_w = int(in_h), int(in_w), int(out_h), int(out_w)
    short = min(out_h, out_w)
    # torchvision's _compute_resized_output_size: the long side is truncated, not rounded
    if in_h <= in_w:
        resized_h, resized_w = short, int(short * in_w / in_h)
    else:
        resized_h, resized_w = int(short * in_h / in_w), short
    return CropGeometry(in_h, in_w, out_h, out_w, resized_h, resized_w,
                        _crop_offset(resized_h, out_h), _crop_offset(resized_w, out_w))


def _crop_offset(size: int, crop: int) -> int:
    """torchvision's CenterCrop along one axis: pad (before) when the crop is larger, else crop."""
    if crop > size:
        return -((crop - size) // 2)
    return int(round((size - crop) / 2.0))


def center_crop_box(in_h: int, in_w: int, out_h: int, out_w: int) -> CropBox:
    """The region of an ``in_h x in_w`` input that a ``out_h x out_w`` model sees, in input pixels."""
    return crop_geometry(in_h, in_w, out_h, out_w).box


def _nearest_index(out_size: int, in_size: int) -> np.ndarray:
    """torch ``interpolate(mode="nearest")``'s source index of each output pixel (float32 scale)."""
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    scale = np.float32(in_size / out_size)
    index = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(index, in_size - 1)


def _gather(frames: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``frames[:, rows][:, :, cols]``; np.take is several times faster than fancy indexing."""
    return np.take(np.take(frames, rows, axis=1, mode="clip"), cols, axis=2, mode="clip")


def _check_frames(frames: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.ndim not in (3, 4) or 0 in frames.shape[:3]:
        shape = getattr(frames, "shape", type(frames).__name__)
        raise ValueError(f"{name}: expected a non-empty array [T, H, W] or [T, H, W, C], got {shape}")
    return frames


def resize_center_crop(frames: np.ndarray, out_h: int, out_w: int,
                       interpolation: str = "area") -> np.ndarray:
    """``[T, H, W(, C)]`` -> ``[T, out_h, out_w(, C)]``: short-side resize, centre crop (or pad).

    ``interpolation``: ``"area"`` for images, ``"nearest"`` for masks and label maps (any dtype,
    bool included). Same dtype out; padding is zero.
    """
    frames = _check_frames(frames, "frames")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation: expected one of {INTERPOLATIONS}, got {interpolation!r}")
    geometry = crop_geometry(frames.shape[1], frames.shape[2], out_h, out_w)
    if geometry.is_identity:
        return frames
    y0, y1, x0, x1 = geometry.window
    out = np.zeros((frames.shape[0], out_h, out_w) + frames.shape[3:], frames.dtype)
    if interpolation == "nearest":
        # gather only the kept pixels: rows/cols of the window -> resized -> input
        rows = _nearest_index(geometry.resized_h, geometry.in_h)[np.arange(y0, y1) + geometry.top]
        cols = _nearest_index(geometry.resized_w, geometry.in_w)[np.arange(x0, x1) + geometry.left]
        out[:, y0:y1, x0:x1] = _gather(frames, rows, cols)
        return out
    size = (geometry.resized_w, geometry.resized_h)
    shrinking = geometry.resized_h < geometry.in_h or geometry.resized_w < geometry.in_w
    mode = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    source = frames.astype(np.uint8) if frames.dtype == bool else frames
    ry0, rx0 = y0 + geometry.top, x0 + geometry.left
    for t, frame in enumerate(source):
        resized = cv2.resize(np.ascontiguousarray(frame), size, interpolation=mode)
        # reshape: OpenCV drops a trailing channel axis of size 1
        out[t, y0:y1, x0:x1] = resized.reshape(size[::-1] + frames.shape[3:])[
            ry0:ry0 + y1 - y0, rx0:rx0 + x1 - x0]
    return out


def mask_to_model_grid(name: str, mask: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """A conditioning mask bool ``[H, W]`` -> bool ``[out_h, out_w]`` (nearest, as training).

    A mask that lies entirely outside the region the model sees is an error naming ``name``. A
    mask inside it that is too thin to survive nearest sampling keeps every model pixel it
    touches, so an object the caller marked never silently disappears.
    """
    resized = resize_center_crop(mask[None], out_h, out_w, "nearest")[0]
    if resized.any() or not mask.any():
        return resized
    geometry = crop_geometry(mask.shape[0], mask.shape[1], out_h, out_w)
    box = geometry.box
    if not mask[box.y_offset:box.y_offset + box.height, box.x_offset:box.x_offset + box.width].any():
        raise Mask2IVInputError(
            f"{name}: no pixel of the mask lies in the region the model sees (x_offset="
            f"{box.x_offset}, y_offset={box.y_offset}, width={box.width}, height={box.height} of the "
            f"{mask.shape[1]}x{mask.shape[0]} image: the centre crop to the model's "
            f"{out_w}x{out_h} aspect); expected the object inside that region")
    coverage = resize_center_crop(mask[None].astype(np.float32), out_h, out_w, "area")[0]
    return coverage > 0


def paste_masks_into_frame(masks: np.ndarray, box: CropBox | tuple[int, int, int, int],
                           in_h: int, in_w: int) -> np.ndarray:
    """Model-grid masks of the visible window ``[T, h, w(, C)]`` -> ``[T, in_h, in_w(, C)]``.

    Each frame is resized (nearest) to the box and pasted at its offset; outside the box is zero
    (background). ``masks`` are the window :meth:`CropGeometry.visible` cuts out of the model
    grid (no padding), e.g. the arrays of a :class:`~mask2iv_ros.pipeline.Mask2IVOutput`.
    """
    masks = _check_frames(masks, "masks")
    x, y, width, height = (int(v) for v in box)
    if width < 1 or height < 1 or x < 0 or y < 0 or x + width > in_w or y + height > in_h:
        raise ValueError(f"box: expected (x_offset, y_offset, width, height) inside the {in_w}x{in_h} "
                         f"frame, got {tuple(box)}")
    out = np.zeros((masks.shape[0], in_h, in_w) + masks.shape[3:], masks.dtype)
    rows = _nearest_index(height, masks.shape[1])
    cols = _nearest_index(width, masks.shape[2])
    out[:, y:y + height, x:x + width] = _gather(masks, rows, cols)
    return out


class InputFrameMasks(NamedTuple):
    """A result's masks on the input image's pixel grid."""

    mask_trajectory: np.ndarray | None  # uint8 [T, H, W, 3], palette colours; None if not asked for
    actor_masks: np.ndarray      # bool [T, H, W]
    object_masks: np.ndarray     # bool [T, H, W]


def masks_in_input_frame(output, palette: MaskPalette = DEFAULT_PALETTE, colour: bool = True) -> InputFrameMasks:
    """The masks of a :class:`~mask2iv_ros.pipeline.Mask2IVOutput` pasted into the input frame.

    ``colour=False`` leaves ``mask_trajectory`` None: colour-coding camera-sized frames costs
    ~57 ms at 16 x 320 x 512 on this CPU, wasted when only the masks are sent.

    An output without ``input_region`` (made at the model's own size) is returned as it is.
    """
    region, size = getattr(output, "input_region", None), getattr(output, "input_size", None)
    actor, obj = output.actor_masks, output.object_masks
    if region is None or size is None:
        return InputFrameMasks(output.mask_trajectory, actor, obj)
    actor = paste_masks_into_frame(actor, region, *size)
    obj = paste_masks_into_frame(obj, region, *size)
    return InputFrameMasks(encode_mask_video(obj, actor, palette) if colour else None, actor, obj)


def paste_frames_into_image(frames: np.ndarray, box: CropBox | tuple[int, int, int, int],
                            image: np.ndarray) -> np.ndarray:
    """Model-resolution RGB frames ``[T, h, w, 3]`` laid over the input ``image`` at ``box``.

    For pictures (previews, overlays): each frame is resized (area/linear) to the box and pasted
    on a copy of ``image``; the rest shows the input.
    """
    frames = _check_frames(frames, "frames")
    x, y, width, height = (int(v) for v in box)
    in_h, in_w = image.shape[:2]
    if width < 1 or height < 1 or x < 0 or y < 0 or x + width > in_w or y + height > in_h:
        raise ValueError(f"box: expected (x_offset, y_offset, width, height) inside the {in_w}x{in_h} "
                         f"image, got {tuple(box)}")
    out = np.repeat(image[None], len(frames), axis=0)
    shrinking = height < frames.shape[1] or width < frames.shape[2]
    mode = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    for t, frame in enumerate(frames):
        out[t, y:y + height, x:x + width] = cv2.resize(np.ascontiguousarray(frame), (width, height),
                                                       interpolation=mode).reshape(
            (height, width) + frames.shape[3:])
    return out
