"""HOI4D clips: action segments cut from sequences, with hand / object masks.

Layout of the public release (HOI4D-Instructions README; images decoded with its
``utils/decode.py``, ``ffmpeg ... %05d.jpg``)::

    <root>/ZY2021080000*/H*/C*/N*/S*/s*/T*/
        align_rgb/00000.jpg, 00001.jpg, ...      RGB frames
        2Dseg/mask/00000.png, ...                2D motion segmentation, palette-colored labels
        action/color.json                        action segmentation

``color.json`` is ``{"info": {"duration": seconds, ...}, "events": [{"event": "Pickup",
"startTime": s, "endTime": s}, ...]}``; some files use ``{"info": {"Duration": ...},
"markResult": {"marks": [{"event", "hdTimeStart", "hdTimeEnd"}]}}`` -- both are read. Times are
converted to frames with ``fps = number of frames / duration``.

Mask PNGs color label ``i`` with the PASCAL-VOC color map (``get_color_map`` in the release's
``utils/color_map.py``); per category (``C*`` in the path) ``definitions/motion
segmentation/label.csv`` says which labels are hands (label 2 is the right hand everywhere; a
left hand is label 6 for Bucket and Lamp, label 3 for Chair). Every other non-background label
belongs to the interacted object(s).

Each action segment (except "Rest", "Reachout", "Stop", which have no object interaction)
becomes one clip with the prompt ``"a hand {verbing} {a|an} {object}"``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..pipeline.resize import crop_geometry
from .sample import InteractionClip

# HOI4D-Instructions README: object class of C<i>
CATEGORY_NAMES = [
    "", "toy car", "mug", "laptop", "storage furniture", "bottle", "safe", "bowl", "bucket",
    "scissors", "", "pliers", "kettle", "knife", "trash can", "", "", "lamp", "stapler", "", "chair",
]
# definitions/motion segmentation/label.csv: labels that are hands, per category
HAND_LABELS: Dict[str, Tuple[int, ...]] = {"C8": (2, 6), "C17": (2, 6), "C20": (2, 3)}
DEFAULT_HAND_LABELS: Tuple[int, ...] = (2,)
EXCLUDED_EVENTS = ("rest", "reachout", "reach out", "stop")
_PLURALE_TANTUM = {"scissors", "pliers"}
_PARTICLE_VERBS = {"pickup": "pick up", "putdown": "put down", "reachout": "reach out",
                   "takeout": "take out", "putin": "put in", "takeoff": "take off", "puton": "put on"}


def voc_color_map(n: int = 256) -> np.ndarray:
    """uint8 ``[n, 3]`` PASCAL-VOC label colors (label bits spread over the high bits of R, G, B)."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def _ing(word: str) -> str:
    w = word.lower()
    if w.endswith("ie"):
        return w[:-2] + "ying"
    if w.endswith(("ee", "ye", "oe")):
        return w + "ing"
    if w.endswith("e") and len(w) > 2:
        return w[:-1] + "ing"
    vowels = "aeiou"
    groups = re.findall(r"[aeiou]+", w)
    if (len(w) >= 3 and len(groups) == 1 and len(groups[0]) == 1 and w[-1] not in vowels + "wxy"
            and w[-2] in vowels and w[-3] not in vowels):
        return w + w[-1] + "ing"  # cut -> cutting, put -> putting, grab -> grabbing
    return w + "ing"


def verb_to_ing(verb: str) -> str:
    """"Pickup" -> "picking up", "open" -> "opening", "put" -> "putting", "carry" -> "carrying"."""
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", verb.strip()).replace("_", " ").split()
    if not words:
        raise ValueError("verb: expected a non-empty action label")
    joined = "".join(words).lower()
    if joined in _PARTICLE_VERBS:
        words = _PARTICLE_VERBS[joined].split()
    elif words[0].lower() in _PARTICLE_VERBS:
        words = _PARTICLE_VERBS[words[0].lower()].split() + words[1:]
    return " ".join([_ing(words[0])] + [w.lower() for w in words[1:]])


