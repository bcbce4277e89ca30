"""Builds the networks and the noise schedule of a training run from its config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import torch
from diffusers import AutoencoderKL, DDPMScheduler
from torch import nn

from mask2iv_ros.models import dynamicrafter
from mask2iv_ros.models.controlnet import ControlledVideoUNet, VideoControlNet
from mask2iv_ros.models.image_encoder import (CLIPVisionEncoder, ImageEncoder,
                                              OpenCLIPImageEncoder, load_image_encoder)
from mask2iv_ros.models.resampler import Resampler, ResamplerConfig
from mask2iv_ros.models.text_embeddings import PrecomputedTextEncoder
from mask2iv_ros.models.text_encoder import (CLIPTextEncoder, MiniLMTextEncoder,
                                             OpenCLIPTextEncoder, TextEncoder, load_text_encoder)
from mask2iv_ros.models.unet import VideoUNet, temporal_attention_parameters
from mask2iv_ros.models.unet_config import UNetConfig
from mask2iv_ros.models.vae import VideoVAE, sd21_vae_config, tiny_vae_config
from mask2iv_ros.models.weights import module_from_state_dict

from .config import DiffusionConfig, ImageEncoderConfig, ModelConfig, TextEncoderConfig, VAEConfig

logger = logging.getLogger(__name__)
# Tensors of DynamiCrafter's image cross-attention inside the UNet (key suffixes); the only ones
# ``model.init_from`` may leave unused, and only by a UNet built without image cross-attention.
IMAGE_ATTENTION_SUFFIXES = (".to_k_ip.weight", ".to_v_ip.weight", ".alpha")


class CheckpointReader:
    """Reads each local DynamiCrafter checkpoint once while a run's networks are built (the UNet,
    Resampler and image encoder of ``model.init_from`` come from one file); drop it afterwards."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[str, dict[str, torch.Tensor]]] = {}

    def components(self, path: str, key: str) -> dict[str, dict[str, torch.Tensor]]:
        """``{component: state dict without prefix}`` of the file (dynamicrafter.split_components);
        ``key`` is the config key that named the file (for errors)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"{key}: no DynamiCrafter checkpoint file at {path}")
        if path not in self._parts:
            self._parts[path] = dynamicrafter.split_components(dynamicrafter.read_checkpoint(path))
        return self._parts[path]


def check_state_dict(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                     key: str, source: str, what: str) -> None:
    """Strict match of ``state`` against a module's ``expected`` state dict: same names, same
    shapes; the error names the config ``key``, the file and a few offending tensors."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{key}: {source} does not match the {what}: {len(missing)} tensors "
                         f"missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. "
                         f"{unexpected[:3]}); does the model config match the checkpoint?")
    for name, value in expected.items():
        if state[name].shape != value.shape:
            raise ValueError(f"{key}: {name} has shape {tuple(state[name].shape)} in {source}, "
                             f"the {what} expects {tuple(value.shape)}")

