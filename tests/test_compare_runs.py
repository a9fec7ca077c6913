"""scripts/compare_runs.py on fake run directories: summary, per-family table, seeds, CSVs, plots and errors
(no training)."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.compare_runs import main
from utils.robustness import FIELDS

ROOT = Path(__file__).resolve().parents[1]

# (checkpoint, epoch, family, level, severity, suite, top1, top5)
A_BEST = [
    ("best", 9, "clean", "", 0.0, 0, 0.9, 1.0),
    ("best", 9, "jitter", "light", 0.01, 1, 0.8, 0.95),
    ("best", 9, "jitter", "moderate", 0.02, 1, 0.7, 0.9),
    ("best", 9, "jitter", "", 0.1, 0, 0.3, 0.6),
    ("best", 9, "missing_joints", "light", 0.1, 1, 0.6, 0.9),
    ("best", 9, "missing_joints", "severe", 0.4, 1, 0.4, 0.8),
    ("best", 9, "swap", "severe", 0.5, 1, 0.5, 0.85),
]
A_LAST = [
    ("last", 19, "clean", "", 0.0, 0, 0.8, 0.9),
    ("last", 19, "jitter", "light", 0.01, 1, 0.4, 0.7),
    ("last", 19, "missing_joints", "light", 0.1, 1, 0.6, 0.8),
]
# One checkpoint only, named after the evaluated file, as `main.py --evaluate RUN/epoch_5.pt` writes it.
B = [
    ("epoch_5", 5, "clean", "", 0.0, 0, 0.8, 0.9),
    ("epoch_5", 5, "jitter", "light", 0.01, 1, 0.6, 0.8),
    ("epoch_5", 5, "missing_joints", "light", 0.1, 1, 0.4, 0.7),
    ("epoch_5", 5, "frame_rate", "light", 2.0, 1, 0.5, 0.75),
]


def fake_run(parent: Path, name: str, rows: list[tuple]) -> Path:
    """A run directory whose robustness.csv holds `rows`, as utils.robustness.write_robustness writes it."""
    run = parent / name
    run.mkdir(parents=True)
    with open(run / "robustness.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for r in rows:
            w.writerow([*r, 40])
    return run


def fake_old_run(parent: Path, name: str, rows: list[tuple[float, float, float]]) -> Path:
    """A run directory whose robustness.csv is of the older format: (alpha, top1, top5) rows."""
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
    return [fake_run(tmp_path, "a", A_BEST + A_LAST), fake_run(tmp_path, "b", B)]


def test_summary_numbers_table_and_files(two_runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    res = main([*map(str, two_runs), "--out", str(out)])

    # a (best): suite rows 80, 70, 60, 40, 50 -> mCA 60; relative 60 / 90; jitter (80 + 70) / 2, ...
    a, b = res["summary"]["a"], res["summary"]["b"]
    assert (a["checkpoint"], a["epoch"], a["n"]) == ("best", 9, 1)
    assert a["clean"] == pytest.approx(90) and a["mCA"] == pytest.approx(60)
    assert a["relative"] == pytest.approx(60 / 90)
    assert a["families"] == pytest.approx({"jitter": 75, "missing_joints": 50, "swap": 50})
    assert a["std"]["clean"] is None  # one run: no spread
    # b holds one checkpoint only: compared whatever its name; suite 60, 40, 50 -> mCA 50
    assert (b["checkpoint"], b["epoch"]) == ("epoch_5", 5)
    assert (b["clean"], b["mCA"], b["relative"]) == pytest.approx((80, 50, 50 / 80))
    assert b["families"] == pytest.approx({"jitter": 60, "missing_joints": 40, "frame_rate": 50})

    lines = capsys.readouterr().out.splitlines()
    assert "checkpoint best" in lines[0]
    # the summary first; families in datasets/pipeline/corruptions.py's order, blank where a run has none
    assert lines[1].split() == ["run", "checkpoint", "epoch", "clean", "mCA", "relative", "jitter",
                                "missing_joints", "frame_rate", "swap"]  # fmt: skip
    assert lines[2].split() == ["a", "best", "9", "90.00", "60.00", "0.667", "75.00", "50.00", "50.00"]
    assert lines[3].split() == ["b", "epoch_5", "5", "80.00", "50.00", "0.625", "60.00", "40.00", "50.00"]
    assert lines[2].index("75.00") == lines[3].index("60.00")  # columns aligned despite the blank
    # then the table, clean row first, one block per family
    start = lines.index(next(line for line in lines if line.startswith("family")))
    assert start > 3 and lines[start].split() == ["family", "level", "severity", "a", "b"]
    assert lines[start + 1].split() == ["clean", "-", "0", "90.00", "80.00"]
    assert lines[start + 2] == "" and lines[start + 3].split() == ["jitter", "light", "0.01", "80.00", "60.00"]
    assert lines[start + 4].split() == ["jitter", "moderate", "0.02", "70.00"]

    assert read_csv(out / "comparison.csv") == [
        ["family", "level", "severity", "a", "b"],
        ["clean", "", "0.0", "90.0000", "80.0000"],
        ["jitter", "light", "0.01", "80.0000", "60.0000"],
        ["jitter", "moderate", "0.02", "70.0000", ""],
        ["jitter", "", "0.1", "30.0000", ""],
        ["missing_joints", "light", "0.1", "60.0000", "40.0000"],
        ["missing_joints", "severe", "0.4", "40.0000", ""],
        ["frame_rate", "light", "2.0", "", "50.0000"],
        ["swap", "severe", "0.5", "50.0000", ""],
    ]
    assert res["table"][("jitter", "light", 0.01)] == pytest.approx({"a": 80, "b": 60})
    assert res["table"][("frame_rate", "light", 2.0)] == pytest.approx({"b": 50})

    summary = read_csv(out / "summary.csv")
    assert summary[0] == ["run", "checkpoint", "epoch", "clean", "mCA", "relative", "jitter", "missing_joints",
                          "frame_rate", "swap"]  # fmt: skip
    assert summary[1][:3] == ["a", "best", "9"] and summary[1][8] == ""
    assert [float(x) for x in summary[1][3:6]] == pytest.approx([90, 60, 60 / 90])

    for name in ("comparison", "comparison_missing_joints", "comparison_frame_rate", "comparison_swap"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert not (out / "comparison_jitter.png").exists()


def test_checkpoint_last_and_top5(two_runs, tmp_path):
    res = main([*map(str, two_runs), "--checkpoint", "last", "--out", str(tmp_path / "last")])
    a = res["summary"]["a"]
    # a (last): suite 40, 60 -> mCA 50, relative 50 / 80; b still uses its only checkpoint
    assert (a["checkpoint"], a["epoch"]) == ("last", 19)
    assert (a["clean"], a["mCA"], a["relative"]) == pytest.approx((80, 50, 50 / 80))
    assert a["families"] == pytest.approx({"jitter": 40, "missing_joints": 60})
    assert res["summary"]["b"]["checkpoint"] == "epoch_5"
    assert ("swap", "severe", 0.5) not in res["table"]  # only best has it

    res = main([*map(str, two_runs), "--metric", "top5", "--out", str(tmp_path / "top5")])
    a = res["summary"]["a"]  # top-5 of the suite rows: 95, 90, 90, 80, 85
    assert (a["clean"], a["mCA"], a["relative"]) == pytest.approx((100, 88, 0.88))


def seed_rows(clean: float, jitter: float, missing: float, extra: float | None) -> list[tuple]:
    rows = [
        ("best", 9, "clean", "", 0.0, 0, clean, 1.0),
        ("best", 9, "jitter", "light", 0.01, 1, jitter, 1.0),
        ("best", 9, "missing_joints", "light", 0.1, 1, missing, 1.0),
    ]
    return rows + ([("best", 9, "jitter", "", 0.1, 0, extra, 1.0)] if extra is not None else [])


def test_seeds_mean_and_sample_std(tmp_path, capsys):
    runs = tmp_path / "runs"
    seeds = [
        fake_run(runs, "ce_s0", seed_rows(0.80, 0.6, 0.4, 0.2)),
        fake_run(runs, "ce_s1", seed_rows(0.82, 0.7, 0.5, 0.3)),
        fake_run(runs, "ce_s2", seed_rows(0.87, 0.5, 0.3, None)),  # lacks the jitter 0.1 row
    ]
    tcl = fake_run(runs, "tcl", seed_rows(0.9, 0.8, 0.6, 0.4))
    out = tmp_path / "cmp"
    res = main([*map(str, seeds), str(tcl), "--seeds", "--out", str(out)])

    assert res["groups"] == {"ce": ["ce_s0", "ce_s1", "ce_s2"], "tcl": ["tcl"]}
    ce = res["summary"]["ce"]
    assert ce["n"] == 3
    # clean 80, 82, 87: mean 83, deviations -3, -1, 4 -> variance 26 / 2 -> std sqrt(13)
    assert (ce["clean"], ce["std"]["clean"]) == pytest.approx((83, math.sqrt(13)))
    # mCA per seed (60 + 40) / 2 = 50, 60, 40 -> 50 ± 10
    assert (ce["mCA"], ce["std"]["mCA"]) == pytest.approx((50, 10))
    rel = [50 / 80, 60 / 82, 40 / 87]
    mean = sum(rel) / 3
    assert ce["relative"] == pytest.approx(mean)
    assert ce["std"]["relative"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in rel) / 2))
    assert ce["families"] == pytest.approx({"jitter": 60, "missing_joints": 40})
    assert ce["std"]["families"] == pytest.approx({"jitter": 10, "missing_joints": 10})
    tcl_sum = res["summary"]["tcl"]
    assert (tcl_sum["n"], tcl_sum["clean"], tcl_sum["std"]["clean"]) == (1, pytest.approx(90), None)

    # per-severity: jitter 0.1 over the two seeds that hold it: 20, 30 -> 25 ± sqrt(50)
    assert res["table"][("jitter", "", 0.1)] == pytest.approx({"ce": 25, "tcl": 40})
    assert res["table_std"][("jitter", "", 0.1)]["ce"] == pytest.approx(math.sqrt(50))

    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["group", "n"]
    assert lines[2].split()[:9] == ["ce", "3", "83.00", "±", "3.61", "50.00", "±", "10.00", "0.605"]
    assert lines[3].split()[:4] == ["tcl", "1", "90.00", "70.00"]  # one run: just the mean (mCA (80 + 60) / 2)
    row = next(line for line in lines if line.startswith("jitter") and " 0.1 " in line)
    assert row.split() == ["jitter", "-", "0.1", "25.00", "±", "7.07", "(n=2)", "40.00"]

    table = read_csv(out / "comparison.csv")
    assert table[0] == ["family", "level", "severity", "ce", "tcl", "ce std", "tcl std"]
    assert table[1] == ["clean", "", "0.0", "83.0000", "90.0000", f"{math.sqrt(13):.4f}", ""]
    summary = read_csv(out / "summary.csv")
    assert summary[0][:7] == ["group", "n", "runs", "clean", "clean_std", "mCA", "mCA_std"]
    assert summary[1][:3] == ["ce", "3", "ce_s0 ce_s1 ce_s2"]
    assert [float(x) for x in summary[1][3:7]] == pytest.approx([83, math.sqrt(13), 50, 10])
    assert (out / "comparison.png").exists() and (out / "comparison_missing_joints.png").exists()


def test_seeds_group_only_within_a_folder(tmp_path):
    x0 = fake_run(tmp_path / "x", "ce_s0", seed_rows(0.8, 0.6, 0.4, None))
    x1 = fake_run(tmp_path / "x", "ce_s1", seed_rows(0.9, 0.6, 0.4, None))
    y0 = fake_run(tmp_path / "y", "ce_s0", seed_rows(0.5, 0.6, 0.4, None))
    res = main([str(x0), str(x1), str(y0), "--seeds", "--out", str(tmp_path / "cmp")])
    assert list(res["groups"].values()) == [["ce_s0", "ce_s1"], [str(y0)]]
    assert list(res["summary"]) == ["ce", str(tmp_path / "y" / "ce")]
    assert res["summary"]["ce"]["clean"] == pytest.approx(85)


def test_old_format_csv_still_works(tmp_path, capsys):
    old = fake_old_run(tmp_path, "old", [(0.0, 0.9, 1.0), (0.01, 0.825, 0.975), (0.05, 0.5, 0.75)])
    new = fake_run(tmp_path, "new", B)
    out = tmp_path / "cmp"
    res = main([str(old / "robustness.csv"), str(new), "--out", str(out)])  # a CSV path works too
    s = res["summary"]["old"]
    # read as checkpoint 'best': alpha 0 is the clean row, the others jitter rows outside the suite
    assert (s["checkpoint"], s["mCA"], s["relative"], s["families"]) == ("best", None, None, {})
    assert s["clean"] == pytest.approx(90)
    assert res["table"][("clean", "", 0.0)] == pytest.approx({"old": 90, "new": 80})
    # aligned on (family, severity) with the new run's level name
    assert res["table"][("jitter", "light", 0.01)] == pytest.approx({"old": 82.5, "new": 60})
    assert res["table"][("jitter", "", 0.05)] == pytest.approx({"old": 50})
    assert capsys.readouterr().out.splitlines()[2].split() == ["old", "best", "90.00"]
    assert (out / "comparison.png").stat().st_size > 1000


def test_runs_with_the_same_name_get_distinct_columns(tmp_path):
    x = fake_old_run(tmp_path / "x", "seed", [(0.0, 0.5, 0.5)])
    y = fake_old_run(tmp_path / "y", "seed", [(0.0, 0.25, 0.5)])
    res = main([str(x), str(y), "--out", str(tmp_path)])
    assert res["table"] == {("clean", "", 0.0): {"seed": 50.0, str(y): 25.0}}


def error_of(argv: list[str], capsys) -> str:
    """The message of a run of main that must fail with exit code 2 and one line on stderr."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("compare_runs.py: error: ") and err.count("\n") == 1
    return err


