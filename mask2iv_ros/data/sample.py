"""The common sample structure shared by every dataset reader: :class:`InteractionClip`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(eq=False)  # arrays inside: clips compare by identity
class InteractionClip:
    """One actor-object interaction clip.

    Attributes:
        frames: uint8 ``[T, H, W, 3]`` RGB video.
        actor_masks: bool ``[T, H, W]`` visible robot arm / hand per frame, or ``None`` when the
            source has no annotation yet (BridgeData before curation).
        object_masks: bool ``[T, H, W]`` visible manipulated object per frame, or ``None``.
        prompt: language instruction ("push the red block to the left", "a hand picking up a mug").
        source: where the clip comes from ("synthetic", "bridge", "hoi4d").
        episode_id: stable identifier of the episode the clip was cut from; the train/test split
            is made over these so that no episode contributes to both.
        action: action verb ("push", "pick up", ...), "" when unknown.
        direction: motion direction for push/pull ("left", "right", "forward", "backward"), else "".
        fps: frame rate of ``frames``.
        metadata: free-form extra information (paths, frame range, object name ...).
    """

    frames: np.ndarray
    actor_masks: Optional[np.ndarray]
    object_masks: Optional[np.ndarray]
    prompt: str
    source: str = ""
    episode_id: str = ""
    action: str = ""
    direction: str = ""
    fps: float = 5.0
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        frames = self.frames
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                "frames: expected a uint8 array of shape [T, H, W, 3], got "
                f"{getattr(frames, 'shape', type(frames).__name__)}"
            )
        if frames.dtype != np.uint8:
            raise ValueError(f"frames: expected dtype uint8, got {frames.dtype}")
        for name in ("actor_masks", "object_masks"):
            masks = getattr(self, name)
            if masks is None:
                continue
            masks = np.asarray(masks)
            if masks.shape != frames.shape[:3]:
                raise ValueError(
                    f"{name}: expected a bool mask video of shape {frames.shape[:3]} matching frames, "
                    f"got {masks.shape}"
                )
            setattr(self, name, masks.astype(bool, copy=False))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def has_masks(self) -> bool:
        return self.actor_masks is not None and self.object_masks is not None

    @property
    def placement_mask(self) -> Optional[np.ndarray]:
        """bool ``[H, W]``: the object mask in the last frame (the PT-Gen target position)."""
        if self.object_masks is None:
            return None
        return self.object_masks[-1]
