"""benchmarks/bench_hypotheses.py: prints one row per variant and N on the tiny pipeline."""

from benchmark_scripts import load_benchmark  # noqa: E402



def test_table_rows_on_the_tiny_pipeline(capsys):
    bench = load_benchmark("bench_hypotheses")
    assert bench.main(["--tiny", "--steps", "1", "--repeats", "1", "--samples", "1", "2",
                       "--votes", "1", "3", "--device", "cpu"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == len(bench.VARIANTS) * 2 * 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        votes, count = int(cells[4]), int(cells[5])
        seconds, ratio, speed_up = map(float, cells[6:9])
        assert seconds > 0 and ratio > 0 and (count > 1 or votes > 1 or ratio == 1.0)
        # speed-up = count x votes / ratio, both printed to 2 decimals: the product is off by at
        # most the rounding of each (a fixed tolerance on count / ratio failed for ratio 0.56)
        assert abs(speed_up * ratio - count * votes) <= 0.005 * (speed_up + ratio) + 1e-4
    assert {int(row.strip("|").split("|")[4]) for row in rows} == {1, 3}
