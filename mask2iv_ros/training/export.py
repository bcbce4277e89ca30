"""Export a trained UNet into a Mask2IVPipeline checkpoint folder (the node loads that folder).

Stage 1 TT-Gen, stage 1 PT-Gen and stage 2 runs each contribute their component
(``trajectory_unet_text`` / ``trajectory_unet_position`` / ``video_unet``) to the same folder:
components already there are kept. The pipeline needs at least one trajectory model to load, so
a stage-2 export into a folder without one only writes ``video_unet/``; the next stage-1 export
into that folder picks it up and writes the complete pipeline.

A run with the image cross-attention branch also writes the pipeline's ``image_encoder/`` (the
frozen CLIP embedder) and ``image_projection/`` (the Resampler it trained, EMA weights when
exported); ``Mask2IVPipeline.from_pretrained`` then runs the UNet with its image tokens.
DynamiCrafter-style fine-tuning trains a Resampler per run, so each image-branch component
keeps the one it was trained with in ``<component>/image_projection/`` and the pipeline makes
that UNet's image tokens with it (``Mask2IVPipeline.stage_projections``); the top-level
``image_projection/`` is the latest run's. The image encoder must be the same for all runs
exporting into a folder.

A stage-2 run with ``stage2.control: controlnet`` also writes its branch to
``video_controlnet/`` (``VideoControlNet.save_pretrained``; evaluation loads it from there). It
belongs to that ``video_unet``: a later stage-2 export without a branch removes it, a stage-1
export keeps it.
"""

from __future__ import annotations

import dataclasses

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
from mask2iv_ros.models.image_encoder import ImageEncoder, load_image_encoder
from mask2iv_ros.models.resampler import Resampler
from mask2iv_ros.models.text_encoder import TextEncoder
from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.pipeline import Mask2IVPipeline, PipelineConfig, dynamicrafter_scheduler
from mask2iv_ros.pipeline.pipeline import MODEL_INDEX, STAGE_PROJECTION, UNET_COMPONENTS
from mask2iv_ros.pipeline.pipeline_config import training_sampling_defaults

from .config import TrainConfig
logger = logging.getLogger(__name__)
UNET_NAMES = (*UNET_COMPONENTS.values(), "video_unet")
# Sub-folder holding the stage-2 ControlNet branch (mask2iv_ros.eval.generation loads it).
CONTROLNET_COMPONENT = "video_controlnet"
TRAINING_INFO = "training.json"
# Inside a UNet component folder: the Resampler that UNet was trained with (image branch).
IMAGE_ENCODER = "image_encoder"  # the pipeline's component folder

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


def cpu_resampler_copy(resampler: Resampler, ema_state: EMAState = None) -> Resampler:
    """fp32 CPU copy of the image branch's Resampler, with the EMA weights substituted."""
    with torch.device("meta"):
        empty = Resampler(resampler.config)
    return _cpu_copy_of(resampler, empty, ema_state)


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


def _check_same_image_encoder(folder: Path, existing: Optional[ImageEncoder],
                              image_encoder: Optional[ImageEncoder]) -> None:
    """UNets trained on another CLIP embedder's tokens cannot share this run's."""
    if existing is None or image_encoder is None:
        return
    if existing.to_config() != image_encoder.to_config() or \
            not _same_weights(existing, image_encoder):
        raise ValueError(f"export_dir: the pipeline in {folder} uses a different image encoder "
                         "than this run (model.image_encoder); export into another folder")


def _trained_projections(folder: Path, names) -> dict[str, Resampler]:
    """The Resamplers other image-branch components of ``folder`` were trained with."""
    return {name: Resampler.from_pretrained(folder / name / STAGE_PROJECTION)
            for name in names if (folder / name / STAGE_PROJECTION / "config.json").is_file()}


def sampling_scheduler(config: TrainConfig) -> DDIMScheduler:
    """The pipeline's DDIM scheduler (SafeDDIMScheduler) with this run's training schedule."""
    d = config.diffusion
    return type(dynamicrafter_scheduler()).from_config(
        dynamicrafter_scheduler().config, num_train_timesteps=d.num_train_timesteps,
        beta_start=d.beta_start, beta_end=d.beta_end, beta_schedule=d.beta_schedule,
        prediction_type=d.prediction_type, rescale_betas_zero_snr=d.rescale_betas_zero_snr)


