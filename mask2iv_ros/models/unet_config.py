"""Configuration of the spatio-temporal VideoUNet.

Field names follow DynamiCrafter's ``UNetModel`` arguments
(``lvdm/modules/networks/openaimodel3d.py``) so a DynamiCrafter ``unet_config.params`` block
maps onto :class:`UNetConfig` one to one (see :meth:`UNetConfig.from_dynamicrafter_params`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

# Arguments of DynamiCrafter's UNetModel that have no field here, with the only value we support.
# ``dims`` is always 2 (frames are folded into the batch), ``use_fp16`` is replaced by autocast,
# and DynamiCrafter's UNetModel forces temporal transformers to self-attention regardless of
# ``temporal_selfatt_only`` (it only reaches ``init_attn``, where False is not supported either).
_FIXED_DYNAMICRAFTER_PARAMS = {"dims": 2, "use_fp16": False, "temporal_selfatt_only": True}


@dataclass
class UNetConfig:
    """Hyper-parameters of :class:`~mask2iv_ros.models.unet.VideoUNet`.

    ``context_dim=None`` builds a UNet without cross-attention context (the second attention of
    every spatial transformer then attends to the frame itself, as in DynamiCrafter); such a
    UNet must be called with ``context=None``.
    """

    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    dropout: float = 0.0
    conv_resample: bool = True
    context_dim: int | None = 1024
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    num_heads: int = -1
    num_head_channels: int = 64
    transformer_depth: int = 1
    use_linear: bool = True
    use_checkpoint: bool = False
    temporal_conv: bool = True
    tempspatial_aware: bool = False
    temporal_attention: bool = True
    use_relative_position: bool = False
    use_causal_attention: bool = False
    temporal_length: int = 16
    addition_attention: bool = True
    image_cross_attention: bool = True
    image_cross_attention_scale_learnable: bool = False
    default_fs: int = 24
    fs_condition: bool = True
    # Not UNetModel arguments in DynamiCrafter but constants there ("77" and "16" are hard-coded
    # in its forward and CrossAttention); they define how the context sequence is split.
    text_context_len: int = 77
    image_tokens_per_frame: int = 16

    def __post_init__(self) -> None:
        self.attention_resolutions = tuple(int(v) for v in self.attention_resolutions)
        self.channel_mult = tuple(int(v) for v in self.channel_mult)
        self.validate()

    def validate(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"UNetConfig.{name}: expected a positive int, got {value!r}")

        for name in ("in_channels", "out_channels", "model_channels", "num_res_blocks",
                     "transformer_depth", "temporal_length", "text_context_len"):
            positive(name)
        if not self.channel_mult or any(m <= 0 for m in self.channel_mult):
            raise ValueError(f"UNetConfig.channel_mult: expected positive ints, got {self.channel_mult}")
        if self.num_heads == -1 and self.num_head_channels == -1:
            raise ValueError("UNetConfig: set num_heads or num_head_channels (both are -1)")
        for mult in self.channel_mult:
            if (self.model_channels * mult) % 32:
                raise ValueError(
                    "UNetConfig.model_channels: every level width model_channels*channel_mult must be "
                    f"divisible by 32 (GroupNorm groups), got {self.model_channels}*{mult}")
        if self.num_head_channels != -1:
            for mult in self.channel_mult:
                if (self.model_channels * mult) % self.num_head_channels:
                    raise ValueError(
                        "UNetConfig.num_head_channels: must divide every level width "
                        f"({self.model_channels}*{mult}), got {self.num_head_channels}")
        if self.num_head_channels == -1:
            for mult in self.channel_mult:
                if (self.model_channels * mult) % self.num_heads:
                    raise ValueError(
                        "UNetConfig.num_heads: must divide every level width "
                        f"({self.model_channels}*{mult}), got {self.num_heads}")
            if self.addition_attention:
                raise ValueError("UNetConfig.addition_attention: needs num_head_channels "
                                 "(its extra temporal block has 8 heads of num_head_channels)")
        if self.image_cross_attention and self.context_dim is None:
            raise ValueError("UNetConfig.image_cross_attention: needs context_dim (got None)")
        if self.image_cross_attention:
            positive("image_tokens_per_frame")

    # ---------------------------------------------------------------- presets
    @classmethod
    def dynamicrafter_512(cls, in_channels: int = 8, **overrides: Any) -> "UNetConfig":
        """DynamiCrafter ``configs/inference_512_v1.0.yaml`` UNet (320x512, 16 frames).

        ``in_channels=12`` gives the Mask2IV variant (noise + two conditioning latents, in the
        released order of :mod:`.layout`).
        Dropout is 0.1 as in DynamiCrafter's config; gradient checkpointing is off by default
        (DynamiCrafter sets ``use_checkpoint: True`` for training; turn it on for training).
        """
        params = dict(
            in_channels=in_channels, out_channels=4, model_channels=320, num_res_blocks=2,
            attention_resolutions=(4, 2, 1), channel_mult=(1, 2, 4, 4), dropout=0.1,
            num_head_channels=64, transformer_depth=1, context_dim=1024, use_linear=True,
            temporal_conv=True, temporal_attention=True, use_relative_position=False,
            use_causal_attention=False, temporal_length=16, addition_attention=True,
            image_cross_attention=True, image_cross_attention_scale_learnable=False,
            default_fs=24, fs_condition=True, text_context_len=77, image_tokens_per_frame=16,
        )
        params.update(overrides)
        return cls(**params)

    @classmethod
    def tiny(cls, in_channels: int = 8, out_channels: int = 4, context_dim: int | None = 32,
             image_cross_attention: bool = False, text_context_len: int = 8,
             temporal_length: int = 4, **overrides: Any) -> "UNetConfig":
        """A CPU-test-sized UNet with every DynamiCrafter feature switched on."""
        params = dict(
            in_channels=in_channels, out_channels=out_channels, model_channels=32,
            num_res_blocks=1, attention_resolutions=(1, 2), channel_mult=(1, 2),
            num_head_channels=16, context_dim=context_dim, use_linear=True,
            temporal_conv=True, temporal_attention=True, temporal_length=temporal_length,
            addition_attention=True, image_cross_attention=image_cross_attention,
            default_fs=8, fs_condition=True, text_context_len=text_context_len,
            image_tokens_per_frame=4,
        )
        params.update(overrides)
        return cls(**params)

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["attention_resolutions"] = list(self.attention_resolutions)
        data["channel_mult"] = list(self.channel_mult)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"UNetConfig.from_dict: unknown keys {unknown}")
        return cls(**dict(data))

    @classmethod
    def from_dynamicrafter_params(cls, params: Mapping[str, Any]) -> "UNetConfig":
        """Build from a DynamiCrafter YAML ``unet_config.params`` mapping."""
        params = dict(params)
        for name, supported in _FIXED_DYNAMICRAFTER_PARAMS.items():
            if name in params and params.pop(name) != supported:
                raise ValueError(f"unet_config.params.{name}: only {supported!r} is supported")
        return cls.from_dict(params)

    def replace(self, **changes: Any) -> "UNetConfig":
        return dataclasses.replace(self, **changes)
