"""Fixtures of the data tests: small synthetic episodes and a small raw-layout dataset."""

import pytest

from mask2iv_ros.data.synthetic import SyntheticConfig, write_synthetic_dataset


@pytest.fixture(scope="session")
def small_cfg():
    return SyntheticConfig(height=64, width=96, num_frames=10, noise_std=1.0)


@pytest.fixture(scope="session")
def raw_dataset(tmp_path_factory, small_cfg):
    """8 synthetic episodes written in BridgeData V2 raw layout: (root, trajectory folders)."""
    root = tmp_path_factory.mktemp("bridge_raw")
    paths = write_synthetic_dataset(root, 8, seed=3, config=small_cfg, progress=False)
    return root, paths