def _set_dynamic_rescale(pipeline_config: PipelineConfig, dynamic_rescale: Optional[float],
                         folder: Path) -> PipelineConfig:
    """The pipeline samples all its UNets with one dynamic rescale: this run's (the sampler
    must undo what training did); warn when the folder's other components had another."""
    recorded = pipeline_config.sampling.dynamic_rescale
    if recorded == dynamic_rescale:
        return pipeline_config
    logger.warning("export: %s was sampled with dynamic_rescale %s, this run trained with %s; "
                   "the pipeline now uses %s for all its UNets (train every stage with the "
                   "same diffusion.dynamic_rescale)", folder, recorded, dynamic_rescale,
                   dynamic_rescale)
    return dataclasses.replace(pipeline_config, sampling=dataclasses.replace(
        pipeline_config.sampling, dynamic_rescale=dynamic_rescale))


def _write_controlnet(folder: Path, controlnet: Optional[VideoControlNet]) -> None:
    target = folder / CONTROLNET_COMPONENT
    if target.exists():
        shutil.rmtree(target)
    if controlnet is not None:
        controlnet.save_pretrained(target)


def export_unet(config: TrainConfig, unet: VideoUNet, vae: VideoVAE, text_encoder: TextEncoder,
                ema_state: EMAState = None, controlnet: Optional[VideoControlNet] = None,
                controlnet_ema_state: EMAState = None,
                image_encoder: Optional[ImageEncoder] = None,
                image_projection: Optional[Resampler] = None,
                image_projection_ema_state: EMAState = None) -> Path:
    """Write ``unet`` as ``config.component`` into the export folder (and ``controlnet``, the
    stage-2 branch, as ``video_controlnet/``; ``image_encoder`` + ``image_projection``, the
    image branch, as ``image_encoder/`` + ``image_projection/``); ``*ema_state`` replace the
    trained parameters."""
    folder = config.resolved_export_dir
    component = config.component
    if controlnet is not None and component != "video_unet":
        raise ValueError(f"controlnet: only a stage-2 (video) run has a ControlNet branch, this "
                         f"run trains {component}")
    if unet.config.image_cross_attention != (image_projection is not None) or \
            (image_encoder is None) != (image_projection is None):
        raise ValueError("image_encoder/image_projection: expected both for a UNet with image "
                         "cross-attention and neither otherwise, got "
                         f"{type(image_encoder).__name__}/{type(image_projection).__name__} for "
                         f"image_cross_attention={unet.config.image_cross_attention}")
    trained = cpu_unet_copy(unet, ema_state)
    projection = None if image_projection is None else \
        cpu_resampler_copy(image_projection, image_projection_ema_state)
    image_encoder = None if image_encoder is None else _cpu_copy(image_encoder)
    if component == "video_unet":
        # The branch is paired with this video_unet: write it, or drop a stale one.
        branch = None if controlnet is None else cpu_controlnet_copy(controlnet, controlnet_ema_state)
    else:
        # Stage 1 leaves stage 2 alone; save_pretrained below replaces the folder, so keep it.
        existing = folder / CONTROLNET_COMPONENT
        branch = VideoControlNet.from_pretrained(existing) if existing.is_dir() else None
    vae, text_encoder = _cpu_copy(vae), _cpu_copy(text_encoder)

    unets: dict[str, Optional[VideoUNet]] = {name: None for name in UNET_NAMES}
    # How the run trained (condition dropout) decides how the folder is sampled by default.
    # dynamic_rescale stays None until training scales x_start by s(t) (then: its base scale).
    condition_dropout = config.diffusion.condition_dropout_prob
    pipeline_config = PipelineConfig(
        resolution=(config.data.height, config.data.width), num_frames=config.data.num_frames,
        fps=float(config.data.fps), fs=int(config.data.fps), condition_dropout=condition_dropout,
        sampling=training_sampling_defaults(condition_dropout,
                                            dynamic_rescale=config.diffusion.dynamic_rescale))
    shared_encoder, shared_projection = image_encoder, projection
    if (folder / MODEL_INDEX).is_file():
        existing = Mask2IVPipeline.from_pretrained(folder)
        _check_same_encoders(folder, existing, vae, text_encoder)
        _check_same_image_encoder(folder, existing.image_encoder, image_encoder)
        if projection is None:  # a run without the image branch keeps the folder's
            shared_encoder, shared_projection = existing.image_encoder, existing.image_projection
        unets.update({name: getattr(existing, name) for name in UNET_NAMES})
        pipeline_config = existing.config.with_trained_component(condition_dropout)
        pipeline_config = _set_dynamic_rescale(pipeline_config, config.diffusion.dynamic_rescale,
                                               folder)
        trained_at = ((config.data.height, config.data.width), config.data.num_frames)
        if (tuple(pipeline_config.resolution), pipeline_config.num_frames) != trained_at:
            logger.warning("export: %s was written for %s x %d frames; this run trained at %s x %d",
                           folder, pipeline_config.resolution, pipeline_config.num_frames,
                           (config.data.height, config.data.width), config.data.num_frames)
    else:
        for name in UNET_NAMES:  # components exported before a loadable pipeline existed
            if (folder / name / "config.json").is_file():
                unets[name] = VideoUNet.from_pretrained(folder / name)
        if (folder / IMAGE_ENCODER / "config.json").is_file():  # ... and their image encoder
            early_encoder = load_image_encoder(folder / IMAGE_ENCODER)
            _check_same_image_encoder(folder, early_encoder, image_encoder)
            shared_encoder = shared_encoder or early_encoder
    unets[component] = trained

    info = {"stage": config.stage, "component": component, "ema": ema_state is not None,
            "stage1": vars(config.stage1) if component != "video_unet" else None,
            "stage2": vars(config.stage2) if component == "video_unet" else None,
            "dynamic_rescale": config.diffusion.dynamic_rescale,
            "image_branch": projection is not None}
    others = [name for name in UNET_NAMES if unets[name] is not None and name != component]
    trained_projections = _trained_projections(folder, others)
    if not any(unets[name] is not None for name in UNET_COMPONENTS.values()):
        trained.save_pretrained(folder / component)
        (folder / component / TRAINING_INFO).write_text(json.dumps(info, indent=2))
        if projection is not None:
            projection.save_pretrained(folder / component / STAGE_PROJECTION)
            image_encoder.save_pretrained(folder / IMAGE_ENCODER)
        _write_controlnet(folder, branch)
        logger.warning("export: %s has no trajectory model yet; wrote only %s/ (it becomes a "
                       "loadable pipeline once a stage-1 run exports into it)", folder, component)
        return folder

    branch_unets = [n for n in others if unets[n].config.image_cross_attention]
    if shared_projection is None and branch_unets:
        # an image-branch stage-2 component exported before this run (without the branch)
        # made the folder loadable: the pipeline takes that component's encoder and Resampler
        if shared_encoder is None or branch_unets[0] not in trained_projections:
            raise ValueError(f"export_dir: {folder} holds {', '.join(branch_unets)} with image "
                             f"cross-attention but no {IMAGE_ENCODER}/ or trained "
                             f"{STAGE_PROJECTION}/; export into another folder")
        shared_projection = trained_projections[branch_unets[0]]
    infos = {name: (folder / name / TRAINING_INFO).read_text()
             for name in others if (folder / name / TRAINING_INFO).is_file()}
    stage_projections = dict(trained_projections)
    if projection is not None:
        stage_projections[component] = projection
    pipe = Mask2IVPipeline.from_components(
        vae=vae, text_encoder=text_encoder, scheduler=sampling_scheduler(config),
        config=pipeline_config, image_encoder=shared_encoder,
        image_projection=shared_projection,
        stage_projections=stage_projections if shared_projection is not None else None, **unets)
    pipe.save_pretrained(folder)  # writes each <component>/image_projection/ too
    # Which stage / ablation switches produced each component (eval reads it for baselines).
    (folder / component / TRAINING_INFO).write_text(json.dumps(info, indent=2))
    for name, text in infos.items():
        (folder / name / TRAINING_INFO).write_text(text)
    _write_controlnet(folder, branch)
    logger.info("export: wrote %s into %s", component, folder)
    return folder
