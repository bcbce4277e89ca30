"""benchmarks/bench_training_step.py: one row per part of a training step, one column per VAE
chunk size, the same numbers in the JSON."""

import json

from benchmark_scripts import load_benchmark


def test_tiny_step_is_split_into_its_parts(tmp_path, capsys):
    bench = load_benchmark("bench_training_step")
    assert bench.main(["--tiny", "--warmup", "0", "--steps", "1", "--vae-chunk-size", "64",
                       "--json", str(tmp_path / "step.json")]) == 0
    out = capsys.readouterr().out
    assert "| part | s, VAE chunk 8 | s, VAE chunk 64 |" in out
    results = json.loads((tmp_path / "step.json").read_text())["results"]
    assert list(results) == ["VAE chunk 8", "VAE chunk 64"]
    for column in results.values():
        assert list(column) == ["data: next batch", "stage inputs (VAE encodes, condition)",
                                "optimizer step on a loaded batch", "optimizer step with loading"]
        assert all(seconds > 0 for seconds in column.values())
