"""`imagine_node`: Mask2IV imagination as a ROS 2 node (topics in, trajectory/video out, Imagine action).

Threads: callbacks run on a MultiThreadedExecutor; the model runs on one `InferenceWorker` thread.
Input subscriptions share a mutually exclusive group (they feed one synchronizer); the action
server's callbacks are reentrant: an execute callback waits for its job on its own executor thread,
so the executor needs `executor_threads()` threads for parameters, cancels and new goals to stay
answered while goals wait or run.

Start-up is configure (load the model once; missing model -> ModelNotFoundError) then activate
(create publishers, subscriptions, action server).
"""

from __future__ import annotations

import collections
import functools
import sys
import threading
import time
from typing import Any, Optional

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import Image
from std_msgs.msg import String

from mask2iv_ros.action import Imagine
from mask2iv_ros.masks import DEFAULT_PALETTE
from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory
from mask2iv_ros.ros import outputs
from mask2iv_ros.ros.inference_worker import InferenceJob, InferenceWorker, JobOutcome, JobStatus
from mask2iv_ros.ros.model_loading import ModelNotFoundError, load_pipeline
from mask2iv_ros.ros.parameters import ImagineParameters, declare_node_parameters, updated_parameters
from mask2iv_ros.ros.requests import ImagineRequest, InvalidInput, build_request
from mask2iv_ros.ros.synchronizer import ApproximateTimeSynchronizer, stamp_to_ns

# Seconds an execute callback waits for the cancel request to reach CANCELING after its job stopped.
_CANCEL_STATE_WAIT_S = 2.0


class CauseLog:
    """Warn once per cause (e.g. 'object_mask:empty'); repeats go to debug level, counted."""

    def __init__(self, logger: Any):
        self._logger = logger
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.last_message: dict[str, str] = {}

    def report(self, cause: str, message: str) -> None:
        with self._lock:
            self.counts[cause] += 1
            self.last_message[cause] = message
            first = self.counts[cause] == 1
        if first:
            self._logger.warning(f"{message} (logged once per cause; repeats at debug level)")
        else:
            self._logger.debug(f"{message} (occurrence {self.counts[cause]})")


