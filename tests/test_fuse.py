"""Late fusion (scripts/fuse.py) on hand-made probabilities, and end to end on two tiny runs of two streams that
save their test probabilities (main.py --save_test_probs); the stream travels with the checkpoint."""

import importlib.util
import pickle

import numpy as np
import pytest
import torch

import main as cli
from datasets.sources.synthetic import make_synthetic
from tests.conftest import ROOT
from utils.errors import UserError

spec = importlib.util.spec_from_file_location("fuse", ROOT / "scripts" / "fuse.py")
fuse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuse)


def write(path, names, labels, probs):
    np.savez(path, names=np.array(names), labels=np.array(labels), probs=np.array(probs, np.float32))
    return str(path)


def test_weighted_mean_by_hand(tmp_path, capsys):
    # Run a: right on clips x and y; run b (clips in another order): right on z and, confidently, on x.
    a = write(tmp_path / "a.npz", ["x", "y", "z"], [0, 1, 1], [[0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])
    b = write(tmp_path / "b.npz", ["z", "x", "y"], [1, 0, 1], [[0.1, 0.9], [0.9, 0.1], [0.7, 0.3]])
    labels, fused, each = fuse.fuse([fuse.load_probs(a), fuse.load_probs(b)], [1.0, 3.0])
    np.testing.assert_array_equal(labels, [0, 1, 1])
    # x: (0.6 + 3 * 0.9) / 4 = 0.825; y: (0.8 + 3 * 0.3) / 4 = 0.425 for class 1; z: (0.3 + 3 * 0.9) / 4 = 0.75
    np.testing.assert_allclose(fused[:, 1], [0.175, 0.425, 0.75], atol=1e-6)
    np.testing.assert_allclose(each[1][:, 0], [0.9, 0.7, 0.1], atol=1e-6)  # b reordered as a
    assert fuse.topk_accuracy(labels, fused, 1) == pytest.approx(2 / 3)
    assert fuse.topk_accuracy(labels, each[0], 1) == pytest.approx(2 / 3)
    assert fuse.topk_accuracy(labels, fused, 2) == 1.0
    out = fuse.main([a, b, "--weights", "1", "1"])  # equal weights: x 0.75, y 0.55, z 0.6 for the right class
    assert out == {"top1": 1.0, "top5": 1.0, "clips": 3}
    assert capsys.readouterr().out.splitlines()[-1].split() == ["fused", "100.00", "100.00"]


def test_runs_that_do_not_match_are_refused(tmp_path):
    a = fuse.load_probs(write(tmp_path / "a.npz", ["x", "y"], [0, 1], [[0.6, 0.4], [0.2, 0.8]]))
    other_clips = fuse.load_probs(write(tmp_path / "b.npz", ["x", "w"], [0, 1], [[0.6, 0.4], [0.2, 0.8]]))
    other_labels = fuse.load_probs(write(tmp_path / "c.npz", ["y", "x"], [0, 0], [[0.6, 0.4], [0.2, 0.8]]))
    for runs, weights, match in (
        ([a, other_clips], [1, 1], "other test clips"),
        ([a, other_labels], [1, 1], "labels its clips differently"),
        ([a, a], [1], "one weight per run"),
        ([a, a], [0, 0], "not all 0"),
    ):
        with pytest.raises(UserError, match=match):
            fuse.fuse(runs, weights)
    with pytest.raises(UserError, match="--save_test_probs"):
        fuse.load_probs(tmp_path / "nowhere")
    empty = tmp_path / "empty.npz"
    empty.touch()
    with pytest.raises(UserError, match="empty.npz is not a test_probs.npz"):
        fuse.load_probs(empty)


def test_two_tiny_stream_runs_saved_evaluated_and_fused(tmp_path, capsys):
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    ann = tmp_path / "tiny.pkl"
    ann.write_bytes(pickle.dumps(data))
    base = ["synthetic", "--ann_file", str(ann), "--run_dir", str(tmp_path), "--epochs", "2", "--max_steps", "2",
            "-b", "4", "--valbatchsize", "8", "-j", "0", "--clip_len", "8", "--eval_alphas", "0",
            "--eval_corruptions", "none", "--device", "cpu", "--input_f", "Skeleton", "--save_test_probs",
            "--sweep_checkpoints", "best", "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)"]  # fmt: skip
    clean = {}
    for stream in ("joint", "bone"):
        out = cli.main(
            [*base, "--name", stream, "--stream", stream, "--aug_rotate", "10", "--aug_temporal_crop", "0.8"]
        )
        clean[stream] = out["robustness"][0]["top1"]
    ckpt = torch.load(tmp_path / "bone" / "best.pt", weights_only=True)
    assert ckpt["config"]["stream"] == "bone"
    names, labels, probs = fuse.load_probs(tmp_path / "bone")
    assert probs.shape == (36, 12) and len(set(names)) == 36
    # The saved probabilities are the ones the sweep scored ...
    assert fuse.topk_accuracy(labels, probs, 1) == pytest.approx(clean["bone"])
    # ... and --evaluate rebuilds the bone stream from the checkpoint: the same probabilities again.
    cli.main([*base[:-3], "--evaluate", str(tmp_path / "bone" / "best.pt"), "--name", "bone_eval"])
    _, _, again = fuse.load_probs(tmp_path / "bone_eval")
    np.testing.assert_allclose(again, probs, atol=1e-6)
    capsys.readouterr()
    res = fuse.main([str(tmp_path / "joint"), str(tmp_path / "bone"), "--weights", "2", "1"])
    joint = fuse.load_probs(tmp_path / "joint")
    _, fused, _ = fuse.fuse([joint, (names, labels, probs)], [2, 1])
    assert res["clips"] == 36 and res["top1"] == pytest.approx(fuse.topk_accuracy(joint[1], fused, 1))
    assert "fused" in capsys.readouterr().out


def write_sweep(path, probs, families=("clean", "jitter", "swap"), severities=(0, 0.02, 0.1), suite=(0, 1, 1)):
    probs = np.array(probs, np.float32)  # (P, N, C)
    names = [f"c{i}" for i in range(probs.shape[1])]
    np.savez(path, names=np.array(names), labels=np.array([0, 1, 1]), probs=probs, family=np.array(families),
             level=np.array([""] * len(families)), severity=np.array(severities, np.float64),
             suite=np.array(suite, bool), checkpoint="last", epoch=3)  # fmt: skip
    return str(path)


def test_sweep_fused_row_by_row_by_hand(tmp_path, capsys):
    right, wrong = [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]], [[0.1, 0.9], [0.8, 0.2], [0.7, 0.3]]
    half = [[0.9, 0.1], [0.6, 0.4], [0.6, 0.4]]  # c0 right, c1 and c2 faintly wrong
    # run a: clean all right, jitter all right, swap all wrong; run b: clean half, jitter all wrong, swap all right
    a = write_sweep(tmp_path / "a.npz", [right, right, wrong])
    b = write_sweep(tmp_path / "b.npz", [half, wrong, right])
    res = fuse.main(["--sweep", a, b])
    # clean: right + half fused: c1 (0.8 + 0.4) / 2 = 0.6, c2 (0.7 + 0.4) / 2 = 0.55 for class 1: all right;
    # jitter and swap: right + wrong ties 0.5 / 0.5 on every clip; the lower class wins: only c0 right
    assert res["fused"]["clean"] == 1.0
    assert res["fused"]["families"] == {"jitter": pytest.approx(1 / 3), "swap": pytest.approx(1 / 3)}
    assert res["fused"]["mCA"] == pytest.approx(1 / 3)
    assert res["runs"][0] == {"clean": 1.0, "mCA": 0.5, "families": {"jitter": 1.0, "swap": 0.0}}
    assert res["runs"][1]["clean"] == pytest.approx(1 / 3) and res["runs"][1]["mCA"] == 0.5
    assert capsys.readouterr().out.splitlines()[-1].split()[:3] == ["fused", "100.00", "33.33"]
    other = write_sweep(tmp_path / "o.npz", [right, right, wrong], severities=(0, 0.05, 0.1))
    with pytest.raises(UserError, match="other corruptions"):
        fuse.fuse_sweep([fuse.load_sweep(a), fuse.load_sweep(other)], [1, 1])
    with pytest.raises(UserError, match="--save_test_probs"):
        fuse.load_sweep(tmp_path / "nowhere")