def build_vae(cfg: VAEConfig) -> VideoVAE:
    """A diffusers AutoencoderKL folder, a DynamiCrafter checkpoint file (its first_stage_model),
    or a randomly initialised preset when ``path`` is null."""
    if cfg.path and Path(cfg.path).is_file():
        state = dynamicrafter.split_components(dynamicrafter.read_checkpoint(cfg.path))["vae"]
        if not state:
            raise ValueError(f"model.vae.path: no {dynamicrafter.VAE_PREFIX!r} keys in {cfg.path}")
        autoencoder = AutoencoderKL(**dynamicrafter.DYNAMICRAFTER_VAE_CONFIG)
        autoencoder.load_state_dict(dynamicrafter.convert_vae_state_dict(state), strict=True)
        return VideoVAE(autoencoder, chunk_size=cfg.chunk_size)
    if cfg.path:
        if not Path(cfg.path).is_dir():
            raise FileNotFoundError(f"model.vae.path: {cfg.path} is neither a diffusers "
                                    "AutoencoderKL folder nor a DynamiCrafter checkpoint file")
        return VideoVAE.from_pretrained(cfg.path, chunk_size=cfg.chunk_size)
    preset = sd21_vae_config() if cfg.preset == "sd21" else tiny_vae_config()
    logger.warning("model.vae.path is null: using a randomly initialised %r VAE", cfg.preset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return VideoVAE.from_config(preset, chunk_size=cfg.chunk_size)


def build_text_encoder(cfg: TextEncoderConfig) -> TextEncoder:
    if cfg.type == "folder":
        if not cfg.path:
            raise ValueError("model.text_encoder.path: expected a text-encoder component folder "
                             "for type 'folder', got null")
        return load_text_encoder(cfg.path)
    if cfg.type == "minilm":
        return MiniLMTextEncoder.from_path(cfg.path, max_length=cfg.max_length)
    if cfg.type == "precomputed":
        if not cfg.path:
            raise ValueError("model.text_encoder.path: expected a precomputed embeddings file "
                             "(python -m mask2iv_ros.models.text_embeddings) for type "
                             "'precomputed', got null")
        return PrecomputedTextEncoder(cfg.path)
    if cfg.type == "clip":
        if not cfg.path:
            raise ValueError("model.text_encoder.path: expected a local CLIP folder for type "
                             "'clip', got null")
        return CLIPTextEncoder.from_path(cfg.path, max_length=cfg.max_length)
    if cfg.type == "open_clip":
        return OpenCLIPTextEncoder(arch=cfg.arch, path=cfg.path, max_length=cfg.max_length)
    return CLIPTextEncoder.tiny(hidden_size=cfg.hidden_size, max_length=cfg.max_length,
                                seed=cfg.seed)


def unet_config(cfg: ModelConfig, text_encoder: TextEncoder, num_frames: int,
                latent_channels: int = 4) -> UNetConfig:
    """Preset + ``model.unet`` overrides; channel/context sizes follow the VAE, data and encoder.

    Input channels: noise + the two latents of the concat conditioning (12 with the SD VAE,
    docs/ARCHITECTURE.md); output: the latent.
    """
    overrides: dict[str, Any] = dict(cfg.unet)
    derived = {"in_channels": 3 * latent_channels, "out_channels": latent_channels,
               "context_dim": int(text_encoder.embed_dim),
               "text_context_len": int(text_encoder.max_length), "temporal_length": num_frames}
    for key, value in derived.items():
        if key in overrides and overrides[key] != value:
            raise ValueError(f"model.unet.{key}: must be {value} for this run (set by the data / "
                             f"text encoder), got {overrides[key]!r}; remove the key")
        overrides[key] = value
    known = set(UNetConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"model.unet.{unknown[0]}: unknown UNetConfig field")
    if cfg.unet_preset == "tiny":
        return UNetConfig.tiny(**overrides)
    return UNetConfig.dynamicrafter_512(**overrides)


def check_image_branch(cfg: ModelConfig, config: UNetConfig) -> None:
    """A UNet with image cross-attention needs ``model.image_encoder``, and only such a UNet."""
    has_encoder = cfg.image_encoder.type != "none"
    if config.image_cross_attention and not has_encoder:
        raise ValueError("model.image_encoder.type: expected an image encoder (clip_vision, "
                         "open_clip, folder or clip_tiny) because the UNet has image "
                         "cross-attention (model.unet.image_cross_attention, true in the "
                         f"{cfg.unet_preset} preset), got 'none'; or set "
                         "model.unet.image_cross_attention: false")
    if has_encoder and not config.image_cross_attention:
        raise ValueError(f"model.image_encoder.type: expected 'none' because "
                         f"model.unet.image_cross_attention is false (the UNet would not see "
                         f"the image tokens), got {cfg.image_encoder.type!r}")


def build_unet(cfg: ModelConfig, text_encoder: TextEncoder, num_frames: int,
               latent_channels: int = 4,
               checkpoints: Optional[CheckpointReader] = None) -> VideoUNet:
    config = unet_config(cfg, text_encoder, num_frames, latent_channels)
    check_image_branch(cfg, config)
    unet = VideoUNet(config)
    if cfg.init_from and Path(cfg.init_from).is_dir():
        _load_unet_folder(unet, Path(cfg.init_from))
    elif cfg.init_from:
        _load_dynamicrafter(unet, cfg.init_from, checkpoints or CheckpointReader())
    if cfg.gradient_checkpointing:
        unet.set_gradient_checkpointing(True)
    return unet


def _load_unet_folder(unet: VideoUNet, folder: Path) -> None:
    """Continue from a Mask2IV UNet folder (a pipeline's ``video_unet/`` etc., or
    ``VideoUNet.save_pretrained``): same architecture, every tensor with its shape (strict)."""
    if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model.init_from: expected a DynamiCrafter checkpoint file or a "
                                f"UNet folder with config.json and model.safetensors, got {folder}")
    # in the released concat order (a folder written before it is converted, logged)
    _, state = VideoUNet.read_pretrained(folder)
    check_state_dict(unet.state_dict(), state, "model.init_from", str(folder), "UNet")
    unet.load_state_dict(state, strict=True)
    logger.info("model.init_from: UNet weights from %s", folder)


