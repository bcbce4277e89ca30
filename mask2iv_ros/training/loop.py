"""What ``mask2iv-train`` (Trainer) and ``mask2iv-distill`` (Distiller) share.

:class:`StepTrainer` holds the run machinery: accelerator and seeds, AdamW + LR schedule,
resumable data order, checkpoints with exact resume, time-budget refitting, the optimizer step
and the CLI; :func:`run_training` is the step loop (logging, time budget, plotting,
checkpointing, final export). A subclass builds its modules and says what it trains
(``_trained_module``), what a checkpoint holds (``_checkpoint_module``), its loss (``_loss``)
and what follows each optimizer step (``_after_optimizer_step``).
"""

from __future__ import annotations

import argparse
import os
import sys
import contextlib
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .data_order import DataPosition, EpochIndexed, ResumableBatchSampler
from .dataset import collate
from .plots import MetricsLog, plot_loss_curve
from .time_budget import TimeBudget

logger = logging.getLogger(__name__)


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


class StepTrainer:
    """Base of Trainer and Distiller (see the module docstring)."""

    description = "train"
    loss_name = "training loss"

    # ------------------------------------------------------------------ set-up
    def _start_run(self, config: Any, show_progress: bool) -> None:
        """Output folder, accelerator and the global seeds (before any module is built)."""
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"
        self.accelerator = Accelerator(
            mixed_precision=resolve_mixed_precision(config.mixed_precision, config.cpu),
            cpu=config.cpu)
        self.device = self.accelerator.device
        self.show_progress = show_progress and self.accelerator.is_local_main_process
        set_seed(config.seed)  # python / numpy / torch global RNGs (UNet init, dropout)

    def _prepare_optimizer(self, module: nn.Module, parameters: Iterable[nn.Parameter]) -> nn.Module:
        """AdamW over ``parameters`` and the LR schedule; returns ``module`` prepared (DDP on
        several GPUs). The LR scheduler is stepped here once per optimizer step (not prepared:
        accelerate would step it once per process)."""
        optim = self.config.optim
        optimizer = torch.optim.AdamW(parameters, lr=optim.lr, betas=tuple(optim.betas),
                                      eps=optim.eps, weight_decay=optim.weight_decay)
        self.lr_scheduler = get_scheduler(optim.lr_scheduler, optimizer,
                                          num_warmup_steps=optim.warmup_steps,
                                          num_training_steps=self.config.max_steps)
        prepared, self.optimizer = self.accelerator.prepare(module, optimizer)
        return prepared

    def _start_data(self, dataset: Any, resume: bool) -> None:
        """Per-process RNGs, the resumable data order, then --resume and the metrics log."""
        config, acc = self.config, self.accelerator
        # Weights are built identically on every process (DDP also broadcasts rank 0's);
        # from here on each process draws its own dropout masks.
        set_seed(config.seed, device_specific=True)
        # Training randomness with explicit, checkpointed state: noise/timesteps/VAE posterior
        # samples on the device, condition dropout / mask perturbation on the host.
        rank_seed = config.seed + 1_000_003 * acc.process_index
        self.generator = torch.Generator(device=self.device).manual_seed(rank_seed)
        self.host_rng = np.random.default_rng([config.seed, acc.process_index])
        self.dataset = EpochIndexed(dataset)
        self.global_step = 0
        self.position = DataPosition()
        if resume:
            self._resume()
        self.metrics = MetricsLog(self.output_dir / "metrics.csv", resume_step=self.global_step) \
            if acc.is_main_process else None
        self.sampler = ResumableBatchSampler(len(self.dataset), config.optim.batch_size, config.seed,
                                             acc.process_index, acc.num_processes, self.position)

    # ------------------------------------------------------------------ what a subclass says
    @property
    def _trained_module(self) -> nn.Module:
        """The prepared (possibly DDP-wrapped) module the optimizer trains."""
        raise NotImplementedError

    @property
    def _checkpoint_module(self) -> nn.Module:
        """The module whose weights a checkpoint holds."""
        raise NotImplementedError

    def _loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def _after_optimizer_step(self) -> None:
        """EMA / target-network updates after each optimizer step."""

    def _check_resumable(self, folder: Path) -> None:
        """Refuse a checkpoint this run cannot continue (raise ValueError)."""

    def _checkpoint_extra(self) -> dict:
        """Subclass entries of the trainer state in a checkpoint."""
        return {}

    def _plot_title(self) -> str:
        return f"{self.config.stage} ({self.config.component})"

    # ------------------------------------------------------------------ checkpoints
    @property
    def generators(self) -> dict[str, Any]:
        return {"noise": self.generator, "host": self.host_rng}

    def _resume(self) -> None:
        folder = ckpt.latest_checkpoint(self.checkpoint_root)
        if folder is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {self.checkpoint_root}")
        self._check_resumable(folder)
        state, ema_state = ckpt.load_checkpoint(folder, self.accelerator, model=self._checkpoint_module,
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
        fitted = state.get("max_steps")
        if self.config.time_budget_minutes and fitted is not None and int(fitted) != self.config.max_steps:
            # a time-budgeted run keeps the length its budget fitted (the config file still
            # says the requested max_steps); without a budget the config decides (extend a run)
            self.set_max_steps(int(fitted), write_config=False)
        logger.info("resumed from %s (step %d)", folder, self.global_step)

    def save_checkpoint(self) -> Path:
        scaler = self.accelerator.scaler
        state = {
            "global_step": self.global_step,
            "max_steps": self.config.max_steps,
            "data_position": vars(self.position),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
            "ema_num_updates": self.ema.num_updates if self.ema is not None else 0,
            "num_processes": self.accelerator.num_processes,
            "stage": self.config.stage,
            **self._checkpoint_extra(),
        }
        return ckpt.save_checkpoint(
            self.checkpoint_root, self.global_step, self.accelerator,
            config_yaml=self.config.to_yaml(), model=self._checkpoint_module,
            optimizer=self.optimizer, trainer_state=state, generators=self.generators,
            ema_state=self.ema.state_dict() if self.ema is not None else None,
            keep_last=self.config.keep_last_checkpoints)

    # ------------------------------------------------------------------ optimisation
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
        module = self._trained_module
        module.train()
        step_loss = torch.zeros((), device=self.device)
        for micro in range(accum):
            batch = next(batches)
            self.position = self.sampler.advance(self.position)
            # Gradients are all-reduced only on the last micro-batch.
            sync = micro == accum - 1
            with acc.no_sync(module) if not sync else contextlib.nullcontext():
                loss = self._loss(batch)
                acc.backward(loss / accum)
            step_loss += loss.detach() / accum
        grad_norm = None
        if self.config.optim.max_grad_norm > 0:
            grad_norm = acc.clip_grad_norm_([p for p in module.parameters() if p.requires_grad],
                                            self.config.optim.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._after_optimizer_step()
        self.global_step += 1
        return step_loss, grad_norm

    def train(self, stop_after: Optional[int] = None) -> list[float]:
        """Run until ``max_steps`` (checkpointing, logging, plotting, exporting at the end);
        ``stop_after`` returns right after that step without checkpoint or export (what a kill
        leaves behind). Returns the losses logged by this call (main process)."""
        return run_training(self, self.description, self.loss_name, stop_after)

    def set_max_steps(self, max_steps: int, write_config: bool = True) -> None:
        """Shorten the run to ``max_steps`` (time budget): the LR schedule is rebuilt for the
        new length and brought to the current step; config.yaml and checkpoints record the new
        value, so --resume keeps it."""
        cfg = self.config
        logger.info("max_steps %d -> %d (time budget %s min)", cfg.max_steps, max_steps,
                    cfg.time_budget_minutes)
        cfg.max_steps = int(max_steps)
        self.lr_scheduler = get_scheduler(cfg.optim.lr_scheduler, self.optimizer,
                                          num_warmup_steps=cfg.optim.warmup_steps,
                                          num_training_steps=cfg.max_steps)
        with warnings.catch_warnings():  # "step() before optimizer.step()": replaying steps
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(self.global_step):
                self.lr_scheduler.step()
        if write_config and self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")

    def plot(self) -> Path:
        return plot_loss_curve(self.output_dir / "metrics.csv", self.output_dir / "loss.png",
                               title=self._plot_title())


def parse_run_args(prog: str, description: str, argv: Optional[Sequence[str]], *, config_help: str,
                   override_example: str, export_help: str) -> argparse.Namespace:
    """The command line of a training verb (mask2iv-train, mask2iv-distill)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help=f"dotted config override, e.g. {override_example} (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in <output_dir>/checkpoints")
    parser.add_argument("--export", action="store_true", help=export_help)
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm bar")
    return parser.parse_args(argv)


def synchronize(trainer: Any, value: float) -> float:
    """Wait for the device, then ``value`` averaged over processes (one host sync)."""
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    return float(trainer.accelerator.reduce(torch.tensor(value, device=trainer.device),
                                            reduction="mean").item())


def run_training(trainer: Any, description: str, loss_name: str,
                 stop_after: Optional[int] = None) -> list[float]:
    """Run ``trainer`` until ``config.max_steps``; ``stop_after`` returns right after that step
    without checkpoint or export (what a kill leaves behind; used by the resume tests).
    Returns the losses logged by this call (main process; others get an empty list)."""
    cfg, acc = trainer.config, trainer.accelerator
    if acc.is_main_process:
        trainer.output_dir.mkdir(parents=True, exist_ok=True)
        (trainer.output_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    batches = trainer._batches()
    progress = tqdm(total=cfg.max_steps, initial=trainer.global_step, desc=description,
                    disable=not trainer.show_progress, dynamic_ncols=True)
    logged: list[float] = []
    window_loss = torch.zeros((), device=trainer.device)
    window_steps, window_start = 0, time.perf_counter()
    budget = TimeBudget(cfg.time_budget_minutes, cfg.max_steps, cfg.time_budget_probe_steps) \
        if cfg.time_budget_minutes and trainer.global_step == 0 else None
    while trainer.global_step < cfg.max_steps:
        step_loss, grad_norm = trainer.train_step(batches)
        window_loss += step_loss
        window_steps += 1
        progress.update(1)
        step = trainer.global_step
        if budget is not None:
            fitted = budget.observe(step, lambda value: synchronize(trainer, value))
            if fitted is not None:
                trainer.set_max_steps(fitted)
                progress.total = cfg.max_steps
                progress.refresh()
                budget = None
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            # One host sync per logging interval (not per step).
            loss = acc.reduce(window_loss / window_steps, reduction="mean").item()
            if not math.isfinite(loss):
                raise FloatingPointError(f"{loss_name} is {loss} at step {step}")
            seconds = (time.perf_counter() - window_start) / window_steps
            lr = trainer.lr_scheduler.get_last_lr()[0]
            if acc.is_main_process:
                trainer.metrics.append({"step": step, "loss": loss, "lr": lr,
                                        "grad_norm": float(grad_norm) if grad_norm is not None
                                        else "", "seconds_per_step": seconds})
                progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            logged.append(loss)
            window_loss.zero_()
            window_steps, window_start = 0, time.perf_counter()
        if acc.is_main_process and step % cfg.plot_every == 0:
            trainer.plot()
        if stop_after is not None and step >= stop_after:
            progress.close()
            return logged
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            trainer.save_checkpoint()
    progress.close()
    if acc.is_main_process:
        trainer.plot()
    if cfg.export_at_end:
        trainer.export()
    return logged


def run_verb(prog: str, args: argparse.Namespace, load: Callable[[str, Sequence[str]], Any],
             build: Callable[..., StepTrainer], result_note: Callable[[Any], str]) -> int:
    """``main()`` of a training verb: config / resume errors -> one line and exit 2, then either
    --export or the run; ``result_note(config)`` names where the result went."""
    # INFO from the main process only (accelerate / torchrun set RANK for the others).
    main_process = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(level=logging.INFO if main_process else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load(args.config, args.override)
        runner = build(config, resume=args.resume or args.export,
                       show_progress=not (args.no_progress or args.export))
    except (ValueError, FileNotFoundError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    if args.export:
        folder = runner.export()
        print(f"exported {config.component} of step {runner.global_step} to {folder}")
        return 0
    runner.train()
    if runner.accelerator.is_main_process:
        print(f"{prog}: {config.stage} ran to step {runner.global_step}; metrics in "
              f"{runner.output_dir / 'metrics.csv'}, curve in {runner.output_dir / 'loss.png'}"
              f"{result_note(config)}")
    return 0
