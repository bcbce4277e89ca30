"""`make demo` / `mask2iv-demo`: a real imagination on the embedded default model, end to end.

1. starts `imagine_node` (a separate ROS 2 process, loopback-only DDS) on the embedded model,
2. replays the embedded demo bag (camera image, object mask, placement mask, prompt, ground
   truth, depth + camera_info of the table) into it with `mask2iv-replay` (PT-Gen: the placement mask says where the object goes),
   recording every output into an MCAP bag,
3. calls the `imagine` action once like a planner would, with the action text (TT-Gen), asking
   for several hypotheses (`--samples`, one batch) with the scene's depth + camera_info, and prints
   their agreement and the first-ranked object path in metres (camera optical frame),
4. writes previews: per request a GIF (input | imagined masks | imagined video | ground truth)
   and a contact-sheet PNG, plus the replay report, and prints where everything is.

Without an installed model the node is still started: it stops with a clear message, and so
does this command.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mask2iv_ros.ros_env import check_local_ros_env, local_ros_env

ASSETS = Path(__file__).resolve().parent / "assets"
EMBEDDED_MODEL = ASSETS / "default_model"
EMBEDDED_DEMO_BAG = ASSETS / "demo_episode"


def start_node(model: Path, env: dict, steps: int, device: str, log_path: Path) -> subprocess.Popen:
    """The node as users run it (`imagine_node` with parameters), in its own process."""
    command = [
        sys.executable, "-m", "mask2iv_ros.ros.node", "--ros-args",
        "-p", f"model_path:={model}", "-p", f"device:={device}", "-p", "mode:=position",
        "-p", "trigger:=each", "-p", "use_sim_time:=true", "-p", f"num_inference_steps:={steps}",
        "-p", "seed:=0", "-p", "use_actor_mask:=true",
        # the demo bag carries depth + camera_info: replayed runs publish their geometry too
        "-p", "use_depth:=true",
    ]
    check_local_ros_env(env)
    log = open(log_path, "w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_exit_or_ready(node: subprocess.Popen, log_path: Path, timeout_s: float) -> bool:
    """True once the node logs that it is ready; False if it exited first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.poll() is not None:
            return False
        if "imagine_node ready" in log_path.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return node.poll() is None


def _planner_call(image_msg, object_mask_msg, actor_mask_msg, prompt: str, steps: int, samples: int,
                  depth_msg=None, camera_info_msg=None):
    """One Imagine goal in text mode (TT-Gen), as a planner sends it, with `samples` hypotheses and
    the depth + camera_info when the bag has them; returns the result."""
    from mask2iv_ros.ros.planner_client import imagine_once

    # The recorded stamp lies behind the replay's sim clock by now; a zero stamp means "now" to the
    # node's input-age check, as for a planner that sends a freshly captured image.
    image_msg.header.stamp.sec = image_msg.header.stamp.nanosec = 0
    extra = {"actor_mask": actor_mask_msg} if actor_mask_msg is not None else {}
    if depth_msg is not None:
        extra.update(depth=depth_msg, camera_info=camera_info_msg)
    return imagine_once(image_msg, object_mask_msg, mode="text", prompt=prompt,
                        num_inference_steps=steps, timeout_s=600.0, num_samples=samples, **extra)


def describe_hypotheses(result) -> list[str]:
    """Lines for the terminal: the hypotheses' agreement and the first-ranked object path in metres."""
    scores = ", ".join(f"{score:.2f}" for score in result.hypothesis_scores)
    lines = [f"{len(result.hypothesis_scores)} hypotheses ranked by {result.ranking}, scores [{scores}], "
             f"agreement {result.agreement:.2f} (mean pairwise object-mask IoU, 1 = all agree)"]
    if not result.geometry:
        return lines + ["no geometry (the goal had no depth)"]
    geometry = result.geometry[0]
    path = ["-" if not valid else "({:+.3f}, {:+.3f}, {:+.3f})".format(p.pose.position.x, p.pose.position.y,
                                                                         p.pose.position.z)
            for p, valid in zip(geometry.object_path.poses, geometry.object_path_valid)]
    lines.append(f"first-ranked object path, metres in the camera optical frame ({geometry.header.frame_id}), "
                 f"per frame: {' '.join(path)}")
    if geometry.placement_point_valid:
        point = geometry.placement_point
        placements = [g.placement_point for g in result.geometry if g.placement_point_valid]
        spread = max(float(((a.x - b.x) ** 2 + (a.y - b.y) ** 2 + (a.z - b.z) ** 2) ** 0.5)
                     for a in placements for b in placements)
        lines.append(f"placement ({point.x:+.3f}, {point.y:+.3f}, {point.z:+.3f}) m at frame "
                     f"{geometry.placement_frame}; the hypotheses' placements lie within {spread:.3f} m of each other")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=EMBEDDED_MODEL, help="Mask2IV checkpoint folder")
    parser.add_argument("--bag", type=Path, default=EMBEDDED_DEMO_BAG, help="input bag to replay")
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="where results go")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model card's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=4, help="hypotheses the planner-style call asks for")
    args = parser.parse_args(argv)

    from mask2iv_ros.demo_outputs import requested_steps, write_previews

    env = local_ros_env()
    args.output.mkdir(parents=True, exist_ok=True)
    log_path = args.output / "imagine_node.log"
    # 0 = the checkpoint's recorded steps, so a video stage with its own step count keeps it
    steps, steps_text = requested_steps(args.model, args.steps)
    print(f"[demo] starting imagine_node on {args.model} (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, loopback only)")
    node = start_node(args.model, env, steps, args.device, log_path)
    try:
        if not _wait_for_exit_or_ready(node, log_path, timeout_s=300.0):
            node.wait(timeout=30)
            print(log_path.read_text(errors="replace").strip())
            print(f"[demo] imagine_node stopped (exit code {node.returncode}): no Mask2IV model is installed "
                  f"at {args.model} yet. Train one (training/README.md) or pass --model <folder>.")
            return 1
        os.environ.update(env)  # this process joins the node's ROS domain, loopback only
        from mask2iv_ros.eval.replay import replay_bag

        output_bag = args.output / "imagination_bag"
        print(f"[demo] replaying {args.bag} (PT-Gen, {steps_text})")
        report = replay_bag(args.bag, output_bag, overwrite=True)
        report_paths = report.write(args.output)
        from mask2iv_ros.eval.replay import first_request_actor_mask, first_request_depth, first_request_messages

        image_msg, object_mask_msg, prompt = first_request_messages(args.bag)
        depth_msg, camera_info_msg = first_request_depth(args.bag)
        with_depth = " with depth" if depth_msg is not None else ""
        print(f"[demo] planner-style action call (TT-Gen), {args.samples} hypotheses{with_depth}: {prompt!r}")
        planner_result = _planner_call(image_msg, object_mask_msg, first_request_actor_mask(args.bag), prompt, steps,
                                       args.samples, depth_msg, camera_info_msg)
        print(f"[demo] action result: {planner_result.status} {planner_result.error}".rstrip())
        if planner_result.status == "succeeded":
            for line in describe_hypotheses(planner_result):
                print(f"[demo] {line}")
        written = write_previews(args.bag, output_bag, args.output, planner_result)
    finally:
        if node.poll() is None:
            node.terminate()
            try:
                node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.kill()
    print("[demo] done. Results:")
    for path in [*report_paths, output_bag, *written]:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
