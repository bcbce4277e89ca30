"""`imagine_node`: Mask2IV imagination as a ROS 2 lifecycle node (topics in, trajectory/video out, Imagine action).

Lifecycle (rclpy.lifecycle; `ros2 lifecycle set /imagine_node configure`, or the launch file):
- configure: load the model (on the model thread), create the output publishers, the `imagine`
  action server and the /diagnostics publisher;
- activate: subscribe to the inputs; goals are served;
- deactivate: unsubscribe; running and queued goals end as canceled, new goals end at once with
  status "rejected" and the reason;
- cleanup: remove the action server and publishers, free the model (and the CUDA cache);
- shutdown (from any state): all of the above.
With `autostart` (default true) `main` configures and activates at start, so a plain
`imagine_node --ros-args ...` serves; the launch file passes autostart:=false and drives the
transitions itself.

Threads: callbacks run on a MultiThreadedExecutor (spun by a thread of `main`); the model is loaded,
run and freed on the one model thread of `InferenceWorker`; finished runs become messages on its
output thread, and so does the mask trajectory as soon as stage 1 ends (published on
mask_trajectory_topic before the video exists; goals get feedback with trajectory_ready). Input
subscriptions share a mutually exclusive group (they feed one synchronizer);
the action server's callbacks are reentrant: an execute callback waits for its job on its own
executor thread, so the executor needs `executor_threads()` threads for parameters, cancels and
new goals to stay answered while goals wait or run.

Every goal gets a result with a status and a reason: bad input (`invalid_input`, checked before
queueing by ros/requests.py), busy (`rejected`), deadline passed (`timed_out`, the goal's
`timeout_s`), its client gone (`canceled`, after `abandoned_goal_timeout_s` without any action
client), node deactivated or shutting down (SIGINT/SIGTERM: `canceled`; the result still reaches the
client before the node exits).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import signal
import sys
import threading
import time
import traceback
from typing import Any, Optional

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from mask2iv_ros.action import Imagine
from mask2iv_ros.masks import DEFAULT_PALETTE
from mask2iv_ros.msg import ImaginedRollout, InteractionGeometry, MaskTrajectory
from mask2iv_ros.ros import outputs
from mask2iv_ros.ros.capabilities import ModelCapabilities, capabilities_of
from mask2iv_ros.ros.image_conversion import rgb_to_image_msg
from mask2iv_ros.ros.inference_worker import InferenceJob, InferenceWorker, JobOutcome, JobStatus
from mask2iv_ros.ros.model_loading import StartupError, checkpoint_folder, load_pipeline
from mask2iv_ros.ros.overlay import overlay_frames
from mask2iv_ros.ros.parameters import (MODEL_PARAMETERS, ImagineParameters, declare_node_parameters, default_torch_threads,
                                        updated_parameters)
from mask2iv_ros.ros.requests import ImagineRequest, InvalidInput, build_request
from mask2iv_ros.ros.qos import latched_qos
from mask2iv_ros.ros.serving_stats import CauseLog, ServingStats
from mask2iv_ros.ros.synchronizer import ApproximateTimeSynchronizer, stamp_to_ns

# Seconds an execute callback waits for a client's cancel request to reach CANCELING after its job stopped.
_CANCEL_STATE_WAIT_S = 2.0
# How often deadlines and the presence of action clients are checked.
_GOAL_WATCH_PERIOD_S = 0.2
# Seconds cleanup/shutdown wait for running execute callbacks to hand over their results.
_EXECUTE_DRAIN_S = 10.0
# how long a goal that arrived during autostart waits for activation (the model is already
# loaded by then: only the rest of configure and activate remain)
_AUTOSTART_WAIT_S = 30.0
_CLIENT_CANCEL = "canceled by the client"
DIAGNOSTICS_TOPIC = "/diagnostics"


class ImagineNode(LifecycleNode):
    """The imagination node. `pipeline`/`model_id` may be injected (tests); else loaded from model_path."""

    def __init__(self, *, pipeline: Any = None, model_id: str = "", node_name: str = "imagine_node", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.params: ImagineParameters = declare_node_parameters(self)
        self.causes = CauseLog(self.get_logger())
        self.stats = ServingStats()
        self._injected_pipeline, self._injected_model_id = pipeline, model_id
        self.pipeline: Any = None
        self.model_id = ""
        self.capabilities: Optional[ModelCapabilities] = None
        self.palette = DEFAULT_PALETTE
        self.torch_threads = 0
        self.startup_error = ""  # why the last configure failed (one line)
        self.lifecycle_state = "unconfigured"
        self._autostarting = False
        # set while no autostart is under way: the action server exists from configure on, so a
        # planner can reach it before autostart has activated the node (see _execute_goal)
        self._autostart_done = threading.Event()
        self._autostart_done.set()
        self._serving = False
        self._stop_reason = ""  # set once the node is shutting down
        self._state_lock = threading.Lock()
        self._latest_prompt = ""
        self._latest_set: Optional[dict[str, Image]] = None
        self._pending_rate_set: Optional[dict[str, Image]] = None
        self._topic_requests = 0
        self._goal_jobs: dict[bytes, InferenceJob] = {}
        self._goal_deadlines: dict[bytes, tuple[float, float]] = {}  # key -> (deadline, timeout_s)
        self._executes = threading.Condition()
        self._active_executes = 0
        self._no_client_since: Optional[float] = None
        self.action_server: Any = None
        self._publishers_out: list = []
        self._input_subscriptions: list = []
        self._prompt_subscription: Any = None
        self._rate_timer: Any = None
        self._watch_timer: Any = None
        self._diagnostics_timer: Any = None
        self._diagnostics_publisher: Any = None
        self.worker = InferenceWorker(logger=self.get_logger())
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def autostart(self) -> bool:
        """Configure then activate (what `autostart` does); False with `startup_error` set if configure failed."""
        self._autostarting = True
        self._autostart_done.clear()
        try:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return False
            return self.trigger_activate() == TransitionCallbackReturn.SUCCESS
        finally:
            self._autostarting = False
            self._autostart_done.set()

    def executor_threads(self) -> int:
        """Executor threads needed: one per waiting/running goal, plus room for other callbacks."""
        return self.params.max_queue + 5

    # ---- lifecycle transitions -------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.startup_error = ""
        try:
            self.params.validate()
            self._load_model()
            self.capabilities.check_parameters(self.params)
        except (StartupError, ValueError) as error:
            return self._configure_failed(str(error))
        except Exception as error:  # noqa: BLE001 - a start-up fault is reported, never a traceback
            self.get_logger().debug(traceback.format_exc())
            return self._configure_failed(f"model_path: loading {self.params.model_path!r} failed: "
                                          f"{type(error).__name__}: {error}")
        self._create_outputs()
        self.lifecycle_state = "inactive"
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._create_inputs()
        self._serving = True
        self.lifecycle_state = "active"
        p = self.params
        self.get_logger().info(
            f"imagine_node ready: model {self.model_id} (modes {list(self.capabilities.modes)}) on {p.device} "
            f"({self.torch_threads} torch threads), mode {p.mode}, trigger {p.trigger}, inputs "
            f"{[s.topic_name for s in self._input_subscriptions]}, action {self.resolve_topic_name(p.action_name)}"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._serving = False
        self._destroy_inputs()
        self.worker.cancel_all(JobStatus.CANCELED, "imagine_node was deactivated (lifecycle)")
        self.lifecycle_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_outputs()
        self._unload_model()
        self.lifecycle_state = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_serving(self._stop_reason or "imagine_node is shutting down")
        self._destroy_inputs()
        self._destroy_outputs()
        self._unload_model()
        self.worker.shutdown()
        self.lifecycle_state = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"imagine_node: error during a lifecycle transition from {state.label}; cleaning up")
        self._serving = False
        self._destroy_inputs()
        self._destroy_outputs()
        self._unload_model()
        self.lifecycle_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, message: str) -> TransitionCallbackReturn:
        self.startup_error = message
        if not self._autostarting:  # main() logs an autostart failure itself, as FATAL
            self.get_logger().error(f"configure failed: {message}")
        self._unload_model()
        return TransitionCallbackReturn.FAILURE

    def stop_serving(self, reason: str, timeout_s: float = _EXECUTE_DRAIN_S) -> bool:
        """Stop taking work, end every goal with `reason` and wait until their results are handed over."""
        self._stop_reason = reason
        self._serving = False
        self.worker.cancel_all(JobStatus.CANCELED, reason)
        return self._wait_for_executes(timeout_s)

    def _wait_for_executes(self, timeout_s: float) -> bool:
        with self._executes:
            return self._executes.wait_for(lambda: self._active_executes == 0, timeout_s)

    # ---- model (always on the model thread) --------------------------------------------------
    def _load_model(self) -> None:
        p = self.params
        self.torch_threads = p.torch_threads or default_torch_threads()
        injected, injected_id = self._injected_pipeline, self._injected_model_id

        def load() -> tuple[Any, str, float]:
            if injected is None:
                checkpoint_folder(p.model_path)  # a wrong path or broken file: reported before torch loads
            import torch

            # Per thread for OpenMP: set on the thread that loads and runs the model.
            torch.set_num_threads(self.torch_threads)
            started = time.monotonic()
            if injected is not None:
                return injected, injected_id, 0.0
            pipeline, model_id = load_pipeline(p.model_path, p.device)
            return pipeline, model_id, time.monotonic() - started

        pipeline, model_id, seconds = self.worker.call(load)
        self.pipeline = pipeline
        self.model_id = model_id or getattr(getattr(pipeline, "config", None), "model_id", type(pipeline).__name__)
        self.capabilities = capabilities_of(pipeline)
        self.palette = getattr(pipeline, "palette", DEFAULT_PALETTE)
        self.worker.interrupt = getattr(pipeline, "interrupt", None)
        if injected is None:
            self.get_logger().info(f"loaded model {self.model_id} on {p.device} in {seconds:.1f} s")

    def _unload_model(self) -> None:
        if self.pipeline is None:
            return
        device = self.params.device

        def free() -> None:
            self.pipeline = None
            self.worker.interrupt = None
            gc.collect()
            if device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()

        try:
            self.worker.call(free, timeout=30.0)
        except RuntimeError:  # the model thread already stopped
            self.pipeline = None
        self.capabilities = None

    # ---- entities ----------------------------------------------------------------------------
    def _create_outputs(self) -> None:
        p = self.params

        self.trajectory_publisher = self.create_lifecycle_publisher(MaskTrajectory, p.mask_trajectory_topic, latched_qos(p.output_qos_depth))
        self.rollout_publisher = self.create_lifecycle_publisher(ImaginedRollout, p.rollout_topic, latched_qos(p.output_qos_depth))
        self.overlay_publisher = self.create_lifecycle_publisher(Image, p.overlay_topic, latched_qos(p.frame_stream_qos_depth))
        self.video_publisher = self.create_lifecycle_publisher(Image, p.video_topic, latched_qos(p.frame_stream_qos_depth))
        # one message per hypothesis of a request: keep a whole request for late joiners
        self.geometry_publisher = self.create_lifecycle_publisher(
            InteractionGeometry, p.geometry_topic, latched_qos(p.output_qos_depth * p.max_samples))
        self._publishers_out = [self.trajectory_publisher, self.rollout_publisher, self.overlay_publisher, self.video_publisher,
                                self.geometry_publisher]
        self.action_server = ActionServer(
            self,
            Imagine,
            p.action_name,
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )
        self._feedback_topic = f"{self.resolve_topic_name(p.action_name)}/_action/feedback"
        self._no_client_since = None
        self._watch_timer = self.create_timer(_GOAL_WATCH_PERIOD_S, self._watch_goals, callback_group=MutuallyExclusiveCallbackGroup())
        if p.diagnostics_period_s > 0:
            from mask2iv_ros.ros.diagnostics import DiagnosticArray

            self._diagnostics_publisher = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
            self._diagnostics_timer = self.create_timer(p.diagnostics_period_s, self._publish_diagnostics,
                                                        callback_group=MutuallyExclusiveCallbackGroup())

    def _destroy_outputs(self) -> None:
        if self.action_server is None:
            return
        self._serving = False
        self.worker.cancel_all(JobStatus.CANCELED, self._stop_reason or "imagine_node was cleaned up (lifecycle)")
        self._wait_for_executes(_EXECUTE_DRAIN_S)
        for timer in (self._watch_timer, self._diagnostics_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._watch_timer = self._diagnostics_timer = None
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_publisher = None
        for publisher in self._publishers_out:
            self.destroy_lifecycle_publisher(publisher)
        self._publishers_out = []
        self.action_server.destroy()
        self.action_server = None

    def _create_inputs(self) -> None:
        p = self.params
        input_qos = QoSProfile(
            reliability=ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
            history=HistoryPolicy.KEEP_LAST,
            depth=p.input_qos_depth,
        )
        input_group = MutuallyExclusiveCallbackGroup()
        sync_inputs = ["image", "object_mask"] + (["placement_mask"] if p.mode == "position" else [])
        # The first-frame actor mask belongs to the same instant as the image, so it is synchronized
        # with it rather than kept as a latest value like the prompt.
        sync_inputs += ["actor_mask"] if p.use_actor_mask else []
        # Depth and its camera_info are of the image's instant too (a depth camera's aligned depth).
        sync_inputs += ["depth", "camera_info"] if p.use_depth else []
        self._synchronizer = ApproximateTimeSynchronizer(sync_inputs, p.sync_queue_size, p.sync_slop_s, self._on_input_set)
        topics = {
            "image": p.image_topic,
            "object_mask": p.object_mask_topic,
            "placement_mask": p.placement_mask_topic,
            "actor_mask": p.actor_mask_topic,
            "depth": p.depth_topic,
            "camera_info": p.camera_info_topic,
        }
        self._input_subscriptions = [
            self.create_subscription(
                CameraInfo if name == "camera_info" else Image, topics[name], functools.partial(self._on_input_image, name),
                input_qos, callback_group=input_group
            )
            for name in sync_inputs
        ]
        # Prompts are rare and must not be lost: reliable (as default publishers and `ros2 topic pub`
        # are); volatile, so volatile and transient-local publishers both match.
        prompt_qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1)
        self._prompt_subscription = self.create_subscription(
            String, p.prompt_topic, self._on_prompt, prompt_qos, callback_group=input_group
        )
        self._rate_timer = None
        if p.trigger == "rate":
            self._rate_timer = self.create_timer(1.0 / p.max_rate_hz, self._on_rate_timer, callback_group=input_group)

    def _destroy_inputs(self) -> None:
        for subscription in self._input_subscriptions + ([self._prompt_subscription] if self._prompt_subscription else []):
            self.destroy_subscription(subscription)
        self._input_subscriptions, self._prompt_subscription = [], None
        if self._rate_timer is not None:
            self.destroy_timer(self._rate_timer)
            self._rate_timer = None
        with self._state_lock:
            self._latest_set = self._pending_rate_set = None

    # ---- parameters --------------------------------------------------------------------------
    def _on_set_parameters(self, changes: list) -> SetParametersResult:
        model_changes = sorted({p.name for p in changes} & set(MODEL_PARAMETERS))
        if model_changes and self.lifecycle_state != "unconfigured":
            return SetParametersResult(successful=False, reason=(
                f"{model_changes[0]}: read when the model is loaded; change it while the node is unconfigured "
                f"(lifecycle cleanup first; now {self.lifecycle_state})"))
        try:
            params = updated_parameters(self.params, changes)
            if self.capabilities is not None:
                self.capabilities.check_parameters(params)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.params = params
        return SetParametersResult(successful=True)

    # ---- topic inputs ------------------------------------------------------------------------
    def _on_prompt(self, msg: String) -> None:
        with self._state_lock:
            self._latest_prompt = msg.data

    def _on_input_image(self, name: str, msg: Image) -> None:
        self._synchronizer.add(name, stamp_to_ns(msg.header.stamp), msg)

    def _on_input_set(self, *messages: Image) -> None:
        input_set = dict(zip(self._synchronizer.input_names, messages))
        with self._state_lock:
            self._latest_set = input_set
            if self.params.trigger == "rate":
                self._pending_rate_set = input_set
        if self.params.trigger == "each":
            self._submit_topic_set(input_set)

    def _on_rate_timer(self) -> None:
        with self._state_lock:
            input_set = self._pending_rate_set
            if input_set is None or not self.worker.can_accept(self.params.busy_policy, self.params.max_queue):
                return  # keep the newest set until the worker can take it
            self._pending_rate_set = None
        self._submit_topic_set(input_set)

    def _submit_topic_set(self, input_set: dict[str, Image]) -> None:
        if not self._serving:
            return
        with self._state_lock:
            self._topic_requests += 1
            request_id = f"topic-{self._topic_requests}"
            prompt = self._latest_prompt
        p = self.params
        try:
            request = build_request(
                request_id=request_id,
                image_msg=input_set["image"],
                object_mask_msg=input_set["object_mask"],
                placement_mask_msg=input_set.get("placement_mask"),
                actor_mask_msg=input_set.get("actor_mask"),
                mode=p.mode,
                prompt=prompt,
                params=p,
                capabilities=self.capabilities,
                now_ns=self.get_clock().now().nanoseconds,
                trajectory_only=not (p.publish_video and self.capabilities.has_video_model),
                prompt_source=f"prompt (topic {self.resolve_topic_name(p.prompt_topic)})",
                num_samples=p.num_samples,
                depth_msg=input_set.get("depth"),
                camera_info_msg=input_set.get("camera_info"),
            )
        except InvalidInput as error:
            self.stats.record(JobStatus.INVALID_INPUT.value, str(error))
            self.causes.report(error.cause, f"ignoring synchronized input set {request_id}: {error}")
            return
        self._report_warnings(request)
        job = self._make_job(request)
        if not self.worker.submit(job, p.busy_policy, p.max_queue):
            self.stats.record(JobStatus.REJECTED.value)
            self.causes.report(
                "busy:topic", f"dropping synchronized input set {request_id}: model busy "
                f"(busy_policy {p.busy_policy}, max_queue {p.max_queue})"
            )

    def _report_warnings(self, request: ImagineRequest) -> None:
        for warning in request.warnings:
            self.causes.report(f"warning:{warning.split(':', 1)[0]}", f"imagination {request.request_id}: {warning}")

    # ---- jobs and outputs ---------------------------------------------------------------------
    def _make_job(self, request: ImagineRequest, on_step: Any = None, on_trajectory_sent: Any = None) -> InferenceJob:
        """`on_trajectory_sent()`: called on the output thread once the trajectory is on its topic."""
        early = _EarlyTrajectory()
        on_trajectory = None
        if self.capabilities.accepts_trajectory_callback:
            def on_trajectory(stage1_output: Any) -> None:  # model thread: hand over, go on with stage 2
                self.worker.post(functools.partial(self._publish_trajectory, request, early, stage1_output,
                                                   on_trajectory_sent))
        return InferenceJob(
            request_id=request.request_id,
            run=functools.partial(self._run_pipeline, self.pipeline, request, on_trajectory),
            on_step=on_step,
            on_done=functools.partial(self._publish_outcome, request, early),
        )

    @staticmethod
    def _run_pipeline(pipeline: Any, request: ImagineRequest, on_trajectory: Any, step_callback: Any) -> Any:
        extra = {} if on_trajectory is None else {"callback_on_trajectory": lambda _pipe, output: on_trajectory(output)}
        return pipeline(**request.pipeline_kwargs(), callback_on_step_end=lambda _pipe, info: step_callback(info), **extra)

    def _trajectory_messages(self, request: ImagineRequest, output: Any, early: "_EarlyTrajectory") -> None:
        """Every hypothesis' masks on the camera grid and its MaskTrajectory (trajectory_encoding), into `early`."""
        p = self.params
        fps = outputs.output_fps(output, p.output_fps)
        header = outputs.input_header(request)
        hypotheses = outputs.hypotheses_of(output)
        colour = p.trajectory_encoding != "masks"  # the colour frames only when they are sent
        early.masks = [outputs.masks_in_input_frame(h, self.palette, colour) for h in hypotheses]
        early.trajectories = [outputs.mask_trajectory_msg(h, header, fps, self.palette, m, p.trajectory_encoding)
                              for h, m in zip(hypotheses, early.masks)]

    def _publish_trajectory(self, request: ImagineRequest, early: "_EarlyTrajectory", stage1_output: Any,
                            on_sent: Any) -> None:
        """On the output thread, when stage 1 ended: the first-ranked trajectory on its topic, now."""
        self._trajectory_messages(request, stage1_output, early)
        self.trajectory_publisher.publish(early.trajectories[0])
        if on_sent is not None:
            on_sent()

    def _report_run_fault(self, request: ImagineRequest, outcome: JobOutcome) -> None:
        """Each different fault at WARN (bad input) or ERROR (failure) the first time it happens."""
        if outcome.status == JobStatus.INVALID_INPUT:
            field = outcome.error.split(":", 1)[0].strip() or "unknown"
            self.causes.report(f"pipeline:{field}", f"imagination {request.request_id}: {outcome.error}")
        elif outcome.status == JobStatus.FAILED:
            digest = "".join("N" if c.isdigit() else c for c in outcome.error)[:120]
            self.causes.report(f"failed:{outcome.error_type}:{digest}", f"imagination {request.request_id} failed: "
                               f"{outcome.error}", level="error", details=outcome.traceback)
        elif outcome.status == JobStatus.TIMED_OUT:
            self.causes.report("timed_out", f"imagination {request.request_id}: {outcome.error}")

    def _publish_outcome(self, request: ImagineRequest, early: "_EarlyTrajectory", outcome: JobOutcome) -> None:
        """On the output thread: turn a finished run into messages and publish them.

        The trajectory went out when stage 1 ended (`early`); a pipeline without that callback gets
        it published here. Rollout topic: the trajectory's header/region/palette only, plus the video.
        """
        self.stats.record(outcome.status.value, outcome.error if outcome.status != JobStatus.SUCCEEDED else "",
                          outcome.run_seconds if outcome.status == JobStatus.SUCCEEDED else None)
        if outcome.status != JobStatus.SUCCEEDED:
            self._report_run_fault(request, outcome)
            return
        conversion_started = time.monotonic()
        output, outcome.output = outcome.output, None  # the messages carry it from here on
        p = self.params
        fps = outputs.output_fps(output, p.output_fps)
        header = outputs.input_header(request)
        published_early = early.trajectories is not None
        if not published_early:
            self._trajectory_messages(request, output, early)
        # every hypothesis in rank order; the first is `output` (one, for a single sample)
        hypotheses = outputs.hypotheses_of(output)
        masks = early.masks
        rollouts = []
        for index, (hypothesis, trajectory) in enumerate(zip(hypotheses, early.trajectories)):
            rollout = outputs.rollout_msg(
                request,
                hypothesis,
                trajectory,
                fps=fps,
                model_id=self.model_id,
                # The run plus turning it into messages (the trajectory's were built while stage 2 ran);
                # time spent waiting in the queue is not counted.
                total_seconds=outcome.run_seconds + (time.monotonic() - conversion_started),
                hypothesis_index=index,
            )
            rollout.prompt = request.prompt_read if request.mode == "text" else rollout.prompt
            rollouts.append(rollout)
        geometry = outputs.geometry_msgs(request, masks, header, fps)
        rollout = rollouts[0]
        # Each payload once per audience: the trajectory topic has the trajectory, the rollout topic
        # the video (and the trajectory's header/region/palette), the result all of it for the goal's
        # client, unless result_payload 'not_on_topics' leaves out what the topics carry.
        topic_rollout = outputs.with_trajectory(rollout, outputs.without_images(rollout.mask_trajectory))
        outcome.rollout = rollout if p.result_payload == "full" else outputs.with_trajectory(topic_rollout, None, video=False)
        # The result carries the other hypotheses once (no topic carries them).
        outcome.result_fields = dict(
            other_hypotheses=rollouts[1:], hypothesis_scores=[r.hypothesis_score for r in rollouts],
            agreement=rollout.agreement, ranking=rollout.ranking, geometry=geometry)
        if not published_early:
            self.trajectory_publisher.publish(rollout.mask_trajectory)
        if self.overlay_publisher.get_subscription_count() > 0:  # drawn only for someone watching
            overlay = overlay_frames(request.image, masks[0].actor_masks, masks[0].object_masks, self.palette)
            for frame in overlay:
                self.overlay_publisher.publish(rgb_to_image_msg(frame, header))
        if p.publish_video:
            for frame_msg in rollout.video_frames:
                self.video_publisher.publish(frame_msg)
        self.rollout_publisher.publish(topic_rollout)
        for geometry_msg in geometry:
            self.geometry_publisher.publish(geometry_msg)
        del output, hypotheses, masks
        _return_freed_memory()
        agreement = f", {len(rollouts)} hypotheses (agreement {rollout.agreement:.2f})" if len(rollouts) > 1 else ""
        self.get_logger().info(
            f"imagination {request.request_id}: {rollout.num_frames} frames ({request.mode}), "
            f"trajectory {rollout.trajectory_seconds:.2f} s, video {rollout.video_seconds:.2f} s{agreement}"
            + (f", geometry of {len(geometry)}" if geometry else "")
        )

    # ---- goal watch: deadlines and abandoned goals ------------------------------------------------
    def _watch_goals(self) -> None:
        now = time.monotonic()
        with self._state_lock:
            goals = [(key, job, self._goal_deadlines.get(key)) for key, job in self._goal_jobs.items()]
        for key, job, deadline in goals:
            if deadline is not None and now > deadline[0] and not job.done:
                self.worker.cancel(job, JobStatus.TIMED_OUT, f"timeout_s: the goal's deadline of {deadline[1]:g} s "
                                   "passed before the imagination finished")
        grace = self.params.abandoned_goal_timeout_s
        if not goals or grace <= 0:
            self._no_client_since = None
            return
        if self.count_subscribers(self._feedback_topic) > 0:
            self._no_client_since = None
            return
        if self._no_client_since is None:
            self._no_client_since = now
        elif now - self._no_client_since >= grace:
            reason = (f"abandoned: no action client has listened to {self._feedback_topic} for {grace:g} s "
                      "(abandoned_goal_timeout_s); the requester is gone")
            self.causes.report("abandoned", f"aborting {len(goals)} goal(s): {reason}")
            for _, job, _ in goals:
                self.worker.cancel(job, JobStatus.CANCELED, reason)
            self._no_client_since = None

    # ---- diagnostics -------------------------------------------------------------------------
    def health(self) -> Any:
        from mask2iv_ros.ros.diagnostics import NodeHealth

        stats = self.stats.snapshot()
        return NodeHealth(
            node_name=self.get_fully_qualified_name(),
            lifecycle_state=self.lifecycle_state,
            model_id=self.model_id,
            device=self.params.device,
            torch_threads=self.torch_threads,
            queue_length=self.worker.queue_length,
            max_queue=self.params.max_queue,
            busy_policy=self.params.busy_policy,
            running=self.worker.busy,
            results=stats["results"],
            last_latency_s=stats["last_latency_s"],
            last_status=stats["last_status"],
            last_error=stats["last_error"],
            error_causes=self.causes.distinct,
        )

    def _publish_diagnostics(self) -> None:
        from mask2iv_ros.ros.diagnostics import diagnostic_array

        if self._diagnostics_publisher is not None:
            self._diagnostics_publisher.publish(diagnostic_array(self.health(), self.get_clock().now().to_msg()))

    # ---- action server ------------------------------------------------------------------------
    def _on_goal(self, goal: Any) -> GoalResponse:
        # Every goal is accepted so that its result can say why it is not run (inactive, busy, bad input).
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        with self._state_lock:
            job = self._goal_jobs.get(bytes(goal_handle.goal_id.uuid))
        if job is not None:
            self.worker.cancel(job, JobStatus.CANCELED, _CLIENT_CANCEL)  # now, not when the execute callback next looks
        return CancelResponse.ACCEPT

    def _request_from_goal(self, goal: Any, request_id: str) -> ImagineRequest:
        """A goal with an empty image uses the latest synchronized topic set (and topic prompt).

        Its masks left empty (width 0) are then taken from that set too, the actor mask included.
        """
        image, object_mask, placement_mask, actor_mask = goal.image, goal.object_mask, goal.placement_mask, goal.actor_mask
        depth, camera_info = goal.depth, goal.camera_info
        prompt, prompt_source = goal.prompt, "prompt"
        if image.width == 0 or image.height == 0:
            with self._state_lock:
                latest, topic_prompt = self._latest_set, self._latest_prompt
            if latest is None:
                raise InvalidInput(
                    "image:missing",
                    "image: empty in the goal and no synchronized input set has arrived on "
                    f"{self.resolve_topic_name(self.params.image_topic)} yet",
                )
            image = latest["image"]
            object_mask = object_mask if object_mask.width else latest["object_mask"]
            placement_mask = placement_mask if placement_mask.width else latest.get("placement_mask")
            actor_mask = actor_mask if actor_mask.width else latest.get("actor_mask")
            if not depth.width:
                depth, camera_info = latest.get("depth"), latest.get("camera_info")
            if not prompt:
                prompt, prompt_source = topic_prompt, f"prompt (goal or topic {self.resolve_topic_name(self.params.prompt_topic)})"
        return build_request(
            request_id=request_id,
            image_msg=image,
            object_mask_msg=object_mask,
            placement_mask_msg=placement_mask,
            actor_mask_msg=actor_mask,
            mode=goal.mode,
            prompt=prompt,
            params=self.params,
            capabilities=self.capabilities,
            now_ns=self.get_clock().now().nanoseconds,
            num_frames=goal.num_frames,
            num_inference_steps=goal.num_inference_steps,
            guidance_scale=goal.guidance_scale,
            seed=goal.seed,
            trajectory_only=goal.trajectory_only,
            timeout_s=goal.timeout_s,
            prompt_source=prompt_source,
            num_samples=goal.num_samples,
            videos_for_all_samples=goal.videos_for_all_samples,
            depth_msg=depth,
            camera_info_msg=camera_info,
        )

    def _execute(self, goal_handle: Any) -> Any:
        with self._executes:
            self._active_executes += 1
        try:
            return self._execute_goal(goal_handle)
        finally:
            with self._executes:
                self._active_executes -= 1
                self._executes.notify_all()

    def _execute_goal(self, goal_handle: Any) -> Any:
        key = bytes(goal_handle.goal_id.uuid)
        request_id = key.hex()
        accepted_at = time.monotonic()
        if not self._serving:
            # a goal that found the server between autostart's configure and activate is served
            # once the node is active, not rejected (a lifecycle-managed node still rejects)
            self._autostart_done.wait(_AUTOSTART_WAIT_S)
        if not self._serving:
            reason = self._stop_reason or f"imagine_node is not active (lifecycle state {self.lifecycle_state}); activate it"
            self.causes.report("rejected:inactive", f"Imagine goal {request_id[:8]}: {reason}")
            return self._finish_goal(goal_handle, JobStatus.REJECTED, reason)
        try:
            request = self._request_from_goal(goal_handle.request, request_id)
        except InvalidInput as error:
            self.causes.report(error.cause, f"Imagine goal {request_id[:8]}: {error}")
            return self._finish_goal(goal_handle, JobStatus.INVALID_INPUT, str(error))
        self._report_warnings(request)

        trajectory_ready = threading.Event()

        def publish_feedback(stage: str, step: int, total_steps: int) -> None:
            feedback = Imagine.Feedback(stage=stage, step=int(step), total_steps=int(total_steps),
                                        elapsed_seconds=time.monotonic() - accepted_at,
                                        trajectory_ready=trajectory_ready.is_set())
            try:
                goal_handle.publish_feedback(feedback)
            except Exception as error:  # noqa: BLE001 - e.g. the context is shutting down: the run goes on
                self.get_logger().debug(f"Imagine goal {request_id[:8]}: feedback not sent: {error}")

        def on_trajectory_sent() -> None:  # output thread, stage 2 running meanwhile
            trajectory_ready.set()
            publish_feedback("trajectory", request.num_inference_steps, request.num_inference_steps)

        job = self._make_job(request, on_step=lambda info: publish_feedback(info.stage, info.step, info.total_steps),
                             on_trajectory_sent=on_trajectory_sent)
        p = self.params
        with self._state_lock:
            self._goal_jobs[key] = job
            if request.timeout_s > 0:
                self._goal_deadlines[key] = (accepted_at + request.timeout_s, request.timeout_s)
        try:
            if not self.worker.submit(job, p.busy_policy, p.max_queue):
                reason = ("busy: an imagination is running (busy_policy 'reject')" if p.busy_policy == "reject"
                          else f"busy: the queue is full (busy_policy 'queue', max_queue {p.max_queue})")
                self.causes.report(f"busy:goal:{p.busy_policy}", f"rejecting Imagine goal {request_id[:8]}: {reason}")
                return self._finish_goal(goal_handle, JobStatus.REJECTED, reason)
            if goal_handle.is_cancel_requested:
                self.worker.cancel(job, JobStatus.CANCELED, _CLIENT_CANCEL)
            if job.jobs_ahead > 0:
                publish_feedback("queued", 0, request.num_inference_steps)
            job.wait()
        finally:
            with self._state_lock:
                self._goal_jobs.pop(key, None)
                self._goal_deadlines.pop(key, None)
        outcome = job.outcome
        return self._finish_goal(goal_handle, outcome.status, outcome.error, outcome.rollout, request.warnings,
                                 result_fields=outcome.result_fields,
                                 client_cancel=job.cancel_reason == _CLIENT_CANCEL, record=False)

    def _finish_goal(self, goal_handle: Any, status: JobStatus, error: str, rollout: Optional[ImaginedRollout] = None,
                     warnings: Any = (), client_cancel: bool = False, record: bool = True,
                     result_fields: Optional[dict] = None) -> Any:
        """Set the goal's terminal state (tolerating a context that is going down) and build its result."""
        if record:  # runs are recorded by _publish_outcome
            self.stats.record(status.value, error)
        try:
            if status == JobStatus.SUCCEEDED:
                goal_handle.succeed()
            elif client_cancel and _wait_for(lambda: goal_handle.is_cancel_requested, _CANCEL_STATE_WAIT_S):
                goal_handle.canceled()
            else:
                goal_handle.abort()
        except Exception as state_error:  # noqa: BLE001 - e.g. RCLError on a context already shut down
            self.get_logger().debug(f"goal state not updated ({type(state_error).__name__}: {state_error})")
        result = Imagine.Result(status=status.value, error=error, warnings=list(warnings))
        if rollout is not None:
            result.rollout = rollout
            # one sample: the rollout's own ranking (result_fields fill it in for several)
            result.hypothesis_scores, result.agreement, result.ranking = [rollout.hypothesis_score], rollout.agreement, rollout.ranking
        for name, value in (result_fields or {}).items():
            setattr(result, name, value)
        return result


