"""The step loop shared by ``mask2iv-train`` and ``mask2iv-distill``.

Both trainers expose the same surface (``config``, ``accelerator``, ``device``, ``output_dir``,
``show_progress``, ``global_step``, ``_batches()``, ``train_step(batches)``,
``set_max_steps(n)``, ``lr_scheduler``, ``metrics``, ``plot()``, ``save_checkpoint()``,
``export()``); this loop does the logging, time budget, plotting, checkpointing and the final
export for either.
"""

from __future__ import annotations

import math
import time
from typing import Any, Optional

import torch
from tqdm.auto import tqdm

from .time_budget import TimeBudget


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
