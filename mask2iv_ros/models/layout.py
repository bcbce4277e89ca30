"""The UNet input-channel layout of the released Mask2IV, and conversion of older checkpoints.

Both stages feed the UNet ``[noise, conditioning block A, conditioning block B]`` (4 latent
channels each, 12 in all). The released Mask2IV code orders them as

============  ==========  =================  ====================
stage         0..3        4..7               8..11
============  ==========  =================  ====================
trajectory    noise       mask_slot          image_latent
video         noise       image_latent       trajectory_latent
============  ==========  =================  ====================

(:mod:`mask2iv_ros.pipeline.conditioning` builds these). Fine-tuning from DynamiCrafter copies its
8 pretrained input channels ``[noise, image]`` and starts 8..11 at zero
(:func:`mask2iv_ros.models.dynamicrafter.expand_input_channels`), so in stage 2 the RGB latent
keeps DynamiCrafter's pretrained image channels and in stage 1 the PT-Gen slot pattern sits
where DynamiCrafter's interpolation key frames sat.

Checkpoints written by this project before it adopted that order used the two blocks the other
way round: stage 1 ``[noise, image_latent, mask_slot]``, stage 2 ``[noise, trajectory_latent,
image_latent]``. The input conv ``input_blocks.0.0`` is the only layer that sees the concat
channels separately, so permuting its weight's input channels gives the identical function
under the new order (:func:`convert_legacy_concat_order`). Folders written since carry
``"concat_order": "release"`` in their ``config.json``; a folder without it is converted when
loaded (with a log line) and never twice. ``python -m mask2iv_ros.models.layout FOLDER...``
converts folders on disk (a pipeline folder or single UNet / ControlNet folders).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Mapping, MutableMapping, Sequence

import torch

logger = logging.getLogger(__name__)

CONCAT_ORDER_KEY = "concat_order"
RELEASE_ORDER = "release"
INPUT_CONV_WEIGHT = "input_blocks.0.0.weight"
STAGES = ("trajectory", "video")
# Per stage: the UNet's input blocks in order (each latent_channels wide).
RELEASE_LAYOUT = {
    "trajectory": ("noise", "mask_slot", "image_latent"),
    "video": ("noise", "image_latent", "trajectory_latent"),
}
LEGACY_LAYOUT = {
    "trajectory": ("noise", "image_latent", "mask_slot"),
    "video": ("noise", "trajectory_latent", "image_latent"),
}


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {list(STAGES)}, got {stage!r}")


def legacy_to_release_index(stage: str, latent_channels: int = 4) -> torch.Tensor:
    """Input-channel index ``idx`` with ``release_weight[:, i] = legacy_weight[:, idx[i]]``."""
    _check_stage(stage)
    old = LEGACY_LAYOUT[stage]
    index: list[int] = []
    for block in RELEASE_LAYOUT[stage]:
        start = old.index(block) * latent_channels
        index.extend(range(start, start + latent_channels))
    return torch.tensor(index, dtype=torch.long)


def convert_legacy_concat_order(state_dict: Mapping[str, torch.Tensor], stage: str,
                                key: str = INPUT_CONV_WEIGHT) -> dict[str, torch.Tensor]:
    """A copy of a UNet (or ControlNet) state dict written with the project's old concat order,
    with ``key``'s input channels permuted to the released order; other tensors are shared.

    ``stage``: ``"trajectory"`` (old ``[noise, image, mask]`` -> ``[noise, mask, image]``) or
    ``"video"`` (old ``[noise, trajectory, image]`` -> ``[noise, image, trajectory]``).
    """
    _check_stage(stage)
    if key not in state_dict:
        raise KeyError(f"state_dict: no {key!r} (not a VideoUNet / VideoControlNet state dict)")
    weight = state_dict[key]
    in_channels = weight.shape[1] if weight.dim() > 1 else 0
    if in_channels == 0 or in_channels % 3:
        raise ValueError(f"state_dict: {key} has {in_channels} input channels; the concat layout "
                         "needs 3 equal blocks (noise, two conditioning latents), e.g. 12")
    index = legacy_to_release_index(stage, in_channels // 3).to(weight.device)
    converted = dict(state_dict)
    converted[key] = weight.index_select(1, index).contiguous()
    return converted


def stage_of_component(name: str) -> str:
    """``"video"`` for ``video_unet`` / ``video_controlnet``, else ``"trajectory"``."""
    return "video" if name.startswith("video") else "trajectory"


def is_release_order(config: Mapping[str, Any], where: str) -> bool:
    """Whether a component ``config.json`` (as a dict) says its weights use the released order;
    absent = a legacy folder. Any other value is an error naming ``where``."""
    value = config.get(CONCAT_ORDER_KEY)
    if value is None:
        return False
    if value != RELEASE_ORDER:
        raise ValueError(f"{where}: {CONCAT_ORDER_KEY} expected {RELEASE_ORDER!r} (or absent for "
                         f"a checkpoint written before the released layout), got {value!r}")
    return True


def mark_release_order(config: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Record in a component ``config.json`` dict that its weights use the released order."""
    config[CONCAT_ORDER_KEY] = RELEASE_ORDER
    return config


