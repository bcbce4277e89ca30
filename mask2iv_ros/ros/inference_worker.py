"""The model thread (loads, runs and frees the model) and the output thread of `imagine_node`.

One thread owns the model for the node's whole life: it loads it (`call`, during lifecycle
configure), runs every imagination job, and frees it (cleanup). Loading and running on the same
thread keeps PyTorch's CPU work in one OpenMP thread team; a model loaded on one thread and run
on another runs ~1.7x slower (two teams competing for the cores).

ROS callbacks never run the model: they submit `InferenceJob`s here and return (topic inputs) or
wait on the job (action goals, on their own executor thread), so parameters, cancels and new goals
are answered while a model runs. Turning a finished run into messages (`on_done`: overlays,
message building, publishing) happens on a second, output thread, so the model thread goes on
with the next job meanwhile; the hand-over queue holds one finished run, which bounds how many
results are in memory at once. A running job may also `post` work for the output thread (the
node's early trajectory, when stage 1 ends): it runs there in order, before the job's `on_done`.
This module does not import rclpy or torch.

Busy policy (checked and applied atomically in `submit`):
- "queue": up to `max_queue` jobs wait behind the running one; beyond that, `submit` refuses;
- "reject": `submit` refuses whenever a job is running or waiting.

Cancelling a waiting job completes it at once; cancelling the running job makes the next step
callback raise (and calls `interrupt`), so the denoising loop stops within one step. A cancel
carries the status and reason the job ends with (a client's cancel, a deadline, shutdown...).
"""

from __future__ import annotations

import collections
import concurrent.futures
import enum
import logging
import queue
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
    TIMED_OUT = "timed_out"


@dataclass
class JobOutcome:
    status: JobStatus
    error: str = ""
    output: Any = None  # Mask2IVOutput when succeeded
    run_seconds: float = 0.0
    rollout: Any = None  # the ImaginedRollout message the node built and published
    # Further Imagine.Result fields the node built (other_hypotheses, hypothesis_scores, agreement,
    # ranking, geometry), by field name
    result_fields: dict = field(default_factory=dict)
    error_type: str = ""  # exception class of a failed/invalid run (the node logs once per cause)
    traceback: str = ""  # of a failed run, for the first log of its cause


class JobCanceled(Exception):
    """Raised from the step callback to stop the running pipeline call."""


@dataclass(eq=False)
class InferenceJob:
    """One run of the pipeline.

    `run(on_step)` does the work on the model thread (calls the pipeline with `on_step` as its
    per-step callback); `on_step(info)` is called on the model thread, `on_done(outcome)` on the
    output thread (or on the cancelling thread for a job cancelled while waiting).
    """

    request_id: str
    run: Callable[[Callable[[Any], None]], Any]
    on_step: Optional[Callable[[Any], None]] = None
    on_done: Optional[Callable[[JobOutcome], None]] = None
    accepted_at: float = field(default_factory=time.monotonic)
    jobs_ahead: int = 0  # running + waiting jobs when it was submitted (0 = started at once)
    outcome: Optional[JobOutcome] = None
    cancel_status: JobStatus = JobStatus.CANCELED
    cancel_reason: str = ""
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

    def _request_cancel(self, status: JobStatus, reason: str) -> bool:
        """Record why the job stops; the first request wins. False if one was already made."""
        if self._cancel_requested.is_set():
            return False
        self.cancel_status, self.cancel_reason = status, reason
        self._cancel_requested.set()
        return True


