"""BridgeData V2 raw layout: reader (with a restricted unpickler) and writer.

The layout is the one ``data_processing/bridgedata_raw_to_numpy.py`` of rail-berkeley/bridge_data_v2
and the RLDS builder read::

    <root>/<d1>/<d2>/<d3>/<d4>/<YYYY-MM-DD_HH-MM-SS>/       (depth 5 from the root)
        collection_metadata.json, config.json
        raw/traj_group<g>/traj<k>/
            images0/im_0.jpg ... im_<T-1>.jpg    camera 0 (images1.. for other cameras)
            obs_dict.pkl     dict: 'full_state' [T, 7], 'state' [T, 7], 'time_stamp' [T], ...
            policy_out.pkl   list of T-1 dicts with 'actions' [7]
            agent_data.pkl   (not used by the converters)
            lang.txt         the language instruction, then e.g. ``confidence: 1``

Images are read in index order ``im_0 .. im_{T-1}``; the instruction is the first line of
``lang.txt`` that is not a ``confidence`` line (the converter drops lines containing
"confidence"). Checked: ``process_dc`` of ``bridgedata_raw_to_numpy.py`` (bridge_data_v2 at
830fc9e) converts trajectories written by :func:`write_bridge_trajectory`.

Mask annotations of this project live next to the images in one compressed file per trajectory,
``traj<k>/mask2iv_masks.npz`` (:data:`MASK_FILE`), holding ``actor_masks`` and ``object_masks``
(bool ``[T, H, W]``, frame t aligned with ``im_t.jpg``), ``annotator`` (str) and
``object_phrase`` (str). It is written atomically and read with ``allow_pickle=False``.

Pickles from the dataset are untrusted input: :func:`safe_pickle_load` only admits numpy arrays,
dtypes and scalars and builtin containers/scalars; any other global raises
:class:`UnsafePickleError` naming the file and the refused global, before anything is called.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .sample import InteractionClip

MASK_FILE = "mask2iv_masks.npz"
_IMAGE_RE = re.compile(r"^im_(\d+)\.jpg$")
_DATED_RE = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$")

# (module, name) pairs a BridgeData pickle may reference. numpy arrays pickle as
# _reconstruct(ndarray, ...) + dtype(...); numpy scalars as scalar(dtype, bytes); protocol-2
# pickles of arrays wrap their bytes in _codecs.encode(str, 'latin1').
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),  # protocol-5 arrays
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}
_ALLOWED_BUILTINS = {
    "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str",
    "bytes", "bytearray",
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list; nothing was executed."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")  # latin1: python-2 era numpy pickles
        self._path = path

    def find_class(self, module: str, name: str):
        # protocol < 3 pickles name Python 2's "__builtin__"; Unpickler maps it (fix_imports)
        if (module in ("builtins", "__builtin__") and name in _ALLOWED_BUILTINS) or (module, name) in _ALLOWED_GLOBALS or (
            module == "numpy.dtypes" and name.endswith("DType")
        ):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._path}: refused to unpickle global '{module}.{name}'; only numpy arrays/dtypes/"
            "scalars and builtin containers/scalars are allowed in BridgeData pickles"
        )


def safe_pickle_load(path) -> object:
    """Load a pickle file admitting only numpy arrays/dtypes and builtin containers/scalars."""
    path = str(path)
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, path).load()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------- reading


def detect_layout(root) -> str:
    """``"hoi4d"`` (sequence folders with ``align_rgb/``) or ``"bridge"`` (raw layout), found by a
    top-down walk that stops at the first telling folder instead of listing the whole tree."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root: dataset folder {root} does not exist")
    for dirpath, dirnames, _ in os.walk(root):
        if "align_rgb" in dirnames:
            return "hoi4d"
        if "images0" in dirnames or (os.path.basename(dirpath) == "raw"
                                     and any(d.startswith("traj_group") for d in dirnames)):
            return "bridge"
    return "bridge"