def test_missing_csv_is_a_one_line_error_naming_the_run(two_runs, tmp_path, capsys):
    empty = tmp_path / "unfinished"
    empty.mkdir()
    msg = error_of([str(two_runs[0]), str(empty), "--out", str(tmp_path / "cmp")], capsys)
    assert str(empty) in msg and str(two_runs[0]) not in msg
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpha,top1\n0.0,0.5\n", "'top5'"),  # an old-format file without top5
        (",".join(f for f in FIELDS if f != "suite") + "\nbest,1,clean,,0,0.5,0.5,4\n", "'suite'"),
        (",".join(FIELDS) + "\nbest,1,clean,,0,0,high,0.5,4\n", "not a number"),
        (",".join(FIELDS) + "\n", "no rows"),
        (",".join(FIELDS) + "\nbest,1,clean,,0,0,0.5,0.5,4\nbest,1,clean,,0,0,0.6,0.6,4\n", "two rows"),
    ],
)
def test_malformed_csv_is_a_one_line_error_naming_the_file(tmp_path, capsys, text, expected):
    run = tmp_path / "bad"
    run.mkdir()
    (run / "robustness.csv").write_text(text)
    msg = error_of([str(run), "--metric", "top5", "--out", str(tmp_path)], capsys)
    assert str(run / "robustness.csv") in msg and expected in msg


