"""Torch datasets producing the training tensors of stage 1 (trajectory) and stage 2 (video).

Each item is a dict:

=====================  ==========================================================================
``video``              float32 ``[3, T, H, W]`` in [-1, 1], the RGB clip
``mask_video``         float32 ``[3, T, H, W]`` in [-1, 1], the color-coded mask trajectory
                       (:func:`mask2iv_ros.masks.encode_mask_video`: object red, actor green,
                       object wins on overlap); randomly dilated/eroded when ``augment_masks``
``first_frame``        float32 ``[3, H, W]`` in [-1, 1]
``object_mask_rgb``    float32 ``[3, H, W]``, color-coded first-frame object mask, actor colored too
``placement_mask_rgb`` float32 ``[3, H, W]``, color-coded object mask of the last sampled frame
``actor_masks``        bool ``[T, H, W]`` (never augmented; for contact maps)
``object_masks``       bool ``[T, H, W]``
``prompt``             str
``episode_id``         str
``fps``                float, frame rate of the sampled clip (source fps / stride)
=====================  ==========================================================================

Frames are sampled ``num_frames`` at ``frame_stride`` (a random start in training, the start of
the clip otherwise); clips too short for that stride are sampled evenly over their whole length.
Frames go through :func:`mask2iv_ros.pipeline.resize.resize_center_crop`, the release's
short-side resize + centre crop that the pipeline applies at inference too (masks nearest,
frames area). The split is by episode: a seeded permutation of the sorted unique episode
ids puts ``test_fraction`` of them in ``"test"`` (the held-out split evaluation uses).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..masks import encode_mask_video, encode_masks
from ..pipeline.resize import resize_center_crop
from .augment import random_dilate_erode
from .bridge import MASK_FILE, detect_layout, find_trajectories, load_bridge_trajectory, trajectory_id
from .sample import InteractionClip

logger = logging.getLogger(__name__)
CURATION_FILE = "mask2iv_curation.json"
SPLITS = ("train", "test", "all")


def split_episodes(episode_ids: Sequence[str], test_fraction: float = 0.1, seed: int = 0
                   ) -> Tuple[List[str], List[str]]:
    """``(train_ids, test_ids)``: deterministic, depends only on the set of ids and ``seed``."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a fraction in [0, 1), got {test_fraction}")
    unique = sorted(set(episode_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = int(math.ceil(test_fraction * len(unique))) if test_fraction > 0 else 0
    if len(unique) > 1:
        n_test = min(max(n_test, 1 if test_fraction > 0 else 0), len(unique) - 1)
    test = sorted(unique[i] for i in order[:n_test])
    train = sorted(unique[i] for i in order[n_test:])
    return train, test


def sample_frame_indices(num_available: int, num_frames: int, stride: int,
                         rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, int]:
    """``(indices, effective_stride)`` of ``num_frames`` frames out of ``num_available``."""
    if num_frames < 1 or stride < 1:
        raise ValueError(f"num_frames/frame_stride: expected positive integers, got {num_frames}, {stride}")
    span = (num_frames - 1) * stride + 1
    if num_available >= span:
        start = int(rng.integers(num_available - span + 1)) if rng is not None else 0
        return start + stride * np.arange(num_frames), stride
    idx = np.linspace(0, num_available - 1, num_frames).round().astype(int)
    return idx, max(1, (num_available - 1) // max(1, num_frames - 1))


def to_unit_range(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float32 channels-first in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(rgb)).to(torch.float32).div_(127.5).sub_(1.0)
    if t.ndim == 4:  # [T, H, W, 3] -> [3, T, H, W]
        return t.permute(3, 0, 1, 2).contiguous()
    return t.permute(2, 0, 1).contiguous()


# loaders are functools.partial objects (not lambdas) so DataLoader workers can be spawned
_Loader = Callable[[], InteractionClip]


def _identity(clip: InteractionClip) -> InteractionClip:
    return clip


def _apply_curation(root: Path, items: list, episode_id: Callable) -> list:
    """Keep the items listed in ``root/mask2iv_curation.json`` (written by ``mask2iv-curate``)."""
    curation = root / CURATION_FILE
    if not curation.exists():
        return items
    kept_ids = set(json.loads(curation.read_text())["kept"])
    kept = [item for item in items if episode_id(item) in kept_ids]
    if items and not kept:
        raise ValueError(f"{curation}: none of its {len(kept_ids)} kept episodes is in {root}; the file is "
                         "stale -- re-run mask2iv-curate or pass use_curation=False")
    return kept


def _bridge_entries(root: Path, use_curation: bool) -> List[Tuple[str, _Loader]]:
    trajs = find_trajectories(root)
    if use_curation:
        trajs = _apply_curation(root, trajs, trajectory_id)
    annotated = [t for t in trajs if (t / MASK_FILE).exists()]
    if len(annotated) < len(trajs):
        logger.warning("%d of %d trajectories under %s have no %s and are skipped (run mask2iv-curate)",
                       len(trajs) - len(annotated), len(trajs), root, MASK_FILE)
    return [(trajectory_id(t), functools.partial(load_bridge_trajectory, t, read_pickles=False)) for t in annotated]


def _hoi4d_entries(root: Path, short_side: Optional[int], use_curation: bool) -> List[Tuple[str, _Loader]]:
    from .hoi4d import list_hoi4d_clips, load_hoi4d_clip

    refs = list_hoi4d_clips(root)
    if use_curation:
        refs = _apply_curation(root, refs, lambda r: r.episode_id)
    return [(r.episode_id, functools.partial(load_hoi4d_clip, r, short_side)) for r in refs]


class Mask2IVDataset(Dataset):
    """Training / evaluation items from in-memory clips or a dataset folder.

    Args:
        source: a list of :class:`InteractionClip`, or a folder in BridgeData raw layout
            (synthetic episodes included) or HOI4D layout (detected by ``align_rgb/`` folders).
        num_frames, frame_stride: temporal sampling (16 frames in the paper).
        resolution: ``(H, W)`` after resize + center crop (``(320, 512)`` in the paper).
        split: ``"train"``, ``"test"`` (held out by episode) or ``"all"``.
        test_fraction, split_seed: the episode split.
        augment_masks: random dilation/erosion of ``mask_video`` (p=0.2, kernels 3/5/7).
        random_start: random temporal crop (default: on for ``"train"``).
        seed: seed of the per-item random draws (item ``i`` uses ``[seed, i, epoch]``).
        use_curation: for folders, keep only the trajectories listed by ``mask2iv-curate``.
    """

    def __init__(
        self,
        source: Union[str, Path, Sequence[InteractionClip]],
        num_frames: int = 16,
        frame_stride: int = 1,
        resolution: Tuple[int, int] = (320, 512),
        split: str = "train",
        test_fraction: float = 0.1,
        split_seed: int = 0,
        augment_masks: bool = False,
        mask_aug_p: float = 0.2,
        random_start: Optional[bool] = None,
        seed: int = 0,
        use_curation: bool = True,
    ):
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if len(resolution) != 2 or min(resolution) < 1:
            raise ValueError(f"resolution: expected (height, width) positive ints, got {resolution}")
        if num_frames < 1 or frame_stride < 1:
            raise ValueError(f"num_frames/frame_stride: expected positive ints, got {num_frames}, {frame_stride}")
        self.num_frames, self.frame_stride = int(num_frames), int(frame_stride)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.split = split
        self.augment_masks, self.mask_aug_p = augment_masks, mask_aug_p
        self.random_start = (split == "train") if random_start is None else bool(random_start)
        self.seed = seed
        self.epoch = 0

        if isinstance(source, (str, Path)):
            root = Path(source)
            if not root.is_dir():
                raise FileNotFoundError(f"source: dataset folder {root} does not exist")
            is_hoi4d = detect_layout(root) == "hoi4d"
            entries = (_hoi4d_entries(root, min(self.resolution), use_curation) if is_hoi4d
                       else _bridge_entries(root, use_curation))
        else:
            clips = list(source)
            for k, c in enumerate(clips):
                if not isinstance(c, InteractionClip):
                    raise ValueError(f"source[{k}]: expected an InteractionClip, got {type(c).__name__}")
                if not c.has_masks:
                    raise ValueError(f"source[{k}] ({c.episode_id!r}): clip has no actor/object masks")
            entries = [(c.episode_id or f"clip-{k}", functools.partial(_identity, c)) for k, c in enumerate(clips)]
        if not entries:
            raise ValueError(f"source: no annotated clips found in {source!r}")

        ids = [e for e, _ in entries]
        train, test = split_episodes(ids, test_fraction, split_seed)
        wanted = set(ids) if split == "all" else set(train if split == "train" else test)
        self.entries = [(e, f) for e, f in entries if e in wanted]
        self.episode_ids = sorted({e for e, _ in self.entries})

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Vary the random draws per epoch (temporal crop, mask augmentation)."""
        self.epoch = int(epoch)

    def load_clip(self, index: int) -> InteractionClip:
        return self.entries[index][1]()

    def __getitem__(self, index: int) -> dict:
        episode_id, load = self.entries[index]
        clip = load()
        if not clip.has_masks:
            raise ValueError(f"episode {episode_id!r} has no actor/object masks; run mask2iv-curate first")
        rng = np.random.default_rng([self.seed, index, self.epoch])
        idx, stride = sample_frame_indices(clip.num_frames, self.num_frames, self.frame_stride,
                                           rng if self.random_start else None)
        frames = resize_center_crop(clip.frames[idx], *self.resolution, "area")
        actor = resize_center_crop(clip.actor_masks[idx], *self.resolution, "nearest")
        obj = resize_center_crop(clip.object_masks[idx], *self.resolution, "nearest")
        # the perturbed masks only feed the trajectory condition; contact maps use the originals
        cond_actor, cond_obj = (random_dilate_erode((actor, obj), p=self.mask_aug_p, rng=rng)
                                if self.augment_masks else (actor, obj))
        return {
            "video": to_unit_range(frames),
            "mask_video": to_unit_range(encode_mask_video(cond_obj, cond_actor)),
            "first_frame": to_unit_range(frames[0]),
            "object_mask_rgb": to_unit_range(encode_masks(obj[0], actor[0])),
            "placement_mask_rgb": to_unit_range(encode_masks(obj[-1])),
            "actor_masks": torch.from_numpy(np.ascontiguousarray(actor)),
            "object_masks": torch.from_numpy(np.ascontiguousarray(obj)),
            "prompt": clip.prompt,
            "episode_id": episode_id,
            "fps": float(clip.fps) / stride,
        }