def _load_dynamicrafter(unet: VideoUNet, path: str, checkpoints: CheckpointReader) -> None:
    """Copy DynamiCrafter's UNet weights into ``unet`` (extra input channels start at zero).

    Strict: every UNet tensor must come from the checkpoint with its shape, and every checkpoint
    UNet tensor must be used, with one exception: a UNet built without image cross-attention
    drops DynamiCrafter's image-attention projections (``to_k_ip``/``to_v_ip``, learnable
    ``alpha``), with a log line.
    """
    state = checkpoints.components(path, "model.init_from")["unet"]
    if not state:
        raise ValueError(f"model.init_from: no {dynamicrafter.UNET_PREFIX!r} keys in {path}")
    state = dynamicrafter.expand_input_channels(state, unet.config.in_channels)
    expected = unet.state_dict()
    dropped = []
    if not unet.config.image_cross_attention:
        dropped = sorted(k for k in set(state) - set(expected)
                         if k.endswith(IMAGE_ATTENTION_SUFFIXES))
        state = {k: v for k, v in state.items() if k not in set(dropped)}
    check_state_dict(expected, state, "model.init_from", path, "UNet")
    unet.load_state_dict(state, strict=True)
    if dropped:
        logger.info("model.init_from: %d image cross-attention tensors unused by this UNet "
                    "(model.unet.image_cross_attention is false), e.g. %s", len(dropped),
                    dropped[0])


def build_image_encoder(cfg: ModelConfig,
                        checkpoints: Optional[CheckpointReader] = None) -> Optional[ImageEncoder]:
    """The frozen CLIP image embedder of the image branch (None for ``type: none``).

    ``clip_vision`` with a checkpoint file (default ``model.init_from``) converts DynamiCrafter's
    ``embedder.*`` (OpenCLIP ViT-H-14 visual tower) to a transformers ``CLIPVisionModel``.
    """
    enc: ImageEncoderConfig = cfg.image_encoder
    if enc.type == "none":
        return None
    if enc.type == "clip_tiny":
        logger.warning("model.image_encoder.type is clip_tiny: a random CLIP vision model")
        return CLIPVisionEncoder.tiny(hidden_size=enc.hidden_size, image_size=enc.image_size,
                                      patch_size=enc.patch_size, seed=enc.seed)
    if enc.type == "folder":
        return load_image_encoder(enc.path)
    if enc.type == "open_clip":
        return OpenCLIPImageEncoder(arch=enc.arch, path=enc.path)
    key, source = ("model.image_encoder.path", enc.path) if enc.path else \
        ("model.init_from", cfg.init_from)
    if Path(source).is_dir():
        return CLIPVisionEncoder.from_path(source)
    embedder = (checkpoints or CheckpointReader()).components(source, key)["image_encoder"]
    prefixed = {dynamicrafter.IMAGE_ENCODER_PREFIX + k: v for k, v in embedder.items()}
    try:
        return dynamicrafter.load_dynamicrafter_image_encoder(prefixed, head_width=enc.head_width)
    except ValueError as error:
        raise ValueError(f"{key}: {source}: DynamiCrafter image encoder (embedder.*): "
                         f"{error}") from error


