"""Contact sheets of interaction clips: frames on top, mask overlays below (PNG).

Overlay colors are those of :data:`mask2iv_ros.masks.DEFAULT_PALETTE` (object red, actor green).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..masks import overlay_masks
from .sample import InteractionClip

def contact_sheet(clip: InteractionClip, max_frames: int = 8, tile_width: int = 160) -> np.ndarray:
    """uint8 RGB image: a title line, ``max_frames`` evenly spaced frames, their mask overlays."""
    T = clip.num_frames
    idx = np.unique(np.linspace(0, T - 1, min(max_frames, T)).round().astype(int))
    tile_h = max(1, int(round(tile_width * clip.height / clip.width)))
    rows = []
    top = [cv2.resize(clip.frames[t], (tile_width, tile_h), interpolation=cv2.INTER_AREA) for t in idx]
    rows.append(np.concatenate(top, 1))
    if clip.actor_masks is not None or clip.object_masks is not None:
        over = []
        for t in idx:
            a = None if clip.actor_masks is None else clip.actor_masks[t]
            o = None if clip.object_masks is None else clip.object_masks[t]
            over.append(cv2.resize(overlay_masks(clip.frames[t], object_mask=o, actor_mask=a),
                                   (tile_width, tile_h), interpolation=cv2.INTER_AREA))
        rows.append(np.concatenate(over, 1))
    body = np.concatenate(rows, 0)
    title = np.full((22, body.shape[1], 3), 255, np.uint8)
    text = f"{clip.prompt}  [{clip.source} {clip.episode_id}]"
    cv2.putText(title, text[:160], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([title, body], 0)


def save_contact_sheet(clip, path, max_frames: int = 8, tile_width: int = 160) -> Path:
    """Write a contact sheet PNG for one clip (or a list of clips, stacked vertically)."""
    clips: Sequence[InteractionClip] = [clip] if isinstance(clip, InteractionClip) else list(clip)
    if not clips:
        raise ValueError("clip: expected an InteractionClip or a non-empty list of them")
    sheets = [contact_sheet(c, max_frames, tile_width) for c in clips]
    width = max(s.shape[1] for s in sheets)
    sheets = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheets]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(sheets, 0), cv2.COLOR_RGB2BGR)):
        raise OSError(f"path: could not write PNG to {path}")
    return path
