"""All evaluation metrics in one import (Mask2IV Table 1/2 plus trajectory metrics).

- video fidelity: :func:`psnr`, :func:`ssim` (:mod:`.metrics_video`), :class:`LPIPS` from local
  weights (:mod:`.lpips`);
- distribution distance: :func:`fvd`, :func:`frechet_distance` with a pluggable feature
  extractor (:mod:`.fvd`);
- embedding alignment: :func:`v2v_similarity`, :func:`t2v_similarity` (:mod:`.similarity`);
- trajectories: :func:`trajectory_metrics` and its parts (:mod:`.metrics_trajectory`).
"""

from .fvd import (PixelStatsVideoFeatures, TorchScriptI3D, frechet_distance, fvd, fvd_from_features,
                  gaussian_statistics)
from .lpips import LPIPS, lpips_video
from .metrics_trajectory import (agreement_rate, centroid, direction_agreement, mask_iou,
                                 per_frame_iou, placement_metrics, trajectory_metrics)
from .metrics_video import finite_mean, psnr, psnr_per_frame, ssim, ssim_per_frame
from .prompt_direction import direction_vector, parse_prompt_direction
from .similarity import (FrameFeatureVideoEncoder, MiniLMTextEncoder, MotionCaptionVideoEncoder,
                         t2v_similarity, v2v_similarity)

__all__ = [
    "LPIPS", "FrameFeatureVideoEncoder", "MiniLMTextEncoder", "MotionCaptionVideoEncoder",
    "PixelStatsVideoFeatures", "TorchScriptI3D", "agreement_rate", "centroid", "direction_agreement",
    "direction_vector", "finite_mean", "frechet_distance", "fvd", "fvd_from_features",
    "gaussian_statistics", "lpips_video", "mask_iou", "parse_prompt_direction", "per_frame_iou",
    "placement_metrics", "psnr", "psnr_per_frame", "ssim", "ssim_per_frame", "t2v_similarity",
    "trajectory_metrics", "v2v_similarity",
]
