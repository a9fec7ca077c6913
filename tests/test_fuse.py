"""Late fusion (scripts/fuse.py) on hand-made probabilities, and end to end on two tiny runs of two streams that
save their test probabilities (main.py --save_test_probs); the stream travels with the checkpoint."""

import importlib.util
import pickle

import numpy as np
import pytest
import torch

import main as cli
from datasets.synthetic import make_synthetic
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