def test_sweep_probs_are_the_rows_the_sweep_scored(tmp_path):
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    ann = tmp_path / "tiny.pkl"
    ann.write_bytes(pickle.dumps(data))
    out = cli.main(["synthetic", "--ann_file", str(ann), "--run_dir", str(tmp_path), "--epochs", "1", "--max_steps",
                    "2", "-b", "4", "-j", "0", "--clip_len", "8", "--eval_alphas", "0", "0.05", "--eval_corruptions",
                    "missing_joints:light", "swap:moderate", "--device", "cpu", "--input_f", "Skeleton",
                    "--save_test_probs", "--sweep_checkpoints", "last", "--val_fraction", "0", "--model_cfg",
                    "base_channels=4", "stage_blocks=(1,1,1)", "--name", "r"])  # fmt: skip
    rows = out["robustness"]
    sweep = fuse.load_sweep(tmp_path / "r")
    assert list(sweep["family"]) == [r["family"] for r in rows] == ["clean", "jitter", "missing_joints", "swap"]
    assert list(sweep["suite"]) == [r["suite"] for r in rows]
    for k, r in enumerate(rows):
        assert fuse.topk_accuracy(sweep["labels"], sweep["probs"][k], 1) == pytest.approx(r["top1"])
    names, labels, probs = fuse.load_probs(tmp_path / "r")  # the clean row is test_probs.npz's
    np.testing.assert_array_equal(names, sweep["names"])
    np.testing.assert_allclose(probs, sweep["probs"][0], atol=1e-6)
    res = fuse.fuse_sweep([sweep, sweep], [1, 1])  # a run fused with itself is itself
    suite = [r["top1"] for r in rows if r["suite"]]
    assert res["fused"]["clean"] == pytest.approx(rows[0]["top1"])
    assert res["fused"]["mCA"] == pytest.approx(np.mean(suite))
