"""Builds the networks and the noise schedule of a training run from its config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler
from torch import nn

from mask2iv_ros.models import dynamicrafter
from mask2iv_ros.models.text_encoder import (CLIPTextEncoder, MiniLMTextEncoder,
                                             OpenCLIPTextEncoder, TextEncoder, load_text_encoder)
from mask2iv_ros.models.controlnet import ControlledVideoUNet, VideoControlNet
from mask2iv_ros.models.unet import VideoUNet, temporal_attention_parameters
from mask2iv_ros.models.unet_config import UNetConfig
from mask2iv_ros.models.vae import VideoVAE, sd21_vae_config, tiny_vae_config

from .config import DiffusionConfig, ModelConfig, TextEncoderConfig, VAEConfig

logger = logging.getLogger(__name__)

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


def build_unet(cfg: ModelConfig, text_encoder: TextEncoder, num_frames: int,
               latent_channels: int = 4) -> VideoUNet:
    config = unet_config(cfg, text_encoder, num_frames, latent_channels)
    if config.image_cross_attention:
        raise ValueError("model.unet.image_cross_attention: the trainer feeds text tokens only "
                         "(no CLIP image tokens); set it to false")
    unet = VideoUNet(config)
    if cfg.init_from:
        _load_dynamicrafter(unet, cfg.init_from)
    if cfg.gradient_checkpointing:
        unet.set_gradient_checkpointing(True)
    return unet


def _load_dynamicrafter(unet: VideoUNet, path: str) -> None:
    """Copy DynamiCrafter's UNet weights into ``unet`` (extra input channels start at zero).

    Checkpoint tensors the UNet has no place for are dropped with a log line: DynamiCrafter's
    image cross-attention projections (``to_k_ip``/``to_v_ip``, ``image_cross_attention``
    scales) when the UNet is built without image cross-attention. Missing tensors are an error.
    """
    state = dynamicrafter.split_components(dynamicrafter.read_checkpoint(path))["unet"]
    if not state:
        raise ValueError(f"model.init_from: no {dynamicrafter.UNET_PREFIX!r} keys in {path}")
    state = dynamicrafter.expand_input_channels(state, unet.config.in_channels)
    expected = unet.state_dict()
    dropped = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"model.init_from: {path} lacks {len(missing)} UNet tensors, e.g. "
                         f"{missing[:3]}; does model.unet match the checkpoint?")
    for key in expected:
        if state[key].shape != expected[key].shape:
            raise ValueError(f"model.init_from: {key} has shape {tuple(state[key].shape)} in "
                             f"{path}, the UNet expects {tuple(expected[key].shape)}")
    unet.load_state_dict({k: state[k] for k in expected}, strict=True)
    if dropped:
        logger.info("model.init_from: %d checkpoint tensors unused by this UNet (e.g. %s)",
                    len(dropped), dropped[0])


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