def find_trajectories(root) -> List[Path]:
    """All ``.../raw/traj_group*/traj*`` folders under ``root`` (any depth), in natural order.

    ``root`` may also be a dated collection folder or a trajectory folder itself. Folders whose
    path contains ``lmdb`` are skipped, as the official converter does.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"root: BridgeData folder {root} does not exist")
    if (root / "images0").is_dir():
        return [root]
    found = glob.glob(os.path.join(glob.escape(str(root)), "**", "raw", "traj_group*", "traj*"), recursive=True)
    found = [Path(p) for p in found if os.path.isdir(p) and "lmdb" not in p]

    def natural(p: Path):
        return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", str(p))]

    return sorted(found, key=natural)


def read_images(traj_dir, camera: int = 0) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` RGB from ``images<camera>/im_{0..T-1}.jpg``."""
    img_dir = Path(traj_dir) / f"images{camera}"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"traj_dir: {traj_dir} has no images{camera}/ folder")
    indices = sorted(int(m.group(1)) for m in (_IMAGE_RE.match(n) for n in os.listdir(img_dir)) if m)
    if not indices:
        raise FileNotFoundError(f"{img_dir}: no im_<t>.jpg images")
    if indices != list(range(len(indices))):
        raise ValueError(f"{img_dir}: image indices must run 0..T-1 without gaps, got {indices[:5]}...")
    frames = []
    for t in indices:
        bgr = cv2.imread(str(img_dir / f"im_{t}.jpg"), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{img_dir / f'im_{t}.jpg'}: not a readable JPEG image")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"{img_dir}: images have different sizes {sorted(shapes)}")
    return np.stack(frames)


def read_language(traj_dir) -> str:
    """First instruction line of ``lang.txt`` ("" when absent), like the RLDS builder."""
    path = Path(traj_dir) / "lang.txt"
    if not path.exists():
        return ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and "confidence" not in line:
            return line
    return ""


def read_obs_dict(traj_dir) -> dict:
    path = Path(traj_dir) / "obs_dict.pkl"
    obs = safe_pickle_load(path)
    if not isinstance(obs, dict) or "full_state" not in obs:
        raise ValueError(f"{path}: expected a dict with a 'full_state' entry, got {type(obs).__name__}")
    return obs


def read_policy_out(traj_dir) -> np.ndarray:
    """float32 ``[T-1, 7]`` actions; entries may be dicts with 'actions' (as the converter reads)."""
    path = Path(traj_dir) / "policy_out.pkl"
    acts = safe_pickle_load(path)
    if not isinstance(acts, (list, tuple)) or len(acts) == 0:
        raise ValueError(f"{path}: expected a non-empty list of actions, got {type(acts).__name__}")
    if isinstance(acts[0], dict):
        if any("actions" not in a for a in acts):
            raise ValueError(f"{path}: every policy output dict must have an 'actions' entry")
        acts = [a["actions"] for a in acts]
    return np.asarray(acts, dtype=np.float32)


def read_mask_annotation(traj_dir) -> Optional[Tuple[np.ndarray, np.ndarray, dict]]:
    """``(actor_masks, object_masks, info)`` from :data:`MASK_FILE`, or ``None`` if not annotated."""
    path = Path(traj_dir) / MASK_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        actor, obj = z["actor_masks"].astype(bool), z["object_masks"].astype(bool)
        info = {k: str(z[k]) for k in ("annotator", "object_phrase") if k in z.files}
    return actor, obj, info


def trajectory_id(traj_dir) -> str:
    """Stable episode id: the path below the dataset root without ``raw``, e.g.
    ``synthetic/tabletop/push_left/00/2024-01-01_00-00-00/traj_group0/traj3``."""
    parts = Path(traj_dir).resolve().parts
    dated = [i for i, p in enumerate(parts) if _DATED_RE.match(p)]
    if dated:  # BridgeData nests dated folders 4 levels below the root: <robot>/<env>/<task>/<nn>/<date>
        start = max(0, dated[-1] - 4)
        return "/".join(p for p in parts[start:] if p != "raw")
    return "/".join(parts[-3:])


def load_bridge_trajectory(traj_dir, camera: int = 0, read_pickles: bool = True) -> InteractionClip:
    """Read one raw trajectory as an :class:`InteractionClip`.

    Masks come from :data:`MASK_FILE` when present, else they are ``None`` (to be annotated by
    :mod:`mask2iv_ros.data.annotate`). States/actions (restricted unpickling) go to metadata.
    """
    traj_dir = Path(traj_dir)
    frames = read_images(traj_dir, camera)
    metadata: dict = {"path": str(traj_dir)}
    if read_pickles:
        obs = read_obs_dict(traj_dir)
        state = np.asarray(obs["full_state"], dtype=np.float32)
        if len(state) != len(frames):
            raise ValueError(
                f"{traj_dir / 'obs_dict.pkl'}: 'full_state' has {len(state)} entries for {len(frames)} images"
            )
        metadata["state"] = state
        metadata["actions"] = read_policy_out(traj_dir)
        if "time_stamp" in obs:
            metadata["time_stamp"] = np.asarray(obs["time_stamp"], dtype=np.float64)
    ann = read_mask_annotation(traj_dir)
    actor = obj = None
    if ann is not None:
        actor, obj, info = ann
        if actor.shape != frames.shape[:3] or obj.shape != frames.shape[:3]:
            raise ValueError(
                f"{traj_dir / MASK_FILE}: masks of shape {actor.shape}/{obj.shape} do not match the "
                f"images {frames.shape[:3]}"
            )
        metadata.update(info)
    fps = 5.0
    ts = metadata.get("time_stamp")
    if ts is not None and len(ts) > 1 and np.all(np.diff(ts) > 0):
        fps = float(1.0 / np.median(np.diff(ts)))
    return InteractionClip(
        frames=frames, actor_masks=actor, object_masks=obj, prompt=read_language(traj_dir),
        source="bridge", episode_id=trajectory_id(traj_dir), fps=fps, metadata=metadata,
    )


# ----------------------------------------------------------------------------------- writing


def write_collection_files(dated_dir, task: str, image_size: Tuple[int, int]) -> None:
    """``config.json`` / ``collection_metadata.json`` of a dated collection folder.

    ``config.json`` carries ``agent.env[1].camera_topics`` the way the RLDS builder reads it.
    """
    dated_dir = Path(dated_dir)
    dated_dir.mkdir(parents=True, exist_ok=True)
    config = {"agent": {"env": ["SyntheticTabletopEnv", {"camera_topics": ["/D435/color/image_raw"]}]}}
    meta = {"task": task, "robot": "synthetic two-finger arm", "image_height": image_size[0],
            "image_width": image_size[1], "generator": "mask2iv_ros.data.synthetic"}
    atomic_write_bytes(dated_dir / "config.json", json.dumps(config, indent=2).encode())
    atomic_write_bytes(dated_dir / "collection_metadata.json", json.dumps(meta, indent=2).encode())


def write_bridge_trajectory(traj_dir, frames: np.ndarray, language: str, states: np.ndarray,
                            actions: np.ndarray, fps: float = 5.0, jpeg_quality: int = 95) -> None:
    """Write one trajectory folder (images0, obs_dict.pkl, policy_out.pkl, agent_data.pkl, lang.txt).

    ``states`` float ``[T, 7]``; ``actions`` float ``[T-1, 7]``. Pickles contain only numpy arrays
    and builtin containers, so :func:`safe_pickle_load` reads them back.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    T = len(frames)
    states = np.asarray(states, np.float32)
    actions = np.asarray(actions, np.float32)
    if states.shape != (T, 7):
        raise ValueError(f"states: expected shape ({T}, 7), got {states.shape}")
    if actions.shape != (T - 1, 7):
        raise ValueError(f"actions: expected shape ({T - 1}, 7), got {actions.shape}")
    traj_dir = Path(traj_dir)
    img_dir = traj_dir / "images0"
    img_dir.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise RuntimeError(f"could not encode frame {t} of {traj_dir}")
        atomic_write_bytes(img_dir / f"im_{t}.jpg", buf.tobytes())
    time_stamp = np.arange(T, dtype=np.float64) / fps
    obs = {
        "full_state": states,
        "state": states.copy(),
        "desired_state": np.concatenate([states[1:], states[-1:]]),
        "time_stamp": time_stamp,
        "env_done": np.zeros(T, dtype=bool),
        "t_get_obs": np.full(T, 1.0 / fps, dtype=np.float64),
    }
    policy_out = [{"actions": a, "policy_type": "SyntheticScriptedPolicy"} for a in actions]
    agent_data = {"traj_ok": True, "term_t": T - 1, "image_height": int(frames.shape[1]),
                  "image_width": int(frames.shape[2])}
    atomic_write_bytes(traj_dir / "obs_dict.pkl", pickle.dumps(obs, protocol=4))
    atomic_write_bytes(traj_dir / "policy_out.pkl", pickle.dumps(policy_out, protocol=4))
    atomic_write_bytes(traj_dir / "agent_data.pkl", pickle.dumps(agent_data, protocol=4))
    # like the released files: the instruction, then an annotator confidence line that the
    # official converter drops ("confidence" not in line)
    atomic_write_bytes(traj_dir / "lang.txt", (language.strip() + "\nconfidence: 1\n").encode("utf-8"))


def write_mask_annotation(traj_dir, actor_masks: np.ndarray, object_masks: np.ndarray,
                          annotator: str = "", object_phrase: str = "") -> Path:
    """Atomically write :data:`MASK_FILE` (a half-written file is never seen by readers)."""
    actor_masks = np.asarray(actor_masks, dtype=bool)
    object_masks = np.asarray(object_masks, dtype=bool)
    if actor_masks.ndim != 3 or actor_masks.shape != object_masks.shape:
        raise ValueError(
            f"object_masks: expected bool [T, H, W] matching actor_masks {actor_masks.shape}, "
            f"got {object_masks.shape}"
        )
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, actor_masks=actor_masks, object_masks=object_masks,
                        annotator=np.str_(annotator), object_phrase=np.str_(object_phrase))
    path = Path(traj_dir) / MASK_FILE
    atomic_write_bytes(path, buf.getvalue())
    return path
