"""Actor drop: train stage 1 on the first-frame condition a request without an actor mask gives.

Without ``actor_mask`` (the node's ``use_actor_mask: false``) the pipeline colour-codes the
first-frame condition from the object mask alone (``encode_masks(object_mask, None)`` in
:meth:`mask2iv_ros.pipeline.Mask2IVPipeline.__call__`). A model trained only on conditions with
the actor coloured in has never seen that input; ``stage1.actor_condition_drop_prob`` replaces
the dataset's ``object_mask_rgb`` (object and actor) by exactly that object-only encoding for a
random part of each batch. The target mask video keeps the actor: the model still has to imagine
the arm, now from the RGB first frame alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mask2iv_ros.data.dataset import to_unit_range
from mask2iv_ros.masks import encode_masks


def object_only_condition(object_mask: np.ndarray) -> torch.Tensor:
    """The pipeline's first-frame condition without an actor mask, as the dataset's tensors:
    bool ``[H, W]`` -> float ``[3, H, W]`` in [-1, 1]."""
    return to_unit_range(encode_masks(np.asarray(object_mask, dtype=bool), None))


def drop_first_frame_actor(object_mask_rgb: Any, object_masks: Any,
                           drop: np.ndarray) -> torch.Tensor:
    """``object_mask_rgb`` ``[B, 3, H, W]`` with rows where ``drop`` (bool ``[B]``) is true
    replaced by the object-only encoding of ``object_masks[:, 0]`` (``[B, T, H, W]``)."""
    result = torch.as_tensor(object_mask_rgb).clone()
    masks = object_masks.detach().cpu().numpy() if isinstance(object_masks, torch.Tensor) \
        else np.asarray(object_masks)
    drop = np.asarray(drop, dtype=bool)
    if drop.shape != (result.shape[0],):
        raise ValueError(f"drop: expected a bool array of shape ({result.shape[0]},), got "
                         f"{drop.shape}")
    for row in np.flatnonzero(drop):
        result[row] = object_only_condition(masks[row, 0]).to(result.dtype)
    return result
