"""scripts/lofo_table.py on fake run folders: each held-out family's accuracy beside mix_all's and ce's."""

import pytest

from scripts.lofo_table import lofo_rows, main
from tests.test_compare_runs import fake_run


def rows(clean: float, jitter: tuple[float, float], swap: tuple[float, float]) -> list[tuple]:
    # (checkpoint, epoch, family, level, severity, suite, top1, top5), the last checkpoint
    return [
        ("last", 9, "clean", "", 0.0, 0, clean, 1.0),
        ("last", 9, "jitter", "light", 0.01, 1, jitter[0], 1.0),
        ("last", 9, "jitter", "severe", 0.05, 1, jitter[1], 1.0),
        ("last", 9, "swap", "light", 0.1, 1, swap[0], 1.0),
        ("last", 9, "swap", "severe", 0.5, 1, swap[1], 1.0),
    ]


def test_held_out_family_against_mix_all_and_ce(tmp_path, capsys):
    fake_run(tmp_path, "lofo_jitter_s0", rows(0.9, (0.7, 0.5), (0.8, 0.6)))
    fake_run(tmp_path, "lofo_swap_s0", rows(0.8, (0.8, 0.8), (0.4, 0.2)))
    fake_run(tmp_path, "mix_all_s0", rows(0.9, (0.8, 0.8), (0.8, 0.8)))
    fake_run(tmp_path, "ce_s0", rows(0.9, (0.5, 0.3), (0.3, 0.1)))
    fake_run(tmp_path, "lofo_swap_s1", rows(0.1, (0.1, 0.1), (0.1, 0.1)))  # another seed: not read
    got = lofo_rows(tmp_path, 0)
    assert [r["family"] for r in got] == ["jitter", "swap"]
    jitter, swap = got
    assert jitter["held_out"] == pytest.approx(60) and jitter["mix_all"] == pytest.approx(80)
    assert jitter["held_out_minus_ce"] == pytest.approx(60 - 40)
    assert swap["held_out_minus_mix_all"] == pytest.approx(30 - 80) and swap["clean"] == pytest.approx(80)
    main([str(tmp_path)])
    last = capsys.readouterr().out.splitlines()[-1].split()
    assert last[:3] == ["mean", "85.00", "45.00"]
    assert (tmp_path / "lofo.csv").read_text().splitlines()[0].startswith("family,clean,held_out")


def test_no_lofo_run_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path)])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1
