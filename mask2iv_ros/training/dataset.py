"""The training dataset of a run: :class:`mask2iv_ros.data.dataset.Mask2IVDataset` from config.

``data.source: synthetic`` generates ``data.synthetic_episodes`` procedural episodes into
``data.root`` (BridgeData raw layout) when it holds none yet, at the training resolution.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch.utils.data import Dataset, default_collate

from mask2iv_ros.data.bridge import find_trajectories
from mask2iv_ros.data.dataset import Mask2IVDataset
from mask2iv_ros.data.synthetic import SyntheticConfig, write_synthetic_dataset

from .checkpoint import ProcessGroup
from .config import TrainConfig

logger = logging.getLogger(__name__)


def ensure_synthetic_data(config: TrainConfig, process: ProcessGroup) -> None:
    """Generate the synthetic episodes once (main process; the others wait)."""
    data = config.data
    root = Path(data.root)
    if process.is_main_process and not (root.is_dir() and find_trajectories(root)):
        logger.info("generating %d synthetic episodes into %s", data.synthetic_episodes, root)
        synthetic = SyntheticConfig(height=data.height, width=data.width,
                                    num_frames=max(6, (data.num_frames - 1) * data.frame_stride + 1))
        write_synthetic_dataset(root, data.synthetic_episodes, seed=config.seed, config=synthetic,
                                progress=True)
    process.wait_for_everyone()


def build_dataset(config: TrainConfig, process: ProcessGroup) -> Dataset:
    data = config.data
    if data.source == "synthetic":
        ensure_synthetic_data(config, process)
    root = Path(data.root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root: dataset folder {root} does not exist")
    # Mask perturbation (stage 2) is done by the trainer from actor/object masks, so the dataset
    # serves unperturbed masks.
    return Mask2IVDataset(root, num_frames=data.num_frames, frame_stride=data.frame_stride,
                          resolution=(data.height, data.width), split=data.split,
                          test_fraction=data.test_fraction, split_seed=data.split_seed,
                          augment_masks=False, seed=config.seed)


def collate(items: list[dict]) -> dict:
    """torch's default collation: tensors stacked, prompts / episode ids as lists."""
    return default_collate(items)
