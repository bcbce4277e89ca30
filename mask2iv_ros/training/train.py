"""``mask2iv-train``: offline training of Mask2IV stage 1 (TT-Gen / PT-Gen) and stage 2.

One process on CPU::

    mask2iv-train --config training/tiny_stage1_text.yaml

Several GPUs (one process each; HF accelerate sets up the process group)::

    accelerate launch --multi_gpu --num_processes 2 -m mask2iv_ros.training.train \\
        --config training/paper_stage2.yaml

``--resume`` continues from the newest complete checkpoint in ``<output_dir>/checkpoints``;
``--export`` only writes the UNet of the newest checkpoint into the pipeline folder.

With ``stage2.control: controlnet`` the trained module is the UNet plus a ControlNet branch
(:class:`~mask2iv_ros.models.controlnet.ControlledVideoUNet`): one optimizer, one EMA and one
checkpoint ``model.safetensors`` cover both (keys ``unet.*`` / ``controlnet.*``). With the image
cross-attention branch (``model.image_encoder``) the trained module also holds the Resampler
(:class:`~mask2iv_ros.training.image_context.ImageContextModel`, keys ``denoiser.*`` /
``image_projection.*``), trained with the UNet as in DynamiCrafter; the image encoder is frozen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader

from mask2iv_ros.pipeline.conditioning import model_input
from mask2iv_ros.pipeline.sampling import dynamic_rescale_schedule

from . import checkpoint as ckpt
from mask2iv_ros.models import layout
from mask2iv_ros.models.controlnet import ControlledVideoUNet, VideoControlNet
from mask2iv_ros.models.resampler import Resampler
from mask2iv_ros.models.unet import VideoUNet

from .components import (CheckpointReader, build_denoiser, build_image_encoder,
                         build_image_projection, build_noise_scheduler, build_text_encoder,
                         build_unet, build_vae, freeze, freeze_temporal_attention)
from .config import TrainConfig, load_config
from .data_order import DataPosition, EpochIndexed, ResumableBatchSampler
from .dataset import build_dataset, collate
from .ema import ParameterEMA
from .export import export_unet, sub_state
from .image_context import ImageContextModel
from .losses import rescale_x0, weighted_diffusion_loss
from .plots import MetricsLog, plot_loss_curve
from .stage_inputs import StageInputs
from .loop import run_training

logger = logging.getLogger(__name__)


def _check_checkpoint_concat_order(folder: Path) -> None:
    """Refuse a training checkpoint written with the project's old concat order: its input conv
    (and the optimizer moments of it) would meet the conditioning channels swapped."""
    state_path = Path(folder) / "trainer_state.json"
    if not state_path.is_file():
        return  # load_checkpoint reports the incomplete folder
    state = json.loads(state_path.read_text(encoding="utf-8"))
    if not layout.is_release_order(state, str(state_path)):
        raise ValueError(f"--resume: {folder} was written with the old concat order (no "
                         f"{layout.CONCAT_ORDER_KEY!r} in trainer_state.json) and cannot be "
                         "continued. Export it with the mask2iv_ros version that wrote it, then "
                         "start a new run with model.init_from=<exported UNet folder> (converted "
                         "on load, see mask2iv_ros.models.layout).")


def resolve_mixed_precision(requested: str, use_cpu: bool) -> str:
    """``auto`` -> bf16 on CUDA with bf16 support, fp16 on other CUDA, ``no`` on CPU."""
    on_cuda = torch.cuda.is_available() and not use_cpu
    if requested == "auto":
        if not on_cuda:
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested != "no" and not on_cuda:
        raise ValueError(f"mixed_precision: {requested!r} needs a CUDA device; use 'no' or "
                         "'auto' on CPU")
    return requested


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs the optimisation loop."""

    def __init__(self, config: TrainConfig, resume: bool = False,
                 show_progress: bool = True) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"
        self.accelerator = Accelerator(
            mixed_precision=resolve_mixed_precision(config.mixed_precision, config.cpu),
            cpu=config.cpu)
        acc = self.accelerator
        self.device = acc.device
        self.show_progress = show_progress and acc.is_local_main_process
        set_seed(config.seed)  # python / numpy / torch global RNGs (UNet init, dropout)

        # Frozen encoders keep fp32 weights (export writes them, and other stages exporting into
        # the same pipeline compare against them) and run under bf16 autocast in bf16 training;
        # fp16 is not used for them (fp16 VAEs can overflow).
        frozen_dtype = torch.float32
        self.vae = freeze(build_vae(config.model.vae)).to(self.device, frozen_dtype)
        self.text_encoder = freeze(build_text_encoder(config.model.text_encoder)).to(
            self.device, frozen_dtype)
        self.stage_inputs = StageInputs(
            config, self.vae, self.text_encoder, self.device,
            autocast_dtype=torch.bfloat16 if acc.mixed_precision == "bf16" else None)
        # model.init_from is read once for the UNet, Resampler and image encoder.
        checkpoints = CheckpointReader()
        with torch.random.fork_rng(devices=[]):  # the UNet init does not depend on it
            image_encoder = build_image_encoder(config.model, checkpoints)
        self.image_encoder = None if image_encoder is None else \
            freeze(image_encoder).to(self.device, frozen_dtype)

        unet = build_unet(config.model, self.text_encoder, config.data.num_frames,
                          self.vae.latent_channels, checkpoints)
        denoiser = build_denoiser(config.model, unet, config.uses_controlnet,
                                  hint_channels=self.vae.latent_channels)
        self.frozen_names: list[str] = []
        if config.model.freeze_temporal_attention:
            self.frozen_names = freeze_temporal_attention(denoiser)
        if self.image_encoder is not None:
            projection = build_image_projection(config.model, unet.config, self.image_encoder,
                                                config.data.num_frames, checkpoints)
            denoiser = ImageContextModel(denoiser, projection, self.image_encoder)
        del checkpoints
        trainable = [p for p in denoiser.parameters() if p.requires_grad]
        logger.info("training %s parameters (%s frozen in the trained module)",
                    f"{sum(p.numel() for p in trainable):,}",
                    f"{sum(p.numel() for p in denoiser.parameters() if not p.requires_grad):,}")
        optim = config.optim
        optimizer = torch.optim.AdamW(trainable, lr=optim.lr, betas=tuple(optim.betas),
                                      eps=optim.eps, weight_decay=optim.weight_decay)
        self.lr_scheduler = get_scheduler(optim.lr_scheduler, optimizer,
                                          num_warmup_steps=optim.warmup_steps,
                                          num_training_steps=config.max_steps)
        # The LR scheduler is stepped here once per optimizer step (not prepared: accelerate
        # would step it once per process).
        # ``denoiser`` is what the optimizer trains (DDP-wrapped on several GPUs).
        self.denoiser, self.optimizer = acc.prepare(denoiser, optimizer)
        self.noise_scheduler = build_noise_scheduler(config.diffusion)
        # DynamiCrafter's use_dynamic_rescale: x0 * s(t) before noising (None = off); the
        # exported pipeline records the base scale so its sampler undoes it.
        self.scale_arr = None if config.diffusion.dynamic_rescale is None else \
            dynamic_rescale_schedule(config.diffusion.dynamic_rescale,
                                     num_train_timesteps=config.diffusion.num_train_timesteps
                                     ).to(self.device, torch.float32)
        self.ema = ParameterEMA(self.model, config.ema.decay,
                                config.ema.warmup) if config.ema.enabled else None
        # Weights are built identically on every process (DDP also broadcasts rank 0's);
        # from here on each process draws its own dropout masks.
        set_seed(config.seed, device_specific=True)

        # Training randomness with explicit, checkpointed state: noise/timesteps/VAE posterior
        # samples on the device, condition dropout / mask perturbation on the host.
        rank_seed = config.seed + 1_000_003 * acc.process_index
        self.generator = torch.Generator(device=self.device).manual_seed(rank_seed)
        self.host_rng = np.random.default_rng([config.seed, acc.process_index])

        self.dataset = EpochIndexed(build_dataset(config, acc))
        self.global_step = 0
        self.position = DataPosition()
        if resume:
            self._resume()
        self.metrics = MetricsLog(self.output_dir / "metrics.csv", resume_step=self.global_step) \
            if acc.is_main_process else None
        self.sampler = ResumableBatchSampler(len(self.dataset), optim.batch_size, config.seed,
                                             acc.process_index, acc.num_processes, self.position)

    # ------------------------------------------------------------------ modules
    @property
    def model(self) -> VideoUNet | ControlledVideoUNet:
        """The trained module without its DDP / autocast wrapper."""
        return self.accelerator.unwrap_model(self.denoiser)

    @property
    def _denoiser(self) -> VideoUNet | ControlledVideoUNet:
        model = self.model
        return model.denoiser if isinstance(model, ImageContextModel) else model

    @property
    def unet(self) -> VideoUNet:
        model = self._denoiser
        return model.unet if isinstance(model, ControlledVideoUNet) else model

    @property
    def controlnet(self) -> Optional[VideoControlNet]:
        """The ControlNet branch (``stage2.control: controlnet``), else None."""
        model = self._denoiser
        return model.controlnet if isinstance(model, ControlledVideoUNet) else None

    @property
    def image_projection(self) -> Optional[Resampler]:
        """The Resampler of the image branch (trained unless model.image_projection.trainable
        is false), else None."""
        model = self.model
        return model.image_projection if isinstance(model, ImageContextModel) else None

    # ------------------------------------------------------------------ checkpoints
    @property
    def generators(self) -> dict[str, Any]:
        return {"noise": self.generator, "host": self.host_rng}

    def _resume(self) -> None:
        folder = ckpt.latest_checkpoint(self.checkpoint_root)
        if folder is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {self.checkpoint_root}")
        _check_checkpoint_concat_order(folder)
        state, ema_state = ckpt.load_checkpoint(
            folder, self.accelerator, model=self.model,
            optimizer=self.optimizer, generators=self.generators)
        self.global_step = int(state["global_step"])
        self.position = DataPosition(**state["data_position"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        scaler = self.accelerator.scaler
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        if self.ema is not None:
            if ema_state is None:
                raise ValueError(f"--resume: ema.enabled but {folder} has no ema.safetensors")
            self.ema.load_state_dict(ema_state, state["ema_num_updates"])
        logger.info("resumed from %s (step %d)", folder, self.global_step)

    def save_checkpoint(self) -> Path:
        scaler = self.accelerator.scaler
        state = {
            "global_step": self.global_step,
            "data_position": vars(self.position),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
            "ema_num_updates": self.ema.num_updates if self.ema is not None else 0,
            "num_processes": self.accelerator.num_processes,
            "stage": self.config.stage,
            layout.CONCAT_ORDER_KEY: layout.RELEASE_ORDER,
        }
        return ckpt.save_checkpoint(
            self.checkpoint_root, self.global_step, self.accelerator,
            config_yaml=self.config.to_yaml(), model=self.model,
            optimizer=self.optimizer, trainer_state=state, generators=self.generators,
            ema_state=self.ema.state_dict() if self.ema is not None else None,
            keep_last=self.config.keep_last_checkpoints)

    def export(self) -> Path:
        """Write the trained (EMA if configured) UNet, and the ControlNet branch if any, into
        the pipeline folder (main process)."""
        folder = self.config.resolved_export_dir
        if self.accelerator.is_main_process:
            ema_state = self.ema.state_dict() \
                if self.ema is not None and self.config.ema.export_ema else None
            image_branch = {}
            if self.image_projection is not None:
                image_branch = dict(image_encoder=self.image_encoder,
                                    image_projection=self.image_projection,
                                    image_projection_ema_state=sub_state(ema_state,
                                                                         "image_projection."))
                ema_state = sub_state(ema_state, "denoiser.")
            if self.controlnet is None:
                export_unet(self.config, self.unet, self.vae, self.text_encoder, ema_state,
                            **image_branch)
            else:
                export_unet(self.config, self.unet, self.vae, self.text_encoder,
                            sub_state(ema_state, "unet."), controlnet=self.controlnet,
                            controlnet_ema_state=sub_state(ema_state, "controlnet."),
                            **image_branch)
        self.accelerator.wait_for_everyone()
        return folder

    # ------------------------------------------------------------------ optimisation
    def _loss(self, batch: dict) -> torch.Tensor:
        inputs = self.stage_inputs(batch, self.host_rng, self.generator)
        latents = inputs.latents
        noise = torch.randn(latents.shape, generator=self.generator, device=self.device)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps,
                                  (latents.shape[0],), generator=self.generator,
                                  device=self.device)
        latents = rescale_x0(latents, timesteps, self.scale_arr)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        prediction = self.denoiser(model_input(noisy, inputs.condition), timesteps,
                                   **inputs.model_kwargs())
        return weighted_diffusion_loss(prediction, target, inputs.loss_weights, inputs.loss_form)

    def _batches(self):
        # Own generator: creating the iterator draws a worker base seed, which must not consume
        # the global torch RNG (UNet dropout uses it; a resumed run creates its iterator at
        # another step than the uninterrupted one).
        loader = DataLoader(self.dataset, batch_sampler=self.sampler, collate_fn=collate,
                            num_workers=self.config.data.num_workers,
                            pin_memory=self.device.type == "cuda",
                            persistent_workers=self.config.data.num_workers > 0,
                            generator=torch.Generator().manual_seed(self.config.seed))
        return iter(loader)

    def train_step(self, batches) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches."""
        acc, accum = self.accelerator, self.config.optim.gradient_accumulation_steps
        self.denoiser.train()
        step_loss = torch.zeros((), device=self.device)
        for micro in range(accum):
            batch = next(batches)
            self.position = self.sampler.advance(self.position)
            # Gradients are all-reduced only on the last micro-batch.
            sync = micro == accum - 1
            with acc.no_sync(self.denoiser) if not sync else contextlib.nullcontext():
                loss = self._loss(batch)
                acc.backward(loss / accum)
            step_loss += loss.detach() / accum
        grad_norm = None
        if self.config.optim.max_grad_norm > 0:
            grad_norm = acc.clip_grad_norm_(
                [p for p in self.denoiser.parameters() if p.requires_grad],
                self.config.optim.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_step += 1
        return step_loss, grad_norm

    def train(self, stop_after: Optional[int] = None) -> list[float]:
        """Run until ``max_steps`` (checkpointing, logging, plotting, exporting at the end);
        ``stop_after`` returns right after that step without checkpoint or export (what a kill
        leaves behind). Returns the losses logged by this call (main process)."""
        return run_training(self, self.config.stage, "training loss", stop_after)

    def set_max_steps(self, max_steps: int) -> None:
        """Shorten the run to ``max_steps`` (time budget): the LR schedule is rebuilt for the
        new length and brought to the current step, and config.yaml records the new value."""
        cfg = self.config
        logger.info("time budget of %.1f min: max_steps %d -> %d", cfg.time_budget_minutes,
                    cfg.max_steps, max_steps)
        cfg.max_steps = int(max_steps)
        self.lr_scheduler = get_scheduler(cfg.optim.lr_scheduler, self.optimizer,
                                          num_warmup_steps=cfg.optim.warmup_steps,
                                          num_training_steps=cfg.max_steps)
        with warnings.catch_warnings():  # "step() before optimizer.step()": replaying steps
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(self.global_step):
                self.lr_scheduler.step()
        if self.accelerator.is_main_process:
            (self.output_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")

    def plot(self) -> Path:
        return plot_loss_curve(self.output_dir / "metrics.csv", self.output_dir / "loss.png",
                               title=f"{self.config.stage} ({self.config.component})")


# ---------------------------------------------------------------------- CLI


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mask2iv-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="training YAML (see training/)")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted config override, e.g. optim.lr=1e-4 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in <output_dir>/checkpoints")
    parser.add_argument("--export", action="store_true",
                        help="only export the newest checkpoint's UNet into the pipeline folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm bar")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    # INFO from the main process only (accelerate / torchrun set RANK for the others).
    main_process = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(level=logging.INFO if main_process else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.override)
    except ValueError as error:
        print(f"mask2iv-train: {error}", file=sys.stderr)
        return 2
    if args.export:
        trainer = Trainer(config, resume=True, show_progress=False)
        folder = trainer.export()
        print(f"exported {config.component} of step {trainer.global_step} to {folder}")
        return 0
    trainer = Trainer(config, resume=args.resume, show_progress=not args.no_progress)
    trainer.train()
    if trainer.accelerator.is_main_process:
        print(f"trained {config.stage} to step {trainer.global_step}; metrics in "
              f"{trainer.output_dir / 'metrics.csv'}, curve in {trainer.output_dir / 'loss.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
