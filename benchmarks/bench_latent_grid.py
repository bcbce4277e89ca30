"""CPU cost of the two ways to a 16x16 latent grid (issue 14): 64x64 frames through a factor-4
VAE (the embedded default's: block channels 48/96/96) or 128x128 frames through a factor-8 VAE
of the same width (48/96/96/96). Prints a markdown table: seconds to encode + decode one 8-frame
clip (mean of --repeats, after a warm-up), and one denoising step of the embedded UNet on the
16x16 grid both share. Weights are random: the cost does not depend on them.

    OMP_NUM_THREADS=1 python benchmarks/bench_latent_grid.py
"""
from __future__ import annotations

import argparse
import time

import torch
from diffusers import AutoencoderKL

from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.models.unet_config import UNetConfig
from mask2iv_ros.models.vae import VideoVAE

VARIANTS = {"64x64, factor 4 (embedded)": ((48, 96, 96), 64),
            "128x128, factor 8": ((48, 96, 96, 96), 128)}


def vae(channels: tuple[int, ...]) -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                                  layers_per_block=1, block_out_channels=channels,
                                  norm_num_groups=4,
                                  down_block_types=("DownEncoderBlock2D",) * len(channels),
                                  up_block_types=("UpDecoderBlock2D",) * len(channels))).eval()


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


@torch.no_grad()
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"\ntorch threads: {torch.get_num_threads()}\n")
    print("| frames, VAE | latent grid | s per clip encode + decode | s per UNet step |")
    print("|---|---|---|---|")
    torch.manual_seed(0)
    unet = VideoUNet(UNetConfig.tiny(in_channels=12, out_channels=4, context_dim=384,
                                     text_context_len=24, temporal_length=8)).eval()
    for name, (channels, size) in VARIANTS.items():
        model = vae(channels)
        clip = torch.rand(1, 3, 8, size, size) * 2 - 1
        latent = model.encode(clip)
        cost = seconds(lambda: model.decode(model.encode(clip)), args.repeats)
        x = torch.randn(1, 12, *latent.shape[2:])
        context = torch.randn(1, 24, 384)
        step = seconds(lambda: unet(x, torch.tensor([500]), context=context,
                                    fs=torch.tensor([2])), args.repeats)
        print(f"| {name} | {latent.shape[-2]}x{latent.shape[-1]} | {cost:.3f} | {step:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
