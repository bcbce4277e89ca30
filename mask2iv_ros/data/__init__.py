"""Data: synthetic episodes, BridgeData V2 / HOI4D readers, curation, augmentation, datasets.

Annotation with GroundingDINO + SAM2 lives in :mod:`mask2iv_ros.data.annotate` (imported on
demand: it pulls in the transformers models).
"""

from .augment import contact_loss_weights, contact_map, downsample_weights, random_dilate_erode
from .bridge import (MASK_FILE, UnsafePickleError, find_trajectories, load_bridge_trajectory,
                     read_mask_annotation, safe_pickle_load, write_mask_annotation)
from .curation import filter_by_motion, motion_score, select_manipulated_object, temporal_miou
from .dataset import CURATION_FILE, Mask2IVDataset, split_episodes
from .hoi4d import hoi4d_prompt, list_hoi4d_clips, load_hoi4d_clip, load_hoi4d_clips
from .preview import save_contact_sheet
from .sample import InteractionClip
from .synthetic import SyntheticConfig, generate_episode, write_synthetic_dataset

__all__ = [
    "CURATION_FILE", "InteractionClip", "MASK_FILE", "Mask2IVDataset", "SyntheticConfig", "UnsafePickleError",
    "contact_loss_weights", "contact_map", "downsample_weights", "filter_by_motion", "find_trajectories",
    "generate_episode", "hoi4d_prompt", "list_hoi4d_clips", "load_bridge_trajectory", "load_hoi4d_clip",
    "load_hoi4d_clips", "motion_score", "random_dilate_erode", "read_mask_annotation", "safe_pickle_load",
    "save_contact_sheet", "select_manipulated_object", "split_episodes", "temporal_miou",
    "write_mask_annotation", "write_synthetic_dataset",
]
