"""Networks of Mask2IV: the DynamiCrafter-compatible VideoUNet and its helpers.

The VAE and text encoder wrappers live in ``vae.py`` / ``text_encoder.py`` and are imported
from there (not here, to keep this import light).
"""

from .dynamicrafter import load_dynamicrafter_unet
from .official import load_mask2iv_unet
from .resampler import Resampler, ResamplerConfig
from .unet import VideoUNet, temporal_attention_parameters
from .unet_config import UNetConfig

__all__ = [
    "Resampler",
    "ResamplerConfig",
    "UNetConfig",
    "VideoUNet",
    "load_dynamicrafter_unet",
    "load_mask2iv_unet",
    "temporal_attention_parameters",
]