def with_article(noun: str) -> str:
    if noun in _PLURALE_TANTUM:
        return noun
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def hoi4d_prompt(event: str, object_name: str) -> str:
    """The paper's template "a hand {verbing} an {object}" (with the right article)."""
    return f"a hand {verb_to_ing(event)} {with_article(object_name)}"


@dataclass
class ActionEvent:
    label: str
    start_s: float
    end_s: float


def read_action_events(path) -> Tuple[List[ActionEvent], Optional[float]]:
    """``(events, duration_seconds)`` from ``action/color.json`` (either known format)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    info = data.get("info", {}) or {}
    duration = info.get("duration", info.get("Duration"))
    raw = data.get("events")
    if raw is None:
        raw = (data.get("markResult") or {}).get("marks")
    if raw is None:
        raise ValueError(f"{path}: expected an 'events' list or 'markResult.marks'")
    events = []
    for k, e in enumerate(raw):
        start = e.get("startTime", e.get("hdTimeStart"))
        end = e.get("endTime", e.get("hdTimeEnd"))
        if "event" not in e or start is None or end is None:
            raise ValueError(f"{path}: event {k} needs 'event' and start/end times, got keys {sorted(e)}")
        events.append(ActionEvent(str(e["event"]), float(start), float(end)))
    return events, (float(duration) if duration else None)


def _frame_files(folder: Path, ext: str) -> List[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() == ext and p.stem.isdigit()]
    return sorted(files, key=lambda p: int(p.stem))


def find_sequences(root) -> List[Path]:
    """Sequence folders (those holding ``align_rgb/``) under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: HOI4D folder {root} does not exist")
    found = [Path(dirpath) for dirpath, dirnames, _ in os.walk(root) if "align_rgb" in dirnames]
    return sorted(found)


def _category(seq: Path) -> str:
    for part in reversed(seq.parts):
        if re.fullmatch(r"C\d+", part):
            return part
    return ""


def object_name(seq: Path) -> str:
    cat = _category(seq)
    if cat:
        i = int(cat[1:])
        if i < len(CATEGORY_NAMES) and CATEGORY_NAMES[i]:
            return CATEGORY_NAMES[i]
    return "object"


def _mask_folder(seq: Path, annotation_seq: Path) -> Optional[Path]:
    seg = annotation_seq / "2Dseg"
    if (seg / "mask").is_dir():
        return seg / "mask"
    if seg.is_dir():  # some releases name the sub-folder differently
        subs = sorted(p for p in seg.iterdir() if p.is_dir())
        if subs:
            return subs[0]
    return None


def decode_label_image(rgb: np.ndarray, num_labels: int = 10, tolerance: int = 12) -> np.ndarray:
    """uint8 labels from a palette-colored mask (nearest VOC color within ``tolerance``)."""
    colors = voc_color_map(num_labels).astype(np.int16)
    dist = np.abs(rgb.astype(np.int16)[..., None, :] - colors[None, None]).max(-1)
    labels = dist.argmin(-1).astype(np.uint8)
    labels[dist.min(-1) > tolerance] = 0
    return labels


@dataclass
class HOI4DClipRef:
    """A clip that can be loaded later (cheap to list, see :func:`list_hoi4d_clips`)."""

    sequence: Path
    annotation_sequence: Path
    sequence_id: str
    event_index: int
    event: str
    start_frame: int
    end_frame: int  # exclusive
    fps: float
    object_name: str

    @property
    def episode_id(self) -> str:
        return f"hoi4d/{self.sequence_id}#{self.event_index}"

    @property
    def prompt(self) -> str:
        return hoi4d_prompt(self.event, self.object_name)


