"""benchmarks/bench_latent_grid.py: both variants reach the same 16x16 grid, one row each."""

from benchmark_scripts import load_benchmark  # noqa: E402



def test_both_variants_give_a_16x16_grid(capsys):
    bench = load_benchmark("bench_latent_grid")
    assert bench.main(["--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| 64x64") or line.startswith("| 128x128")]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "16x16" and float(cells[2]) > 0 and float(cells[3]) > 0
