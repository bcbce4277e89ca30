"""VideoUNet: DynamiCrafter's spatio-temporal denoising UNet (``openaimodel3d.UNetModel``).

The module tree (and therefore every ``state_dict`` key and shape) is the one of DynamiCrafter's
``model.diffusion_model``, so its checkpoints load with ``strict=True`` (see
:mod:`mask2iv_ros.models.dynamicrafter`). Frames are folded into the batch; the temporal layers
(temporal conv in each res block, temporal transformers, the extra ``init_attn`` after the input
conv) unfold them.

Conditioning, as DynamiCrafter's ``hybrid`` mode forms it:

* ``x``: the noisy latent concatenated on channels with the concat conditioning
  (``[noise(4), ...]``; the released Mask2IV order per stage is in :mod:`.layout`),
* ``context``: ``[B, text_context_len + T*image_tokens_per_frame, context_dim]`` - text tokens,
  then the image tokens of frame 0, 1, ... (DynamiCrafter's Resampler output); a context of
  ``text_context_len + image_tokens_per_frame`` tokens shares the image tokens over all frames.
  Without image cross-attention only the first ``text_context_len`` tokens are used.
* ``fs``: the frame-rate condition (``default_fs`` when None).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers.models.embeddings import get_timestep_embedding
from safetensors.torch import load_file, save_file
from torch import nn

from .resblock import Downsample, GroupNorm32, ResBlock, Upsample
from .transformer import BasicTransformerBlock, SpatialTransformer, TemporalTransformer
from .unet_config import UNetConfig
from .weights import module_from_state_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def sinusoidal_embedding(values: torch.Tensor, dim: int) -> torch.Tensor:
    """DynamiCrafter ``timestep_embedding``: ``[cos(v*f_i), sin(v*f_i)]``, f_i = 10000^(-i/half)."""
    return get_timestep_embedding(values, dim, flip_sin_to_cos=True, downscale_freq_shift=0)


class ConditionedSequential(nn.Sequential):
    """Runs its layers in order, handing each the conditioning it takes."""

    def forward(self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None,
                num_frames: int) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                h = layer(h, emb, num_frames)
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, context)
            elif isinstance(layer, TemporalTransformer):
                h = layer(h, num_frames)
            else:
                h = layer(h)
        return h


class VideoUNet(nn.Module):
    """Denoiser ``forward(x[B,C,T,H,W], timesteps[B], context, fs) -> [B,out_channels,T,H,W]``."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config: expected a UNetConfig, got {type(config).__name__}")
        self.config = cfg = config
        time_embed_dim = cfg.model_channels * 4

        self.time_embed = self._embedding_mlp(cfg.model_channels, time_embed_dim)
        if cfg.fs_condition:
            self.fps_embedding = self._embedding_mlp(cfg.model_channels, time_embed_dim)
            # zero last layer: a model trained without fps conditioning is unchanged at init
            nn.init.zeros_(self.fps_embedding[-1].weight)
            nn.init.zeros_(self.fps_embedding[-1].bias)

        self.input_blocks = nn.ModuleList([
            ConditionedSequential(nn.Conv2d(cfg.in_channels, cfg.model_channels, 3, padding=1))])
        if cfg.addition_attention:
            # DynamiCrafter's extra temporal block after the input conv: 8 heads, conv projections.
            self.init_attn = ConditionedSequential(TemporalTransformer(
                cfg.model_channels, 8, cfg.num_head_channels, depth=cfg.transformer_depth,
                dropout=0.0, use_linear=False, causal_attention=False,
                relative_position=cfg.use_relative_position, temporal_length=cfg.temporal_length))

        skip_channels = [cfg.model_channels]
        ch, ds = cfg.model_channels, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [self._res_block(ch, mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if ds in cfg.attention_resolutions:
                    layers += self._attention_layers(ch)
                self.input_blocks.append(ConditionedSequential(*layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(ConditionedSequential(self._downsample(ch)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = ConditionedSequential(
            self._res_block(ch, ch), *self._attention_layers(ch), self._res_block(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [self._res_block(ch + skip_channels.pop(), cfg.model_channels * mult)]
                ch = cfg.model_channels * mult
                if ds in cfg.attention_resolutions:
                    layers += self._attention_layers(ch)
                if level and i == cfg.num_res_blocks:
                    layers.append(self._upsample(ch))
                    ds //= 2
                self.output_blocks.append(ConditionedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(),
                                 nn.Conv2d(cfg.model_channels, cfg.out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.set_gradient_checkpointing(cfg.use_checkpoint)

    # ------------------------------------------------------------------ building blocks
    @staticmethod
    def _embedding_mlp(in_dim: int, out_dim: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def _res_block(self, channels: int, out_channels: int) -> ResBlock:
        cfg = self.config
        return ResBlock(channels, cfg.model_channels * 4, cfg.dropout, out_channels=out_channels,
                        use_scale_shift_norm=cfg.use_scale_shift_norm,
                        use_temporal_conv=cfg.temporal_conv,
                        tempspatial_aware=cfg.tempspatial_aware)

    def _downsample(self, ch: int) -> nn.Module:
        cfg = self.config
        if cfg.resblock_updown:
            return ResBlock(ch, cfg.model_channels * 4, cfg.dropout, out_channels=ch,
                            use_scale_shift_norm=cfg.use_scale_shift_norm, down=True)
        return Downsample(ch, cfg.conv_resample, out_channels=ch)

    def _upsample(self, ch: int) -> nn.Module:
        cfg = self.config
        if cfg.resblock_updown:
            return ResBlock(ch, cfg.model_channels * 4, cfg.dropout, out_channels=ch,
                            use_scale_shift_norm=cfg.use_scale_shift_norm, up=True)
        return Upsample(ch, cfg.conv_resample, out_channels=ch)

    def _attention_layers(self, ch: int) -> list[nn.Module]:
        cfg = self.config
        if cfg.num_head_channels == -1:
            heads, dim_head = cfg.num_heads, ch // cfg.num_heads
        else:
            heads, dim_head = ch // cfg.num_head_channels, cfg.num_head_channels
        layers: list[nn.Module] = [SpatialTransformer(
            ch, heads, dim_head, depth=cfg.transformer_depth, context_dim=cfg.context_dim,
            use_linear=cfg.use_linear, image_cross_attention=cfg.image_cross_attention,
            image_cross_attention_scale_learnable=cfg.image_cross_attention_scale_learnable,
            text_context_len=cfg.text_context_len)]
        if cfg.temporal_attention:
            layers.append(TemporalTransformer(
                ch, heads, dim_head, depth=cfg.transformer_depth, use_linear=cfg.use_linear,
                causal_attention=cfg.use_causal_attention,
                relative_position=cfg.use_relative_position, temporal_length=cfg.temporal_length))
        return layers

    # ------------------------------------------------------------------ training helpers
    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute res/transformer blocks in backward (torch.utils.checkpoint) to save memory."""
        for module in self.modules():
            if isinstance(module, (ResBlock, BasicTransformerBlock)):
                module.gradient_checkpointing = enabled

    def temporal_attention_parameters(self) -> dict[str, nn.Parameter]:
        """Parameters of every temporal transformer (incl. ``init_attn``), by state_dict name.

        Mask2IV stage 1 freezes these ("freeze the temporal attention layer") to keep the
        motion prior; temporal convolutions inside res blocks are not attention and stay trainable.
        """
        return temporal_attention_parameters(self)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | int | float,
                context: torch.Tensor | None = None,
                fs: torch.Tensor | int | None = None, control=None,
                control_scale: float = 1.0) -> torch.Tensor:
        """``control``: optional ``fn(h, timesteps, fs, frame_context, num_frames) -> (skip
        residuals, middle residual)`` run on the frame-folded input (a ControlNet-style branch);
        its outputs, times ``control_scale``, are added to what the decoder reads."""
        cfg = self.config
        batch, num_frames, height, width = self._check_input(x)
        timesteps = self._per_sample("timesteps", timesteps, batch, x.device)
        frame_context = self._frame_context(context, batch, num_frames)

        emb = self.time_embed(sinusoidal_embedding(timesteps, cfg.model_channels).to(x.dtype))
        if cfg.fs_condition or control is not None:
            fs = self._per_sample("fs", cfg.default_fs if fs is None else fs, batch, x.device)
        if cfg.fs_condition:
            emb = emb + self.fps_embedding(sinusoidal_embedding(fs, cfg.model_channels).to(x.dtype))
        emb = emb.repeat_interleave(num_frames, dim=0)

        h = x.transpose(1, 2).reshape(batch * num_frames, -1, height, width)
        residuals, middle_residual = (control(h, timesteps, fs, frame_context, num_frames)
                                      if control is not None else (None, None))
        skips = []
        for index, block in enumerate(self.input_blocks):
            h = block(h, emb, frame_context, num_frames)
            if index == 0 and cfg.addition_attention:
                h = self.init_attn(h, emb, frame_context, num_frames)
            skips.append(h)
        h = self.middle_block(h, emb, frame_context, num_frames)
        if residuals is not None:
            # ControlNet adds to what the decoder reads (skips, middle output), not to the
            # encoder path itself.
            skips = [skip + control_scale * res for skip, res in zip(skips, residuals)]
            h = h + control_scale * middle_residual
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, frame_context, num_frames)
        out = self.out(h).type(x.dtype)
        return out.view(batch, num_frames, -1, height, width).transpose(1, 2).contiguous()

    def _check_input(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        cfg = self.config
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[1] != cfg.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected a tensor [B, {cfg.in_channels}, T, H, W], got {got}")
        batch, _, num_frames, height, width = x.shape
        factor = 2 ** (len(cfg.channel_mult) - 1)
        if height % factor or width % factor:
            raise ValueError(f"x: latent height and width must be multiples of {factor}, "
                             f"got {height}x{width}")
        return batch, num_frames, height, width

    @staticmethod
    def _per_sample(name: str, value, batch: int, device: torch.device) -> torch.Tensor:
        value = torch.as_tensor(value, device=device)
        if value.ndim == 0:
            return value.expand(batch)
        if value.shape != (batch,):
            raise ValueError(f"{name}: expected a scalar or a tensor of shape ({batch},), "
                             f"got {tuple(value.shape)}")
        return value

    def _frame_context(self, context: torch.Tensor | None, batch: int,
                       num_frames: int) -> torch.Tensor | None:
        """Context per frame: ``[(B*T), S, D]`` (text repeated, image tokens of that frame)."""
        cfg = self.config
        if cfg.context_dim is None:
            if context is not None:
                raise ValueError("context: this UNet has no cross-attention (context_dim=None); "
                                 "pass context=None")
            return None
        text_len, per_frame = cfg.text_context_len, cfg.image_tokens_per_frame
        if context is None or context.ndim != 3 or context.shape[0] != batch \
                or context.shape[2] != cfg.context_dim:
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"context: expected a tensor [{batch}, tokens, {cfg.context_dim}], got {got}")
        length = context.shape[1]
        if cfg.image_cross_attention:
            if length == text_len + num_frames * per_frame:
                text = context[:, :text_len].repeat_interleave(num_frames, dim=0)
                image = context[:, text_len:].reshape(batch * num_frames, per_frame, -1)
                return torch.cat([text, image], dim=1)
            if length != text_len + per_frame:
                raise ValueError(
                    f"context: expected {text_len} text tokens followed by {per_frame} image tokens "
                    f"per frame ({text_len + num_frames * per_frame} tokens for {num_frames} frames) "
                    f"or {per_frame} shared ({text_len + per_frame}), got {length}")
        return context.repeat_interleave(num_frames, dim=0)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``config.json`` (with the released concat-order marker, :mod:`.layout`) and
        ``model.safetensors`` into ``folder``."""
        from . import layout  # here: `python -m mask2iv_ros.models.layout` imports this module

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = layout.mark_release_order(self.config.to_dict())
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_NAME))

    @staticmethod
    def read_pretrained(folder: str | Path) -> tuple[UNetConfig, dict[str, torch.Tensor]]:
        """``(config, state dict)`` of a saved folder, the weights in the released concat order
        (a folder written before it, without the marker, is converted: :mod:`.layout`)."""
        from . import layout

        folder = Path(folder)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"folder: {folder} has no {name} (expected a VideoUNet folder)")
        raw = json.loads((folder / CONFIG_NAME).read_text())
        config = UNetConfig.from_dict({k: v for k, v in raw.items() if k != layout.CONCAT_ORDER_KEY})
        # read on the CPU (memory-mapped)
        state = layout.release_state(raw, load_file(str(folder / WEIGHTS_NAME)),
                                     config.in_channels, config.out_channels, folder)
        return config, state

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> "VideoUNet":
        config, state = cls.read_pretrained(folder)
        # copied once into fresh storage on ``device``
        return module_from_state_dict(lambda: cls(config), state, device=device)


def temporal_attention_parameters(unet: VideoUNet) -> dict[str, nn.Parameter]:
    """``{name: parameter}`` of all TemporalTransformer modules in ``unet``."""
    params: dict[str, nn.Parameter] = {}
    for module_name, module in unet.named_modules():
        if isinstance(module, TemporalTransformer):
            for name, param in module.named_parameters():
                params[f"{module_name}.{name}"] = param
    return params
