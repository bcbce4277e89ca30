"""Builds the embedded assets from a trained pipeline folder.

    python -m mask2iv_ros.assets.build --pipeline runs/embedded_pipeline

- default_model/: the pipeline folder (safetensors + configs), its training configs, loss curves,
  and a model card (model_card.json + MODEL_CARD.md);
- demo_episode/: an MCAP bag of held-out synthetic episodes (seed DEMO_SEED, never used for
  training): camera image, object mask, placement mask, prompt and ground-truth trajectory.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode
from mask2iv_ros.eval.bag_io import BagRequest, write_input_bag

ASSETS = Path(__file__).resolve().parent
DEMO_SEED = 7777  # training episodes use seed 2026: the demo scenes are unseen
DEMO_EPISODES = (0, 1, 2)
FRAME_STRIDE = 2  # the model sees every 2nd frame of a 16-frame, 4 fps episode


def demo_requests(height: int = 64, width: int = 64, frames: int = 16, fps: float = 4.0) -> list[BagRequest]:
    """Held-out episodes as bag requests carrying both conditions (prompt and placement mask)."""
    config = SyntheticConfig(height=height, width=width, num_frames=frames, fps=fps)
    requests = []
    for index in DEMO_EPISODES:
        clip = generate_episode(DEMO_SEED, index, config)
        actor, obj = clip.actor_masks[::FRAME_STRIDE], clip.object_masks[::FRAME_STRIDE]
        requests.append(BagRequest(image=clip.frames[0], object_mask=clip.object_masks[0], prompt=clip.prompt,
                                   placement_mask=clip.object_masks[-1], ground_truth_actor_masks=actor,
                                   ground_truth_object_masks=obj, fps=fps / FRAME_STRIDE))
    return requests


def build_demo_bag(path: Path = ASSETS / "demo_episode") -> Path:
    if path.exists():
        shutil.rmtree(path)
    return write_input_bag(path, demo_requests(), storage="mcap", period_s=2.0)


def build_default_model(pipeline: Path, destination: Path = ASSETS / "default_model",
                        runs: tuple[Path, ...] = ()) -> Path:
    """Copy the pipeline; add each run's config and loss curve next to it."""
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(pipeline, destination)
    training = destination / "training"
    training.mkdir()
    for run in runs:
        for name in ("config.yaml", "loss.png", "loss_log.csv", "training_log.json"):
            for found in Path(run).glob(f"**/{name}"):
                shutil.copy2(found, training / f"{Path(run).name}_{name}")
                break
    return destination


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, help="trained pipeline folder to embed")
    parser.add_argument("--runs", type=Path, nargs="*", default=(), help="training run folders (configs, curves)")
    parser.add_argument("--demo-bag-only", action="store_true")
    args = parser.parse_args(argv)
    print(build_demo_bag())
    if not args.demo_bag_only:
        print(build_default_model(args.pipeline, runs=tuple(args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