def test_a_missing_checkpoint_is_an_error_naming_it(tmp_path, capsys):
    run = fake_run(tmp_path, "two", [("last", *r[1:]) for r in A_BEST] + [("epoch_3", *A_LAST[0][1:])])
    msg = error_of([str(run), "--out", str(tmp_path)], capsys)
    assert "'best'" in msg and "'last'" in msg and "'epoch_3'" in msg


def test_runs_as_a_script_from_anywhere(two_runs, tmp_path):
    # The sweep script calls it as a file; it must find `utils` whatever the working directory.
    script = str(ROOT / "scripts" / "compare_runs.py")
    res = subprocess.run(
        [sys.executable, script, *map(str, two_runs)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("summary: ")
    for name in ("summary.csv", "comparison.csv", "comparison.png", "comparison_swap.png"):
        assert (tmp_path / name).exists()
    missing = subprocess.run(
        [sys.executable, script, str(tmp_path / "nope")], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("compare_runs.py: error: ") and str(tmp_path / "nope") in missing.stderr


def test_seen_splits_the_suite_whatever_the_run_trained_on(two_runs, tmp_path, capsys):
    # Run a (best): jitter 80, 70; missing_joints 60, 40; swap 50; clean 90. Seen: jitter and swap.
    out = tmp_path / "cmp"
    res = main([str(two_runs[0]), "--seen", "jitter", "swap", "--out", str(out)])
    a = next(iter(res["summary"].values()))
    assert a["mCA_seen"] == pytest.approx((80 + 70 + 50) / 3)
    assert a["mCA_unseen"] == pytest.approx((60 + 40) / 2)
    assert a["unseen_relative"] == pytest.approx(50 / 90)
    assert a["mCA"] == pytest.approx((80 + 70 + 60 + 40 + 50) / 5)
    head = capsys.readouterr().out.splitlines()[1].split()
    assert head[3:9] == ["clean", "mCA", "relative", "mCA_seen", "mCA_unseen", "unseen_relative"]
    assert read_csv(out / "summary.csv")[0][3:9] == head[3:9]
    with pytest.raises(SystemExit):
        main([str(two_runs[0]), "--seen", "nonsense"])


def test_an_out_folder_that_is_a_file_or_under_one_is_refused_before_work(two_runs, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        with pytest.raises(SystemExit) as e:
            main([str(two_runs[0]), "--out", str(out)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("compare_runs.py: error: the output folder ") and err.count("\n") == 1
    assert blocker.read_text() == "x"
