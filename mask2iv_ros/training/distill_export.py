"""Writing a distilled student into a pipeline folder sampled with ``LCMScheduler``.

The folder is a copy of the teacher's (or of itself, when another stage was distilled into it
before) with the student in place of the stage's UNet, ``scheduler/`` an ``LCMScheduler`` on the
teacher's noise schedule (``original_inference_steps`` = the distillation grid, the LCD boundary
``timestep_scaling``) and the recorded sampling defaults set to few-step, guidance-free
sampling (guidance is folded into the student). The student's ``config.json`` is the teacher
UNet's config, unchanged. ``<component>/distillation.json`` says how each student was made;
components that were not distilled stay the teacher's (and are sampled with the LCM scheduler
too; a warning names them).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from diffusers import LCMScheduler

from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.pipeline import Mask2IVPipeline
from mask2iv_ros.pipeline.pipeline import MODEL_INDEX, UNET_COMPONENTS

from .export import TRAINING_INFO, UNET_NAMES, _same_weights

logger = logging.getLogger(__name__)
LCM_SCHEDULER = "LCMScheduler"
DISTILLATION_INFO = "distillation.json"


def lcm_scheduler(teacher_scheduler: Any, num_ddim_timesteps: int,
                  timestep_scaling: float = 10.0) -> LCMScheduler:
    """An ``LCMScheduler`` on the teacher scheduler's noise schedule and prediction type."""
    cfg = teacher_scheduler.config
    return LCMScheduler(
        num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start,
        beta_end=cfg.beta_end, beta_schedule=cfg.beta_schedule,
        trained_betas=cfg.get("trained_betas"), original_inference_steps=num_ddim_timesteps,
        clip_sample=False, set_alpha_to_one=cfg.get("set_alpha_to_one", True), steps_offset=0,
        prediction_type=cfg.prediction_type, timestep_scaling=timestep_scaling,
        rescale_betas_zero_snr=cfg.get("rescale_betas_zero_snr", False))


def few_step_config(config: Any, num_inference_steps: int) -> Any:
    """The pipeline config with the distilled sampling defaults: ``config.sampling`` =
    {num_inference_steps, guidance_scale 1.0 (folded in), eta 0, dynamic_rescale None,
    scheduler LCMScheduler}; folders from before ``config.sampling`` existed record eta /
    dynamic_rescale only (their call defaults are fixed)."""
    sampling = getattr(config, "sampling", None)
    if sampling is None:
        return dataclasses.replace(config, eta=0.0, dynamic_rescale=None)
    return dataclasses.replace(config, sampling=dataclasses.replace(
        sampling, num_inference_steps=num_inference_steps, guidance_scale=1.0, eta=0.0,
        dynamic_rescale=None, scheduler=LCM_SCHEDULER))


def _component_texts(folder: Path, names: tuple[str, ...]) -> dict[Path, str]:
    """Per-component JSON notes (training / distillation info) that save_pretrained drops."""
    texts = {}
    for name in UNET_NAMES:
        for note in names:
            path = folder / name / note
            if path.is_file():
                texts[Path(name) / note] = path.read_text(encoding="utf-8")
    return texts


def _check_same_base(folder: Path, pipe: Mask2IVPipeline, teacher: Mask2IVPipeline,
                     num_ddim_timesteps: int) -> None:
    """A folder distilled into before must come from this teacher and grid."""
    if not _same_weights(pipe.vae, teacher.vae):
        raise ValueError(f"export_dir: {folder} holds a pipeline with another VAE than the "
                         "teacher; export into another folder")
    scheduler = pipe.scheduler
    if isinstance(scheduler, LCMScheduler) and \
            scheduler.config.original_inference_steps != num_ddim_timesteps:
        raise ValueError(f"export_dir: {folder} was distilled on a grid of "
                         f"{scheduler.config.original_inference_steps} DDIM timesteps, this run "
                         f"on {num_ddim_timesteps} (lcd.num_ddim_timesteps); the folder has one "
                         "scheduler for all stages: export into another folder")


def export_student(folder: str | Path, teacher_folder: str | Path, component: str,
                   student: VideoUNet, *, num_ddim_timesteps: int, timestep_scaling: float,
                   num_inference_steps: int, info: Mapping[str, Any]) -> Path:
    """Write ``student`` (an fp32 CPU UNet with the teacher's config) as ``component`` of the
    LCM pipeline folder ``folder``; ``info`` goes to ``<component>/distillation.json``."""
    folder, teacher_folder = Path(folder), Path(teacher_folder)
    if component not in UNET_NAMES:
        raise ValueError(f"component: expected one of {list(UNET_NAMES)}, got {component!r}")
    teacher = Mask2IVPipeline.from_pretrained(teacher_folder)
    if (folder / MODEL_INDEX).is_file():
        base = folder
        pipe = Mask2IVPipeline.from_pretrained(folder)
        _check_same_base(folder, pipe, teacher, num_ddim_timesteps)
    else:
        base, pipe = teacher_folder, teacher
    if getattr(pipe, component) is None:
        raise ValueError(f"component: {base} has no {component} to replace")
    if student.config != getattr(teacher, component).config:
        raise ValueError(f"student: its config differs from the teacher's {component} config")
    texts = _component_texts(base, (TRAINING_INFO, DISTILLATION_INFO))
    setattr(pipe, component, student.eval())
    pipe.scheduler = lcm_scheduler(teacher.scheduler, num_ddim_timesteps, timestep_scaling)
    pipe.config = few_step_config(pipe.config, num_inference_steps)
    pipe.save_pretrained(folder)
    for relative, text in texts.items():
        (folder / relative).write_text(text, encoding="utf-8")
    (folder / component / DISTILLATION_INFO).write_text(
        json.dumps({"component": component, **info}, indent=2), encoding="utf-8")
    undistilled = [name for name in UNET_NAMES if getattr(pipe, name) is not None
                   and not (folder / name / DISTILLATION_INFO).is_file()]
    if undistilled:
        logger.warning("export: %s keeps the teacher's %s, now sampled with the LCM scheduler "
                       "too; distil %s into this folder as well", folder,
                       ", ".join(undistilled), "them" if len(undistilled) > 1 else "it")
    logger.info("export: wrote the distilled %s into %s", component, folder)
    return folder


def distilled_components(folder: str | Path) -> list[str]:
    """The UNet components of a pipeline folder that are distilled students."""
    folder = Path(folder)
    return [name for name in (*UNET_COMPONENTS.values(), "video_unet")
            if (folder / name / DISTILLATION_INFO).is_file()]
