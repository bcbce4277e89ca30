import json
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mask2iv_ros.data.dataset import (CURATION_FILE, Mask2IVDataset, resize_center_crop, sample_frame_indices,
                                      split_episodes)
from mask2iv_ros.data.synthetic import generate_episode


@pytest.fixture(scope="module")
def clips(small_cfg):
    return [generate_episode(9, i, small_cfg) for i in range(10)]


def test_item_shapes_ranges_and_colors(clips):
    ds = Mask2IVDataset(clips, num_frames=4, frame_stride=2, resolution=(32, 48), split="all")
    item = ds[0]
    assert item["video"].shape == (3, 4, 32, 48) and item["video"].dtype == torch.float32
    assert item["mask_video"].shape == (3, 4, 32, 48)
    for key in ("first_frame", "object_mask_rgb", "placement_mask_rgb"):
        assert item[key].shape == (3, 32, 48)
    for key in ("video", "mask_video", "first_frame", "object_mask_rgb", "placement_mask_rgb"):
        assert item[key].min() >= -1.0 and item[key].max() <= 1.0
    assert item["actor_masks"].shape == item["object_masks"].shape == (4, 32, 48)
    assert item["actor_masks"].dtype == torch.bool
    assert item["prompt"] == clips[0].prompt and item["fps"] == pytest.approx(clips[0].fps / 2)
    torch.testing.assert_close(item["first_frame"], item["video"][:, 0])
    # palette: object red (1, -1, -1), actor green (-1, 1, -1), background black
    mv, obj, act = item["mask_video"], item["object_masks"], item["actor_masks"]
    assert obj.any() and act.any()
    red = torch.tensor([1.0, -1.0, -1.0])
    green = torch.tensor([-1.0, 1.0, -1.0])
    assert (mv.permute(1, 2, 3, 0)[obj] == red).all()
    assert (mv.permute(1, 2, 3, 0)[act & ~obj] == green).all()
    assert (mv.permute(1, 2, 3, 0)[~act & ~obj] == -1).all()
    torch.testing.assert_close(item["object_mask_rgb"], mv[:, 0])
    placement = item["placement_mask_rgb"].permute(1, 2, 0)
    assert (placement[obj[-1]] == red).all() and (placement[~obj[-1]] == -1).all()


def test_mask_augmentation_changes_condition_only(clips):
    plain = Mask2IVDataset(clips, num_frames=4, resolution=(32, 48), split="all")[1]
    aug = Mask2IVDataset(clips, num_frames=4, resolution=(32, 48), split="all", augment_masks=True, mask_aug_p=1.0)[1]
    assert not torch.equal(plain["mask_video"], aug["mask_video"])
    assert torch.equal(plain["object_masks"], aug["object_masks"])
    assert torch.equal(plain["video"], aug["video"])


def test_split_by_episode_is_disjoint_and_deterministic(clips):
    train = Mask2IVDataset(clips, split="train", test_fraction=0.2, resolution=(32, 48), num_frames=4)
    test = Mask2IVDataset(clips, split="test", test_fraction=0.2, resolution=(32, 48), num_frames=4)
    assert len(train) == 8 and len(test) == 2
    assert not set(train.episode_ids) & set(test.episode_ids)
    ids = [c.episode_id for c in clips]
    assert split_episodes(ids, 0.2, 0) == split_episodes(list(reversed(ids)), 0.2, 0)
    assert split_episodes(ids, 0.2, 0)[1] != split_episodes(ids, 0.2, 1)[1] or len(ids) < 3


def test_frame_sampling_and_crop():
    idx, stride = sample_frame_indices(10, 4, 3)
    assert idx.tolist() == [0, 3, 6, 9] and stride == 3
    idx, _ = sample_frame_indices(10, 4, 3, np.random.default_rng(0))
    assert idx.tolist() == [0, 3, 6, 9]  # only one start fits
    idx, stride = sample_frame_indices(5, 8, 2)  # too short: evenly over the clip
    assert idx[0] == 0 and idx[-1] == 4 and len(idx) == 8
    video = np.zeros((1, 40, 100), bool)
    video[0, :, 45:55] = True  # a central stripe survives the center crop
    out = resize_center_crop(video, 20, 20, "nearest")
    assert out.shape == (1, 20, 20) and out.dtype == bool and out[0, :, 9:11].all() and not out[0, :, :5].any()


def test_root_folder_with_curation(raw_dataset):
    root, paths = raw_dataset
    ds = Mask2IVDataset(root, num_frames=4, resolution=(32, 48), split="all")
    assert len(ds) == len(paths)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    pickle.loads(pickle.dumps(ds))  # spawned DataLoader workers receive the dataset pickled
    assert batch["video"].shape == (2, 3, 4, 32, 48) and len(batch["prompt"]) == 2
    kept = ds.episode_ids[:5]
    (root / CURATION_FILE).write_text(json.dumps({"kept": kept}))
    try:
        assert Mask2IVDataset(root, num_frames=4, resolution=(32, 48), split="all").episode_ids == kept
        assert len(Mask2IVDataset(root, split="all", use_curation=False)) == len(paths)
        (root / CURATION_FILE).write_text(json.dumps({"kept": ["some/other/traj0"]}))
        with pytest.raises(ValueError, match="stale"):
            Mask2IVDataset(root, split="all")
    finally:
        (root / CURATION_FILE).unlink()


def test_bad_arguments(clips, tmp_path, small_cfg):
    with pytest.raises(ValueError, match="split"):
        Mask2IVDataset(clips, split="val")
    with pytest.raises(FileNotFoundError, match="source"):
        Mask2IVDataset(tmp_path / "missing")
    bare = generate_episode(0, 0, small_cfg)
    bare.actor_masks = None
    with pytest.raises(ValueError, match="masks"):
        Mask2IVDataset([bare])
