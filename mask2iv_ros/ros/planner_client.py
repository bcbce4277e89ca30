"""Planner-side client of the Imagine action: send a goal, follow its feedback, get the result.

`ImagineClient` owns a node (in its own rclpy context unless given one) spun by an executor
thread, so it can be used from plain, synchronous planner code; `imagine_once` is the one-call
form. Images and masks may be NumPy arrays (RGB uint8 [H, W, 3], bool [H, W]) or sensor_msgs/Image;
depth a NumPy array (uint16 mm or float m [H, W]) or sensor_msgs/Image, camera_info a
sensor_msgs/CameraInfo, a PinholeCamera or the 3x3 K. `hypotheses(result)` lists a result's
hypotheses in rank order; `trajectory_masks(msg)` (image_conversion) reads a MaskTrajectory's masks
whatever the node's trajectory_encoding. `imagine(..., on_trajectory=f)` calls `f` with the
goal's mask trajectory as soon as the node publishes it (when stage 1 ends, before the video).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

import numpy as np
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from mask2iv_ros.action import Imagine
from mask2iv_ros.geometry.camera import PinholeCamera
from mask2iv_ros.ros.depth_image import camera_info_msg, depth_to_image_msg
from mask2iv_ros.ros.image_conversion import mask_to_image_msg, rgb_to_image_msg, trajectory_masks  # noqa: F401
from mask2iv_ros.ros.qos import latched_qos


class ImagineClient:
    def __init__(self, action_name: str = "imagine", *, context: Any = None, node_name: str = "imagine_client",
                 trajectory_topic: str = "imagination/mask_trajectory"):
        """`trajectory_topic`: the node's mask_trajectory_topic, resolved like `action_name` (give the
        node's namespace in both, e.g. "/robot/imagine" and "/robot/imagination/mask_trajectory")."""
        self._own_context = context is None
        if self._own_context:
            context = rclpy.Context()
            rclpy.init(context=context)
        self.context = context
        self.node = rclpy.create_node(node_name, context=context)
        self.action_client = ActionClient(self.node, Imagine, action_name)
        self._feedback_topic = f"{self.node.resolve_topic_name(action_name)}/_action/feedback"
        self.trajectory_topic = trajectory_topic
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._executor.spin, name="imagine-client-spin", daemon=True)
        self._spinner.start()

    def wait_for_server(self, timeout_s: float = 30.0) -> bool:
        """True once the action's services and its feedback topic are both matched.

        rclpy's own wait checks the services only; a goal sent before the feedback topic is
        discovered loses its early feedback, and on a loaded machine the server may not yet see
        this client listening (imagine_node aborts goals nobody listens to).
        """
        deadline = time.monotonic() + timeout_s
        return self.action_client.wait_for_server(timeout_sec=timeout_s) and \
            _poll_until(lambda: self.node.count_publishers(self._feedback_topic) > 0, deadline)

    def make_goal(
        self,
        image: Any,
        object_mask: Any,
        *,
        mode: str = "",
        prompt: str = "",
        placement_mask: Any = None,
        actor_mask: Any = None,
        num_frames: int = 0,
        num_inference_steps: int = 0,
        guidance_scale: float = 0.0,
        seed: int = -1,
        trajectory_only: bool = False,
        goal_timeout_s: float = 0.0,
        frame_id: str = "camera",
        num_samples: int = 0,
        videos_for_all_samples: bool = False,
        depth: Any = None,
        camera_info: Any = None,
    ) -> Any:
        """An Imagine goal; arrays are stamped now (this node's clock) with `frame_id`.

        `goal_timeout_s` > 0 is the goal's own deadline (its `timeout_s` field): the node stops the
        run when it passes and answers with status "timed_out". `num_samples` > 1 asks for that
        many ranked hypotheses; `depth` (the image's pixel grid) with `camera_info` for the 3D
        interaction geometry of each (result.geometry).
        """
        header = Header(stamp=self.node.get_clock().now().to_msg(), frame_id=frame_id)

        def as_image(value: Any, is_mask: bool) -> Image:
            if value is None:
                return Image()
            if isinstance(value, Image):
                return value
            return mask_to_image_msg(value, header) if is_mask else rgb_to_image_msg(np.asarray(value), header)

        return Imagine.Goal(
            image=as_image(image, False),
            object_mask=as_image(object_mask, True),
            actor_mask=as_image(actor_mask, True),
            mode=mode,
            prompt=prompt,
            placement_mask=as_image(placement_mask, True),
            num_frames=num_frames,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            seed=seed,
            trajectory_only=trajectory_only,
            timeout_s=goal_timeout_s,
            num_samples=num_samples,
            videos_for_all_samples=videos_for_all_samples,
            depth=Image() if depth is None else depth if isinstance(depth, Image) else depth_to_image_msg(depth, header),
            camera_info=_camera_info(camera_info, header, depth),
        )

    def imagine(
        self,
        goal: Any,
        *,
        timeout_s: float = 600.0,
        on_feedback: Optional[Callable[[Any], None]] = None,
        on_trajectory: Optional[Callable[[Any], None]] = None,
    ) -> Any:
        """Send `goal` and wait for the Imagine result (status, error, warnings, rollout).

        `on_trajectory(msg)` (executor thread): called once with the goal's MaskTrajectory from the
        node's trajectory topic (its header.stamp is the goal image's), as soon as stage 1 ends,
        so a planner can act while the video is still being made. Needs the goal's own image.

        The node accepts every goal and says in the result why one was not run (status "rejected"
        when busy or inactive, "invalid_input" naming the field). Raises RuntimeError if the goal is
        not accepted at all, TimeoutError after `timeout_s` (the goal is then cancelled).
        """
        deadline = time.monotonic() + timeout_s
        callback = (lambda message: on_feedback(message.feedback)) if on_feedback is not None else None
        subscription = None if on_trajectory is None else self._subscribe_trajectory(goal, on_trajectory, deadline)
        try:
            goal_handle = self._wait(self.action_client.send_goal_async(goal, feedback_callback=callback), deadline)
            if not goal_handle.accepted:
                raise RuntimeError("imagine: the action server did not accept the goal")
            try:
                return self._wait(goal_handle.get_result_async(), deadline).result
            except TimeoutError:
                goal_handle.cancel_goal_async()
                raise
        finally:
            if subscription is not None:
                self.node.destroy_subscription(subscription)

    def _subscribe_trajectory(self, goal: Any, on_trajectory: Callable[[Any], None], deadline: float) -> Any:
        """A subscription to the trajectory topic that hands on the one message of `goal` (by stamp),
        matched with the node's publisher before the goal is sent."""
        from mask2iv_ros.msg import MaskTrajectory

        if goal.image.width == 0:
            raise ValueError("on_trajectory: needs the goal's own image (its stamp names the trajectory); "
                             "the goal has none (it would use the node's latest topic set)")
        stamp = (goal.image.header.stamp.sec, goal.image.header.stamp.nanosec)
        delivered = threading.Event()

        def on_message(msg: Any) -> None:
            if (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp and not delivered.is_set():
                delivered.set()
                on_trajectory(msg)

        # the node's output QoS: a trajectory published before this matched is still delivered
        subscription = self.node.create_subscription(MaskTrajectory, self.trajectory_topic, on_message,
                                                     latched_qos(1))
        if not _poll_until(lambda: subscription.get_publisher_count() > 0, deadline):
            self.node.destroy_subscription(subscription)
            raise TimeoutError(f"imagine: no publisher of {subscription.topic_name} (on_trajectory) in time")
        return subscription

    def close(self) -> None:
        self._executor.shutdown()
        self._spinner.join(timeout=5.0)  # before destroying what the spin thread may be waiting on
        self.action_client.destroy()
        self.node.destroy_node()
        if self._own_context:
            rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> "ImagineClient":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    @staticmethod
    def _wait(future: Any, deadline: float) -> Any:
        if not _poll_until(future.done, deadline):  # spun by the executor thread: only poll here
            raise TimeoutError("imagine: no answer from imagine_node in time")
        return future.result()


def _poll_until(condition: Callable[[], bool], deadline: float) -> bool:
    """Poll `condition` (the executor thread does the spinning) until true; False once `deadline`
    (time.monotonic()) has passed."""
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _camera_info(value: Any, header: Header, depth: Any) -> CameraInfo:
    """A CameraInfo of a message, a PinholeCamera or a K matrix (9 numbers); empty for None."""
    if value is None:
        return CameraInfo()
    if isinstance(value, CameraInfo):
        return value
    if not isinstance(value, PinholeCamera):
        height, width = (0, 0) if depth is None else (int(depth.height), int(depth.width)) if isinstance(depth, Image) \
            else np.asarray(depth).shape[:2]
        value = PinholeCamera.from_k(value, width or None, height or None)
    return camera_info_msg(value, header)


def hypotheses(result: Any) -> list[Any]:
    """Every hypothesis of an Imagine result in rank order: the rollout, then other_hypotheses."""
    return [result.rollout, *result.other_hypotheses]


def imagine_once(
    image: Any,
    object_mask: Any,
    *,
    action_name: str = "imagine",
    timeout_s: float = 600.0,
    on_feedback: Optional[Callable[[Any], None]] = None,
    **goal_fields: Any,
) -> Any:
    """One Imagine goal from a fresh client (its own rclpy context); returns the result.

    `goal_fields`: mode, prompt, placement_mask, actor_mask, num_frames, num_inference_steps,
    guidance_scale, seed, trajectory_only, goal_timeout_s, frame_id, num_samples,
    videos_for_all_samples, depth, camera_info (see `ImagineClient.make_goal`).
    """
    with ImagineClient(action_name) as client:
        if not client.wait_for_server(min(timeout_s, 30.0)):
            raise TimeoutError(f"imagine: no action server {client.node.resolve_topic_name(action_name)} found")
        return client.imagine(client.make_goal(image, object_mask, **goal_fields), timeout_s=timeout_s, on_feedback=on_feedback)
