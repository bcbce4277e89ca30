"""Loading the pipeline the node serves, once, at start-up.

A missing checkpoint is the common first-run situation (no model trained or installed yet), so it
gets its own exception with a message saying what was looked for and what to do; `imagine_node`
logs it and exits non-zero.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mask2iv_ros.ros.parameters import EMBEDDED_MODEL, TINY_RANDOM_MODEL


class ModelNotFoundError(FileNotFoundError):
    """No Mask2IV checkpoint at the configured model_path."""


def model_id_of(folder: Path) -> str:
    """'<folder name>@<12 hex digits>': hash of model_index.json and every component config.json."""
    digest = hashlib.sha256()
    for config in sorted([folder / "model_index.json", *folder.glob("*/config.json")]):
        digest.update(str(config.relative_to(folder)).encode())
        digest.update(config.read_bytes())
    return f"{folder.name}@{digest.hexdigest()[:12]}"


def load_pipeline(model_path: str, device: str) -> tuple[Any, str]:
    """(pipeline, model_id) for `model_path`; 'tiny-random' gives the random test pipeline."""
    if model_path == TINY_RANDOM_MODEL:
        from mask2iv_ros.pipeline import build_tiny_pipeline

        pipeline = build_tiny_pipeline().to(device)
        return pipeline, f"{TINY_RANDOM_MODEL}:{pipeline.config.model_id}"
    if model_path == EMBEDDED_MODEL:
        from mask2iv_ros.demo import EMBEDDED_MODEL as embedded_folder

        model_path = str(embedded_folder)
    folder = Path(model_path).expanduser().resolve()
    if not (folder / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"model_path: no Mask2IV checkpoint at '{folder}' (expected a folder with model_index.json and one "
            "sub-folder per component). Train or install a model there, or pass the folder with "
            f"-p model_path:=<folder> (ros2 launch: model_path:=<folder>). '{TINY_RANDOM_MODEL}' starts a tiny "
            "random pipeline, for tests only."
        )
    from mask2iv_ros.pipeline import Mask2IVPipeline

    return Mask2IVPipeline.from_pretrained(str(folder), device=device), model_id_of(folder)
