"""Building a module straight from a state dict without a throw-away random init.

The module is created on the meta device, given fresh (uninitialised) storage on the target
device with ``to_empty`` and then filled by a strict ``load_state_dict`` copy. Loading with
``assign=True`` instead would keep the tensors as views into the safetensors/mmap file buffer,
at arbitrary byte offsets: CPU GEMM kernels then take unaligned code paths and give results
that differ in the last bits from the same weights in fresh memory (~3e-6), which breaks
bit-exact save/load round trips.
"""

from __future__ import annotations

from typing import Callable, Mapping, TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def module_from_state_dict(build: Callable[[], ModuleT], state_dict: Mapping[str, torch.Tensor],
                           device: str | torch.device = "cpu",
                           dtype: torch.dtype | None = None) -> ModuleT:
    """``build()`` on the meta device, then the weights of ``state_dict`` (strict) on ``device``.

    ``dtype`` casts floating point parameters (None keeps the module's dtype). Modules with
    non-persistent buffers are not supported (``to_empty`` would leave them uninitialised).
    """
    with torch.device("meta"):
        model = build()
    non_persistent = [name for name, _ in model.named_buffers()
                      if name not in model.state_dict()]
    if non_persistent:
        raise ValueError(f"{type(model).__name__}: non-persistent buffers {non_persistent} cannot "
                         "be restored from a state dict")
    if dtype is not None:
        model.to(dtype=dtype)
    model.to_empty(device=device)
    model.load_state_dict(state_dict, strict=True)  # copies into the fresh, aligned storage
    return model.eval()