def resampler_config(cfg: ModelConfig, unet: UNetConfig, image_encoder: ImageEncoder,
                     num_frames: int) -> ResamplerConfig:
    """``model.image_projection`` sizes + the derived ones: ``num_queries`` = the UNet's image
    tokens per frame, ``embedding_dim`` = the encoder width, ``output_dim`` = the context width,
    ``video_length`` = the number of frames (per-frame queries)."""
    proj = cfg.image_projection
    return ResamplerConfig(
        dim=proj.dim, depth=proj.depth, dim_head=proj.dim_head, heads=proj.heads,
        num_queries=unet.image_tokens_per_frame, embedding_dim=int(image_encoder.embed_dim),
        output_dim=int(unet.context_dim), ff_mult=proj.ff_mult,
        video_length=num_frames if proj.per_frame_queries else None)


def build_image_projection(cfg: ModelConfig, unet: UNetConfig, image_encoder: ImageEncoder,
                           num_frames: int,
                           checkpoints: Optional[CheckpointReader] = None) -> Resampler:
    """DynamiCrafter's ``image_proj_model``: from ``model.image_projection.path`` (a Resampler
    folder or a DynamiCrafter checkpoint), else ``model.init_from``'s ``image_proj_model.*``,
    else randomly initialised (global torch RNG, like the UNet). Trainable unless
    ``model.image_projection.trainable`` is false."""
    config = resampler_config(cfg, unet, image_encoder, num_frames)
    key, source = ("model.image_projection.path", cfg.image_projection.path) \
        if cfg.image_projection.path else ("model.init_from", cfg.init_from)
    if source is None:
        logger.warning("model.image_projection: no path and no model.init_from: a randomly "
                       "initialised Resampler")
        resampler = Resampler(config)
    elif Path(source).is_dir():
        resampler = Resampler.from_pretrained(source)
        have = resampler.config
        for name in ("num_queries", "embedding_dim", "output_dim", "video_length"):
            if getattr(have, name) != getattr(config, name):
                raise ValueError(f"{key}: the Resampler in {source} has {name} "
                                 f"{getattr(have, name)}, this run needs {getattr(config, name)} "
                                 "(UNet image tokens per frame / image encoder width / context "
                                 "width / data.num_frames)")
    else:
        state = (checkpoints or CheckpointReader()).components(source, key)["image_proj_model"]
        if not state:
            raise ValueError(f"{key}: no {dynamicrafter.IMAGE_PROJ_PREFIX!r} keys in {source}")
        with torch.device("meta"):
            expected = Resampler(config).state_dict()
        check_state_dict(expected, state, key, source, "Resampler (model.image_projection)")
        resampler = module_from_state_dict(lambda: Resampler(config), state)
    resampler.train().requires_grad_(cfg.image_projection.trainable)
    return resampler


def build_denoiser(cfg: ModelConfig, unet: VideoUNet, controlnet: bool,
                   hint_channels: int = 4) -> VideoUNet | ControlledVideoUNet:
    """The module a run trains: ``unet`` alone, or ``unet`` + a ControlNet branch.

    The branch starts as a copy of ``unet``'s encoder (after ``model.init_from`` was loaded)
    with zero-initialised output convs, so at step 0 the controlled model equals ``unet``.
    Its hint is the trajectory latent (``hint_channels`` = the VAE's latent channels).
    """
    if not controlnet:
        return unet
    branch = VideoControlNet.from_unet(unet, hint_channels=hint_channels)
    if cfg.gradient_checkpointing:
        branch.set_gradient_checkpointing(True)
    return ControlledVideoUNet(unet, branch)


def freeze_temporal_attention(model: nn.Module) -> list[str]:
    """Stop gradients through every temporal transformer of ``model`` (a VideoUNet, or a
    ControlledVideoUNet: its branch too); returns the frozen parameter names."""
    frozen = temporal_attention_parameters(model)
    for param in frozen.values():
        param.requires_grad_(False)
    return sorted(frozen)


def freeze(module: nn.Module) -> nn.Module:
    return module.eval().requires_grad_(False)


def build_noise_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """DynamiCrafter's training schedule (docs/ARCHITECTURE.md) as a diffusers scheduler."""
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start,
        beta_end=cfg.beta_end, beta_schedule=cfg.beta_schedule,
        prediction_type=cfg.prediction_type, rescale_betas_zero_snr=cfg.rescale_betas_zero_snr,
        clip_sample=False, timestep_spacing="trailing")
