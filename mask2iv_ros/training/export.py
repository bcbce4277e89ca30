"""Export a trained UNet into a Mask2IVPipeline checkpoint folder (the node loads that folder).

Stage 1 TT-Gen, stage 1 PT-Gen and stage 2 runs each contribute their component
(``trajectory_unet_text`` / ``trajectory_unet_position`` / ``video_unet``) to the same folder:
components already there are kept. The pipeline needs at least one trajectory model to load, so
a stage-2 export into a folder without one only writes ``video_unet/``; the next stage-1 export
into that folder picks it up and writes the complete pipeline.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Optional

import torch
from diffusers import DDIMScheduler
from torch import nn

from mask2iv_ros.models.text_encoder import TextEncoder
from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.pipeline import Mask2IVPipeline, PipelineConfig, dynamicrafter_scheduler
from mask2iv_ros.pipeline.pipeline import MODEL_INDEX, UNET_COMPONENTS

from .config import TrainConfig
from .ema import ParameterEMA

logger = logging.getLogger(__name__)
UNET_NAMES = (*UNET_COMPONENTS.values(), "video_unet")
TRAINING_INFO = "training.json"


def cpu_unet_copy(unet: VideoUNet, ema: Optional[ParameterEMA] = None) -> VideoUNet:
    """fp32 CPU copy of ``unet``, with the EMA weights substituted when ``ema`` is given."""
    state = {name: value.detach() for name, value in unet.state_dict().items()}
    if ema is not None:
        state.update(ema.state_dict())
    state = {name: value.to("cpu", torch.float32, copy=True) for name, value in state.items()}
    with torch.device("meta"):
        exported = VideoUNet(unet.config)
    exported.load_state_dict(state, strict=True, assign=True)
    return exported.eval()


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


def export_unet(config: TrainConfig, unet: VideoUNet, vae: VideoVAE, text_encoder: TextEncoder,
                ema: Optional[ParameterEMA] = None) -> Path:
    """Write ``unet`` (EMA weights if ``ema``) as ``config.component`` into the export folder."""
    folder = config.resolved_export_dir
    component = config.component
    trained = cpu_unet_copy(unet, ema)
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

    info = {"stage": config.stage, "component": component, "ema": ema is not None,
            "stage2": vars(config.stage2) if component == "video_unet" else None}
    if not any(unets[name] is not None for name in UNET_COMPONENTS.values()):
        trained.save_pretrained(folder / component)
        (folder / component / TRAINING_INFO).write_text(json.dumps(info, indent=2))
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
    logger.info("export: wrote %s into %s", component, folder)
    return folder
