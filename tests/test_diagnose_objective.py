"""scripts/diagnose_objective.py: it records each term's gradient and the entropies, and leaves the run as it was."""

import json
import sys
from pathlib import Path

import pytest

import engine.train
import main as cli
from tests.test_cli import TINY_POSE, ann_file, base, rows  # noqa: F401  (ann_file is a fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import diagnose_objective  # noqa: E402


@pytest.fixture
def restore_patches():
    step, objective = engine.train.train_step, engine.train.objective
    yield
    engine.train.train_step, engine.train.objective = step, objective


def test_records_terms_and_leaves_training_untouched(tmp_path, ann_file, restore_patches):  # noqa: F811
    del restore_patches
    extra = ["--gamma", "5", "--gamma_ramp", "1", "--epochs", "2", "--max_steps", "3", *TINY_POSE]
    cli.main(base(tmp_path, ann_file, "plain", *extra))
    out = tmp_path / "diag.json"
    argv = ["--every", "1", "--out", str(out), "--", *base(tmp_path, ann_file, "diag", *extra)]
    epochs = diagnose_objective.main(argv)
    saved = json.loads(out.read_text())
    assert len(saved["records"]) == 6 and [e["epoch"] for e in epochs] == [0, 1]
    first, later = saved["records"][0], saved["records"][-1]
    assert first["ramp"] == 0.5 and later["ramp"] == 1.0  # the ramp of --gamma_ramp 1: 1/2, then 1
    for key in ("grad_ce", "grad_instance", "cos_ce_instance", "entropy_clean", "entropy_noisy", "acc_clean"):
        assert key in first
    assert first["grad_instance"] > 0 and -1 <= first["cos_ce_instance"] <= 1
    # the extra backward passes do not change the run
    losses = [r["loss"] for r in rows(tmp_path / "plain", "train")]
    assert losses == [r["loss"] for r in rows(tmp_path / "diag", "train")]
    assert rows(tmp_path / "plain", "val") and [r["top1"] for r in rows(tmp_path / "plain", "val")] == [
        r["top1"] for r in rows(tmp_path / "diag", "val")
    ]