class InferenceWorker:
    """The model thread running `call`s and submitted jobs (FIFO), plus the output thread."""

    def __init__(self, logger: Any = None, interrupt: Optional[Callable[[], None]] = None):
        # `interrupt` (e.g. Mask2IVPipeline.interrupt; settable when the model changes) is called
        # when the running job is cancelled, in addition to the step callback check, so a long
        # step of the model also ends early.
        self.interrupt = interrupt
        self._logger = logger or logging.getLogger(__name__)
        self._waiting: collections.deque[InferenceJob] = collections.deque()
        self._calls: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future]] = collections.deque()
        self._running: Optional[InferenceJob] = None
        self._condition = threading.Condition()
        self._stopping = False
        # Work for the output thread, in order: finished runs (job, outcome) and posted callables.
        # One finished run waits here while the output thread converts the previous one (the slot).
        self._finished: queue.Queue[Any] = queue.Queue()
        self._finished_slot = threading.Semaphore(1)
        self._thread = threading.Thread(target=self._loop, name="mask2iv-model", daemon=True)
        self._output_thread = threading.Thread(target=self._output_loop, name="mask2iv-outputs", daemon=True)
        self._thread.start()
        self._output_thread.start()

    # ---- called from ROS callbacks -------------------------------------------------------
    def call(self, function: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        """Run `function()` on the model thread (before any waiting job) and return its result.

        Used to load and free the model on the thread that runs it. Re-raises its exception.
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._condition:
            if self._stopping:
                raise RuntimeError("the model thread has stopped")
            self._calls.append((function, future))
            self._condition.notify_all()
        return future.result(timeout)

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

    def cancel(self, job: InferenceJob, status: JobStatus = JobStatus.CANCELED, reason: str = "") -> None:
        """Ask `job` to stop, ending with `status` and `reason`; a waiting job completes at once."""
        job._request_cancel(status, reason)
        with self._condition:
            if job in self._waiting:
                self._waiting.remove(job)
                waiting_job = True
            else:
                waiting_job = False
                if self._running is job and self.interrupt is not None:
                    self.interrupt()
        if waiting_job:
            self._finish(job, JobOutcome(job.cancel_status, job.cancel_reason or "canceled while waiting in the queue"))

    def cancel_all(self, status: JobStatus, reason: str) -> None:
        """Cancel every waiting job and the running one with `status` and `reason`."""
        with self._condition:
            jobs = list(self._waiting) + ([self._running] if self._running is not None else [])
        for job in jobs:
            self.cancel(job, status, reason)

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

    @property
    def queue_length(self) -> int:
        """Jobs waiting behind the running one."""
        with self._condition:
            return len(self._waiting)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything (jobs complete as canceled), finish pending outputs, stop both threads."""
        with self._condition:
            if self._stopping:
                return
            self._stopping = True
            self._condition.notify_all()
        self.cancel_all(JobStatus.CANCELED, "imagine_node is shutting down")
        self._thread.join(timeout)
        self._finished.put(None)  # after the model thread's last hand-over
        self._output_thread.join(timeout)

    # ---- model thread ----------------------------------------------------------------------
    def _can_accept_locked(self, busy_policy: str, max_queue: int) -> bool:
        if busy_policy == "reject":
            return self._running is None and not self._waiting
        running_or_waiting = len(self._waiting) + (self._running is not None)
        # With nothing running a job starts at once, so it never counts against max_queue.
        return running_or_waiting == 0 or len(self._waiting) < max_queue

    def _loop(self) -> None:
        while True:
            with self._condition:
                while not self._calls and not self._waiting and not self._stopping:
                    self._condition.wait()
                if self._calls:
                    function, future = self._calls.popleft()
                    job = None
                elif self._waiting:
                    job = self._waiting.popleft()
                    self._running = job
                else:  # stopping, nothing left
                    calls = list(self._calls)
                    self._calls.clear()
                    break
            if job is None:
                _run_call(function, future)
                continue
            try:
                outcome = self._run(job)
            finally:
                with self._condition:
                    self._running = None
            if outcome.status == JobStatus.SUCCEEDED:
                self._finished_slot.acquire()  # blocks while the previous result is still waiting
                self._finished.put((job, outcome))
            else:
                self._finish(job, outcome)  # nothing to convert
        for _, future in calls:
            future.set_exception(RuntimeError("the model thread has stopped"))

    def _run(self, job: InferenceJob) -> JobOutcome:
        if job.cancel_requested:
            return JobOutcome(job.cancel_status, job.cancel_reason or "canceled before it started")

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
                return JobOutcome(job.cancel_status, job.cancel_reason or "canceled during the run", run_seconds=elapsed)
            if isinstance(error, ValueError):
                return JobOutcome(JobStatus.INVALID_INPUT, str(error), run_seconds=elapsed, error_type=type(error).__name__)
            return JobOutcome(JobStatus.FAILED, f"{type(error).__name__}: {error}", run_seconds=elapsed,
                              error_type=type(error).__name__, traceback=traceback.format_exc())
        return JobOutcome(JobStatus.SUCCEEDED, output=output, run_seconds=time.monotonic() - started)

    # ---- output thread ---------------------------------------------------------------------
    def post(self, function: Callable[[], None]) -> None:
        """Run `function()` on the output thread after what is already handed over (from a job's
        run: before that job's `on_done`). Its exceptions are logged, never raised."""
        self._finished.put(function)

    def _output_loop(self) -> None:
        while True:
            item = self._finished.get()
            if item is None:
                return
            if callable(item):
                try:
                    item()
                except Exception:  # noqa: BLE001 - a publishing error must not kill the thread
                    self._logger.error(f"posted output work failed:\n{traceback.format_exc()}")
                continue
            self._finished_slot.release()
            self._finish(*item)

    def _finish(self, job: InferenceJob, outcome: JobOutcome) -> None:
        try:
            if job.on_done is not None:
                job.on_done(outcome)
        except Exception as error:  # noqa: BLE001 - a publishing error must not kill the thread
            self._logger.error(f"imagination {job.request_id}: handling its outputs failed:\n{traceback.format_exc()}")
            outcome = JobOutcome(JobStatus.FAILED, f"handling the outputs failed: {type(error).__name__}: {error}",
                                 error_type=type(error).__name__)
        finally:
            job.outcome = outcome
            job._done.set()


def _run_call(function: Callable[[], Any], future: concurrent.futures.Future) -> None:
    try:
        result = function()
    except BaseException as error:  # noqa: BLE001 - handed to the caller
        future.set_exception(error)
    else:
        future.set_result(result)


def _is_interrupt(error: BaseException) -> bool:
    if isinstance(error, JobCanceled):
        return True
    # The pipeline's own interrupt exception, without importing the (torch-heavy) pipeline here.
    return type(error).__name__ == "Mask2IVInterrupted"
