"""benchmarks/bench_latent_grid.py: both variants reach the same 16x16 grid, one row each."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_latent_grid.py"


def test_both_variants_give_a_16x16_grid(capsys):
    spec = importlib.util.spec_from_file_location("bench_latent_grid", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    assert bench.main(["--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| 64x64") or line.startswith("| 128x128")]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "16x16" and float(cells[2]) > 0 and float(cells[3]) > 0
