#!/usr/bin/env python3
"""A planner asking imagine_node "what happens if I push this?" and turning the answer into waypoints.

It sends one Imagine goal (camera image + mask of the object + action description), prints the
denoising progress, and reads the predicted mask trajectory as per-frame pixel centroids of the
object and of the actor (robot arm / hand): a coarse 2-D plan a controller could follow. The plan
is made from the trajectory the node publishes as soon as stage 1 ends (on_trajectory), while the
video is still being imagined; the result's copy is used only if that did not arrive.

    python examples/plan_with_imagination.py --prompt "push the red block to the left"
    python examples/plan_with_imagination.py --image scene.png --mask block.png --prompt "..."

Without --image/--mask it draws a small synthetic scene (a red block on a grey table). The node
must be running (e.g. `imagine_node --ros-args -p model_path:=<checkpoint>`), in the same
ROS_DOMAIN_ID, with ROS_AUTOMATIC_DISCOVERY_RANGE set as for the node.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from mask2iv_ros.action import Imagine
from mask2iv_ros.ros.image_conversion import has_trajectory_images, trajectory_masks
from mask2iv_ros.ros.planner_client import ImagineClient


@dataclass
class Waypoint:
    frame: int
    object_xy: Optional[tuple[float, float]]  # pixel centroid; None where the object is not visible
    actor_xy: Optional[tuple[float, float]]


def centroid(mask: np.ndarray) -> Optional[tuple[float, float]]:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if xs.size else None


def plan_from_trajectory(mask_trajectory) -> list[Waypoint]:
    """Per-frame centroids of the object and actor masks of a MaskTrajectory message (mono8 masks or
    colour frames, whichever the node's trajectory_encoding sends)."""
    actor, obj = trajectory_masks(mask_trajectory)
    return [Waypoint(t, centroid(o), centroid(a)) for t, (o, a) in enumerate(zip(obj, actor))]


def synthetic_scene(height: int = 64, width: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A grey table with a red block: (RGB image, bool mask of the block)."""
    image = np.full((height, width, 3), 140, np.uint8)
    top, left, size = height // 2 - 6, width // 2, 12
    image[top : top + size, left : left + size] = (200, 30, 30)
    mask = np.zeros((height, width), bool)
    mask[top : top + size, left : left + size] = True
    return image, mask


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt", default="push the red block to the left")
    parser.add_argument("--image", help="RGB image file (default: a synthetic scene)")
    parser.add_argument("--mask", help="object mask file, nonzero = object (needed with --image)")
    parser.add_argument("--action", default="imagine", help="Imagine action name")
    parser.add_argument("--steps", type=int, default=0, help="denoising steps (0 = the node's parameter)")
    parser.add_argument("--trajectory-only", action="store_true", help="skip the video (stage 2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the node")
    parser.add_argument("--trajectory-topic", help="the node's mask_trajectory topic (default: "
                        "imagination/mask_trajectory in the namespace of --action)")
    args = parser.parse_args(argv)
    if bool(args.image) != bool(args.mask):
        parser.error("--image and --mask go together")
    if args.image:
        bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
        mask = cv2.imread(args.mask, cv2.IMREAD_GRAYSCALE)
        if bgr is None or mask is None:
            parser.error(f"could not read --image {args.image} or --mask {args.mask}")
        image, object_mask = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask > 0
    else:
        image, object_mask = synthetic_scene()

    early = []
    sent_at = time.monotonic()

    def print_feedback(f) -> None:
        if f.trajectory_ready and f.stage == "trajectory" and f.step == f.total_steps:
            return  # the trajectory itself arrives through on_trajectory
        print(f"  {f.stage:10s} step {f.step:3d}/{f.total_steps:<3d} {f.elapsed_seconds:6.2f} s", flush=True)

    def on_trajectory(msg) -> None:  # stage 1 done: a planner could start moving now
        early.append(msg)
        print(f"  trajectory received after {time.monotonic() - sent_at:.2f} s, before the video", flush=True)

    namespace = args.action.rpartition("/")[0]  # "/robot/imagine" -> "/robot"
    trajectory_topic = args.trajectory_topic or (f"{namespace}/" if namespace else "") + "imagination/mask_trajectory"
    with ImagineClient(args.action, node_name="imagination_planner", trajectory_topic=trajectory_topic) as client:
        if not client.wait_for_server(args.timeout):
            print(f"no Imagine action server '{client.node.resolve_topic_name(args.action)}' found", file=sys.stderr)
            return 1
        print(f"imagining: {args.prompt!r}")
        goal = client.make_goal(image, object_mask, prompt=args.prompt, num_inference_steps=args.steps,
                                trajectory_only=args.trajectory_only)
        sent_at = time.monotonic()
        result = client.imagine(goal, timeout_s=args.timeout, on_feedback=print_feedback, on_trajectory=on_trajectory)
    if result.status != Imagine.Result.STATUS_SUCCEEDED:
        print(f"imagination {result.status}: {result.error}", file=sys.stderr)  # e.g. rejected: busy ...
        return 1
    for warning in result.warnings:  # e.g. the prompt was longer than the text encoder reads
        print(f"note: {warning}")
    rollout = result.rollout
    print(f"{rollout.num_frames} frames at {rollout.fps:g} fps from {rollout.model_id} "
          f"(trajectory {rollout.trajectory_seconds:.2f} s, video {rollout.video_seconds:.2f} s)")
    # the early copy; the result's (result_payload 'full') when the topic's did not come
    trajectory = early[0] if early else rollout.mask_trajectory
    if not has_trajectory_images(trajectory):
        print("no trajectory: the topic's did not arrive and the result has none (result_payload 'not_on_topics')",
              file=sys.stderr)
        return 1
    for waypoint in plan_from_trajectory(trajectory):
        obj = "not visible" if waypoint.object_xy is None else "({:.1f}, {:.1f})".format(*waypoint.object_xy)
        actor = "not visible" if waypoint.actor_xy is None else "({:.1f}, {:.1f})".format(*waypoint.actor_xy)
        print(f"frame {waypoint.frame}: object {obj}, actor {actor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
