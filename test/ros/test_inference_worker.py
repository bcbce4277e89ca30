"""The inference worker without ROS or a model: ordering, busy policy, cancel, failures."""

import threading
import time

from mask2iv_ros.ros.inference_worker import InferenceJob, InferenceWorker, JobStatus


class SteppedRun:
    """A fake pipeline call: `steps` steps of `step_s` seconds, calling the step callback."""

    def __init__(self, steps=3, step_s=0.01, error=None):
        self.steps, self.step_s, self.error = steps, step_s, error
        self.started = threading.Event()
        self.steps_done = 0

    def __call__(self, step_callback):
        self.started.set()
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            self.steps_done = step
            step_callback(step)
        if self.error is not None:
            raise self.error
        return f"output after {self.steps} steps"


def job(name, run, log=None):
    return InferenceJob(name, run, on_done=(lambda outcome: log.append((name, outcome.status))) if log is not None else None)


def test_jobs_run_in_order_and_report_steps():
    worker = InferenceWorker()
    log, steps = [], []
    first = InferenceJob("a", SteppedRun(), on_step=steps.append, on_done=lambda o: log.append(("a", o.status)))
    second = job("b", SteppedRun(), log)
    assert worker.submit(first, "queue", 4) and worker.submit(second, "queue", 4)
    assert (first.jobs_ahead, second.jobs_ahead) in [(0, 1)]
    assert second.wait(5) and first.done
    assert log == [("a", JobStatus.SUCCEEDED), ("b", JobStatus.SUCCEEDED)]
    assert steps == [1, 2, 3] and first.outcome.output == "output after 3 steps"
    worker.shutdown()


def test_queue_policy_limits_waiting_jobs():
    worker = InferenceWorker()
    running = SteppedRun(steps=50)
    assert worker.submit(job("run", running), "queue", 1)
    running.started.wait(5)
    assert worker.submit(job("wait", SteppedRun()), "queue", 1)
    assert not worker.can_accept("queue", 1)
    assert not worker.submit(job("third", SteppedRun()), "queue", 1)
    assert not worker.submit(job("third", SteppedRun()), "reject", 1)
    worker.shutdown()


def test_reject_policy_refuses_while_busy():
    worker = InferenceWorker()
    running = SteppedRun(steps=50)
    assert worker.can_accept("reject", 0) and worker.submit(job("run", running), "reject", 0)
    running.started.wait(5)
    assert worker.busy and not worker.submit(job("other", SteppedRun()), "reject", 0)
    worker.shutdown()


def test_cancel_running_job_stops_within_one_step_and_next_job_runs():
    # The step count is read inside the interrupt, i.e. after the cancel flag is set: reading it
    # in the test thread before cancel() raced with the worker under CPU load.
    interrupts = []
    running, after = SteppedRun(steps=1000, step_s=0.005), SteppedRun()
    worker = InferenceWorker(interrupt=lambda: interrupts.append(running.steps_done))
    first, second = job("run", running), job("after", after)
    worker.submit(first, "queue", 4)
    worker.submit(second, "queue", 4)
    assert running.started.wait(20)
    worker.cancel(first)
    assert first.wait(20) and first.outcome.status == JobStatus.CANCELED
    assert len(interrupts) == 1 and running.steps_done <= interrupts[0] + 1
    assert second.wait(20) and second.outcome.status == JobStatus.SUCCEEDED
    worker.shutdown()


def test_cancel_waiting_job_completes_it_at_once():
    worker = InferenceWorker()
    running, waiting_run = SteppedRun(steps=50), SteppedRun()
    worker.submit(job("run", running), "queue", 4)
    waiting = job("wait", waiting_run)
    worker.submit(waiting, "queue", 4)
    worker.cancel(waiting)
    assert waiting.done and waiting.outcome.status == JobStatus.CANCELED
    worker.shutdown()
    assert not waiting_run.started.is_set()


