"""imagine_node's resident memory over several large goals: it must not ratchet up goal after goal.

    python benchmarks/bench_node_memory.py [--side 2048] [--goals 4] [--model tiny-random]

Starts `imagine_node` (tiny random model by default: the memory of large goals is in the outputs,
which are sent at the input size) and sends `--goals` goals of `--side` x `--side` pixels one after
the other (the default 2048 x 2048 is the largest `max_input_pixels` accepts by default), then one
3000 x 3000 goal (refused by max_input_pixels before any work). Prints the node's RSS (VmRSS from
/proc) after start, after each goal and 15 s after the last one (past the action server's 10 s
result retention), and its peak (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def memory_mb(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048, help="image width and height of each goal")
    parser.add_argument("--goals", type=int, default=4)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)

    from mask2iv_ros.ros_env import apply_local_ros_env

    env = apply_local_ros_env()
    from mask2iv_ros.ros.planner_client import ImagineClient

    namespace = f"/bench_memory_{os.getpid()}"
    node = subprocess.Popen(
        [sys.executable, "-m", "mask2iv_ros.ros.node", "--ros-args", "-r", f"__ns:={namespace}",
         "-p", f"model_path:={args.model}", "-p", f"num_inference_steps:={args.steps}", "-p", "torch_threads:=1",
         "-p", "max_input_age_s:=0.0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        with ImagineClient(f"{namespace}/imagine", node_name="bench_memory_client") as client:
            if not client.wait_for_server(300.0):
                raise RuntimeError("imagine_node did not start")
            rows.append(("started", "", memory_mb(node.pid)))
            rng = np.random.default_rng(0)
            mask = np.zeros((args.side, args.side), bool)
            mask[args.side // 3: args.side // 2, args.side // 3: args.side // 2] = True
            for number in range(1, args.goals + 1):
                image = rng.integers(0, 256, (args.side, args.side, 3), dtype=np.uint8)
                begun = time.monotonic()
                result = client.imagine(client.make_goal(image, mask, prompt="push left"), timeout_s=900.0)
                seconds = time.monotonic() - begun
                rows.append((f"goal {number}: {args.side} x {args.side}", f"{result.status}, {seconds:.1f} s",
                             memory_mb(node.pid)))
                del result
            big = np.zeros((3000, 3000, 3), np.uint8)
            big_mask = np.zeros((3000, 3000), bool)
            big_mask[:10, :10] = True
            begun = time.monotonic()
            result = client.imagine(client.make_goal(big, big_mask, prompt="push left"), timeout_s=300.0)
            rows.append(("3000 x 3000 goal", f"{result.status} in {time.monotonic() - begun:.2f} s: "
                         f"{result.error[:60]}...", memory_mb(node.pid)))
            time.sleep(15.0)  # past the action server's result retention (10 s)
            rows.append(("15 s later", "", memory_mb(node.pid)))
    finally:
        node.send_signal(2)
        node.wait(timeout=60)
    print(f"imagine_node ({args.model}, {args.steps} steps), goals of {args.side} x {args.side} pixels\n")
    print("| after | result | RSS (MB) | peak RSS (MB) |\n|---|---|---|---|")
    for what, result, memory in rows:
        print(f"| {what} | {result} | {memory['VmRSS']:.0f} | {memory['VmHWM']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
