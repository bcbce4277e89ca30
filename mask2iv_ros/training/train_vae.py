"""`mask2iv-train-vae`: fit a small diffusers AutoencoderKL for a small-scale Mask2IV.

The paper reuses DynamiCrafter's frozen SD-2.1 VAE (83 M parameters, 335 MB), far too large for
the embedded default. This trains a small AutoencoderKL of the same family on the frames *and*
the color-coded mask videos of a dataset (stage 1 generates masks, stage 2 RGB, both through
the VAE), then sets `scaling_factor` to 1 / std of the latents, the same rule that gave SD its
0.18215, so the UNet sees unit-variance latents.

Loss: L1 + MSE reconstruction of the posterior mean + a small KL term (weight 1e-6, as in the
LDM autoencoders);
no adversarial or perceptual term (the synthetic domain is flat-shaded).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from mask2iv_ros.data.dataset import Mask2IVDataset
from mask2iv_ros.models.vae import VideoVAE

KL_WEIGHT = 1e-6
SALIENT_BOOST = 9.0


def small_vae_config(block_out_channels=(32, 64, 64), latent_channels: int = 4, norm_num_groups: int = 4) -> dict:
    """An SD-family AutoencoderKL; spatial factor 2 ** (len(block_out_channels) - 1).

    Few GroupNorm groups on purpose: with as many groups as channels (16 of 16) GroupNorm becomes
    instance norm, which erases each channel's mean, i.e. the colors (seen: grey reconstructions
    and masks without their red object).
    """
    n = len(block_out_channels)
    if any(c % norm_num_groups for c in block_out_channels):
        raise ValueError(f"block_out_channels: each must be divisible by norm_num_groups={norm_num_groups}, "
                         f"got {tuple(block_out_channels)}")
    return dict(in_channels=3, out_channels=3, latent_channels=latent_channels, layers_per_block=1,
                block_out_channels=tuple(block_out_channels), norm_num_groups=norm_num_groups,
                down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                act_fn="silu", scaling_factor=1.0)


def _frame_batches(dataset: Mask2IVDataset, batch_size: int, rng: np.random.Generator):
    """Endless batches of single frames [B, 3, H, W] in [-1, 1], half RGB, half color-coded masks."""
    while True:
        for index in rng.permutation(len(dataset)):
            item = dataset[int(index)]
            frames = torch.cat([item["video"], item["mask_video"]], dim=1)  # [3, 2T, H, W]
            frames = frames.permute(1, 0, 2, 3)
            for chunk in frames[torch.from_numpy(rng.permutation(frames.shape[0]))].split(batch_size):
                if chunk.shape[0] == batch_size:
                    yield chunk


@torch.no_grad()
def salient_pixel_weights(frames: torch.Tensor, boost: float = SALIENT_BOOST, threshold: float = 0.25) -> torch.Tensor:
    """[B, 1, H, W] loss weights: 1 + boost where a pixel differs from its frame's median color.

    Objects and masks cover a few percent of a tabletop frame; unweighted, a small autoencoder
    first learns the table and leaves objects colorless or absent (the red object of a mask
    video vanished). Weighting the pixels that stand out from the background fixes the balance.
    """
    median = frames.flatten(2).median(dim=2).values[:, :, None, None]
    salient = (frames - median).abs().amax(dim=1, keepdim=True) > threshold
    return 1.0 + boost * salient.float()


@torch.no_grad()
def latent_scale(autoencoder: AutoencoderKL, dataset: Mask2IVDataset, max_items: int = 32) -> float:
    """1 / std of posterior means over up to `max_items` clips (RGB and mask videos)."""
    latents = []
    for index in range(min(len(dataset), max_items)):
        item = dataset[index]
        frames = torch.cat([item["video"], item["mask_video"]], dim=1).permute(1, 0, 2, 3)
        latents.append(autoencoder.encode(frames).latent_dist.mode().flatten())
    return float(1.0 / torch.cat(latents).std())


def train_vae(data: str, output: str, steps: int = 2000, batch_size: int = 16, lr: float = 1e-3,
              resolution=(64, 64), num_frames: int = 8, frame_stride: int = 2,
              block_out_channels=(32, 64, 64), seed: int = 0, progress: bool = True,
              init_from: str | None = None, salient_boost: float = SALIENT_BOOST) -> dict:
    """Train, calibrate the latent scale, and write a diffusers AutoencoderKL folder atomically."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dataset = Mask2IVDataset(data, num_frames=num_frames, frame_stride=frame_stride,
                             resolution=tuple(resolution), split="train", seed=seed)
    autoencoder = (AutoencoderKL.from_pretrained(init_from, local_files_only=True) if init_from
                   else AutoencoderKL(**small_vae_config(block_out_channels)))
    optimizer = torch.optim.AdamW(autoencoder.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    batches = _frame_batches(dataset, batch_size, rng)
    history = []
    bar = tqdm(range(steps), desc="vae", disable=not progress)
    for step in bar:
        frames = next(batches)
        posterior = autoencoder.encode(frames).latent_dist
        # Decode the posterior mean: sampling from the still-wide initial posterior (std ~1) buries
        # the content in noise and the decoder settles on the mean image (seen: a grey blur).
        # The pipeline itself encodes with the mean, and the KL term keeps the latents bounded.
        reconstruction = autoencoder.decode(posterior.mode()).sample
        weights = salient_pixel_weights(frames, salient_boost)
        l1 = ((reconstruction - frames).abs() * weights).mean()
        mse = ((reconstruction - frames).pow(2) * weights).mean()
        loss = l1 + mse + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append({"step": step + 1, "loss": float(loss.detach()), "l1": float(l1.detach())})
        if step % 20 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    autoencoder.eval()
    scale = latent_scale(autoencoder, dataset)
    autoencoder.register_to_config(scaling_factor=scale)

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vae-", dir=output.parent))
    VideoVAE(autoencoder).save_pretrained(staging)
    (staging / "training_log.json").write_text(json.dumps(
        {"data": str(data), "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
         "resolution": list(resolution), "block_out_channels": list(block_out_channels),
         "init_from": init_from, "salient_boost": salient_boost,
         "scaling_factor": scale, "history": history}))
    if output.exists():
        shutil.rmtree(output)
    os.replace(staging, output)
    return {"scaling_factor": scale, "final_l1": history[-1]["l1"], "output": str(output)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (BridgeData raw layout, e.g. synthetic)")
    parser.add_argument("--output", required=True, help="folder to write the AutoencoderKL to")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--resolution", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--frame-stride", type=int, default=2)
    parser.add_argument("--block-out-channels", type=int, nargs="+", default=(32, 64, 64))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-from", default=None, help="continue from an AutoencoderKL folder")
    parser.add_argument("--salient-boost", type=float, default=SALIENT_BOOST,
                        help="extra loss weight of pixels that stand out from the table (0 = off)")
    args = parser.parse_args(argv)
    result = train_vae(args.data, args.output, args.steps, args.batch_size, args.lr, args.resolution,
                       args.num_frames, args.frame_stride, args.block_out_channels, args.seed,
                       init_from=args.init_from, salient_boost=args.salient_boost)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
