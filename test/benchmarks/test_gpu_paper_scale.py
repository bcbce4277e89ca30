"""benchmarks/gpu_paper_scale.py: the CPU tiny mode runs the same code and prints its tables;
without CUDA the default (paper-scale, CUDA) mode refuses with exit status 2."""


import pytest
import torch
from benchmark_scripts import load_benchmark  # noqa: E402



@pytest.fixture(scope="module")
def bench():
    return load_benchmark("gpu_paper_scale")


def test_cpu_tiny_mode_prints_the_tables(bench, capsys):
    assert bench.main(["--device", "cpu", "--tiny", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "UNet tiny (test config)" in out and "bf16 peak n/a" in out
    for variant in ("autocast per call", "autocast held", "held + channels_last"):
        assert f"| {variant} |" in out
    assert "CUDA graph" not in out.split("Seconds per")[0]     # CUDA only
    rows = [line for line in out.splitlines() if line.startswith(("| DDIM", "| LCM"))]
    assert [row.split(" | ")[0] for row in rows] == ["| DDIM 50", "| DDIM 10", "| DDIM 4",
                                                     "| LCM-style 4 (guidance distilled)"]
    totals = [float(row.rstrip(" |").split(" | ")[-1]) for row in rows]
    assert totals[0] > totals[1] > totals[2] > 0         # seconds follow the step counts


def test_flops_and_peaks(bench):
    tiny = bench.tiny_scale()
    flops = bench.forward_flops(tiny)
    assert flops > 0
    # the paper UNet: DynamiCrafter's 12.6 TFLOP per batch-1 forward (dynamicrafter-facts)
    assert bench.forward_flops(bench.paper_scale()) / 1e12 == pytest.approx(12.6, rel=0.03)
    assert bench.bf16_peak("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.bf16_peak("NVIDIA H200") == 989.0
    assert bench.bf16_peak("NVIDIA H100 PCIe") == 756.0
    assert bench.bf16_peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert bench.bf16_peak("Some Future GPU") is None


def test_default_mode_without_cuda_exits_2(bench, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert bench.main(["--device", "cpu"]) == 2           # paper scale on CPU: refused too
    assert "--tiny" in capsys.readouterr().err
