"""Frame-level fidelity metrics between a generated and a reference video: PSNR and SSIM.

Videos follow the package convention (uint8 ``[T, H, W, 3]`` RGB); float arrays/tensors in
``[0, 1]`` are accepted too. Both metrics are computed per frame and averaged over frames, as is
usual for video-generation papers (Mask2IV Table 1/2).
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

VideoLike = Union[np.ndarray, torch.Tensor]

# SSIM constants of Wang et al. 2004 (the standard used by skimage/torchmetrics).
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def video_to_unit_float(video: VideoLike, name: str = "video") -> torch.Tensor:
    """Return a float64 tensor ``[T, 3, H, W]`` in ``[0, 1]`` from a ``[T, H, W, 3]`` video.

    uint8 inputs are divided by 255; float inputs must already be in ``[0, 1]``.
    """
    tensor = torch.as_tensor(video)
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"{name}: expected a video of shape [T, H, W, 3], got {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        tensor = tensor.to(torch.float64) / 255.0
    elif tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
        if tensor.numel() and (tensor.min() < 0.0 or tensor.max() > 1.0):
            raise ValueError(f"{name}: float videos must lie in [0, 1]")
    else:
        raise ValueError(f"{name}: expected dtype uint8 or float in [0, 1], got {tensor.dtype}")
    return tensor.permute(0, 3, 1, 2).contiguous()


def _paired(generated: VideoLike, reference: VideoLike) -> tuple[torch.Tensor, torch.Tensor]:
    gen = video_to_unit_float(generated, "generated")
    ref = video_to_unit_float(reference, "reference")
    if gen.shape != ref.shape:
        raise ValueError(
            f"generated: expected the reference's shape {tuple(ref.permute(0, 2, 3, 1).shape)}, "
            f"got {tuple(gen.permute(0, 2, 3, 1).shape)}")
    return gen, ref


def psnr_per_frame(generated: VideoLike, reference: VideoLike) -> torch.Tensor:
    """PSNR in dB of every frame (peak = 255 for uint8 = 1.0 in unit scale); inf where equal."""
    gen, ref = _paired(generated, reference)
    mse = (gen - ref).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)  # mse == 0 -> +inf, intended


def psnr(generated: VideoLike, reference: VideoLike) -> float:
    """Mean per-frame PSNR (dB) of a video pair; ``inf`` when every frame is identical."""
    return float(psnr_per_frame(generated, reference).mean())


def gaussian_window(size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2-D gaussian window ``[size, size]`` (float64)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(coords ** 2) / (2.0 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_per_frame(generated: VideoLike, reference: VideoLike,
                   window_size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """SSIM of every frame (Wang et al. 2004: gaussian window 11, sigma 1.5, K1 .01, K2 .03).

    Statistics are computed per colour channel over the 'valid' region (no padding), then
    averaged over channels and pixels.
    """
    gen, ref = _paired(generated, reference)
    height, width = gen.shape[-2:]
    if height < window_size or width < window_size:
        raise ValueError(f"generated: SSIM needs frames of at least {window_size}x{window_size}, "
                         f"got {height}x{width}")
    channels = gen.shape[1]
    window = gaussian_window(window_size, sigma).to(gen.device)
    window = window.expand(channels, 1, window_size, window_size)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)

    c1 = (SSIM_K1 * 1.0) ** 2  # data range 1.0 in unit scale
    c2 = (SSIM_K2 * 1.0) ** 2
    mu_x, mu_y = blur(gen), blur(ref)
    var_x = blur(gen * gen) - mu_x ** 2
    var_y = blur(ref * ref) - mu_y ** 2
    cov = blur(gen * ref) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


def ssim(generated: VideoLike, reference: VideoLike) -> float:
    """Mean per-frame SSIM of a video pair (1.0 for identical videos)."""
    return float(ssim_per_frame(generated, reference).mean())


def finite_mean(values) -> float:
    """Mean of the finite values (PSNR of identical frames is inf).

    ``inf`` when every value is ``+inf`` (all identical), ``nan`` when there is nothing else.
    """
    values = [float(v) for v in values]
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        return sum(finite) / len(finite)
    return math.inf if values and all(v == math.inf for v in values) else float("nan")
