"""scripts/compare_runs.py on fake run directories: table, CSV, plot, alignment and errors (no training)."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.compare_runs import main

ROOT = Path(__file__).resolve().parents[1]


def fake_run(parent: Path, name: str, rows: list[tuple[float, float, float]]) -> Path:
    """A run directory whose robustness.csv holds (alpha, top1, top5) rows, as main.py writes it."""
    run = parent / name
    run.mkdir(parents=True)
    with open(run / "robustness.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["alpha", "top1", "top5", "clips"])
        for alpha, top1, top5 in rows:
            w.writerow([alpha, top1, top5, 40])
    return run


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    # Different alpha sets: run b lacks 0.05 and has 0.1, which run a lacks.
    a = fake_run(tmp_path, "a", [(0.0, 0.9, 1.0), (0.01, 0.825, 0.975), (0.05, 0.5, 0.75)])
    b = fake_run(tmp_path, "b", [(0.0, 0.8, 0.95), (0.01, 0.8, 0.95), (0.1, 0.125, 0.4)])
    return [a, b]


def test_table_csv_and_plot_on_the_union_of_alphas(two_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    main([*map(str, two_runs), "--out", str(out)])

    rows = read_csv(out / "comparison.csv")
    assert rows[0] == ["alpha", "a", "b"]
    table = {float(r[0]): r[1:] for r in rows[1:]}
    assert list(table) == [0.0, 0.01, 0.05, 0.1]  # the sorted union
    assert table[0.0] == ["90.0000", "80.0000"]  # fractions -> %
    assert table[0.01] == ["82.5000", "80.0000"]
    assert table[0.05] == ["50.0000", ""]  # blank where a run has no value
    assert table[0.1] == ["", "12.5000"]
    assert (out / "comparison.png").stat().st_size > 1000

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-2:] == ["a", "b"]
    assert lines[1].split() == ["0", "90.00", "80.00"]
    assert lines[3].split() == ["0.05", "50.00"]
    assert lines[4].split() == ["0.1", "12.50"]
    assert len(lines[3]) == len(lines[1])  # the blank cell keeps the columns aligned


def test_top5_and_csv_paths(two_runs, tmp_path):
    out = tmp_path / "cmp5"
    curves = main([str(two_runs[0] / "robustness.csv"), str(two_runs[1]), "--metric", "top5", "--out", str(out)])
    assert curves == {"a": {0.0: 100.0, 0.01: 97.5, 0.05: 75.0}, "b": {0.0: 95.0, 0.01: 95.0, 0.1: 40.0}}
    assert read_csv(out / "comparison.csv")[1] == ["0.0", "100.0000", "95.0000"]


def test_runs_with_the_same_name_get_distinct_columns(tmp_path):
    x = fake_run(tmp_path / "x", "seed", [(0.0, 0.5, 0.5)])
    y = fake_run(tmp_path / "y", "seed", [(0.0, 0.25, 0.5)])
    curves = main([str(x), str(y), "--out", str(tmp_path)])
    assert curves == {"seed": {0.0: 50.0}, str(y): {0.0: 25.0}}


def test_missing_csv_is_a_one_line_error_naming_the_run(two_runs, tmp_path):
    empty = tmp_path / "unfinished"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        main([str(two_runs[0]), str(empty), "--out", str(tmp_path / "cmp")])
    msg = str(e.value.code)
    assert msg.startswith("error: ") and str(empty) in msg and str(two_runs[0]) not in msg
    assert "\n" not in msg
    assert not (tmp_path / "cmp" / "comparison.csv").exists()


def test_malformed_csv_is_an_error_naming_the_file(tmp_path):
    run = tmp_path / "bad"
    run.mkdir()
    (run / "robustness.csv").write_text("alpha,top1\n0.0,0.5\n")
    with pytest.raises(SystemExit) as e:
        main([str(run), "--metric", "top5", "--out", str(tmp_path)])
    assert str(run / "robustness.csv") in str(e.value.code) and "'top5'" in str(e.value.code)


def test_runs_as_a_script_from_anywhere(two_runs, tmp_path):
    # The sweep script calls it as a file; it must find `utils` whatever the working directory.
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare_runs.py"), *map(str, two_runs)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "comparison.csv").exists() and (tmp_path / "comparison.png").exists()
    missing = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(tmp_path / "nope")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert str(tmp_path / "nope") in missing.stderr
