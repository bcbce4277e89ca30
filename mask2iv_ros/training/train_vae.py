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
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mask2iv_ros.data.dataset import Mask2IVDataset
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.training.time_budget import TimeBudget

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


def _stack_frames(items: list[dict]) -> torch.Tensor:
    """Clips -> their RGB and mask frames as one batch of images ``[N * 2T, 3, H, W]``."""
    return torch.cat([torch.cat([item["video"], item["mask_video"]], dim=1).transpose(0, 1)
                      for item in items])


def _frame_batches(dataset: Mask2IVDataset, batch_size: int, seed: int, num_workers: int = 0):
    """Endless batches of single frames [B, 3, H, W] in [-1, 1], drawn from the RGB frames and
    color-coded mask frames of a few shuffled clips (clips are loaded by DataLoader workers)."""
    frames_per_item = 2 * dataset.num_frames
    items = max(1, math.ceil(batch_size / frames_per_item))
    loader = DataLoader(dataset, batch_size=items, shuffle=True, drop_last=True,
                        num_workers=num_workers, persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(seed),
                        collate_fn=_stack_frames)
    order = torch.Generator().manual_seed(seed + 1)
    leftover = None
    while True:
        for frames in loader:  # [items * 2T, 3, H, W]
            frames = frames[torch.randperm(frames.shape[0], generator=order)]
            if leftover is not None:
                frames = torch.cat([leftover, frames])
            usable = frames.shape[0] - frames.shape[0] % batch_size
            for chunk in frames[:usable].split(batch_size):
                yield chunk
            leftover = frames[usable:] if usable < frames.shape[0] else None


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
        frames = _stack_frames([dataset[index]]).to(autoencoder.device)
        latents.append(autoencoder.encode(frames).latent_dist.mode().flatten())
    return float(1.0 / torch.cat(latents).std())


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_vae(data: str, output: str, steps: int = 2000, batch_size: int = 16, lr: float = 1e-3,
              resolution=(64, 64), num_frames: int = 8, frame_stride: int = 2,
              block_out_channels=(32, 64, 64), seed: int = 0, progress: bool = True,
              init_from: str | None = None, salient_boost: float = SALIENT_BOOST,
              device: str = "auto", num_workers: int = 0,
              time_budget_minutes: float | None = None, log_every: int = 10,
              decoder_only: bool = False, latent_noise: float = 0.0) -> dict:
    """Train, calibrate the latent scale, and write a diffusers AutoencoderKL folder atomically.

    ``time_budget_minutes``: ``steps`` becomes the number of steps that fit the budget, measured
    over the first 30 steps (never more than ``steps``; the cosine schedule follows it).

    ``decoder_only`` (with ``init_from``): the encoder stays frozen, so its latents, and every
    UNet trained on them, stay valid; ``latent_noise`` > 0 decodes ``z + sigma * noise`` with
    sigma ~ U(0, latent_noise) in scaled-latent units (the UNet's), teaching the decoder to map
    slightly-off latents, as a diffusion sampler produces them, to clean frames instead of
    speckle.
    """
    if decoder_only and not init_from:
        raise ValueError("decoder_only: needs init_from (a trained AutoencoderKL whose encoder is kept)")
    if latent_noise < 0:
        raise ValueError(f"latent_noise: expected a std >= 0, got {latent_noise}")
    torch.manual_seed(seed)
    device = resolve_device(device)
    dataset = Mask2IVDataset(data, num_frames=num_frames, frame_stride=frame_stride,
                             resolution=tuple(resolution), split="train", seed=seed)
    autoencoder = (AutoencoderKL.from_pretrained(init_from, local_files_only=True) if init_from
                   else AutoencoderKL(**small_vae_config(block_out_channels)))
    autoencoder.to(device)
    trained = autoencoder.parameters()
    if decoder_only:
        for module in (autoencoder.encoder, autoencoder.quant_conv):
            if module is not None:
                module.requires_grad_(False)
        trained = [p for p in autoencoder.parameters() if p.requires_grad]
    scale = float(autoencoder.config.scaling_factor)
    optimizer = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
    plan = {"steps": steps}  # the schedule reads the (possibly budget-fitted) length
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, plan["steps"]) / plan["steps"])))
    batches = _frame_batches(dataset, batch_size, seed, num_workers)
    history = []
    window = torch.zeros(2, device=device)
    window_steps = 0
    start = time.perf_counter()
    budget = TimeBudget(time_budget_minutes, steps) if time_budget_minutes else None
    bar = tqdm(total=steps, desc="vae", disable=not progress)
    step = 0
    while step < plan["steps"]:
        frames = next(batches).to(device, non_blocking=True)
        with torch.set_grad_enabled(not decoder_only):
            posterior = autoencoder.encode(frames).latent_dist
        # Decode the posterior mean: sampling from the still-wide initial posterior (std ~1) buries
        # the content in noise and the decoder settles on the mean image (seen: a grey blur).
        # The pipeline itself encodes with the mean, and the KL term keeps the latents bounded.
        latents = posterior.mode()
        if latent_noise > 0:
            sigma = torch.rand(latents.shape[0], 1, 1, 1, device=device) * latent_noise / scale
            latents = latents + sigma * torch.randn_like(latents)
        reconstruction = autoencoder.decode(latents).sample
        weights = salient_pixel_weights(frames, salient_boost)
        l1 = ((reconstruction - frames).abs() * weights).mean()
        mse = ((reconstruction - frames).pow(2) * weights).mean()
        loss = l1 + mse + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        bar.update(1)
        window += torch.stack([loss.detach(), l1.detach()])
        window_steps += 1
        if step % log_every == 0 or step == plan["steps"]:
            mean_loss, mean_l1 = (window / window_steps).tolist()  # one host sync per window
            history.append({"step": step, "loss": mean_loss, "l1": mean_l1})
            bar.set_postfix(loss=f"{mean_loss:.4f}")
            window.zero_()
            window_steps = 0
        if budget is not None:
            fitted = budget.observe(step, lambda value: _synchronize(device) or value)
            if fitted is not None:
                plan["steps"] = fitted
                bar.total = fitted
                bar.refresh()
                budget = None
    bar.close()
    autoencoder.eval()
    if not decoder_only:  # a frozen encoder keeps its latents and their scale
        scale = latent_scale(autoencoder, dataset)
        autoencoder.register_to_config(scaling_factor=scale)

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vae-", dir=output.parent))
    VideoVAE(autoencoder.to("cpu")).save_pretrained(staging)
    (staging / "training_log.json").write_text(json.dumps(
        {"data": str(data), "steps": plan["steps"], "batch_size": batch_size, "lr": lr, "seed": seed,
         "resolution": list(resolution), "block_out_channels": list(block_out_channels),
         "init_from": init_from, "salient_boost": salient_boost, "device": device.type,
         "decoder_only": decoder_only, "latent_noise": latent_noise,
         "time_budget_minutes": time_budget_minutes, "seconds": time.perf_counter() - start,
         "scaling_factor": scale, "history": history}))
    if output.exists():
        shutil.rmtree(output)
    os.replace(staging, output)
    return {"scaling_factor": scale, "steps": plan["steps"], "final_l1": history[-1]["l1"],
            "output": str(output)}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda:N")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers loading clips")
    parser.add_argument("--time-budget-minutes", type=float, default=None,
                        help="fit the number of steps (at most --steps) into this wall-clock budget")
    parser.add_argument("--no-progress", action="store_true", help="hide the tqdm bar")
    parser.add_argument("--decoder-only", action="store_true",
                        help="with --init-from: train the decoder only (latents stay valid for trained UNets)")
    parser.add_argument("--latent-noise", type=float, default=0.0,
                        help="max std of the noise added to latents before decoding (scaled units)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps/--batch-size: expected positive integers")
    result = train_vae(args.data, args.output, args.steps, args.batch_size, args.lr, args.resolution,
                       args.num_frames, args.frame_stride, args.block_out_channels, args.seed,
                       progress=not args.no_progress, init_from=args.init_from,
                       salient_boost=args.salient_boost, device=args.device,
                       num_workers=args.num_workers, time_budget_minutes=args.time_budget_minutes,
                       decoder_only=args.decoder_only, latent_noise=args.latent_noise)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