class _EarlyTrajectory:
    """One request's trajectory messages, built when stage 1 ended (output thread) and reused at the end."""

    def __init__(self) -> None:
        self.masks: Optional[list] = None         # masks_in_input_frame() of each hypothesis, rank order
        self.trajectories: Optional[list] = None  # their MaskTrajectory messages


def _return_freed_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it after large frames otherwise).

    Output frames of a few MB each are below glibc's adaptive mmap threshold, so once freed they
    stay in the heap; without this the node's RSS ratchets up with each large goal.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def _wait_for(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _drain_executor(executor: Any, timeout_s: float) -> None:
    """Let the executor run what is pending (e.g. sending results to waiting clients), up to `timeout_s`."""
    tasks = getattr(executor, "_tasks", None)
    if tasks is None:  # not this rclpy's executor layout: give it a moment instead
        time.sleep(min(timeout_s, 0.5))
        return
    _wait_for(lambda: all(task.done() for task, *_ in list(executor._tasks)), timeout_s)


def main(args: Optional[list[str]] = None) -> int:
    # SIGINT/SIGTERM end the node gracefully: rclpy's own handlers would shut the context down while
    # goals still run, so their clients would never get a result.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    logger = rclpy.logging.get_logger("imagine_node")
    stop = threading.Event()
    signal_names: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        signal_names.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node: Optional[ImagineNode] = None
    executor: Optional[MultiThreadedExecutor] = None
    spinner: Optional[threading.Thread] = None
    try:
        try:
            node = ImagineNode()
        except (ValueError, ParameterException) as error:  # a bad parameter value or type
            logger.fatal(f"bad parameter: {error}")
            return 2
        executor = MultiThreadedExecutor(num_threads=node.executor_threads())
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="ros-executor", daemon=True)
        spinner.start()
        if node.params.autostart and not stop.is_set() and not node.autostart():
            logger.fatal(node.startup_error or "configure failed")
            return 2
        while not stop.wait(0.1) and rclpy.ok():
            pass
        reason = f"imagine_node is shutting down ({'/'.join(signal_names) or 'context shut down'})"
        node.stop_serving(reason)
        _drain_executor(executor, 2.0)  # results of the goals just ended reach their clients
        return 0
    finally:
        if node is not None:
            try:
                if node.lifecycle_state != "finalized":
                    node.trigger_shutdown()
            except Exception as error:  # noqa: BLE001 - shutting down regardless
                logger.debug(f"lifecycle shutdown: {error}")
            node.worker.shutdown()
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        if spinner is not None:
            spinner.join(timeout=5.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
