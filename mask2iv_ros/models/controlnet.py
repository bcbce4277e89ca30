"""ControlNet-style trajectory conditioning for :class:`~mask2iv_ros.models.unet.VideoUNet`.

The ablation "ControlNet" row of Mask2IV Table 2 and the InterDyn-style baseline feed the mask
trajectory through an auxiliary branch instead of concatenating its latent with the noise:

- :class:`VideoControlNet` is a trainable copy of the UNet encoder (time/fps embeddings, input
  blocks, ``init_attn``, middle block). The trajectory latent enters through a small hint
  network whose last conv is zero-initialised and is added after the first input block (as in
  ControlNet, Zhang et al. 2023). Every input-block output and the middle-block output pass a
  zero-initialised 1x1 conv and become residuals.
- :class:`ControlledVideoUNet` runs the main UNet with those residuals added to its skip
  connections and to its middle-block output. Its forward repeats ``VideoUNet.forward`` step by
  step (``unet.py`` is not modified); with the zero convs at zero it equals the plain UNet
  exactly, which the tests check.

The branch receives the same ``x`` as the main UNet (its whole concat input, in the released
order ``[noise, image_latent, trajectory channels]``; the ControlNet variants feed zeros in the
trajectory channels) plus ``control_hint`` = the trajectory latent ``[B, hint_channels, T, h, w]``
at latent resolution. Its input conv is a copy of the UNet's, so a saved branch carries the
same ``concat_order`` marker and is converted like a UNet folder (:mod:`.layout`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .unet import VideoUNet, sinusoidal_embedding
from .unet_config import UNetConfig
from .weights import module_from_state_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def zero_module(module: nn.Module) -> nn.Module:
    for param in module.parameters():
        nn.init.zeros_(param)
    return module


def encoder_channels(config: UNetConfig) -> list[int]:
    """Output channels of every input block (= the skip connections), in order."""
    channels = [config.model_channels]
    for level, mult in enumerate(config.channel_mult):
        channels += [mult * config.model_channels] * config.num_res_blocks
        if level != len(config.channel_mult) - 1:
            channels.append(mult * config.model_channels)
    return channels


def time_embedding(module: nn.Module, config: UNetConfig, timesteps: torch.Tensor,
                   fs: torch.Tensor, dtype: torch.dtype, num_frames: int) -> torch.Tensor:
    """``emb`` as ``VideoUNet.forward`` forms it (timestep + fps), repeated per frame."""
    emb = module.time_embed(sinusoidal_embedding(timesteps, config.model_channels).to(dtype))
    if config.fs_condition:
        emb = emb + module.fps_embedding(sinusoidal_embedding(fs, config.model_channels).to(dtype))
    return emb.repeat_interleave(num_frames, dim=0)


class VideoControlNet(nn.Module):
    """Trainable encoder copy producing residuals for the VideoUNet's skips and middle block."""

    def __init__(self, config: UNetConfig, hint_channels: int = 4, hint_hidden_channels: int = 32):
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config: expected a UNetConfig, got {type(config).__name__}")
        if hint_channels <= 0:
            raise ValueError(f"hint_channels: expected a positive int, got {hint_channels}")
        self.config = config
        self.hint_channels = hint_channels
        self.hint_hidden_channels = hint_hidden_channels
        template = VideoUNet(config)
        self.time_embed = template.time_embed
        if config.fs_condition:
            self.fps_embedding = template.fps_embedding
        self.input_blocks = template.input_blocks
        if config.addition_attention:
            self.init_attn = template.init_attn
        self.middle_block = template.middle_block
        del template  # its decoder half is not part of the branch

        # The hint is already a latent (VAE-encoded trajectory), so no downsampling is needed.
        self.input_hint_block = nn.Sequential(
            nn.Conv2d(hint_channels, hint_hidden_channels, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hint_hidden_channels, hint_hidden_channels, 3, padding=1), nn.SiLU(),
            zero_module(nn.Conv2d(hint_hidden_channels, config.model_channels, 3, padding=1)))
        self.zero_convs = nn.ModuleList(
            zero_module(nn.Conv2d(ch, ch, 1)) for ch in encoder_channels(config))
        middle = config.model_channels * config.channel_mult[-1]
        self.middle_block_out = zero_module(nn.Conv2d(middle, middle, 1))

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the branch's res/transformer blocks in backward, like the VideoUNet's."""
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = enabled

    @classmethod
    def from_unet(cls, unet: VideoUNet, hint_channels: int = 4,
                  hint_hidden_channels: int = 32) -> "VideoControlNet":
        """A branch whose encoder starts as a copy of ``unet``'s (the ControlNet initialisation)."""
        branch = cls(unet.config, hint_channels, hint_hidden_channels)
        for name in ("time_embed", "fps_embedding", "input_blocks", "init_attn", "middle_block"):
            if hasattr(branch, name):
                getattr(branch, name).load_state_dict(copy.deepcopy(getattr(unet, name).state_dict()))
        return branch.to(next(unet.parameters()).device)

    def forward(self, x_frames: torch.Tensor, hint: torch.Tensor, timesteps: torch.Tensor,
                fs: torch.Tensor, frame_context: Optional[torch.Tensor],
                num_frames: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Residuals for each skip ``[(B*T), C_i, h_i, w_i]`` and for the middle output.

        ``x_frames`` and ``hint`` are frame-folded (``[(B*T), C, h, w]``), ``timesteps``/``fs``
        per sample, ``frame_context`` per frame, as inside ``VideoUNet.forward``.
        """
        cfg = self.config
        emb = time_embedding(self, cfg, timesteps, fs, x_frames.dtype, num_frames)
        guided_hint = self.input_hint_block(hint.to(x_frames.dtype))
        h = x_frames
        residuals = []
        for index, (block, zero_conv) in enumerate(zip(self.input_blocks, self.zero_convs)):
            h = block(h, emb, frame_context, num_frames)
            if index == 0:
                h = h + guided_hint
                if cfg.addition_attention:
                    h = self.init_attn(h, emb, frame_context, num_frames)
            residuals.append(zero_conv(h))
        h = self.middle_block(h, emb, frame_context, num_frames)
        return residuals, self.middle_block_out(h)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"unet": self.config.to_dict(), "hint_channels": self.hint_channels,
                  "hint_hidden_channels": self.hint_hidden_channels}
        # the branch's input conv sees the main UNet's concat channels: same marker
        from . import layout  # here: `python -m mask2iv_ros.models.layout` imports this module

        layout.mark_release_order(config)
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(folder / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> "VideoControlNet":
        folder = Path(folder)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"folder: {folder} has no {name} (expected a VideoControlNet folder)")
        from . import layout

        config = json.loads((folder / CONFIG_NAME).read_text())
        unet_config = UNetConfig.from_dict(config["unet"])
        state = layout.release_state(config, load_file(str(folder / WEIGHTS_NAME)),
                                     unet_config.in_channels, unet_config.out_channels, folder)
        return module_from_state_dict(
            lambda: cls(unet_config, config["hint_channels"], config.get("hint_hidden_channels", 32)),
            state, device=device)


class ControlledVideoUNet(nn.Module):
    """``unet`` with ``controlnet`` residuals injected into its skips and middle output.

    ``forward(x, timesteps, context, fs, control_hint, control_scale)`` has the UNet's signature
    plus the trajectory latent; ``control_hint=None`` runs the plain UNet.
    """

    def __init__(self, unet: VideoUNet, controlnet: VideoControlNet):
        super().__init__()
        if unet.config.to_dict() != controlnet.config.to_dict():
            raise ValueError("controlnet: its UNetConfig differs from the main unet's; build it with "
                             "VideoControlNet.from_unet(unet) or the same config")
        self.unet = unet
        self.controlnet = controlnet

    @property
    def config(self) -> UNetConfig:
        return self.unet.config

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | int | float,
                context: torch.Tensor | None = None, fs: torch.Tensor | int | None = None,
                control_hint: torch.Tensor | None = None,
                control_scale: float = 1.0) -> torch.Tensor:
        if control_hint is None:
            return self.unet(x, timesteps, context, fs)
        batch, num_frames, height, width = self.unet._check_input(x)
        expected = (batch, self.controlnet.hint_channels, num_frames, height, width)
        if not isinstance(control_hint, torch.Tensor) or tuple(control_hint.shape) != expected:
            got = tuple(control_hint.shape) if isinstance(control_hint, torch.Tensor) else type(control_hint).__name__
            raise ValueError(f"control_hint: expected the trajectory latent of shape {list(expected)}, got {got}")
        hint = control_hint.transpose(1, 2).reshape(batch * num_frames, -1, height, width)

        def branch(h, timesteps, fs, frame_context, num_frames):
            return self.controlnet(h, hint, timesteps, fs, frame_context, num_frames)

        return self.unet(x, timesteps, context, fs, control=branch, control_scale=control_scale)


class FixedHintUNet(nn.Module):
    """A :class:`ControlledVideoUNet` with its trajectory hint bound, callable like a VideoUNet.

    Samplers call ``unet(x, t, context, fs)``; with classifier-free guidance the batch is the
    conditional and unconditional halves stacked, so the hint is tiled to the batch size.
    """

    def __init__(self, controlled: ControlledVideoUNet, control_hint: torch.Tensor,
                 control_scale: float = 1.0):
        super().__init__()
        self.controlled = controlled
        self.control_hint = control_hint
        self.control_scale = control_scale

    @property
    def config(self) -> UNetConfig:
        return self.controlled.config

    def forward(self, x: torch.Tensor, timesteps, context=None, fs=None) -> torch.Tensor:
        hint = self.control_hint
        if x.shape[0] != hint.shape[0]:
            if x.shape[0] % hint.shape[0]:
                raise ValueError(f"x: batch {x.shape[0]} is not a multiple of the hint batch {hint.shape[0]}")
            hint = hint.repeat(x.shape[0] // hint.shape[0], 1, 1, 1, 1)
        return self.controlled(x, timesteps, context, fs, control_hint=hint.to(x.dtype),
                               control_scale=self.control_scale)
