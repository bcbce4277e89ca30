"""Checkpoint pieces: optimizer flattening, RNG capture, data order, atomic folders."""

import json
import random

import numpy as np
import pytest
import torch

from mask2iv_ros.training import checkpoint as ckpt
from mask2iv_ros.training.data_order import DataPosition, ResumableBatchSampler


class _SingleProcess:
    is_main_process = True
    process_index = 0

    def wait_for_everyone(self):
        pass


def _stepped_adamw():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.99))
    for _ in range(2):
        model(torch.randn(4, 3)).square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path):
    model, optimizer = _stepped_adamw()
    tensors, meta = ckpt.flatten_optimizer_state(optimizer.state_dict())
    json.dumps(meta)  # must be plain JSON
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    restored = ckpt.unflatten_optimizer_state(tensors, json.loads(json.dumps(meta)))
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(restored)
    assert fresh.param_groups[0]["betas"] == (0.8, 0.99)
    assert fresh.param_groups[0]["lr"] == 1e-2
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(fresh.state_dict()["state"][index][name], value)


def test_rng_state_restores_every_generator():
    torch_gen = torch.Generator().manual_seed(1)
    np_gen = np.random.default_rng(2)
    tensors, meta = ckpt.capture_rng_state({"noise": torch_gen, "host": np_gen})
    meta = json.loads(json.dumps(meta))
    expected = (torch.rand(3), np.random.rand(), random.random(),
                torch.rand(2, generator=torch_gen), np_gen.random())
    ckpt.restore_rng_state(tensors, meta, {"noise": torch_gen, "host": np_gen})
    got = (torch.rand(3), np.random.rand(), random.random(),
           torch.rand(2, generator=torch_gen), np_gen.random())
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[3], got[3])
    assert expected[1:3] == got[1:3] and expected[4] == got[4]


def test_save_is_atomic_and_keeps_last_k(tmp_path):
    model, optimizer = _stepped_adamw()
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        ckpt.save_checkpoint(root, step, _SingleProcess(), config_yaml="stage: video\n",
                             model=model, optimizer=optimizer,
                             trainer_state={"global_step": step},
                             generators={}, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(root)] == [2, 3]
    # a half-written folder (killed run) is never picked up
    (root / ".tmp-step_00000004").mkdir()
    (root / "step_00000005").mkdir()  # no trainer_state.json: incomplete
    assert ckpt.latest_checkpoint(root).name == "step_00000003"
    files = sorted(p.name for p in ckpt.latest_checkpoint(root).iterdir())
    assert files == ["model.safetensors", "optimizer.json", "optimizer.safetensors",
                     "rng_rank0.json", "rng_rank0.safetensors", "train_config.yaml",
                     "trainer_state.json"]
    # saving again over .tmp leftovers works
    ckpt.save_checkpoint(root, 4, _SingleProcess(), config_yaml="", model=model,
                         optimizer=optimizer, trainer_state={"global_step": 4}, generators={})
    assert ckpt.latest_checkpoint(root).name == "step_00000004"


def test_data_order_resumes_mid_epoch_and_shards_processes():
    full = ResumableBatchSampler(10, batch_size=2, seed=3)
    iterator = iter(full)
    first = [next(iterator) for _ in range(7)]  # crosses into epoch 2 (5 batches per epoch)
    position = DataPosition()
    for _ in range(3):
        position = full.advance(position)
    resumed = iter(ResumableBatchSampler(10, batch_size=2, seed=3, start=position))
    assert [next(resumed) for _ in range(4)] == first[3:]
    assert {e for batch in first[:5] for e, _ in batch} == {0}
    assert {e for e, _ in first[5]} == {1}
    assert sorted(i for batch in first[:5] for _, i in batch) == list(range(10))  # every clip once
    rank0 = next(iter(ResumableBatchSampler(10, 2, seed=3, rank=0, world_size=2)))
    rank1 = next(iter(ResumableBatchSampler(10, 2, seed=3, rank=1, world_size=2)))
    assert [i for _, i in rank0 + rank1] == full.epoch_order(0)[:4].tolist()
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ResumableBatchSampler(3, batch_size=2, seed=0, world_size=2)
