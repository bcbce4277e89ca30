"""Loading the pipeline the node serves (at lifecycle configure, on the model thread).

Every fault a user can cause at start-up is a `StartupError` whose one-line message names the
parameter or file and says what to do; `imagine_node` logs it as one FATAL line and exits with
code 2 (no traceback). Covered: no checkpoint at model_path (the common first run), a corrupt
model_index.json or component config, a truncated or corrupt .safetensors file (found by reading
each file's header before loading), a CUDA device that this PyTorch or machine lacks, and any
other error while building the pipeline from the folder.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from mask2iv_ros.ros.parameters import EMBEDDED_MODEL, TINY_RANDOM_MODEL

_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024  # the format's own bound on the JSON header


class StartupError(RuntimeError):
    """The node cannot start serving; the message names the parameter or file and what to do."""


class ModelNotFoundError(StartupError, FileNotFoundError):
    """No Mask2IV checkpoint at the configured model_path."""


def model_id_of(folder: Path) -> str:
    """'<folder name>@<12 hex digits>': hash of model_index.json and every component config.json."""
    digest = hashlib.sha256()
    for config in sorted([folder / "model_index.json", *folder.glob("*/config.json")]):
        digest.update(str(config.relative_to(folder)).encode())
        digest.update(config.read_bytes())
    return f"{folder.name}@{digest.hexdigest()[:12]}"


def check_device(device: str) -> None:
    """Refuse a CUDA device that this PyTorch build or this machine does not have."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        reason = ("this PyTorch build has no CUDA support" if torch.version.cuda is None
                  else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES?)")
        raise StartupError(f"device: {device!r} requested but {reason} (torch {torch.__version__}); "
                           "use device:=cpu, or install a CUDA build of PyTorch on a machine with a GPU")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise StartupError(f"device: {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) are "
                           f"visible; use device:=cuda:0 .. cuda:{torch.cuda.device_count() - 1}")


def check_json_files(folder: Path) -> None:
    """model_index.json and every component config.json parse as JSON."""
    for path in [folder / "model_index.json", *sorted(folder.glob("*/config.json"))]:
        try:
            json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise StartupError(f"model_path: '{path}' is not valid JSON ({error}); restore it from the original "
                               "checkpoint or export the model again") from None


def check_safetensors_file(path: Path) -> None:
    """The file is as long as its header says: catches truncated copies before torch reads them."""
    size = path.stat().st_size
    problem = ""
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            problem = f"{size} bytes, shorter than the 8-byte header length"
        else:
            (header_length,) = struct.unpack("<Q", prefix)
            if header_length > _SAFETENSORS_HEADER_LIMIT or 8 + header_length > size:
                problem = f"header of {header_length} bytes does not fit in the file's {size} bytes"
            else:
                try:
                    header = json.loads(file.read(header_length))
                    data_end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                                   default=0)
                except (ValueError, KeyError, TypeError, IndexError) as error:
                    problem = f"unreadable header ({type(error).__name__}: {error})"
                else:
                    if 8 + header_length + data_end > size:
                        problem = (f"truncated: the header lists {8 + header_length + data_end} bytes, "
                                   f"the file has {size}")
    if problem:
        raise StartupError(f"model_path: '{path}' is not a complete safetensors file ({problem}); copy or "
                           "download the checkpoint again")


def check_checkpoint_folder(folder: Path) -> None:
    """The cheap checks that name the broken file, before anything is built from the folder."""
    if not (folder / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"model_path: no Mask2IV checkpoint at '{folder}' (expected a folder with model_index.json and one "
            "sub-folder per component). Train or install a model there, or pass the folder with "
            f"-p model_path:=<folder> (ros2 launch: model_path:=<folder>). '{TINY_RANDOM_MODEL}' starts a tiny "
            "random pipeline, for tests only."
        )
    check_json_files(folder)
    for path in sorted(folder.rglob("*.safetensors")):
        check_safetensors_file(path)


def checkpoint_folder(model_path: str) -> Path | None:
    """The checked checkpoint folder of `model_path` (None for 'tiny-random'); no torch needed.

    Raises StartupError, so a wrong path or broken file is reported before PyTorch is imported.
    """
    if model_path == TINY_RANDOM_MODEL:
        return None
    if model_path == EMBEDDED_MODEL:
        from mask2iv_ros.demo import EMBEDDED_MODEL as embedded_folder

        model_path = str(embedded_folder)
    folder = Path(model_path).expanduser().resolve()
    check_checkpoint_folder(folder)
    return folder


def load_pipeline(model_path: str, device: str) -> tuple[Any, str]:
    """(pipeline, model_id) for `model_path`; 'tiny-random' gives the random test pipeline.

    Raises StartupError (one line: the parameter or file, what is wrong, what to do).
    """
    folder = checkpoint_folder(model_path)
    check_device(device)
    if folder is None:
        from mask2iv_ros.pipeline import build_tiny_pipeline

        pipeline = build_tiny_pipeline().to(device)
        return pipeline, f"{TINY_RANDOM_MODEL}:{pipeline.config.model_id}"
    from mask2iv_ros.pipeline import Mask2IVPipeline

    try:
        pipeline = Mask2IVPipeline.from_pretrained(str(folder), device=device)
    except Exception as error:  # noqa: BLE001 - any remaining fault becomes one clear line
        message = " ".join(str(error).split()) or type(error).__name__
        raise StartupError(f"model_path: could not load the checkpoint at '{folder}' ({type(error).__name__}: "
                           f"{message}); check that the folder was written by Mask2IVPipeline.save_pretrained "
                           "(mask2iv-train export or the converter) and is complete") from error
    return pipeline, model_id_of(folder)
