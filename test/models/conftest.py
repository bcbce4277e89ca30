"""Shared helpers for the DynamiCrafter compatibility fixtures (test/fixtures/dynamicrafter)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

DYNAMICRAFTER_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dynamicrafter"


def unpack_golden_weights(handle, prefix: str) -> dict[str, torch.Tensor]:
    """Weights stored as 4-bit codes (two per byte, high nibble first, code = q + 8, q in [-7, 7])
    with a per-tensor scale and offset: value = q * scale + offset (see the fixture README)."""
    layout = json.loads(handle.metadata()[prefix + "layout"])
    packed = handle.get_tensor(prefix + "packed").long()
    codes = torch.stack([packed // 16, packed % 16], dim=1).flatten() - 8
    scale, offset = handle.get_tensor(prefix + "scale"), handle.get_tensor(prefix + "offset")
    weights, position = {}, 0
    for index, (name, shape) in enumerate(layout):
        count = torch.Size(shape).numel()
        q = codes[position:position + count].float().reshape(shape)
        weights[name] = q * scale[index] + offset[index]
        position += count
    return weights


class GoldenFile:
    """A golden safetensors fixture: metadata, tensors by name, and unpacked weights by prefix."""

    def __init__(self, name: str):
        with safe_open(str(DYNAMICRAFTER_FIXTURES / name), "pt") as handle:
            self.metadata = handle.metadata()
            self.tensors = {k: handle.get_tensor(k) for k in handle.keys()}
            prefixes = {k[: -len("layout")] for k in self.metadata if k.endswith("layout")}
            self.weights = {p: unpack_golden_weights(handle, p) for p in prefixes}

    def params(self, key: str) -> dict:
        return json.loads(self.metadata[key])


@pytest.fixture(scope="session")
def golden():
    return GoldenFile


@pytest.fixture(scope="session")
def dynamicrafter_shapes():
    def load(name: str) -> dict:
        return json.loads((DYNAMICRAFTER_FIXTURES / name).read_text())
    return load
