"""VideoUNet size and speed table.

    python benchmarks/bench_model.py [--repeats 10] [--threads 1]

Rows: the tiny test config (parameters, CPU forward time), the paper config (DynamiCrafter 512
+ 4 mask-latent channels: parameters counted on the meta device against DynamiCrafter's
published size, FLOPs of one denoising step at 16 x 320 x 512 counted with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device) and, only when CUDA is
available, the paper config's measured forward time (bf16 autocast, random weights).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mask2iv_ros.models import UNetConfig, VideoUNet

# DynamiCrafter 512 UNet as counted from its own code (test/fixtures/dynamicrafter); the
# paper/README round it to 1.4B.
DYNAMICRAFTER_512_PARAMETERS = 1_438_854_980
PAPER_FRAMES, PAPER_HEIGHT, PAPER_WIDTH = 16, 320, 512
LATENT_DOWNSCALE = 8


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def paper_inputs(config: UNetConfig, batch: int, device: str | torch.device):
    latent_h, latent_w = PAPER_HEIGHT // LATENT_DOWNSCALE, PAPER_WIDTH // LATENT_DOWNSCALE
    x = torch.randn(batch, config.in_channels, PAPER_FRAMES, latent_h, latent_w, device=device)
    tokens = config.text_context_len + PAPER_FRAMES * config.image_tokens_per_frame
    context = torch.randn(batch, tokens, config.context_dim, device=device)
    timesteps = torch.full((batch,), 500, device=device, dtype=torch.long)
    return x, timesteps, context


def time_forward(model, inputs, repeats: int, sync=lambda: None) -> float:
    """Median seconds of one no-grad forward (after one warm-up call)."""
    times = []
    with torch.no_grad():
        model(*inputs)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            model(*inputs)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def paper_flops(config: UNetConfig, batch: int) -> int:
    with torch.device("meta"):
        model = VideoUNet(config).eval()
        inputs = paper_inputs(config, batch, "meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, str]] = []

    torch.manual_seed(0)
    tiny_config = UNetConfig.tiny(in_channels=12)
    tiny = VideoUNet(tiny_config).eval()
    tiny_inputs = (torch.randn(2, 12, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 8, 32))
    rows.append(("tiny UNet parameters", f"{count_parameters(tiny):,}"))
    rows.append((f"tiny UNet forward, CPU {args.threads} thread(s), B=2 T=4 8x8 latents",
                 f"{time_forward(tiny, tiny_inputs, args.repeats) * 1e3:.1f} ms"))

    paper_config = UNetConfig.dynamicrafter_512(in_channels=12)
    with torch.device("meta"):
        paper = VideoUNet(paper_config)
    paper_params = count_parameters(paper)
    rows.append(("paper UNet parameters (12 input channels)", f"{paper_params:,}"))
    rows.append(("DynamiCrafter 512 UNet parameters (8 input channels, published 1.4B)",
                 f"{DYNAMICRAFTER_512_PARAMETERS:,}"))
    rows.append(("  difference = 4 extra input channels x 320 x 3 x 3",
                 f"{paper_params - DYNAMICRAFTER_512_PARAMETERS:,}"))

    flops = paper_flops(paper_config, batch=1)
    rows.append((f"paper UNet forward FLOPs, B=1, {PAPER_FRAMES}x{PAPER_HEIGHT}x{PAPER_WIDTH}",
                 f"{flops / 1e12:.2f} TFLOP"))
    rows.append(("  per denoising step with classifier-free guidance (2 forwards)",
                 f"{2 * flops / 1e12:.2f} TFLOP"))
    rows.append(("  per 50-step DDIM video with guidance", f"{100 * flops / 1e15:.2f} PFLOP"))

    if torch.cuda.is_available():
        device = torch.device("cuda")
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        model = VideoUNet(paper_config).to(device).eval()
        inputs = paper_inputs(paper_config, 1, device)
        with torch.autocast("cuda", dtype=dtype):
            seconds = time_forward(model, inputs, max(3, args.repeats // 3), torch.cuda.synchronize)
        rows.append((f"paper UNet forward, {torch.cuda.get_device_name()} {dtype}, B=1",
                     f"{seconds * 1e3:.0f} ms ({flops / seconds / 1e12:.0f} TFLOP/s)"))
    else:
        rows.append(("paper UNet forward time", "not measured (no CUDA device)"))

    width = max(len(name) for name, _ in rows)
    print(f"{'quantity':<{width}}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
