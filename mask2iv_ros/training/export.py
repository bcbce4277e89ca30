"""Export a trained UNet into a Mask2IVPipeline checkpoint folder (the node loads that folder).

Stage 1 TT-Gen, stage 1 PT-Gen and stage 2 runs each contribute their component
(``trajectory_unet_text`` / ``trajectory_unet_position`` / ``video_unet``) to the same folder:
components already there are kept. The pipeline needs at least one trajectory model to load, so
a stage-2 export into a folder without one only writes ``video_unet/``; the next stage-1 export
into that folder picks it up and writes the complete pipeline.

A stage-2 run with ``stage2.control: controlnet`` also writes its branch to
``video_controlnet/`` (``VideoControlNet.save_pretrained``; evaluation loads it from there). It
belongs to that ``video_unet``: a later stage-2 export without a branch removes it, a stage-1
export keeps it.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Mapping, Optional

import torch
from diffusers import DDIMScheduler
from torch import nn

from mask2iv_ros.models.controlnet import VideoControlNet
from mask2iv_ros.models.text_encoder import TextEncoder
from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.pipeline import Mask2IVPipeline, PipelineConfig, dynamicrafter_scheduler
from mask2iv_ros.pipeline.pipeline import MODEL_INDEX, UNET_COMPONENTS

from .config import TrainConfig
logger = logging.getLogger(__name__)
UNET_NAMES = (*UNET_COMPONENTS.values(), "video_unet")
# Sub-folder holding the stage-2 ControlNet branch (mask2iv_ros.eval.generation loads it).
CONTROLNET_COMPONENT = "video_controlnet"
TRAINING_INFO = "training.json"

EMAState = Optional[Mapping[str, torch.Tensor]]


def sub_state(state: EMAState, prefix: str) -> EMAState:
    """The entries of ``state`` under ``prefix`` (e.g. ``"controlnet."``), prefix stripped."""
    if state is None:
        return None
    return {name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)}


def _cpu_copy_of(module: nn.Module, empty: nn.Module, ema_state: EMAState) -> nn.Module:
    """Fill ``empty`` (built on the meta device) with fp32 CPU copies of ``module``'s tensors,
    the EMA values substituted for the parameters ``ema_state`` holds."""
    state = {name: value.detach() for name, value in module.state_dict().items()}
    if ema_state is not None:
        state.update(ema_state)
    state = {name: value.to("cpu", torch.float32, copy=True) for name, value in state.items()}
    empty.load_state_dict(state, strict=True, assign=True)
    return empty.eval()


def cpu_unet_copy(unet: VideoUNet, ema_state: EMAState = None) -> VideoUNet:
    """fp32 CPU copy of ``unet``, with the EMA weights (``{name: tensor}``) substituted."""
    with torch.device("meta"):
        empty = VideoUNet(unet.config)
    return _cpu_copy_of(unet, empty, ema_state)


def cpu_controlnet_copy(controlnet: VideoControlNet, ema_state: EMAState = None) -> VideoControlNet:
    """fp32 CPU copy of a ControlNet branch, with the EMA weights substituted."""
    with torch.device("meta"):
        empty = VideoControlNet(controlnet.config, controlnet.hint_channels,
                                controlnet.hint_hidden_channels)
    return _cpu_copy_of(controlnet, empty, ema_state)


def _cpu_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).to("cpu", torch.float32).eval()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k].float().cpu(), sb[k].float().cpu())
        for k in sa)


def _check_same_encoders(folder: Path, pipe: Mask2IVPipeline, vae: VideoVAE,
                         text_encoder: TextEncoder) -> None:
    """Components trained against another VAE / text encoder would see foreign latents."""
    if not _same_weights(pipe.vae, vae):
        raise ValueError(f"export_dir: the pipeline in {folder} uses a different VAE than this "
                         "run (model.vae); export into another folder")
    if pipe.text_encoder is not None and (
            pipe.text_encoder.to_config() != text_encoder.to_config()
            or not _same_weights(pipe.text_encoder, text_encoder)):
        raise ValueError(f"export_dir: the pipeline in {folder} uses a different text encoder "
                         "than this run (model.text_encoder); export into another folder")


def sampling_scheduler(config: TrainConfig):
    """The pipeline's DDIM scheduler with this run's training schedule."""
    d = config.diffusion
    return DDIMScheduler.from_config(
        dynamicrafter_scheduler().config, num_train_timesteps=d.num_train_timesteps,
        beta_start=d.beta_start, beta_end=d.beta_end, beta_schedule=d.beta_schedule,
        prediction_type=d.prediction_type, rescale_betas_zero_snr=d.rescale_betas_zero_snr)


def _write_controlnet(folder: Path, controlnet: Optional[VideoControlNet]) -> None:
    target = folder / CONTROLNET_COMPONENT
    if target.exists():
        shutil.rmtree(target)
    if controlnet is not None:
        controlnet.save_pretrained(target)


def export_unet(config: TrainConfig, unet: VideoUNet, vae: VideoVAE, text_encoder: TextEncoder,
                ema_state: EMAState = None, controlnet: Optional[VideoControlNet] = None,
                controlnet_ema_state: EMAState = None) -> Path:
    """Write ``unet`` as ``config.component`` into the export folder (and ``controlnet``, the
    stage-2 branch, as ``video_controlnet/``); ``*ema_state`` replace the trained parameters."""
    folder = config.resolved_export_dir
    component = config.component
    if controlnet is not None and component != "video_unet":
        raise ValueError(f"controlnet: only a stage-2 (video) run has a ControlNet branch, this "
                         f"run trains {component}")
    trained = cpu_unet_copy(unet, ema_state)
    if component == "video_unet":
        # The branch is paired with this video_unet: write it, or drop a stale one.
        branch = None if controlnet is None else cpu_controlnet_copy(controlnet, controlnet_ema_state)
    else:
        # Stage 1 leaves stage 2 alone; save_pretrained below replaces the folder, so keep it.
        existing = folder / CONTROLNET_COMPONENT
        branch = VideoControlNet.from_pretrained(existing) if existing.is_dir() else None
    vae, text_encoder = _cpu_copy(vae), _cpu_copy(text_encoder)

    unets: dict[str, Optional[VideoUNet]] = {name: None for name in UNET_NAMES}
    pipeline_config = PipelineConfig(
        resolution=(config.data.height, config.data.width), num_frames=config.data.num_frames,
        fps=float(config.data.fps), fs=int(config.data.fps))
    if (folder / MODEL_INDEX).is_file():
        existing = Mask2IVPipeline.from_pretrained(folder)
        _check_same_encoders(folder, existing, vae, text_encoder)
        unets.update({name: getattr(existing, name) for name in UNET_NAMES})
        pipeline_config = existing.config
        trained_at = ((config.data.height, config.data.width), config.data.num_frames)
        if (tuple(pipeline_config.resolution), pipeline_config.num_frames) != trained_at:
            logger.warning("export: %s was written for %s x %d frames; this run trained at %s x %d",
                           folder, pipeline_config.resolution, pipeline_config.num_frames,
                           (config.data.height, config.data.width), config.data.num_frames)
    else:
        for name in UNET_NAMES:  # components exported before a loadable pipeline existed
            if (folder / name / "config.json").is_file():
                unets[name] = VideoUNet.from_pretrained(folder / name)
    unets[component] = trained

    info = {"stage": config.stage, "component": component, "ema": ema_state is not None,
            "stage2": vars(config.stage2) if component == "video_unet" else None}
    if not any(unets[name] is not None for name in UNET_COMPONENTS.values()):
        trained.save_pretrained(folder / component)
        (folder / component / TRAINING_INFO).write_text(json.dumps(info, indent=2))
        _write_controlnet(folder, branch)
        logger.warning("export: %s has no trajectory model yet; wrote only %s/ (it becomes a "
                       "loadable pipeline once a stage-1 run exports into it)", folder, component)
        return folder

    infos = {name: (folder / name / TRAINING_INFO).read_text()
             for name in UNET_NAMES if unets[name] is not None and name != component
             and (folder / name / TRAINING_INFO).is_file()}
    pipe = Mask2IVPipeline.from_components(
        vae=vae, text_encoder=text_encoder, scheduler=sampling_scheduler(config),
        config=pipeline_config, **unets)
    pipe.save_pretrained(folder)
    # Which stage / ablation switches produced each component (eval reads it for baselines).
    (folder / component / TRAINING_INFO).write_text(json.dumps(info, indent=2))
    for name, text in infos.items():
        (folder / name / TRAINING_INFO).write_text(text)
    _write_controlnet(folder, branch)
    logger.info("export: wrote %s into %s", component, folder)
    return folder
