"""Paper-scale Mask2IV UNet speed on one GPU: per-step time, TFLOP/s, % of bf16 peak, seconds per
two-stage imagination, peak memory.

    python benchmarks/gpu_paper_scale.py            # CUDA; sized for well under 4 minutes on an H100/H200
    python benchmarks/gpu_paper_scale.py --quick    # fewer timed iterations
    python benchmarks/gpu_paper_scale.py --compile  # also torch.compile (adds minutes of compiling)
    python benchmarks/gpu_paper_scale.py --device cpu --tiny   # same code, tiny config (tests)

The UNet is the project's VideoUNet with the paper config (DynamiCrafter 512 + the 4 mask-latent
input channels, ``UNetConfig.dynamicrafter_512(in_channels=12)``, as training/paper_*.yaml use)
with random weights, at 16 x 320 x 512 (latent 16 x 40 x 64), context 77 text + 16 x 16 image
tokens. Attention runs through ``F.scaled_dot_product_attention`` (models/attention.py; the paper
config uses no relative-position attention, the one path that does not). Variants:

- ``autocast per call``: a bf16 autocast context entered for every UNet call, as the pipeline's
  denoising loop does today (fp32 weights re-cast to bf16 on every call);
- ``autocast held``: one autocast context around all calls, so the weight casts are cached;
- ``+ channels_last``: the same with the UNet's conv weights in channels_last;
- ``+ CUDA graph``: the held-autocast forward captured once and replayed (CUDA only);
- ``+ torch.compile`` (``--compile``).

FLOPs of one forward are counted once with ``torch.utils.flop_counter.FlopCounterMode`` on the
meta device. Seconds per imagination = 2 stages x steps x the fastest variant's step time
(classifier-free guidance: the conditional and unconditional branches as one batch of 2; the
LCM-style few-step sampler has its guidance distilled in: batch 1) + the VAE work of one
imagination (encode 3 first-frame images, decode the trajectory, re-encode it, decode the video;
SD 2.1 AutoencoderKL, random weights). Text/image encoders run once per request and are left out.
Without CUDA the default mode exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from mask2iv_ros.models import UNetConfig, VideoUNet
from mask2iv_ros.models.vae import VideoVAE, sd21_vae_config, tiny_vae_config

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s; first match of
# the device name wins, so the more specific names come first.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0),
    ("H100", 989.0), ("H800", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0),
    ("L4", 121.0), ("A10", 125.0),
)
SAMPLERS = (  # (name, steps per stage, classifier-free guidance batch)
    ("DDIM 50", 50, 2), ("DDIM 10", 10, 2), ("DDIM 4", 4, 2),
    ("LCM-style 4 (guidance distilled)", 4, 1),
)
STAGES = 2


@dataclass(frozen=True)
class Scale:
    name: str
    config: UNetConfig
    frames: int
    height: int          # pixels
    width: int
    vae_config: dict

    @property
    def latent(self) -> tuple[int, int]:
        return self.height // 8, self.width // 8


def paper_scale() -> Scale:
    return Scale("paper (DynamiCrafter 512 + mask channels)",
                 UNetConfig.dynamicrafter_512(in_channels=12, dropout=0.0), 16, 320, 512,
                 sd21_vae_config())


def tiny_scale() -> Scale:
    config = UNetConfig.tiny(in_channels=12, image_cross_attention=True, temporal_length=4)
    return Scale("tiny (test config)", config, 4, 32, 32, tiny_vae_config())


def bf16_peak(device_name: str) -> float | None:
    """Dense bf16 peak TFLOP/s of a CUDA device by name, None when unknown."""
    for key, peak in BF16_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peak
    return None


def unet_inputs(scale: Scale, batch: int, device) -> tuple[torch.Tensor, ...]:
    cfg = scale.config
    h, w = scale.latent
    x = torch.randn(batch, cfg.in_channels, scale.frames, h, w, device=device)
    tokens = cfg.text_context_len + scale.frames * cfg.image_tokens_per_frame * cfg.image_cross_attention
    context = torch.randn(batch, tokens, cfg.context_dim, device=device)
    timesteps = torch.full((batch,), 500, device=device, dtype=torch.long)
    # fs as a device tensor, as the pipeline passes it: a Python int would be copied to the GPU
    # inside every forward (a host-to-device copy that CUDA graph capture does not allow)
    fs = torch.full((batch,), cfg.default_fs, device=device, dtype=torch.long)
    return x, timesteps, context, fs


def forward_flops(scale: Scale) -> int:
    """FLOPs of one batch-1 forward, counted on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = VideoUNet(scale.config).eval()
        inputs = unet_inputs(scale, 1, "meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops()


def autocast(device: torch.device, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (as the pipeline's sampling.autocast_context), fp32 on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=cache)


def set_conv_memory_format(model: torch.nn.Module, memory_format: torch.memory_format) -> None:
    """2-D conv weights in ``memory_format`` (the temporal Conv3d weights are 5-D: left as is)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=memory_format)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(call: Callable[[], object], device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        call()
    synchronize(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cuda_graph_call(model, inputs, device) -> Callable[[], torch.Tensor]:
    """Capture one forward into a CUDA graph (static inputs); returns the replay function."""
    static = [t.clone() for t in inputs]
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream), autocast(device, cache=False):
        for _ in range(3):  # warm-up on a side stream, as torch.cuda.graphs requires
            model(*static)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), autocast(device, cache=False):
        model(*static)
    return graph.replay


def measure_variant(name: str, model, scale: Scale, device, warmup: int, iters: int,
                    flops: int) -> dict:
    """Step times at batch 2 (CFG) and 1, achieved TFLOP/s at batch 2, peak memory."""
    row = {"variant": name}
    for batch in (2, 1):
        inputs = unet_inputs(scale, batch, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if name.endswith("CUDA graph"):
            call = cuda_graph_call(model, inputs, device)
            seconds = median_seconds(call, device, warmup, iters)
        elif name == "autocast per call":
            def call():
                with autocast(device):
                    return model(*inputs)
            seconds = median_seconds(call, device, warmup, iters)
        else:
            with autocast(device):
                seconds = median_seconds(lambda: model(*inputs), device, warmup, iters)
        row[f"b{batch}"] = seconds
        if batch == 2:
            row["tflops"] = 2 * flops / seconds / 1e12
            row["memory_gb"] = (torch.cuda.max_memory_allocated(device) / 2**30
                                if device.type == "cuda" else float("nan"))
    return row


def vae_seconds(scale: Scale, device, warmup: int, iters: int) -> float:
    """VAE work of one two-stage imagination: encode 3 images, decode + re-encode the
    trajectory, decode the video (frame-wise, chunks of 8, as the pipeline does)."""
    with torch.device(device):
        vae = VideoVAE.from_config(scale.vae_config).eval()
    images = torch.rand(1, 3, 3, scale.height, scale.width, device=device) * 2 - 1
    latents = torch.randn(1, 4, scale.frames, *scale.latent, device=device)

    def imagination_vae():
        vae.encode(images)
        trajectory = vae.decode(latents)
        vae.encode(trajectory)
        return vae.decode(latents)

    with autocast(device):
        seconds = median_seconds(imagination_vae, device, warmup, iters)
    del vae
    return seconds


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    scale = tiny_scale() if args.tiny else paper_scale()
    warmup, iters = (1, 2) if args.quick else (3, args.iters)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = f"CPU ({torch.get_num_threads()} threads)"
    peak = bf16_peak(device_name) if device.type == "cuda" else None
    start = time.perf_counter()
    flops = forward_flops(scale)
    with torch.device(device):
        model = VideoUNet(scale.config).eval()
    parameters = sum(p.numel() for p in model.parameters())
    print(f"device: {device_name}; UNet {scale.name}: {parameters / 1e6:,.1f} M parameters; "
          f"input {scale.frames} x {scale.height} x {scale.width} (latent {scale.frames} x "
          f"{scale.latent[0]} x {scale.latent[1]}); {flops / 1e9:,.2f} GFLOP per batch-1 forward; "
          f"bf16 peak {'n/a' if peak is None else f'{peak:.0f} TFLOP/s'}; "
          f"SDPA backends flash={torch.backends.cuda.flash_sdp_enabled()} "
          f"mem_efficient={torch.backends.cuda.mem_efficient_sdp_enabled()}", flush=True)

    rows = []
    with torch.inference_mode():
        plain = ["autocast per call", "autocast held"]
        for name in plain:
            rows.append(measure_variant(name, model, scale, device, warmup, iters, flops))
            print(f"  measured {name}", flush=True)
        set_conv_memory_format(model, torch.channels_last)
        rows.append(measure_variant("held + channels_last", model, scale, device, warmup, iters, flops))
        print("  measured held + channels_last", flush=True)
        channels_last_wins = rows[-1]["b2"] < rows[1]["b2"]
        if not channels_last_wins:
            set_conv_memory_format(model, torch.contiguous_format)
        base = "held + channels_last" if channels_last_wins else "held"
        if device.type == "cuda" and not args.no_graphs:
            try:
                rows.append(measure_variant(f"{base} + CUDA graph", model, scale, device,
                                            warmup, iters, flops))
            except Exception as error:  # noqa: BLE001 - report, keep the other numbers
                print(f"  CUDA graph capture failed: {type(error).__name__}: {error}", flush=True)
            print("  measured CUDA graph", flush=True)
        if args.compile:
            compiled = torch.compile(model, mode=args.compile_mode)
            rows.append(measure_variant(f"{base} + torch.compile ({args.compile_mode})", compiled,
                                        scale, device, max(warmup, 2), iters, flops))
            print("  measured torch.compile", flush=True)
        vae = vae_seconds(scale, device, 1, max(1, iters // 2))

    print(f"\nUNet step ({scale.frames} x {scale.height} x {scale.width}, bf16 autocast on CUDA, "
          f"fp32 on CPU; median of {iters} after {warmup} warm-up)\n")
    print("| variant | ms/step, batch 2 (CFG) | ms/step, batch 1 | TFLOP/s (batch 2) | % bf16 peak | peak memory |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        share = "n/a" if peak is None else f"{100 * row['tflops'] / peak:.1f} %"
        memory = "n/a" if row["memory_gb"] != row["memory_gb"] else f"{row['memory_gb']:.1f} GiB"
        print(f"| {row['variant']} | {row['b2'] * 1e3:.1f} | {row['b1'] * 1e3:.1f} | "
              f"{row['tflops']:.3g} | {share} | {memory} |")

    best = min(rows, key=lambda r: r["b2"])
    print(f"\nSeconds per two-stage imagination ({STAGES} stages, UNet steps with the fastest variant "
          f"'{best['variant']}', + VAE {vae:.3f} s)\n")
    print("| sampler | UNet forwards (batch) | TFLOP | UNet s | total s |")
    print("|---|---|---|---|---|")
    for name, steps, batch in SAMPLERS:
        unet = STAGES * steps * best[f"b{batch}"]
        total_flop = STAGES * steps * batch * flops / 1e12
        print(f"| {name} | {STAGES * steps} ({batch}) | {total_flop:,.4g} | {unet:.3f} | {unet + vae:.3f} |")
    if device.type == "cuda":
        print(f"\npeak memory over the run: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print(f"benchmark time: {time.perf_counter() - start:.0f} s")
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (with --tiny)")
    parser.add_argument("--tiny", action="store_true", help="tiny test config instead of the paper's")
    parser.add_argument("--quick", action="store_true", help="1 warm-up, 2 timed iterations")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per variant")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode")
    parser.add_argument("--no-graphs", action="store_true", help="skip the CUDA graph variant")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_paper_scale: CUDA is not available (torch "
              f"{torch.__version__}, built with CUDA {torch.version.cuda}); this benchmark needs an "
              "NVIDIA GPU. For the code path on CPU: --device cpu --tiny", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.tiny:
        print("gpu_paper_scale: the paper config on CPU would take hours; use --device cpu --tiny",
              file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
