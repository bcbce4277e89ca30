"""Deterministic, resumable order of training samples across epochs and processes.

Epoch ``e`` visits the clips in ``randperm(n, seed + e)``; each global batch of
``batch_size * world_size`` clips is split so process ``r`` gets slice ``r``. Position is
``(epoch, batch_in_epoch)``, a pair of ints stored in the checkpoint, so a resumed run sees exactly
the batches the uninterrupted run would have seen (independent of DataLoader prefetching).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler


@dataclass
class DataPosition:
    epoch: int = 0
    batch_in_epoch: int = 0


class ResumableBatchSampler(Sampler[list[tuple[int, int]]]):
    """Infinite batch sampler (one process's share) starting at a :class:`DataPosition`.

    Yields batches of ``(epoch, index)`` pairs: the dataset's per-item random draws depend on
    the epoch (see :class:`EpochIndexed`), which must reach DataLoader worker processes too.
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, start: DataPosition | None = None) -> None:
        global_batch = batch_size * world_size
        if dataset_size < global_batch:
            raise ValueError(
                f"dataset: {dataset_size} clips are fewer than one global batch "
                f"(optim.batch_size {batch_size} x {world_size} processes = {global_batch}); "
                "add clips or lower optim.batch_size")
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start or DataPosition()
        if not 0 <= self.start.batch_in_epoch < self.batches_per_epoch:
            raise ValueError(f"start.batch_in_epoch: expected 0..{self.batches_per_epoch - 1}, "
                             f"got {self.start.batch_in_epoch}")

    @property
    def batches_per_epoch(self) -> int:
        # The incomplete last global batch is dropped so every process steps equally.
        return self.dataset_size // (self.batch_size * self.world_size)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.dataset_size, generator=generator)

    def advance(self, position: DataPosition) -> DataPosition:
        """The position after consuming one batch at ``position``."""
        if position.batch_in_epoch + 1 < self.batches_per_epoch:
            return DataPosition(position.epoch, position.batch_in_epoch + 1)
        return DataPosition(position.epoch + 1, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, batch = self.start.epoch, self.start.batch_in_epoch
        global_batch = self.batch_size * self.world_size
        while True:
            order = self.epoch_order(epoch)
            for index in range(batch, self.batches_per_epoch):
                begin = index * global_batch + self.rank * self.batch_size
                yield [(epoch, i) for i in order[begin:begin + self.batch_size].tolist()]
            epoch, batch = epoch + 1, 0

    def __len__(self) -> int:  # DataLoader asks; the sampler is infinite, report one epoch
        return self.batches_per_epoch


class EpochIndexed(Dataset):
    """Dataset view indexed by ``(epoch, index)``: sets the epoch of the wrapped dataset
    (``set_epoch``, e.g. :class:`mask2iv_ros.data.dataset.Mask2IVDataset`) before each item."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]
