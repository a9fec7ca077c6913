"""scripts/accuracy_table.py: one table row over seeds from hand-made test probabilities and run logs."""

import importlib.util

import numpy as np
import pytest

from tests.conftest import ROOT
from utils.errors import UserError

spec = importlib.util.spec_from_file_location("accuracy_table", ROOT / "scripts" / "accuracy_table.py")
table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table)


def make_run(root, name, probs, labels=(0, 1, 1, 0), seconds=None):
    """A run directory with test_probs.npz (clips c0..c3) and, when seconds is given, its RUN.log beside it."""
    run = root / name
    run.mkdir()
    names = np.array([f"c{i}" for i in range(len(labels))])
    np.savez(run / "test_probs.npz", names=names, labels=np.array(labels), probs=np.array(probs, np.float32))
    if seconds is not None:
        (root / f"{name}.log").write_text(f"epoch 0: ...\ndone in {seconds} s wall time; peak resident memory 0.3 GB\n")
    return str(run)


RIGHT = [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.9, 0.1]]  # 4 of 4, confidently
HALF = [[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7]]  # c2, c3 wrong: 2 of 4
WEAK = [[0.4, 0.6], [0.6, 0.4], [0.45, 0.55], [0.45, 0.55]]  # all wrong but c2, faintly: 1 of 4


def test_row_mean_std_and_times(tmp_path, capsys):
    runs = [make_run(tmp_path, "a_s0", RIGHT, seconds=100), make_run(tmp_path, "a_s1", HALF, seconds=120),
            make_run(tmp_path, "a_s2", WEAK, seconds=110)]  # fmt: skip
    row = table.main(["--row", "joints", *runs, "--header"])
    # 100, 50, 25: mean 58.33, sample std sqrt(((41.67)^2 + (8.33)^2 + (33.33)^2) / 2) = 38.19
    assert row == "| joints | 100.00 / 50.00 / 25.00 | 58.3 ± 38.2 | 100-120 s |"
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| configuration |") and out[-1] == row


def test_fused_seed_sums_the_times(tmp_path):
    a = make_run(tmp_path, "a_s0", HALF, seconds=100)
    b = make_run(tmp_path, "b_s0", WEAK, seconds=30)
    # Fused c2: (0.2 + 0.55) / 2 = 0.375 for class 1, wrong; c3: (0.3 + 0.45) / 2 = 0.375 for class 0, wrong;
    # c0 (0.65) and c1 (0.6) right: 2 of 4, as HALF alone.
    assert table.seed_result(f"{a},{b}") == (50.0, 130)
    c = make_run(tmp_path, "c_s0", RIGHT, seconds=5)
    acc, seconds = table.seed_result(f"{a},{c}")  # c2 0.55 and c3 0.6 for the right class: all 4
    assert (acc, seconds) == (100.0, 105)


def test_single_seed_and_missing_log(tmp_path):
    run = make_run(tmp_path, "a_s0", HALF)  # no log: no time
    assert table.main(["--row", "x", run]) == "| x | 50.00 | 50.0 | - |"


def test_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        table.main(["--row", "x", str(tmp_path / "nothing")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--save_test_probs" in err
    with pytest.raises(UserError, match="empty seed argument"):
        table.seed_result(",")
