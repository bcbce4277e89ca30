"""Tiny training configs pointing at one synthetic dataset generated per test session."""

from pathlib import Path

import pytest

from mask2iv_ros.training.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_data")  # filled by the first trainer that needs it


@pytest.fixture
def tiny_config(tmp_path, tiny_data_root):
    """``tiny_config(name, *overrides)`` -> TrainConfig writing under this test's tmp_path."""

    def make(name: str, *overrides: str, output: str = "run"):
        return load_config(REPO / "training" / f"{name}.yaml", [
            f"output_dir={tmp_path / output}", f"export_dir={tmp_path / 'pipeline'}",
            f"data.root={tiny_data_root}", "data.synthetic_episodes=6", "max_steps=2",
            "checkpoint_every=100", "plot_every=100", *overrides])

    return make
