"""imagine_node against the same pipeline call in a plain process, in one run; cold start; output path.

    python benchmarks/bench_node_vs_standalone.py [--steps 10] [--pairs 5] [--torch-threads N] [--skip-output-path]

1. Cold start: seconds from starting `imagine_node` (embedded model, a plain autostart run) until a
   client sees its action server, and the node's CPU seconds at that moment (on a shared machine
   CPU seconds are the steadier figure); where the time goes: imports (rclpy + node, torch, the
   pipeline's modules) and loading the folder, each measured in a fresh process.
2. Node vs standalone: the same PT-Gen request on the embedded model (same seed and steps),
   alternately through the node's action and through `Mask2IVPipeline.__call__` on the main
   thread of a plain Python process started next to it; median of the pairs. The ratio of the
   model time the node reports to the standalone call's is the node's overhead (goal <= 1.05).
   Also the time to the first trajectory at the client: goal sent -> its mask trajectory received
   on the node's topic (published when stage 1 ends), against goal sent -> result.
3. Output path at paper size (16 x 320 x 512): overlay drawing (per-frame OpenCV contours vs the
   node's vectorised NumPy) and building the output messages, off the model thread in the node.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# The benchmarks' shared test scene lives in bench_pipeline.py (loaded by path: the
# benchmarks are scripts, not a package).
_bench_pipeline_spec = importlib.util.spec_from_file_location(
    "bench_pipeline", Path(__file__).with_name("bench_pipeline.py"))
_bench_pipeline = importlib.util.module_from_spec(_bench_pipeline_spec)
_bench_pipeline_spec.loader.exec_module(_bench_pipeline)
scene = _bench_pipeline.scene


# ---- the standalone side: a plain process calling the pipeline on its main thread -------------
def standalone_worker(steps: int, threads: int) -> None:
    """Load the embedded model, then answer each stdin line with one timed pipeline call (JSON)."""
    started = time.monotonic()
    import torch

    from mask2iv_ros.demo import EMBEDDED_MODEL
    from mask2iv_ros.pipeline import Mask2IVPipeline
    from mask2iv_ros.ros.parameters import default_torch_threads

    torch.set_num_threads(threads or default_torch_threads())  # as the node's torch_threads, like for like
    pipe = Mask2IVPipeline.from_pretrained(EMBEDDED_MODEL)
    image, mask, placement = scene(pipe.resolution)
    print(json.dumps({"ready_s": time.monotonic() - started, "threads": torch.get_num_threads()}), flush=True)
    for _line in sys.stdin:
        begun = time.monotonic()
        out = pipe(image, mask, placement_mask=placement, num_inference_steps=steps or None, seed=0)
        print(json.dumps({"model_s": sum(out.timings.values()), "call_s": time.monotonic() - begun}), flush=True)


# ---- cold start -----------------------------------------------------------------------------------
def import_breakdown() -> list[tuple[str, float]]:
    """Seconds of each start-up step, each in a fresh process after the previous steps."""
    steps = [
        ("rclpy + node module", "import mask2iv_ros.ros.node"),
        ("torch", "import torch"),
        ("pipeline modules (diffusers, transformers)", "import mask2iv_ros.pipeline"),
        ("loading the embedded folder", "from mask2iv_ros.ros.model_loading import load_pipeline; "
                                        "load_pipeline('embedded', 'cpu')"),
    ]
    rows, done = [], []
    for name, statement in steps:
        code = ("import time, json\n" + "\n".join(done) + "\nt = time.perf_counter()\n" + statement +
                "\nprint(json.dumps(time.perf_counter() - t))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rows.append((name, json.loads(proc.stdout.strip().splitlines()[-1])))
        done.append(statement)
    return rows


def start_node(namespace: str, env: dict, steps: int, threads: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mask2iv_ros.ros.node", "--ros-args", "-r", f"__ns:={namespace}",
               "-p", f"torch_threads:={threads}",
               "-p", "model_path:=embedded", "-p", "mode:=position", "-p", f"num_inference_steps:={steps}",
               "-p", "max_input_age_s:=0.0"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cold_start(client: Any, node: subprocess.Popen, started: float) -> tuple[float, float]:
    while not client.action_client.server_is_ready():
        if node.poll() is not None:
            raise RuntimeError(f"imagine_node exited with code {node.returncode} during start-up")
        time.sleep(0.02)
    return time.monotonic() - started, cpu_seconds(node.pid)


# ---- output path ------------------------------------------------------------------------------------
def output_path(frames: int = 16, height: int = 320, width: int = 512, repeats: int = 3) -> list[tuple[str, float]]:
    from types import SimpleNamespace

    from mask2iv_ros.masks import DEFAULT_PALETTE, labels_to_rgb, overlay_masks
    from mask2iv_ros.ros import outputs
    from mask2iv_ros.ros.image_conversion import rgb_to_image_msg
    from mask2iv_ros.ros.overlay import overlay_frames

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    objects = np.stack([(yy - 100 - 4 * t) ** 2 + (xx - 200 - 6 * t) ** 2 < 40 ** 2 for t in range(frames)])
    actors = np.stack([(abs(yy - 60 - 4 * t) < 50) & (abs(xx - 120 - 6 * t) < 30) for t in range(frames)]) & ~objects
    labels = objects.astype(np.uint8) + 2 * actors
    output = SimpleNamespace(mask_trajectory=labels_to_rgb(labels, DEFAULT_PALETTE), actor_masks=actors,
                             object_masks=objects, video=rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8),
                             timings={"trajectory": 1.0, "video": 1.0}, fps=8.0)
    request = SimpleNamespace(request_id="bench", stamp=None, frame_id="camera", mode="position", prompt="",
                              num_inference_steps=10, guidance_scale=7.5, seed=0, image=image)
    from builtin_interfaces.msg import Time

    request.stamp = Time()

    def best(function: Any) -> float:
        times = []
        for _ in range(repeats):
            begun = time.perf_counter()
            function()
            times.append(time.perf_counter() - begun)
        return min(times)

    def messages() -> None:
        header = outputs.input_header(request)
        trajectory = outputs.mask_trajectory_msg(output, header, 8.0, DEFAULT_PALETTE)
        outputs.rollout_msg(request, output, trajectory, fps=8.0, model_id="bench", total_seconds=1.0)

    reference = best(lambda: overlay_masks(np.broadcast_to(image, objects.shape + (3,)).copy(), object_mask=objects,
                                           actor_mask=actors, palette=DEFAULT_PALETTE))
    vectorised = best(lambda: overlay_frames(image, actors, objects, DEFAULT_PALETTE))
    overlay = overlay_frames(image, actors, objects, DEFAULT_PALETTE)
    return [
        ("overlay drawing, per-frame OpenCV contours (masks.overlay_masks)", reference),
        ("overlay drawing, vectorised NumPy (the node: ros/overlay.py)", vectorised),
        ("overlay frames -> sensor_msgs/Image", best(lambda: [rgb_to_image_msg(f) for f in overlay])),
        ("MaskTrajectory + ImaginedRollout messages", best(messages)),
    ]


# ---- main -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps per stage; 0 = the checkpoint's default")
    parser.add_argument("--pairs", type=int, default=5, help="node/standalone pairs (after one warm-up each)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch threads of both sides; 0 = the node's default (cores, at most 8)")
    parser.add_argument("--skip-output-path", action="store_true")
    parser.add_argument("--standalone-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.standalone_worker:
        standalone_worker(args.steps, args.torch_threads)
        return 0

    from mask2iv_ros.ros_env import apply_local_ros_env

    env = apply_local_ros_env()
    from mask2iv_ros.ros.planner_client import ImagineClient

    namespace = f"/bench_node_{os.getpid()}"
    from mask2iv_ros.ros.parameters import default_torch_threads

    print(f"cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}, "
          f"torch threads {args.torch_threads or default_torch_threads()}, {args.steps} DDIM steps per stage, "
          "embedded default model, PT-Gen")
    with ImagineClient(f"{namespace}/imagine", node_name="bench_client",
                       trajectory_topic=f"{namespace}/imagination/mask_trajectory") as client:
        started = time.monotonic()
        node = start_node(namespace, env, args.steps, args.torch_threads)
        standalone = None
        try:
            ready_s, ready_cpu = cold_start(client, node, started)
            print("\n## Cold start: process start -> action server discovered\n")
            print("| what | seconds |\n|---|---|")
            print(f"| imagine_node, wall clock | {ready_s:.2f} |")
            print(f"| imagine_node, CPU seconds used by then | {ready_cpu:.2f} |")
            for name, seconds in import_breakdown():
                print(f"| of which: {name} (fresh process) | {seconds:.2f} |")

            standalone = subprocess.Popen([sys.executable, __file__, "--standalone-worker", "--steps", str(args.steps),
                                           "--torch-threads", str(args.torch_threads)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            json.loads(standalone.stdout.readline())
            image, mask, placement = scene((64, 64))  # the embedded model's resolution
            node_model, node_total, alone_model, node_to_trajectory = [], [], [], []
            for pair in range(args.pairs + 1):
                goal = client.make_goal(image, mask, mode="position", placement_mask=placement, seed=0)
                early: list[float] = []
                begun = time.monotonic()
                result = client.imagine(goal, timeout_s=600.0, on_trajectory=lambda _msg: early.append(time.monotonic()))
                total = time.monotonic() - begun
                if result.status != "succeeded":
                    raise RuntimeError(f"node: {result.status} {result.error}")
                standalone.stdin.write("run\n")
                standalone.stdin.flush()
                alone = json.loads(standalone.stdout.readline())
                if pair == 0:
                    continue  # warm-up of both
                node_model.append(result.rollout.trajectory_seconds + result.rollout.video_seconds)
                node_total.append(total)
                node_to_trajectory.append(early[0] - begun if early else float("nan"))
                alone_model.append(alone["model_s"])
            ratios = [n / a for n, a in zip(node_model, alone_model)]
            print(f"\n## Node vs standalone (median of {args.pairs} alternating pairs)\n")
            print("| | seconds per imagination |\n|---|---|")
            print(f"| standalone `Mask2IVPipeline.__call__` (main thread, plain process) | {statistics.median(alone_model):.3f} |")
            print(f"| imagine_node, model time it reports | {statistics.median(node_model):.3f} |")
            print(f"| imagine_node, action round trip at the client | {statistics.median(node_total):.3f} |")
            print(f"| imagine_node, goal sent -> its trajectory at the client (topic, when stage 1 ends) | "
                  f"{statistics.median(node_to_trajectory):.3f} |")
            print(f"| ratio node / standalone (median of pair ratios; goal <= 1.05) | {statistics.median(ratios):.3f} |")
        finally:
            if standalone is not None:
                standalone.stdin.close()
                standalone.wait(timeout=30)
            node.send_signal(2)
            node.wait(timeout=60)
    if not args.skip_output_path:
        print("\n## Output path at 16 x 320 x 512 (output thread of the node; best of 3)\n")
        print("| step | seconds |\n|---|---|")
        for name, seconds in output_path():
            print(f"| {name} | {seconds:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
