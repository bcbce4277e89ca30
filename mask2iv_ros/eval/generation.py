"""Producing what evaluation scores: held-out clips, stage-1 trajectories, stage-2 videos per variant.

The baselines and ablations of Mask2IV Table 1/2 differ only in how stage 2 consumes the mask
trajectory (:class:`VideoControl`), mirroring :mod:`mask2iv_ros.training.stage_inputs`:

- ``control="concat"``: trajectory latents concatenated with the noise (Mask2IV, CosHand-style),
  in the released order ``[noise, image_latent, trajectory_latent]`` (``video_condition``);
- ``control="none"``: zeros in the trajectory channels 8..11 (DynamiCrafter-ft);
- ``control="controlnet"``: zeros in the trajectory channels, the trajectory latent goes through
  a :class:`~mask2iv_ros.models.controlnet.VideoControlNet` branch (InterDyn-style, Table 2
  "ControlNet");
- ``trajectory_content="actor_only"`` drops the object masks (CosHand, InterDyn, MaskLatent).

Stage 2 here repeats the pipeline's stage 2 (same VAE encoding, concat order, prompt guidance,
scheduler settings) with the variant's trajectory encoding, because the pipeline's ``__call__``
always feeds its own stage-1 output with actor+object colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..masks import encode_mask_video
from ..models.controlnet import ControlledVideoUNet, FixedHintUNet, VideoControlNet
from ..pipeline import Mask2IVPipeline
from ..pipeline.conditioning import video_condition
from ..pipeline.sampling import denoise
# Sub-folder of a pipeline checkpoint holding the stage-2 ControlNet branch of controlnet
# variants (written by mask2iv-train with stage2.control=controlnet).
from ..training.export import CONTROLNET_COMPONENT

CONTROLS = ("concat", "none", "controlnet")
TRAJECTORY_CONTENTS = ("actor_object", "actor_only")


@dataclass(frozen=True)
class VideoControl:
    """How a stage-2 variant is fed the trajectory (the training config's ``stage2`` switches)."""

    control: Literal["concat", "none", "controlnet"] = "concat"
    trajectory_content: Literal["actor_object", "actor_only"] = "actor_object"

    def __post_init__(self) -> None:
        if self.control not in CONTROLS:
            raise ValueError(f"control: expected one of {CONTROLS}, got {self.control!r}")
        if self.trajectory_content not in TRAJECTORY_CONTENTS:
            raise ValueError(f"trajectory_content: expected one of {TRAJECTORY_CONTENTS}, "
                             f"got {self.trajectory_content!r}")


@dataclass
class EvalClip:
    """A held-out clip at the model's resolution and length (uint8 / bool numpy arrays)."""

    episode_id: str
    frames: np.ndarray          # [T, H, W, 3]
    actor_masks: np.ndarray     # [T, H, W]
    object_masks: np.ndarray    # [T, H, W]
    prompt: str

    @property
    def placement_mask(self) -> np.ndarray:
        return self.object_masks[-1]


@dataclass
class Trajectory:
    actor_masks: np.ndarray     # bool [T, H, W]
    object_masks: np.ndarray    # bool [T, H, W]


def _unit_to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float channels-first in [-1, 1] (``[3, T, H, W]``) -> uint8 ``[T, H, W, 3]``."""
    frames = ((tensor.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(frames.permute(1, 2, 3, 0).numpy())


def load_eval_clips(root: str | Path, num_frames: int, resolution: tuple[int, int],
                    split: str = "test", max_clips: Optional[int] = None,
                    test_fraction: float = 0.1, split_seed: int = 0,
                    frame_stride: int = 1) -> list[EvalClip]:
    """Clips of ``split`` from a dataset folder, sampled from their start (no augmentation).

    The episode split is :class:`mask2iv_ros.data.dataset.Mask2IVDataset`'s, with the same
    ``test_fraction``/``split_seed`` defaults as training, so "test" episodes were never trained on.
    """
    from ..data.dataset import Mask2IVDataset

    dataset = Mask2IVDataset(root, num_frames=num_frames, frame_stride=frame_stride,
                             resolution=tuple(resolution), split=split,
                             test_fraction=test_fraction, split_seed=split_seed,
                             augment_masks=False, random_start=False)
    count = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    if count < 1:
        raise ValueError(f"split: no {split!r} clips in {root}")
    clips = []
    for index in range(count):
        item = dataset[index]
        clips.append(EvalClip(
            episode_id=item["episode_id"], frames=_unit_to_uint8(item["video"]),
            actor_masks=item["actor_masks"].numpy().astype(bool),
            object_masks=item["object_masks"].numpy().astype(bool), prompt=item["prompt"]))
    return clips


def ground_truth_trajectories(clips: Sequence[EvalClip]) -> list[Trajectory]:
    return [Trajectory(c.actor_masks, c.object_masks) for c in clips]


def predict_trajectories(pipe: Mask2IVPipeline, clips: Sequence[EvalClip],
                         condition: Literal["position", "text"] = "position",
                         num_inference_steps: Optional[int] = None,
                         guidance_scale: Optional[float] = None,
                         seed: int = 0, progress: bool = True) -> list[Trajectory]:
    """Stage-1 trajectories: PT-Gen from the last GT object mask, or TT-Gen from the prompt.

    ``num_inference_steps``/``guidance_scale`` None: the checkpoint's recorded defaults."""
    if condition not in pipe.modes:
        raise ValueError(f"condition: this pipeline has no {condition!r} trajectory model "
                         f"(available: {list(pipe.modes)})")
    trajectories = []
    for k, clip in enumerate(tqdm(clips, desc="stage 1 trajectories", disable=not progress)):
        target = dict(placement_mask=clip.placement_mask) if condition == "position" \
            else dict(prompt=clip.prompt)
        out = pipe(clip.frames[0], clip.object_masks[0], actor_mask=clip.actor_masks[0],
                   num_frames=clip.frames.shape[0], num_inference_steps=num_inference_steps,
                   guidance_scale=guidance_scale, seed=seed + k, trajectory_only=True, **target)
        trajectories.append(Trajectory(out.actor_masks, out.object_masks))
    return trajectories


def load_controlnet(pipeline_folder: str | Path, device: torch.device) -> VideoControlNet:
    folder = Path(pipeline_folder) / CONTROLNET_COMPONENT
    if not folder.is_dir():
        raise ValueError(f"control: 'controlnet' needs a {CONTROLNET_COMPONENT}/ folder in "
                         f"{pipeline_folder} (VideoControlNet.save_pretrained), found none")
    return VideoControlNet.from_pretrained(folder, device=device)


def _to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[1, 3, T, H, W]`` in [-1, 1]."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return video.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0


@torch.inference_mode()
def generate_video(pipe: Mask2IVPipeline, image: np.ndarray, trajectory: Trajectory, prompt: str,
                   control: VideoControl = VideoControl(),
                   controlnet: Optional[VideoControlNet] = None,
                   num_inference_steps: Optional[int] = None,
                   guidance_scale: Optional[float] = None, seed: int = 0) -> np.ndarray:
    """Stage 2 of ``pipe`` conditioned on ``trajectory`` the way ``control`` says; uint8 video.

    ``image`` and the trajectory must be at ``pipe.resolution`` (as :func:`load_eval_clips` gives).
    The video stage sees the empty prompt, as the pipeline's (and the release's) stage 2 does;
    only the text+image baseline (``control.control == "none"``) sees ``prompt``. Sampler settings left None are the
    checkpoint's recorded defaults (``pipe.sampling_settings``).
    """
    if pipe.video_unet is None:
        raise ValueError("pipe: this checkpoint has no video_unet (stage 2)")
    if tuple(image.shape[:2]) != tuple(pipe.resolution) or \
            tuple(trajectory.object_masks.shape[1:]) != tuple(pipe.resolution):
        raise ValueError(f"image/trajectory: expected frames of {tuple(pipe.resolution)} (pipe.resolution), "
                         f"got {image.shape[:2]} and {trajectory.object_masks.shape[1:]}")
    device = pipe.device
    actor, obj = trajectory.actor_masks, trajectory.object_masks
    if control.trajectory_content == "actor_only":
        obj = np.zeros_like(obj)
    image_latent = pipe.vae.encode(_to_tensor(image[None], device))
    trajectory_latents = pipe.vae.encode(_to_tensor(encode_mask_video(obj, actor), device))
    unet: torch.nn.Module = pipe.video_unet
    if control.control == "concat":
        concat_latents = trajectory_latents
    else:
        concat_latents = torch.zeros_like(trajectory_latents)
        if control.control == "controlnet":
            if controlnet is None:
                raise ValueError("controlnet: control 'controlnet' needs the trained VideoControlNet")
            unet = FixedHintUNet(ControlledVideoUNet(pipe.video_unet, controlnet), trajectory_latents)
    condition = video_condition(concat_latents, image_latent)
    generator = torch.Generator("cpu").manual_seed(seed)
    # The pipeline's stage-2 contexts: the empty prompt (as training's stage 2); guidance
    # contrasts with the zero image where the UNet has image cross-attention. The text+image
    # baseline (control "none", DynamiCrafter-ft) is trained and sampled with the prompt.
    frame = _to_tensor(image[None], device)[:, :, 0]
    stage2_prompt = (prompt or None) if control.control == "none" else None
    context, uncond_context = pipe.guidance_contexts(stage2_prompt, frame)(pipe.video_unet)
    latents = denoise(unet, pipe.scheduler, condition, context, uncond_context=uncond_context,
                      fs=pipe.config.fs, generator=generator, stage="video",
                      **pipe.sampling_settings(num_inference_steps, guidance_scale))
    decoded = pipe.vae.decode(latents)[0]
    return _unit_to_uint8(decoded.cpu())


def generate_videos(pipe: Mask2IVPipeline, clips: Sequence[EvalClip], trajectories: Sequence[Trajectory],
                    control: VideoControl = VideoControl(), controlnet: Optional[VideoControlNet] = None,
                    num_inference_steps: Optional[int] = None,
                    guidance_scale: Optional[float] = None, seed: int = 0,
                    progress: bool = True) -> Iterator[np.ndarray]:
    """:func:`generate_video` for every clip (seed + index per clip)."""
    if len(clips) != len(trajectories):
        raise ValueError(f"trajectories: expected one per clip ({len(clips)}), got {len(trajectories)}")
    for k, (clip, trajectory) in enumerate(tqdm(list(zip(clips, trajectories)), desc="stage 2 videos",
                                                disable=not progress)):
        yield generate_video(pipe, clip.frames[0], trajectory, clip.prompt, control, controlnet,
                             num_inference_steps, guidance_scale, seed + k)
