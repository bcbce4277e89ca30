"""Training checkpoints: atomic folders of safetensors + JSON (no pickles), exact resume.

Layout of ``<output_dir>/checkpoints/step_00000042/``::

    train_config.yaml         the run's resolved TrainConfig
    model.safetensors         state dict of the trained module: the UNet, or with
                              stage2.control=controlnet the UNet + branch (unet.* / controlnet.*)
    ema.safetensors           EMA shadow parameters (when EMA is on)
    optimizer.safetensors     every tensor of optimizer.state_dict()["state"], key "<param>/<name>"
    optimizer.json            param_groups + non-tensor per-parameter state
    trainer_state.json        step, data-order position, LR-scheduler / grad-scaler / EMA counters
    rng_rank<r>.safetensors   torch CPU / CUDA / torch training-generator states of process r
    rng_rank<r>.json          python `random`, numpy global and numpy training-generator states

A checkpoint is written into ``.tmp-step_...`` and renamed into place with ``os.replace`` once
complete, so a kill mid-write never leaves a folder that ``latest_checkpoint`` would pick.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Union

import numpy as np
import torch
from safetensors.torch import load_file, save_file

Generator = Union[torch.Generator, np.random.Generator]
_STEP_DIR = re.compile(r"^step_(\d+)$")


class ProcessGroup(Protocol):
    """The part of ``accelerate.Accelerator`` used here (a stub with rank 0 of 1 works too)."""

    is_main_process: bool
    process_index: int

    def wait_for_everyone(self) -> None: ...


# ---------------------------------------------------------------------- folder bookkeeping


def checkpoint_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step_{step:08d}"


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` as ``(step, path)``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(root: str | Path) -> Optional[Path]:
    checkpoints = list_checkpoints(root)
    return checkpoints[-1][1] if checkpoints else None


def prune_checkpoints(root: str | Path, keep_last: int) -> None:
    for _, path in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _save_tensors(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    _fsync(path)


# ---------------------------------------------------------------------- optimizer state


def flatten_optimizer_state(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into a tensor dict (safetensors) and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    meta = {"param_groups": state_dict["param_groups"], "scalars": scalars,
            "param_indices": [int(i) for i in state_dict["state"]]}
    return tensors, meta


def unflatten_optimizer_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {int(i): {} for i in meta["param_indices"]}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state[int(index)][name] = value
    for index, values in meta["scalars"].items():
        state[int(index)].update(values)
    # JSON turned tuples (e.g. AdamW betas) into lists; restore them.
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------- RNG state


def capture_rng_state(generators: Mapping[str, Generator]) -> tuple[dict, dict]:
    """Global torch / CUDA / numpy / python RNG states plus the named training generators
    (``torch.Generator`` states go to the tensor dict, ``numpy.random.Generator`` ones to JSON)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["torch_cuda"] = torch.cuda.get_rng_state()
    numpy_generators = {}
    for name, generator in generators.items():
        if isinstance(generator, torch.Generator):
            tensors[f"generator/{name}"] = generator.get_state()
        else:
            numpy_generators[name] = generator.bit_generator.state
    np_state = np.random.get_state()
    meta = {
        "python_random": _to_json(random.getstate()),
        "numpy_global": [np_state[0], np_state[1].tolist(), *[_to_json(v) for v in np_state[2:]]],
        "numpy_generators": numpy_generators,
    }
    return tensors, meta