def test_failures_map_to_statuses_and_worker_survives():
    worker = InferenceWorker()
    bad_input = job("bad", SteppedRun(error=ValueError("num_frames: expected <= 64, got 100")))
    crash = job("crash", SteppedRun(error=RuntimeError("CUDA out of memory")))
    fine = job("fine", SteppedRun())

    def broken_on_done(outcome):
        raise KeyError("publisher gone")

    broken_outputs = InferenceJob("outputs", SteppedRun(), on_done=broken_on_done)
    for j in (bad_input, crash, broken_outputs, fine):
        worker.submit(j, "queue", 4)
    assert fine.wait(5)
    assert (bad_input.outcome.status, bad_input.outcome.error) == (JobStatus.INVALID_INPUT, "num_frames: expected <= 64, got 100")
    assert crash.outcome.status == JobStatus.FAILED and "CUDA out of memory" in crash.outcome.error
    assert broken_outputs.outcome.status == JobStatus.FAILED and "publisher gone" in broken_outputs.outcome.error
    assert fine.outcome.status == JobStatus.SUCCEEDED
    worker.shutdown()


def test_shutdown_cancels_waiting_and_running_jobs():
    worker = InferenceWorker()
    running = SteppedRun(steps=10000, step_s=0.001)
    first, second = job("run", running), job("wait", SteppedRun())
    worker.submit(first, "queue", 4)
    worker.submit(second, "queue", 4)
    running.started.wait(5)
    worker.shutdown()
    assert first.outcome.status == second.outcome.status == JobStatus.CANCELED
    assert not worker.submit(job("late", SteppedRun()), "queue", 4)


def test_calls_run_on_the_model_thread_and_outputs_on_another():
    """Load and run on one thread (one OpenMP team); output conversion does not hold the model thread."""
    worker = InferenceWorker()
    model_thread = worker.call(threading.get_ident)
    assert model_thread != threading.get_ident()
    run_threads, done_threads = [], []
    converting, release = threading.Event(), threading.Event()

    def slow_outputs(outcome):
        done_threads.append(threading.get_ident())
        converting.set()
        assert release.wait(10)

    def run(step_callback):
        run_threads.append(threading.get_ident())
        return "output"

    first = InferenceJob("first", run, on_done=slow_outputs)
    second = InferenceJob("second", run)
    worker.submit(first, "queue", 4)
    worker.submit(second, "queue", 4)
    assert converting.wait(10)
    # The second run happens while the first one's outputs are still being converted.
    deadline = time.monotonic() + 10
    while len(run_threads) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(run_threads) == 2 and not first.done
    release.set()
    assert second.wait(10)
    assert first.wait(10) and first.outcome.status == JobStatus.SUCCEEDED
    assert run_threads == [model_thread, model_thread] and done_threads[0] not in (model_thread, threading.get_ident())
    try:
        worker.call(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("call() must re-raise the function's exception")
    worker.shutdown()


def test_cancel_carries_its_status_and_reason():
    worker = InferenceWorker()
    running = SteppedRun(steps=10000, step_s=0.001)
    first, waiting = job("run", running), job("wait", SteppedRun())
    worker.submit(first, "queue", 4)
    worker.submit(waiting, "queue", 4)
    running.started.wait(5)
    worker.cancel(waiting, JobStatus.TIMED_OUT, "timeout_s: passed")
    worker.cancel_all(JobStatus.CANCELED, "shutting down")
    assert first.wait(5)
    assert (waiting.outcome.status, waiting.outcome.error) == (JobStatus.TIMED_OUT, "timeout_s: passed")
    assert (first.outcome.status, first.outcome.error) == (JobStatus.CANCELED, "shutting down")
    worker.shutdown()


def test_posted_work_runs_on_the_output_thread_before_on_done_while_the_model_goes_on():
    worker = InferenceWorker()
    log = []
    started, release = threading.Event(), threading.Event()

    def posted():
        log.append(("posted", threading.current_thread().name))
        started.set()
        release.wait(5)  # the output thread is busy with it: the run must not wait for that

    def run(step_callback):
        worker.post(posted)
        assert started.wait(5)  # "stage 2" goes on while the posted work is still running
        log.append(("run finished", release.is_set()))
        release.set()
        return "output"

    finished = InferenceJob("a", run, on_done=lambda outcome: log.append(("done", threading.current_thread().name)))
    assert worker.submit(finished, "queue", 4) and finished.wait(5)
    assert log == [("posted", "mask2iv-outputs"), ("run finished", False), ("done", "mask2iv-outputs")]

    def failing():
        raise RuntimeError("publishing failed")

    worker.post(failing)  # logged; the output thread goes on
    later = job("b", SteppedRun(steps=1), log)
    assert worker.submit(later, "queue", 4) and later.wait(5) and log[-1] == ("b", JobStatus.SUCCEEDED)
    worker.shutdown()