def release_state(config: Mapping[str, Any], state: Mapping[str, torch.Tensor], in_channels: int,
                  latent_channels: int, folder: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a component folder in the released order: as read when ``config`` carries
    the marker (or the input conv has no concat blocks to reorder), else converted, logged."""
    folder = Path(folder)
    if is_release_order(config, str(folder / "config.json")) or in_channels != 3 * latent_channels:
        return dict(state)
    stage = stage_of_component(folder.name)
    logger.warning("%s: no %r marker in config.json, so its weights use the project's old concat "
                   "order %s; permuting %s to the released order %s on load (same function). "
                   "Convert the folder once with `python -m mask2iv_ros.models.layout %s`.",
                   folder, CONCAT_ORDER_KEY, list(LEGACY_LAYOUT[stage]), INPUT_CONV_WEIGHT,
                   list(RELEASE_LAYOUT[stage]), folder)
    return convert_legacy_concat_order(state, stage)


# ---------------------------------------------------------------------- folders on disk
def _component_folders(folder: Path) -> list[Path]:
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return [folder]
    return sorted(child for child in folder.iterdir() if child.is_dir()
                  and (child / "config.json").is_file() and (child / "model.safetensors").is_file()
                  and ("unet" in child.name or child.name.endswith("controlnet")))


def convert_folder(folder: str | Path) -> list[Path]:
    """Convert legacy UNet / ControlNet folders on disk (a pipeline folder's ``*_unet`` and
    ``*_controlnet`` components, or one component folder) to the released order and mark them.
    Marked folders are left alone. Returns the folders that were rewritten."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: no directory at {folder}")
    rewritten = []
    for component in _component_folders(folder):
        config_path, weights_path = component / "config.json", component / "model.safetensors"
        config = json.loads(config_path.read_text())
        if is_release_order(config, str(config_path)):
            continue
        with safe_open(str(weights_path), "pt") as reader:  # keep its metadata (format: pt)
            metadata = reader.metadata()
        state = {k: v.clone() for k, v in load_file(str(weights_path)).items()}
        if INPUT_CONV_WEIGHT in state and state[INPUT_CONV_WEIGHT].shape[1] % 3 == 0:
            state = convert_legacy_concat_order(state, stage_of_component(component.name))
        # written next to the file and renamed over it: never truncate a memory-mapped file
        tmp = weights_path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
        tmp.replace(weights_path)
        config_path.write_text(json.dumps(mark_release_order(config), indent=2))
        rewritten.append(component)
        logger.info("%s: converted to the released concat order", component)
    return rewritten


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mask2iv_ros.models.layout",
        description="Convert pipeline / UNet folders written with the project's old concat "
                    "order to the released Mask2IV order, in place (same function).")
    parser.add_argument("folders", nargs="+", help="pipeline folders or UNet/ControlNet folders")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for folder in args.folders:
        done = convert_folder(folder)
        print(f"{folder}: {len(done)} component(s) converted"
              + (f" ({', '.join(p.name for p in done)})" if done else " (already in the released order)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