def restore_rng_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                      generators: Mapping[str, Generator]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if "torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["torch_cuda"])
    for name, generator in generators.items():
        if isinstance(generator, torch.Generator):
            key = f"generator/{name}"
            if key not in tensors:
                raise ValueError(f"checkpoint RNG state: no state for generator {name!r}")
            try:
                generator.set_state(tensors[key])
            except RuntimeError as error:
                raise ValueError(f"checkpoint RNG state: generator {name!r} was saved on another "
                                 f"device type than {generator.device}; resume on the same kind "
                                 "of device") from error
        else:
            if name not in meta["numpy_generators"]:
                raise ValueError(f"checkpoint RNG state: no state for generator {name!r}")
            generator.bit_generator.state = meta["numpy_generators"][name]
    version, internal, gauss = meta["python_random"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy_global"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


# ---------------------------------------------------------------------- save / load


def save_checkpoint(
    root: str | Path,
    step: int,
    process: ProcessGroup,
    *,
    config_yaml: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: Mapping[str, Any],
    generators: Mapping[str, Generator],
    ema_state: Optional[Mapping[str, torch.Tensor]] = None,
    keep_last: int = 3,
) -> Path:
    """Write a complete checkpoint for ``step`` (collective: call it on every process).

    The main process writes model / optimizer / trainer state, every process its own RNG state;
    the folder is renamed into place by the main process after all have written.
    """
    root = Path(root)
    final = checkpoint_dir(root, step)
    tmp = root / f".tmp-{final.name}"
    if process.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():  # left over by a run killed while writing
            shutil.rmtree(tmp)
        tmp.mkdir()
    process.wait_for_everyone()

    rng_tensors, rng_meta = capture_rng_state(generators)
    _save_tensors(rng_tensors, tmp / f"rng_rank{process.process_index}.safetensors")
    _write_json(tmp / f"rng_rank{process.process_index}.json", rng_meta)

    if process.is_main_process:
        (tmp / "train_config.yaml").write_text(config_yaml, encoding="utf-8")
        _save_tensors(model.state_dict(), tmp / "model.safetensors")
        if ema_state is not None:
            _save_tensors(ema_state, tmp / "ema.safetensors")
        opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
        _save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        _write_json(tmp / "optimizer.json", opt_meta)
    process.wait_for_everyone()

    if process.is_main_process:
        # trainer_state.json marks the folder complete; written last, then the folder renamed.
        _write_json(tmp / "trainer_state.json", dict(trainer_state))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        prune_checkpoints(root, keep_last)
    process.wait_for_everyone()
    return final


def load_checkpoint(
    folder: str | Path,
    process: ProcessGroup,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: Mapping[str, Generator],
) -> tuple[dict, Optional[dict[str, torch.Tensor]]]:
    """Restore model / optimizer / RNG states in place; return (trainer_state, ema tensors)."""
    folder = Path(folder)
    state_path = folder / "trainer_state.json"
    if not state_path.is_file():
        raise FileNotFoundError(f"resume: {folder} is not a complete checkpoint "
                                "(no trainer_state.json)")
    trainer_state = json.loads(state_path.read_text(encoding="utf-8"))

    device = next(model.parameters()).device
    model_state = load_file(str(folder / "model.safetensors"), device=str(device))
    missing, unexpected = model.load_state_dict(model_state, strict=False)
    if missing or unexpected:
        raise ValueError(f"resume: {folder}/model.safetensors does not match the model: missing "
                         f"{list(missing)[:5]}, unexpected {list(unexpected)[:5]}; was it written "
                         "with other model / stage2.control settings (see its train_config.yaml)?")

    opt_tensors = load_file(str(folder / "optimizer.safetensors"), device=str(device))
    opt_meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    optimizer.load_state_dict(unflatten_optimizer_state(opt_tensors, opt_meta))

    rank = process.process_index
    rng_path = folder / f"rng_rank{rank}.safetensors"
    if not rng_path.is_file():
        raise ValueError(f"resume: {folder} has no RNG state for process {rank}; resume with the "
                         f"same number of processes ({trainer_state.get('num_processes')}) as "
                         "the run that wrote it")
    rng_meta = json.loads((folder / f"rng_rank{rank}.json").read_text(encoding="utf-8"))
    restore_rng_state(load_file(str(rng_path)), rng_meta, generators)

    ema_path = folder / "ema.safetensors"
    ema_state = load_file(str(ema_path), device=str(device)) if ema_path.is_file() else None
    return trainer_state, ema_state
