#!/usr/bin/env python3
"""A planner asking imagine_node for several hypotheses with depth, and reading the object's path in metres.

It sends one Imagine goal with the camera image, the object mask, an action description, the
current depth and the camera_info, asking for `--samples` hypotheses. The node imagines them as
one batch, ranks them (the medoid by object-mask IoU first), says how much they agree, and lifts
each onto the table plane it fits to the depth: this prints, per ranked hypothesis, the object's
path in metres (camera optical frame: x right, y down, z forward), where it is placed and where the
actor touches it. A planner acts on the first and trusts it as far as the agreement allows.

    python examples/plan_in_3d.py --prompt "push the red block to the left" --samples 4
    python examples/plan_in_3d.py --image scene.png --mask block.png --depth depth.png --k 600 0 320 0 600 240 0 0 1

Without --image it draws a red block on a grey table and renders the table's depth for a camera
0.6 m above it, pitched 60 degrees down (mask2iv_ros.geometry.synthetic). --depth: a 16-bit PNG
in millimetres or a .npy in metres, the image's size. The node must be running (e.g.
`imagine_node --ros-args -p model_path:=<checkpoint>`) in the same ROS_DOMAIN_ID, with
ROS_AUTOMATIC_DISCOVERY_RANGE set as for the node.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

import cv2
import numpy as np

from mask2iv_ros.action import Imagine
from mask2iv_ros.geometry.camera import PinholeCamera
from mask2iv_ros.geometry.synthetic import default_camera, metres_to_16uc1, plane_depth, tabletop_plane
from mask2iv_ros.ros.planner_client import ImagineClient, hypotheses


def synthetic_scene(height: int = 64, width: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray, PinholeCamera]:
    """A red block on a grey table: (RGB image, bool mask, uint16 mm depth of the table, camera)."""
    image = np.full((height, width, 3), 140, np.uint8)
    top, left, size = height // 2 - 6, width // 2, 12
    image[top : top + size, left : left + size] = (200, 30, 30)
    mask = np.zeros((height, width), bool)
    mask[top : top + size, left : left + size] = True
    camera = default_camera(height, width)
    depth = metres_to_16uc1(plane_depth(camera, tabletop_plane(0.6, 60.0), height, width))
    return image, mask, depth, camera


def point_text(point) -> str:
    return "({:+.3f}, {:+.3f}, {:+.3f}) m".format(point.x, point.y, point.z)


def print_hypotheses(result) -> None:
    """The ranked hypotheses: score, object path in metres, placement and contact."""
    ranked = hypotheses(result)
    print(f"{len(ranked)} hypotheses, ranked by {result.ranking}; agreement {result.agreement:.3f} "
          "(mean pairwise object-mask IoU over frames, 1 = all agree)")
    geometry = list(result.geometry) or [None] * len(ranked)
    for rank, (rollout, lifted) in enumerate(zip(ranked, geometry)):
        print(f"hypothesis {rank}: seed {rollout.seed}, score {rollout.hypothesis_score:.3f}")
        if lifted is None:
            print("  (no geometry: the goal had no depth)")
            continue
        for frame, (pose, valid) in enumerate(zip(lifted.object_path.poses, lifted.object_path_valid)):
            where = point_text(pose.pose.position) if valid else "not visible"
            print(f"  frame {frame}: object {where}")
        placement = (f"{point_text(lifted.placement_point)} at frame {lifted.placement_frame}"
                     if lifted.placement_point_valid else "none")
        contact = ("never" if lifted.contact_frame < 0 else f"frame {lifted.contact_frame}"
                   + (f" at {point_text(lifted.contact_point)}" if lifted.contact_point_valid else ""))
        print(f"  placement {placement}; actor touches the object: {contact}")


def read_inputs(args, parser) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    if not args.image:
        return synthetic_scene()
    if not (args.mask and args.depth and args.k):
        parser.error("--image needs --mask, --depth and --k")
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    mask = cv2.imread(args.mask, cv2.IMREAD_GRAYSCALE)
    depth = np.load(args.depth).astype(np.float32) if args.depth.endswith(".npy") else \
        cv2.imread(args.depth, cv2.IMREAD_UNCHANGED)
    if bgr is None or mask is None or depth is None:
        parser.error(f"could not read --image {args.image}, --mask {args.mask} or --depth {args.depth}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask > 0, depth, np.asarray(args.k, np.float64)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt", default="push the red block to the left")
    parser.add_argument("--samples", type=int, default=4, help="hypotheses to imagine (one batch)")
    parser.add_argument("--image", help="RGB image file (default: a synthetic scene with its depth)")
    parser.add_argument("--mask", help="object mask file, nonzero = object")
    parser.add_argument("--depth", help="depth: 16-bit PNG (mm) or .npy (m), the image's size")
    parser.add_argument("--k", type=float, nargs=9, help="camera intrinsics K, row-major (as CameraInfo.k)")
    parser.add_argument("--action", default="imagine", help="Imagine action name")
    parser.add_argument("--steps", type=int, default=0, help="denoising steps (0 = the node's parameter)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the node")
    args = parser.parse_args(argv)
    image, object_mask, depth, camera = read_inputs(args, parser)

    with ImagineClient(args.action, node_name="imagination_planner_3d") as client:
        if not client.wait_for_server(args.timeout):
            print(f"no Imagine action server '{client.node.resolve_topic_name(args.action)}' found", file=sys.stderr)
            return 1
        print(f"imagining {args.samples} hypotheses: {args.prompt!r}")
        goal = client.make_goal(image, object_mask, prompt=args.prompt, num_inference_steps=args.steps,
                                trajectory_only=True, num_samples=args.samples, depth=depth, camera_info=camera,
                                frame_id="camera_optical")
        result = client.imagine(goal, timeout_s=args.timeout)
    if result.status != Imagine.Result.STATUS_SUCCEEDED:
        print(f"imagination {result.status}: {result.error}", file=sys.stderr)
        return 1
    print_hypotheses(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
