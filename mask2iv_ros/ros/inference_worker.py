"""The single thread that owns the pipeline and runs imagination jobs one at a time.

ROS callbacks never run the model: they submit `InferenceJob`s here and return (topic inputs) or
wait on the job (action goals, on their own executor thread), so parameters, cancels and new goals
are answered while a model runs. This module does not import rclpy.

Busy policy (checked and applied atomically in `submit`):
- "queue": up to `max_queue` jobs wait behind the running one; beyond that, `submit` refuses;
- "reject": `submit` refuses whenever a job is running or waiting.

Cancelling a waiting job completes it at once; cancelling the running job makes the next step
callback raise, so the denoising loop stops within one step.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class JobStatus(str, enum.Enum):
    # Values equal the Imagine action's STATUS_* strings.
    SUCCEEDED = "succeeded"
    INVALID_INPUT = "invalid_input"
    CANCELED = "canceled"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass
class JobOutcome:
    status: JobStatus
    error: str = ""
    output: Any = None  # Mask2IVOutput when succeeded
    run_seconds: float = 0.0
    rollout: Any = None  # the ImaginedRollout message the node built and published


class JobCanceled(Exception):
    """Raised from the step callback to stop the running pipeline call."""


@dataclass(eq=False)
class InferenceJob:
    """One run of the pipeline.

    `run(on_step)` does the work (calls the pipeline with `on_step` as its per-step callback);
    `on_step(info)` and `on_done(outcome)` are called on the worker thread.
    """

    request_id: str
    run: Callable[[Callable[[Any], None]], Any]
    on_step: Optional[Callable[[Any], None]] = None
    on_done: Optional[Callable[[JobOutcome], None]] = None
    accepted_at: float = field(default_factory=time.monotonic)
    jobs_ahead: int = 0  # running + waiting jobs when it was submitted (0 = started at once)
    outcome: Optional[JobOutcome] = None
    _cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._done.wait(timeout)


class InferenceWorker:
    """A daemon thread running submitted jobs in FIFO order."""

    def __init__(self, interrupt: Optional[Callable[[], None]] = None, logger: Any = None):
        # `interrupt` (e.g. Mask2IVPipeline.interrupt) is called when the running job is cancelled,
        # in addition to the step callback check, so a long step of the model also ends early.
        self._interrupt = interrupt
        self._logger = logger or logging.getLogger(__name__)
        self._waiting: collections.deque[InferenceJob] = collections.deque()
        self._running: Optional[InferenceJob] = None
        self._condition = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="mask2iv-inference", daemon=True)
        self._thread.start()

    # ---- called from ROS callbacks -------------------------------------------------------
    def can_accept(self, busy_policy: str, max_queue: int) -> bool:
        with self._condition:
            return self._can_accept_locked(busy_policy, max_queue)

    def submit(self, job: InferenceJob, busy_policy: str, max_queue: int) -> bool:
        """Queue `job` if the busy policy allows it now; False (job untouched) otherwise."""
        with self._condition:
            if self._stopping or not self._can_accept_locked(busy_policy, max_queue):
                return False
            job.jobs_ahead = len(self._waiting) + (self._running is not None)
            self._waiting.append(job)
            self._condition.notify_all()
            return True

    def cancel(self, job: InferenceJob) -> None:
        """Ask `job` to stop; a waiting job completes as canceled at once."""
        job._cancel_requested.set()
        with self._condition:
            if job in self._waiting:
                self._waiting.remove(job)
                waiting_job = True
            else:
                waiting_job = False
                if self._running is job and self._interrupt is not None:
                    self._interrupt()
        if waiting_job:
            self._finish(job, JobOutcome(JobStatus.CANCELED, "canceled while waiting in the queue"))

    def position(self, job: InferenceJob) -> int:
        """0 = running (or done), n >= 1 = n-th in the waiting queue."""
        with self._condition:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return 0

    @property
    def busy(self) -> bool:
        with self._condition:
            return self._running is not None or bool(self._waiting)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything (waiting jobs complete as canceled) and stop the thread."""
        with self._condition:
            self._stopping = True
            waiting = list(self._waiting)
            self._waiting.clear()
            running = self._running
            self._condition.notify_all()
        for job in waiting:
            job._cancel_requested.set()
            self._finish(job, JobOutcome(JobStatus.CANCELED, "node shutting down"))
        if running is not None:
            self.cancel(running)
        self._thread.join(timeout)

    # ---- worker thread ---------------------------------------------------------------------
    def _can_accept_locked(self, busy_policy: str, max_queue: int) -> bool:
        if busy_policy == "reject":
            return self._running is None and not self._waiting
        running_or_waiting = len(self._waiting) + (self._running is not None)
        # With nothing running a job starts at once, so it never counts against max_queue.
        return running_or_waiting == 0 or len(self._waiting) < max_queue

    def _loop(self) -> None:
        while True:
            with self._condition:
                while not self._waiting and not self._stopping:
                    self._condition.wait()
                if self._stopping and not self._waiting:
                    return
                job = self._waiting.popleft()
                self._running = job
            try:
                outcome = self._run(job)
            finally:
                with self._condition:
                    self._running = None
            self._finish(job, outcome)

    def _run(self, job: InferenceJob) -> JobOutcome:
        if job.cancel_requested:
            return JobOutcome(JobStatus.CANCELED, "canceled before it started")

        def step_callback(info: Any) -> None:
            if job.cancel_requested:
                raise JobCanceled()
            if job.on_step is not None:
                job.on_step(info)

        started = time.monotonic()
        try:
            output = job.run(step_callback)
        except Exception as error:  # noqa: BLE001 - every failure must reach the requester
            elapsed = time.monotonic() - started
            if job.cancel_requested or _is_interrupt(error):
                return JobOutcome(JobStatus.CANCELED, "canceled during the run", run_seconds=elapsed)
            if isinstance(error, ValueError):
                return JobOutcome(JobStatus.INVALID_INPUT, str(error), run_seconds=elapsed)
            self._logger.error(f"imagination {job.request_id} failed:\n{traceback.format_exc()}")
            return JobOutcome(JobStatus.FAILED, f"{type(error).__name__}: {error}", run_seconds=elapsed)
        return JobOutcome(JobStatus.SUCCEEDED, output=output, run_seconds=time.monotonic() - started)

    def _finish(self, job: InferenceJob, outcome: JobOutcome) -> None:
        try:
            if job.on_done is not None:
                job.on_done(outcome)
        except Exception as error:  # noqa: BLE001 - a publishing error must not kill the worker
            self._logger.error(f"imagination {job.request_id}: handling its outputs failed:\n{traceback.format_exc()}")
            outcome = JobOutcome(JobStatus.FAILED, f"handling the outputs failed: {type(error).__name__}: {error}")
        finally:
            job.outcome = outcome
            job._done.set()


def _is_interrupt(error: BaseException) -> bool:
    if isinstance(error, JobCanceled):
        return True
    # The pipeline's own interrupt exception, without importing the (torch-heavy) pipeline here.
    return type(error).__name__ == "Mask2IVInterrupted"
