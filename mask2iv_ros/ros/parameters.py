"""The one source of `imagine_node` parameter defaults, descriptions and checks.

`ImagineParameters` holds every parameter with its default; config/imagine.yaml mirrors it (a test
checks that they agree). The node declares its parameters from this dataclass, so a parameter
exists, with the same default, whether or not the YAML file is loaded; the launch file makes its
launch arguments from `defaults()`, so a new parameter here is a launch argument too. Importing
this module does not import rclpy; only `declare_node_parameters` / `updated_parameters` touch
rclpy objects.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

MODES = ("text", "position")
TRIGGERS = ("each", "rate", "on_demand")
BUSY_POLICIES = ("queue", "reject")
PROMPT_OVERFLOW = ("truncate", "refuse")
# How a MaskTrajectory carries the masks: mono8 actor/object masks, the colour-coded rgb8 frames, or both.
TRAJECTORY_ENCODINGS = ("masks", "colour", "both")
# What an Imagine result carries of the first-ranked rollout: everything, or only what the topics do not.
RESULT_PAYLOADS = ("full", "not_on_topics")
VIDEO_BACKGROUNDS = ("checkpoint", "imagined", "input")
# Read when the model is loaded (lifecycle configure): changeable only while the node is unconfigured.
MODEL_PARAMETERS = ("model_path", "device", "torch_threads")
# torch_threads 0 = the cores this process may use, at most this many (beyond ~8 threads the
# small convolutions of these UNets gain little and the node would starve its callbacks).
MAX_DEFAULT_TORCH_THREADS = 8
# The pipeline's own limit of hypotheses per call (mask2iv_ros.pipeline.validation.MAX_SAMPLES;
# not imported: this module stays free of torch).
MAX_SAMPLES_LIMIT = 64
MAX_TRAJECTORY_VOTES = 16  # likewise validation.MAX_TRAJECTORY_VOTES
TINY_RANDOM_MODEL = "tiny-random"
# The embedded default model (mask2iv_ros/assets/default_model), so that a bare start serves it.
EMBEDDED_MODEL = "embedded"
_DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _param(default: Any, description: str, read_only: bool = True) -> Any:
    return field(default=default, metadata={"description": description, "read_only": read_only})


@dataclass(frozen=True)
class ImagineParameters:
    # Model
    model_path: str = _param(
        EMBEDDED_MODEL,
        "Mask2IV checkpoint folder (model_index.json + components). "
        f"'{EMBEDDED_MODEL}' = the small model shipped in the package (synthetic 64x64 tabletop only). "
        f"'{TINY_RANDOM_MODEL}' builds a tiny randomly initialised pipeline: for tests only, its outputs are noise. "
        "Read at configure (changeable while unconfigured).",
        read_only=False,
    )
    device: str = _param("cpu", "Torch device: cpu, cuda or cuda:N. Read at configure.", read_only=False)
    torch_threads: int = _param(
        0,
        "CPU threads of the model (torch intra-op threads, set on the model thread that loads and runs it); "
        f"0 = the cores available to this process, at most {MAX_DEFAULT_TORCH_THREADS}. Read at configure.",
        read_only=False,
    )
    autostart: bool = _param(
        True,
        "Configure (load the model) and activate (open topics and the action) on start, as a plain "
        "`imagine_node --ros-args ...` run needs; false = wait for lifecycle transitions "
        "(ros2 lifecycle / the launch file).",
    )
    # Requests
    mode: str = _param("text", "Default conditioning: 'text' (TT-Gen, prompt) or 'position' (PT-Gen, placement mask).")
    trigger: str = _param(
        "each",
        "When topic inputs start a run: 'each' synchronized set, at most max_rate_hz ('rate', latest set), "
        "or 'on_demand' (never; goals with an empty image use the latest synchronized set).",
    )
    max_rate_hz: float = _param(1.0, "Runs per second at most for trigger 'rate'.")
    sync_queue_size: int = _param(10, "Approximate-time synchronizer: messages kept per input.")
    sync_slop_s: float = _param(0.05, "Approximate-time synchronizer: largest stamp spread (s) within one set.")
    max_input_age_s: float = _param(
        5.0, "Inputs whose stamp is older than this (node clock, s) are refused; <= 0 disables.", read_only=False
    )
    busy_policy: str = _param(
        "queue", "While a run is in progress: 'queue' new requests (up to max_queue) or 'reject' them.", read_only=False
    )
    max_queue: int = _param(4, "Requests waiting behind the running one, at most (busy_policy 'queue').", read_only=False)
    max_input_pixels: int = _param(
        4_194_304,
        "Largest input image accepted, in pixels (width x height; default 2048 x 2048). Outputs are sent "
        "at the input size, so this bounds the node's memory and conversion time; 0 = no limit.",
        read_only=False,
    )
    prompt_overflow: str = _param(
        "truncate",
        "A prompt longer than the text encoder's token limit: 'truncate' (the model reads the first tokens; "
        "the result's warnings and rollout.prompt say what was read) or 'refuse' (invalid_input).",
        read_only=False,
    )
    abandoned_goal_timeout_s: float = _param(
        5.0,
        "Abort running and queued goals when no action client has listened to the action's feedback for "
        "this long (the requester died); <= 0 disables.",
        read_only=False,
    )
    # Sampling
    num_frames: int = _param(0, "Frames to imagine; 0 = the model's default.", read_only=False)
    num_inference_steps: int = _param(
        0, "Denoising steps per stage; 0 = the checkpoint's recorded defaults "
        "(its video stage may record its own).", read_only=False
    )
    guidance_scale: float = _param(
        -1.0, "Classifier-free guidance scale; negative = the checkpoint's recorded default.", read_only=False
    )
    trajectory_votes: int = _param(
        0, "Stage-1 samples whose pixelwise majority is each mask trajectory (one batch; about that many "
        "times the stage-1 work); 0 = the checkpoint's recorded default "
        "(model_index.json config.sampling.trajectory_votes).", read_only=False
    )
    seed: int = _param(0, "Seed of the initial noise; negative = a random seed per run.", read_only=False)
    publish_video: bool = _param(
        True,
        "Topic-triggered runs also generate the video (stage 2) and publish it frame by frame; "
        "false = trajectory only. Goals choose with trajectory_only.",
        read_only=False,
    )
    video_background: str = _param(
        "checkpoint",
        "Pixels of the imagined video outside the actor/object regions (the input's and each imagined "
        "frame's, dilated and feathered): 'imagined' = the model's, 'input' = the input image's (pixel "
        "compositing that keeps the camera's scene; it trusts the mask trajectory), 'checkpoint' = the "
        "model's recorded default (model_index.json config.sampling.video_background).",
        read_only=False,
    )
    output_fps: float = _param(0.0, "Frame rate written into outputs; 0 = the model's own.", read_only=False)
    trajectory_encoding: str = _param(
        "masks",
        "How MaskTrajectory messages (topic, rollout, action result) carry the masks: 'masks' = actor_masks "
        "and object_masks (mono8) only, 'colour' = the colour-coded frames (rgb8) only, 'both' = both "
        "(2.5x the bytes of 'masks'; 'colour' is 1.5x). The fields not chosen are empty lists.",
        read_only=False,
    )
    result_payload: str = _param(
        "full",
        "What an Imagine action result's `rollout` (the first-ranked hypothesis) carries: 'full' = its mask "
        "trajectory and video, so the goal's client needs no topic; 'not_on_topics' = neither (header, "
        "settings, timings and scores only): the client reads the trajectory from mask_trajectory_topic "
        "(published when stage 1 ends; feedback trajectory_ready) and the video from rollout_topic, matched "
        "by header.stamp. other_hypotheses are always full (no topic carries them).",
        read_only=False,
    )
    # Hypotheses
    max_samples: int = _param(
        8,
        f"Most hypotheses one request may ask for (goal num_samples; one batch through the model, so memory "
        f"and time grow with it); goals above it are refused. At most {MAX_SAMPLES_LIMIT}.",
        read_only=False,
    )
    num_samples: int = _param(
        1,
        "Hypotheses per topic-triggered run (seeds seed, seed+1, ...; ranked, the first published on the "
        "rollout topic with their agreement, the geometry of all on the geometry topic); at most max_samples.",
        read_only=False,
    )
    # Topics (relative names resolve in the node's namespace)
    image_topic: str = _param("camera/image", "Input camera image (sensor_msgs/Image).")
    object_mask_topic: str = _param("object_mask", "Input mask of the object to act on (sensor_msgs/Image).")
    placement_mask_topic: str = _param("placement_mask", "Input target placement mask, mode 'position'.")
    prompt_topic: str = _param("prompt", "Input action description (std_msgs/String), latest value kept.")
    use_actor_mask: bool = _param(
        False,
        "Also synchronize a first-frame actor mask (robot arm, from the robot's segmentation or kinematics) "
        "on actor_mask_topic and pass it to the model; an all-zero mask means no actor visible.",
    )
    actor_mask_topic: str = _param(
        "actor_mask", "Input first-frame actor mask (sensor_msgs/Image mono8/8UC1), when use_actor_mask."
    )
    use_depth: bool = _param(
        False,
        "Also synchronize a depth image (16UC1 mm / 32FC1 m, the camera image's pixel grid) and its "
        "camera_info with the image; topic-triggered runs then publish the interaction geometry.",
    )
    depth_topic: str = _param("camera/depth", "Input depth image (sensor_msgs/Image 16UC1 or 32FC1), when use_depth.")
    camera_info_topic: str = _param("camera/camera_info", "Input sensor_msgs/CameraInfo of the image, when use_depth.")
    mask_trajectory_topic: str = _param("imagination/mask_trajectory", "Output mask2iv_ros/MaskTrajectory.")
    rollout_topic: str = _param("imagination/rollout", "Output mask2iv_ros/ImaginedRollout.")
    overlay_topic: str = _param("imagination/overlay", "Output per-frame overlay of the masks on the input image.")
    video_topic: str = _param("imagination/video", "Output per-frame imagined video (rgb8).")
    geometry_topic: str = _param(
        "imagination/geometry",
        "Output mask2iv_ros/InteractionGeometry, one per hypothesis, for runs with depth + camera_info.",
    )
    action_name: str = _param("imagine", "Name of the mask2iv_ros/action/Imagine action server.")
    # QoS: inputs are sensor data (best effort, keep last); outputs are reliable + transient local.
    input_qos_depth: int = _param(5, "Keep-last depth of the best-effort input subscriptions.")
    output_qos_depth: int = _param(1, "Keep-last depth of the MaskTrajectory / ImaginedRollout publishers.")
    frame_stream_qos_depth: int = _param(16, "Keep-last depth of the per-frame overlay / video publishers.")
    diagnostics_period_s: float = _param(
        1.0, "Period of the diagnostic_msgs/DiagnosticArray published on /diagnostics; 0 disables."
    )

    def validate(self) -> "ImagineParameters":
        """Raise ValueError naming the first bad parameter; return self when all are valid."""
        choices = {"mode": MODES, "trigger": TRIGGERS, "busy_policy": BUSY_POLICIES, "prompt_overflow": PROMPT_OVERFLOW,
                   "trajectory_encoding": TRAJECTORY_ENCODINGS, "result_payload": RESULT_PAYLOADS,
                   "video_background": VIDEO_BACKGROUNDS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {list(allowed)}, got {getattr(self, name)!r}")
        if not _DEVICE_PATTERN.match(self.device):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if not self.model_path:
            raise ValueError("model_path: expected a checkpoint folder or 'tiny-random', got an empty string")
        positive = ("sync_queue_size", "input_qos_depth", "output_qos_depth", "frame_stream_qos_depth")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if not 0 <= self.trajectory_votes <= MAX_TRAJECTORY_VOTES:
            raise ValueError(f"trajectory_votes: expected an integer in [0, {MAX_TRAJECTORY_VOTES}] (0 = the "
                             f"checkpoint's default), got {self.trajectory_votes}")
        for name in ("max_queue", "num_frames", "num_inference_steps", "torch_threads", "max_input_pixels"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected an integer >= 0, got {getattr(self, name)}")
        if not 1 <= self.max_samples <= MAX_SAMPLES_LIMIT:
            raise ValueError(f"max_samples: expected an integer in [1, {MAX_SAMPLES_LIMIT}], got {self.max_samples}")
        if not 1 <= self.num_samples <= self.max_samples:
            raise ValueError(f"num_samples: expected an integer in [1, max_samples {self.max_samples}], "
                             f"got {self.num_samples}")
        if self.trigger == "rate" and not self.max_rate_hz > 0:
            raise ValueError(f"max_rate_hz: expected > 0 with trigger 'rate', got {self.max_rate_hz}")
        for name in ("sync_slop_s", "output_fps", "diagnostics_period_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)}")
        if not math.isfinite(self.guidance_scale):
            raise ValueError(f"guidance_scale: expected a number (negative = the checkpoint's default), got {self.guidance_scale}")
        for name in (f.name for f in dataclasses.fields(self)):
            if (name.endswith("_topic") or name == "action_name") and not getattr(self, name):
                raise ValueError(f"{name}: expected a topic name, got an empty string")
        return self


def default_torch_threads() -> int:
    """The cores this process may run on (its CPU affinity), at most MAX_DEFAULT_TORCH_THREADS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_TORCH_THREADS))


def defaults() -> dict[str, Any]:
    """Parameter name -> default value, in declaration order."""
    return {f.name: f.default for f in dataclasses.fields(ImagineParameters)}


def declare_node_parameters(node: Any) -> ImagineParameters:
    """Declare every parameter on `node` (with description, read-only flag) and return the values."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for f in dataclasses.fields(ImagineParameters):
        descriptor = ParameterDescriptor(description=f.metadata["description"], read_only=f.metadata["read_only"])
        values[f.name] = node.declare_parameter(f.name, f.default, descriptor).value
    return ImagineParameters(**values).validate()


def updated_parameters(current: ImagineParameters, changes: Iterable[Any]) -> ImagineParameters:
    """`current` with rclpy `Parameter` changes applied and checked (raises ValueError if bad).

    Parameters not owned by this dataclass (e.g. use_sim_time) are ignored.
    """
    own = {f.name for f in dataclasses.fields(ImagineParameters)}
    updates = {p.name: p.value for p in changes if p.name in own}
    return dataclasses.replace(current, **updates).validate()
