"""Frechet Video Distance: the Frechet distance between Gaussians fitted to video features.

Two feature extractors:

- :class:`TorchScriptI3D` — the I3D network used by the FVD literature (StyleGAN-V /
  ``i3d_torchscript.pt``), loaded from a local TorchScript file the user already has. Only this
  one gives numbers comparable to published FVD (Mask2IV Table 1/2). A TorchScript archive holds
  code that runs on load, so pass only files you trust.
- :class:`PixelStatsVideoFeatures` — a fixed, weight-free descriptor (downsampled colour layout +
  temporal-difference energy) for tiny-scale A/B comparisons between our own variants. Its
  FVD is **not comparable** to the paper's; results computed with it are labelled
  ``fvd_pixelstats`` by :mod:`mask2iv_ros.eval.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .metrics_video import VideoLike, video_to_unit_float


class VideoFeatureExtractor(Protocol):
    name: str

    def __call__(self, videos: Sequence[VideoLike]) -> np.ndarray:
        """Features ``[N, D]`` (float64) for N uint8 videos ``[T, H, W, 3]``."""


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of features ``[N, D]`` (N >= 2)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features: expected an [N, D] array with N >= 2, got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between two Gaussians.

    ``Tr((S1 S2)^(1/2))`` is computed as ``Tr((S1^(1/2) S2 S1^(1/2))^(1/2))`` (the matrices are
    similar), i.e. the sum of square roots of the eigenvalues of a symmetric PSD matrix. This is
    the value the FID/FVD reference code gets from ``scipy.linalg.sqrtm``, without its trouble
    on the singular covariances that small evaluation sets give.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mu2: expected shape {mu1.shape} like mu1, got {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"sigma1/sigma2: expected [{mu1.shape[0]}, {mu1.shape[0]}] covariances, "
                         f"got {sigma1.shape} and {sigma2.shape}")
    diff = mu1 - mu2
    root1 = _psd_sqrt(sigma1)
    product = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    trace_covmean = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean
    return float(max(value, 0.0))  # tiny negative values are round-off


def fvd_from_features(real_features: np.ndarray, generated_features: np.ndarray) -> float:
    mu_r, sigma_r = gaussian_statistics(real_features)
    mu_g, sigma_g = gaussian_statistics(generated_features)
    return frechet_distance(mu_r, sigma_r, mu_g, sigma_g)


def fvd(real_videos: Sequence[VideoLike], generated_videos: Sequence[VideoLike],
        extractor: VideoFeatureExtractor) -> float:
    """FVD between two sets of videos (each set needs at least two videos)."""
    return fvd_from_features(extractor(real_videos), extractor(generated_videos))


class PixelStatsVideoFeatures:
    """Weight-free video descriptor for tiny-scale comparisons (NOT the paper's I3D FVD).

    Per video: the mean frame downsampled to ``grid x grid`` RGB (layout/colour), the last frame
    minus the first at the same size (where things moved), and the mean absolute temporal
    difference at the same size (how much moved). ``3 * 3 * grid**2`` dims (48 for grid 4):
    kept small so a covariance from a few dozen clips is not wildly rank-deficient.
    """

    name = "pixelstats"

    def __init__(self, grid: int = 4) -> None:
        self.grid = int(grid)

    def _one(self, video: VideoLike) -> np.ndarray:
        frames = video_to_unit_float(video).float()                          # [T, 3, H, W]
        small = F.adaptive_avg_pool2d(frames, self.grid)                     # [T, 3, g, g]
        motion = (frames[1:] - frames[:-1]).abs() if frames.shape[0] > 1 else torch.zeros_like(frames)
        parts = [small.mean(0), small[-1] - small[0], F.adaptive_avg_pool2d(motion, self.grid).mean(0)]
        return torch.cat([p.flatten() for p in parts]).double().numpy()

    def __call__(self, videos: Sequence[VideoLike]) -> np.ndarray:
        return np.stack([self._one(v) for v in videos])


class TorchScriptI3D:
    """I3D feature extractor from a local TorchScript file (the FVD reference network).

    The StyleGAN-V ``i3d_torchscript.pt`` is called as ``model(x, rescale=False, resize=False,
    return_features=True)`` on ``[N, 3, T, 224, 224]`` in ``[-1, 1]`` and returns 400-d features.
    Other TorchScript modules taking the same input and returning ``[N, D]`` work too.
    """

    name = "i3d"

    def __init__(self, path: Union[str, Path], device: Union[str, torch.device] = "cpu",
                 batch_size: int = 8, size: int = 224) -> None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"i3d_path: expected a local TorchScript file, got {str(path)!r} (not a file)")
        self.model = torch.jit.load(str(path), map_location=device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.size = size

    def _prepare(self, video: VideoLike) -> torch.Tensor:
        frames = video_to_unit_float(video).float()                          # [T, 3, H, W]
        frames = F.interpolate(frames, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (frames * 2 - 1).permute(1, 0, 2, 3)                          # [3, T, S, S]

    @torch.no_grad()
    def __call__(self, videos: Sequence[VideoLike]) -> np.ndarray:
        features = []
        for start in range(0, len(videos), self.batch_size):
            batch = torch.stack([self._prepare(v) for v in videos[start:start + self.batch_size]]).to(self.device)
            try:
                out = self.model(batch, rescale=False, resize=False, return_features=True)
            except RuntimeError:  # a plain module without the StyleGAN-V keyword arguments
                out = self.model(batch)
            features.append(out.double().cpu())
        return torch.cat(features).flatten(1).numpy()