def list_hoi4d_clips(root, annotation_root=None, min_frames: int = 8,
                     excluded_events: Sequence[str] = EXCLUDED_EVENTS) -> List[HOI4DClipRef]:
    """Action segments of every sequence under ``root`` (annotations under ``annotation_root``,
    default ``root``, mirroring the sequence paths as in the HOI4D_annotations archive)."""
    root = Path(root)
    annotation_root = Path(annotation_root) if annotation_root is not None else root
    refs: List[HOI4DClipRef] = []
    excluded = {e.lower() for e in excluded_events}
    for seq in find_sequences(root):
        rel = seq.relative_to(root)
        ann = annotation_root / rel
        action = ann / "action" / "color.json"
        if not action.exists():
            continue
        n = len(_frame_files(seq / "align_rgb", ".jpg"))
        if n == 0:
            continue
        events, duration = read_action_events(action)
        fps = n / duration if duration else 15.0
        for k, ev in enumerate(events):
            if ev.label.strip().lower() in excluded:
                continue
            start = max(0, int(ev.start_s * fps))
            end = min(n, int(ev.end_s * fps))
            if end - start < min_frames:
                continue
            refs.append(HOI4DClipRef(seq, ann, rel.as_posix(), k, ev.label, start, end, fps, object_name(seq)))
    return refs


def _resize(img: np.ndarray, short_side: Optional[int], nearest: bool) -> np.ndarray:
    if not short_side:
        return img
    h, w = img.shape[:2]
    if short_side >= min(h, w):
        return img
    # the size the training/inference resize computes (torchvision's rule), so the dataset's
    # resize_center_crop is then an identity resize and HOI4D frames match raw camera frames
    geometry = crop_geometry(h, w, short_side, short_side)
    size = (geometry.resized_w, geometry.resized_h)
    return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def load_hoi4d_clip(ref: HOI4DClipRef, short_side: Optional[int] = None) -> InteractionClip:
    """Frames and hand/object masks of one action segment; ``short_side`` downsizes on load."""
    rgb_files = _frame_files(ref.sequence / "align_rgb", ".jpg")[ref.start_frame:ref.end_frame]
    frames = []
    for p in rgb_files:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{p}: not a readable image")
        frames.append(_resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), short_side, False))
    frames = np.stack(frames)
    actor = obj = None
    mask_dir = _mask_folder(ref.sequence, ref.annotation_sequence)
    if mask_dir is not None:
        hand_labels = np.array(HAND_LABELS.get(_category(ref.sequence), DEFAULT_HAND_LABELS))
        actor_list, obj_list = [], []
        for p in rgb_files:
            mp = mask_dir / f"{p.stem}.png"
            if not mp.exists():
                actor_list = None
                break
            m = cv2.imread(str(mp), cv2.IMREAD_COLOR)
            if m is None:
                raise ValueError(f"{mp}: not a readable mask image")
            labels = decode_label_image(cv2.cvtColor(m, cv2.COLOR_BGR2RGB))
            labels = cv2.resize(labels, frames.shape[2:0:-1], interpolation=cv2.INTER_NEAREST)
            hand = np.isin(labels, hand_labels)
            actor_list.append(hand)
            obj_list.append((labels > 0) & ~hand)
        if actor_list is not None:
            actor, obj = np.stack(actor_list), np.stack(obj_list)
    return InteractionClip(
        frames=frames, actor_masks=actor, object_masks=obj, prompt=ref.prompt, source="hoi4d",
        episode_id=ref.episode_id, action=ref.event, fps=ref.fps,
        metadata={"sequence": ref.sequence_id, "start_frame": ref.start_frame, "end_frame": ref.end_frame,
                  "object": ref.object_name},
    )


def load_hoi4d_clips(root, annotation_root=None, min_frames: int = 8, short_side: Optional[int] = None):
    """All clips of a HOI4D folder, loaded (see :func:`list_hoi4d_clips` for lazy listing)."""
    return [load_hoi4d_clip(r, short_side) for r in list_hoi4d_clips(root, annotation_root, min_frames)]
