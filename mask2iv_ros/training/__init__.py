"""Offline training of Mask2IV (stage 1 TT-Gen / PT-Gen, stage 2) with HF accelerate.

Entry point: ``mask2iv-train`` (:func:`mask2iv_ros.training.train.main`); see training/README.md.
"""

from .config import ConfigError, TrainConfig, load_config

__all__ = ["ConfigError", "TrainConfig", "load_config"]