class ImagineNode(Node):
    """The imagination node. `pipeline`/`model_id` may be injected (tests); else loaded from model_path."""

    def __init__(self, *, pipeline: Any = None, model_id: str = "", node_name: str = "imagine_node", **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.params: ImagineParameters = declare_node_parameters(self)
        self.causes = CauseLog(self.get_logger())
        self._state_lock = threading.Lock()
        self._latest_prompt = ""
        self._latest_set: Optional[dict[str, Image]] = None
        self._pending_rate_set: Optional[dict[str, Image]] = None
        self._topic_requests = 0
        self._goal_jobs: dict[bytes, InferenceJob] = {}
        self._configure(pipeline, model_id)
        self._activate()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---- start-up --------------------------------------------------------------------------
    def _configure(self, pipeline: Any, model_id: str) -> None:
        if pipeline is None:
            started = time.monotonic()
            pipeline, model_id = load_pipeline(self.params.model_path, self.params.device)
            self.get_logger().info(f"loaded model {model_id} on {self.params.device} in {time.monotonic() - started:.1f} s")
        self.pipeline = pipeline
        self.model_id = model_id or getattr(getattr(pipeline, "config", None), "model_id", type(pipeline).__name__)
        self.available_modes = tuple(getattr(pipeline, "modes", ("text", "position")))
        self.palette = getattr(pipeline, "palette", DEFAULT_PALETTE)
        # A checkpoint without a stage-2 model can only answer trajectory-only requests.
        self.has_video_model = getattr(pipeline, "video_unet", True) is not None
        self.worker = InferenceWorker(interrupt=getattr(pipeline, "interrupt", None), logger=self.get_logger())

    def _activate(self) -> None:
        p = self.params
        input_qos = QoSProfile(
            reliability=ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
            history=HistoryPolicy.KEEP_LAST,
            depth=p.input_qos_depth,
        )

        def latched(depth: int) -> QoSProfile:
            return QoSProfile(
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
                history=HistoryPolicy.KEEP_LAST,
                depth=depth,
            )

        self.trajectory_publisher = self.create_publisher(MaskTrajectory, p.mask_trajectory_topic, latched(p.output_qos_depth))
        self.rollout_publisher = self.create_publisher(ImaginedRollout, p.rollout_topic, latched(p.output_qos_depth))
        self.overlay_publisher = self.create_publisher(Image, p.overlay_topic, latched(p.frame_stream_qos_depth))
        self.video_publisher = self.create_publisher(Image, p.video_topic, latched(p.frame_stream_qos_depth))

        input_group = MutuallyExclusiveCallbackGroup()
        sync_inputs = ["image", "object_mask"] + (["placement_mask"] if p.mode == "position" else [])
        # The first-frame actor mask belongs to the same instant as the image, so it is synchronized
        # with it rather than kept as a latest value like the prompt.
        sync_inputs += ["actor_mask"] if p.use_actor_mask else []
        self._synchronizer = ApproximateTimeSynchronizer(sync_inputs, p.sync_queue_size, p.sync_slop_s, self._on_input_set)
        topics = {
            "image": p.image_topic,
            "object_mask": p.object_mask_topic,
            "placement_mask": p.placement_mask_topic,
            "actor_mask": p.actor_mask_topic,
        }
        self._input_subscriptions = [
            self.create_subscription(
                Image, topics[name], functools.partial(self._on_input_image, name), input_qos, callback_group=input_group
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

        self.action_server = ActionServer(
            self,
            Imagine,
            p.action_name,
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup(),
        )
        self.get_logger().info(
            f"imagine_node ready: model {self.model_id} (modes {list(self.available_modes)}), mode {p.mode}, "
            f"trigger {p.trigger}, inputs {[self.resolve_topic_name(topics[n]) for n in sync_inputs]}, "
            f"action {self.resolve_topic_name(p.action_name)}"
        )

    def executor_threads(self) -> int:
        """Executor threads needed: one per waiting/running goal, plus room for other callbacks."""
        return self.params.max_queue + 4

    def shutdown(self) -> None:
        """Stop the worker: waiting jobs complete as canceled, the running one is interrupted."""
        self.worker.shutdown()

    # ---- parameters --------------------------------------------------------------------------
    def _on_set_parameters(self, changes: list) -> SetParametersResult:
        try:
            self.params = updated_parameters(self.params, changes)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
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
                available_modes=self.available_modes,
                now_ns=self.get_clock().now().nanoseconds,
                trajectory_only=not (p.publish_video and self.has_video_model),
                prompt_source=f"prompt (topic {self.resolve_topic_name(p.prompt_topic)})",
            )
        except InvalidInput as error:
            self.causes.report(error.cause, f"ignoring synchronized input set {request_id}: {error}")
            return
        job = self._make_job(request)
        if not self.worker.submit(job, p.busy_policy, p.max_queue):
            self.causes.report(
                "busy:topic", f"dropping synchronized input set {request_id}: model busy "
                f"(busy_policy {p.busy_policy}, max_queue {p.max_queue})"
            )

    # ---- jobs and outputs ---------------------------------------------------------------------
    def _make_job(self, request: ImagineRequest, on_step: Any = None) -> InferenceJob:
        return InferenceJob(
            request_id=request.request_id,
            run=functools.partial(self._run_pipeline, request),
            on_step=on_step,
            on_done=functools.partial(self._publish_outcome, request),
        )

    def _run_pipeline(self, request: ImagineRequest, step_callback: Any) -> Any:
        return self.pipeline(**request.pipeline_kwargs(), callback_on_step_end=lambda _pipe, info: step_callback(info))

    def _publish_outcome(self, request: ImagineRequest, outcome: JobOutcome) -> None:
        if outcome.status != JobStatus.SUCCEEDED:
            if outcome.status == JobStatus.INVALID_INPUT:
                self.causes.report("pipeline:invalid_input", f"imagination {request.request_id}: {outcome.error}")
            elif outcome.status == JobStatus.FAILED:
                self.get_logger().error(f"imagination {request.request_id} failed: {outcome.error}")
            return
        conversion_started = time.monotonic()
        output = outcome.output
        p = self.params
        fps = outputs.output_fps(output, p.output_fps)
        header = outputs.input_header(request)
        trajectory = outputs.mask_trajectory_msg(output, header, fps, self.palette)
        overlay = outputs.overlay_frames(request.image, output, self.palette)
        rollout = outputs.rollout_msg(
            request,
            output,
            trajectory,
            fps=fps,
            model_id=self.model_id,
            # The run plus turning it into messages; time spent waiting in the queue is not counted.
            total_seconds=outcome.run_seconds + (time.monotonic() - conversion_started),
        )
        outcome.rollout = rollout
        self.trajectory_publisher.publish(trajectory)
        for frame in overlay:
            self.overlay_publisher.publish(outputs.rgb_to_image_msg(frame, header))
        if p.publish_video:
            for frame_msg in rollout.video_frames:
                self.video_publisher.publish(frame_msg)
        self.rollout_publisher.publish(rollout)
        self.get_logger().info(
            f"imagination {request.request_id}: {rollout.num_frames} frames ({request.mode}), "
            f"trajectory {rollout.trajectory_seconds:.2f} s, video {rollout.video_seconds:.2f} s"
        )

    # ---- action server ------------------------------------------------------------------------
    def _on_goal(self, goal: Any) -> GoalResponse:
        p = self.params
        if self.worker.can_accept(p.busy_policy, p.max_queue):
            return GoalResponse.ACCEPT
        self.causes.report("busy:goal", f"rejecting Imagine goal: model busy (busy_policy {p.busy_policy}, max_queue {p.max_queue})")
        return GoalResponse.REJECT

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        job = self._goal_jobs.get(bytes(goal_handle.goal_id.uuid))
        if job is not None:
            self.worker.cancel(job)  # now, not when the execute callback next looks
        return CancelResponse.ACCEPT

    def _request_from_goal(self, goal: Any, request_id: str) -> ImagineRequest:
        """A goal with an empty image uses the latest synchronized topic set (and topic prompt).

        Its masks left empty (width 0) are then taken from that set too, the actor mask included.
        """
        image, object_mask, placement_mask, actor_mask = goal.image, goal.object_mask, goal.placement_mask, goal.actor_mask
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
            available_modes=self.available_modes,
            now_ns=self.get_clock().now().nanoseconds,
            num_frames=goal.num_frames,
            num_inference_steps=goal.num_inference_steps,
            guidance_scale=goal.guidance_scale,
            seed=goal.seed,
            trajectory_only=goal.trajectory_only,
            prompt_source=prompt_source,
        )

    def _execute(self, goal_handle: Any) -> Any:
        key = bytes(goal_handle.goal_id.uuid)
        request_id = key.hex()
        accepted_at = time.monotonic()
        try:
            request = self._request_from_goal(goal_handle.request, request_id)
        except InvalidInput as error:
            self.causes.report(error.cause, f"Imagine goal {request_id[:8]}: {error}")
            goal_handle.abort()
            return _result(JobStatus.INVALID_INPUT, str(error))

        def publish_feedback(stage: str, step: int, total_steps: int) -> None:
            goal_handle.publish_feedback(
                Imagine.Feedback(
                    stage=stage, step=int(step), total_steps=int(total_steps), elapsed_seconds=time.monotonic() - accepted_at
                )
            )

        job = self._make_job(request, on_step=lambda info: publish_feedback(info.stage, info.step, info.total_steps))
        p = self.params
        self._goal_jobs[key] = job
        try:
            if not self.worker.submit(job, p.busy_policy, p.max_queue):
                # Another goal took the last slot between acceptance and now.
                goal_handle.abort()
                return _result(JobStatus.REJECTED, f"busy: no free slot (busy_policy {p.busy_policy}, max_queue {p.max_queue})")
            if goal_handle.is_cancel_requested:
                self.worker.cancel(job)
            if job.jobs_ahead > 0:
                publish_feedback("queued", 0, request.num_inference_steps)
            job.wait()
        finally:
            self._goal_jobs.pop(key, None)
        outcome = job.outcome
        if outcome.status == JobStatus.SUCCEEDED:
            goal_handle.succeed()
            return _result(outcome.status, "", outcome.rollout)
        if outcome.status == JobStatus.CANCELED and _wait_for(lambda: goal_handle.is_cancel_requested, _CANCEL_STATE_WAIT_S):
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return _result(outcome.status, outcome.error)


def _result(status: JobStatus, error: str, rollout: Optional[ImaginedRollout] = None) -> Any:
    result = Imagine.Result(status=status.value, error=error)
    if rollout is not None:
        result.rollout = rollout
    return result


def _wait_for(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def main(args: Optional[list[str]] = None) -> int:
    rclpy.init(args=args)
    try:
        try:
            node = ImagineNode()
        except ModelNotFoundError as error:
            rclpy.logging.get_logger("imagine_node").fatal(str(error))
            return 2
        except (ValueError, ParameterException) as error:  # a bad parameter value or type
            rclpy.logging.get_logger("imagine_node").fatal(f"bad parameter: {error}")
            return 2
        executor = MultiThreadedExecutor(num_threads=node.executor_threads())
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.shutdown()
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
