"""benchmarks/bench_hypotheses.py: prints one row per variant and N on the tiny pipeline."""

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hypotheses.py"


def test_table_rows_on_the_tiny_pipeline(capsys):
    spec = importlib.util.spec_from_file_location("bench_hypotheses", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    assert bench.main(["--tiny", "--steps", "1", "--repeats", "1", "--samples", "1", "2",
                       "--device", "cpu"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == len(bench.VARIANTS) * 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        count, seconds, ratio, speed_up = int(cells[4]), *map(float, cells[5:8])
        assert seconds > 0 and ratio > 0 and (count > 1 or ratio == 1.0)
        assert abs(speed_up - count / ratio) < 0.02
