"""Fitting a run's number of steps into a wall-clock budget (a GPU lease, a cluster time limit)."""

from __future__ import annotations

import time
from typing import Callable, Optional


class TimeBudget:
    """Chooses ``max_steps`` from the speed measured over the first steps of a fresh run.

    The first few steps (allocator, cuDNN autotuning, data-loader start) are left out of the
    speed; 3 % of the budget is kept for the final checkpoint and export. The result is never
    above the configured ``max_steps``.
    """

    def __init__(self, minutes: float, max_steps: int, probe_step: int = 30) -> None:
        self.minutes = minutes
        self.max_steps = max_steps
        self.start = time.perf_counter()
        self.probe_step = probe_step
        self.warm_step = max(1, min(5, probe_step // 3))
        self.warm_time: Optional[float] = None

    def observe(self, step: int, synchronize: Callable[[float], float]) -> Optional[int]:
        """Call after each step; returns the new max_steps once, at the probe step.

        ``synchronize(value)`` waits for the device and returns ``value`` agreed over processes.
        """
        if step == self.warm_step:
            synchronize(0.0)
            self.warm_time = time.perf_counter()
            return None
        if step != self.probe_step or self.warm_time is None:
            return None
        synchronize(0.0)
        now = time.perf_counter()
        seconds_per_step = synchronize((now - self.warm_time) / (step - self.warm_step))
        remaining = 0.97 * 60.0 * self.minutes - (now - self.start)
        fitted = step + max(0, int(remaining / seconds_per_step))
        return max(step, min(self.max_steps, fitted))
