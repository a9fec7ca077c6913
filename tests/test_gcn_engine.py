"""The graph networks through the engine: their clips (pyskl's GCN pipeline in the loader workers), their run
configuration (the layout's graph, persons), a CLI run that trains, sweeps, evaluates and predicts, and a
pyskl checkpoint behind `--tune_from`."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import main as cli
from datasets.pipeline.clips import SkeletonClips
from datasets.pipeline.gcn_prep import gcn_clip
from datasets.sources.synthetic import make_synthetic
from datasets.store.annotations import pack_annotations
from datasets.store.layouts import COCO17, NTU25
from engine.config import resolve_run_config
from tests.conftest import shared_or_skip

TINY_GCN = ["--model_cfg", "base_channels=6"]


def _store_3d(n: int = 4, frames: int = 30, seed: int = 0):
    """n one-person NTU-25 clips in metres, float16 as pyskl's 3D pickles hold them."""
    rng = np.random.default_rng(seed)
    anns = [{"frame_dir": f"S001C001P001R001A{i + 1:03d}", "label": i % 3, "total_frames": frames,
             "keypoint": (rng.normal(size=(1, frames, 25, 3)) * 0.3 + [0, 0, 3]).astype(np.float16)}
            for i in range(n)]  # fmt: skip
    return pack_annotations({"split": {"xsub_val": [a["frame_dir"] for a in anns]}, "annotations": anns})


def test_clips_are_pyskls_gcn_input_of_the_stream():
    """Test clips are gcn_clip's output (the test sampling, num_clips clips); training views of one item
    share their frames, so without a corruption the two views are equal."""
    store = _store_3d()
    clips = SkeletonClips(store, np.arange(4), reads="joints", joints_prep="gcn", stream="bone", train=False,
                          clip_len=16, layout=NTU25, num_clips=3)  # fmt: skip
    item = clips[1]
    clip = store.get(1)
    want = gcn_clip(clip["keypoint"], ("b",), NTU25, clip_len=16, num_clips=3, num_person=2)
    assert item["keypoint"].shape == (3, 2, 16, 25, 3) and "keypoint_score" not in item
    np.testing.assert_array_equal(item["keypoint"], want)
    train = SkeletonClips(store, np.arange(4), reads="joints", joints_prep="gcn", train=True, clip_len=16,
                          layout=NTU25, noisy_view=True, noise_alpha=0.0)  # fmt: skip
    item = train[2]
    assert item["keypoint"].shape == (1, 2, 16, 25, 3)
    np.testing.assert_array_equal(item["keypoint"], item["noisy_keypoint"])
    noisy = SkeletonClips(store, np.arange(4), reads="joints", joints_prep="gcn", train=True, clip_len=16,
                          layout=NTU25, noisy_view=True, noise_alpha=0.05)[2]  # fmt: skip
    np.testing.assert_array_equal(noisy["keypoint"], item["keypoint"])  # the clean view is unchanged
    assert not np.array_equal(noisy["noisy_keypoint"], item["keypoint"])


def test_golden_clip_through_the_dataset():
    """A real NTU clip of pyskl's golden pipeline, through the project's store and Dataset: pyskl's test input."""
    root = shared_or_skip("golden", "gcn", "pipeline")
    with open(root / "annotations_3d.pkl", "rb") as f:
        data = pickle.load(f)
    store = pack_annotations(data)
    name = "S001C003P008R002A058"
    i = list(store.names).index(name)
    clips = SkeletonClips(store, np.array([i]), reads="joints", joints_prep="gcn", train=False, clip_len=100,
                          layout=NTU25, num_clips=10)  # fmt: skip
    want = np.load(root / f"3d_{name}.npz")["out.j.nc10"]
    np.testing.assert_allclose(clips[0]["keypoint"], want, atol=1e-5, rtol=0)


def test_run_config_carries_the_graph_and_persons():
    cfg = resolve_run_config("ctrgcn", input_format="Skeleton", layout=COCO17, num_joints=17, coord_dim=2,
                             num_classes=5, dropout=0.0, clip_len=None, input_size=56, max_persons=1)  # fmt: skip
    assert cfg.reads == "joints" and cfg.joints_prep == "gcn" and cfg.clip_len == 100
    assert cfg.model_cfg["layout"] == "coco17" and cfg.model_cfg["num_person"] == 1
    declared = {**NTU25.to_dict(), "name": "my25"}
    from datasets.store.layouts import layout_from_dict

    cfg = resolve_run_config("stgcnpp", input_format="Skeleton", layout=layout_from_dict(declared, "test"),
                             num_joints=25, coord_dim=3, num_classes=5, dropout=0.0, clip_len=20, input_size=56,
                             max_persons=2)  # fmt: skip
    assert cfg.model_cfg["layout"]["name"] == "my25" and cfg.clip_len == 20


@pytest.fixture(scope="module")
def ann_file(tmp_path_factory):
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


@pytest.mark.parametrize("model", ["stgcnpp", "ctrgcn"])
def test_cli_trains_sweeps_evaluates_and_predicts(tmp_path, ann_file, model, capsys):
    argv = ["synthetic", "--ann_file", str(ann_file), "--run_dir", str(tmp_path), "--name", model, "--model_type",
            model, "--input_f", "Skeleton", "--stream", "bone", "--clip_len", "12", "--epochs", "2", "--max_steps",
            "2", "-b", "4", "-j", "0", "--gamma", "1", "--noise_alpha", "0.05", "--num_clips", "2",
            "--eval_alphas", "0", "--eval_corruptions", "missing_joints:0.2", "--device", "cpu", *TINY_GCN]  # fmt: skip
    out = cli.main(argv)
    rows = out["robustness"]
    assert [r["family"] for r in rows if r["checkpoint"] == "last"] == ["clean", "missing_joints"]
    saved = torch.load(tmp_path / model / "last.pt", weights_only=True)["config"]
    assert saved["reads"] == "joints" and saved["model_cfg"]["layout"] == "coco17" and saved["stream"] == "bone"
    again = cli.main([*argv[:5], "--evaluate", str(tmp_path / model / "last.pt"), "--name", "ev", "--num_clips",
                      "2", "--eval_alphas", "0", "--eval_corruptions", "missing_joints:0.2"])  # fmt: skip
    last = [r for r in rows if r["checkpoint"] == "last"]
    assert [r["top1"] for r in again["robustness"]] == [r["top1"] for r in last]
    capsys.readouterr()
    probs = cli.main(["predict", "--checkpoint", str(tmp_path / model / "last.pt"), "--input", str(ann_file),
                      "--num_clips", "2"])  # fmt: skip
    assert len(probs) > 0 and all(abs(sum(p["probs"]) - 1) < 1e-4 for p in probs.values())


def test_a_pyskl_checkpoint_tunes_a_run(tmp_path):
    """pyskl's ST-GCN++ (coco layout) under --tune_from: every weight of the backbone arrives."""
    ckpt = shared_or_skip("golden", "gcn", "models", "stgcnpp_coco", "checkpoint.pth")
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=30)
    ann = tmp_path / "tiny.pkl"
    ann.write_bytes(pickle.dumps(data))
    out = cli.main(["synthetic", "--ann_file", str(ann), "--run_dir", str(tmp_path), "--name", "tuned",
                    "--model_type", "stgcnpp", "--input_f", "Skeleton", "--model_cfg", "base_channels=12",
                    "--tune_from", str(ckpt), "--clip_len", "12", "--epochs", "1", "--max_steps", "1", "-b", "4",
                    "-j", "0", "--lr", "1e-30", "--wd", "0", "--gamma", "0", "--noise_alpha", "0",
                    "--val_fraction", "0", "--eval_alphas", "0", "--eval_corruptions", "none",
                    "--device", "cpu"])  # fmt: skip
    assert out["robustness"]
    theirs = torch.load(ckpt, weights_only=True)["state_dict"]
    ours = torch.load(tmp_path / "tuned" / "last.pt", weights_only=True)["model"]
    weights = [k for k in theirs if k.startswith("backbone.") and "running" not in k and "num_batches" not in k]
    # lr 1e-30 (0 is refused): steps far below float32's resolution, so the weights stay pyskl's
    assert weights and all(torch.equal(ours[k], theirs[k]) for k in weights)


def _streams_argv(tmp_path, ann_file, name, *extra):
    return ["synthetic", "--ann_file", str(ann_file), "--run_dir", str(tmp_path), "--name", name, "--model_type",
            "stgcnpp", "--input_f", "Skeleton", "--streams", "joint", "bone", "--clip_len", "12", "--epochs", "2",
            "--max_steps", "2", "-b", "4", "-j", "0", "--gamma", "0", "--noise_alpha", "0.05", "--eval_alphas", "0",
            "--eval_corruptions", "missing_joints:0.2", "--device", "cpu", *TINY_GCN, *extra]  # fmt: skip


def test_streams_train_one_model_each_then_score_their_fusion(tmp_path, ann_file):
    import json

    from engine.fusion import fuse

    out = cli.main(_streams_argv(tmp_path, ann_file, "s"))
    run = tmp_path / "s"
    for stream in ("joint", "bone"):
        assert (run / stream / "robustness.csv").is_file()
        assert torch.load(run / stream / "last.pt", weights_only=True)["config"]["stream"] == stream
    fusion = json.loads((run / "fusion.json").read_text())
    assert fusion["streams"] == ["joint", "bone"] and fusion["rule"] == "auto" and len(fusion["validation"]) >= 1
    assert [r["family"] for r in out["robustness"]] == ["clean", "missing_joints"]
    assert "fused" in (run / "robustness.csv").read_text()
    # the fused rows are the weighted mean of the two streams' probabilities, row by row
    sweeps = [np.load(run / s / "sweep_probs.npz") for s in ("joint", "bone")]
    for r, row in enumerate(out["robustness"]):
        probs = fuse([z["probs"][r] for z in sweeps], tuple(fusion["weights"]))
        assert row["top1"] == pytest.approx(float((probs.argmax(1) == sweeps[0]["labels"]).mean()))
    clean = np.load(run / "test_probs.npz")  # the fusion's clean probabilities, for scripts/fuse.py and tables
    assert float((clean["probs"].argmax(1) == clean["labels"]).mean()) == pytest.approx(out["robustness"][0]["top1"])


def test_streams_resume_where_a_stream_stopped(tmp_path, ann_file, monkeypatch):
    import engine.train

    straight = cli.main(_streams_argv(tmp_path, ann_file, "straight", "--fusion_weights", "1", "2"))
    real = engine.train.train_one_epoch

    def stop_in_the_second_stream(tr, plan, loaders, pos, *rest):
        if tr.cfg.stream == "bone" and pos.epoch == 1:
            raise KeyboardInterrupt
        return real(tr, plan, loaders, pos, *rest)

    monkeypatch.setattr(engine.train, "train_one_epoch", stop_in_the_second_stream)
    with pytest.raises(KeyboardInterrupt):
        cli.main(_streams_argv(tmp_path, ann_file, "resumed", "--fusion_weights", "1", "2"))
    monkeypatch.setattr(engine.train, "train_one_epoch", real)
    resumed = cli.main(_streams_argv(tmp_path, ann_file, "resumed", "--fusion_weights", "1", "2"))
    assert resumed["weights"] == straight["weights"] == (1.0, 2.0)
    assert resumed["robustness"] == straight["robustness"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fusion_weights", "1"], "one finite weight >= 0 per stream (2)"),
        (["--fusion_weights", "x", "y"], "auto, equal, pyskl or numbers"),
        (["--streams", "joint", "joint"], "names a stream twice"),
    ],
)
def test_streams_flags_that_cannot_work(tmp_path, ann_file, capsys, extra, message):
    from tests.conftest import error_line

    with pytest.raises(SystemExit) as e:
        cli.main(_streams_argv(tmp_path, ann_file, "bad", *extra))
    assert message in error_line(capsys, e)


def test_visibility_tells_a_missing_joint_from_one_at_the_origin(tmp_path, ann_file):
    """--visibility: a seen / missing channel per joint in a GCN's clips and in the Skeleton input, sized into
    the model; a joint hidden by the missing-joints corruption reads 0 there and 1 in the clean clip."""
    from datasets.batch.render import render

    store = _store_3d()
    kw = {"reads": "joints", "joints_prep": "gcn", "train": False, "clip_len": 16, "layout": NTU25}
    plain = SkeletonClips(store, np.arange(4), **kw)[0]["keypoint"]
    seen = SkeletonClips(store, np.arange(4), visibility=True, **kw)[0]["keypoint"]
    hidden = SkeletonClips(store, np.arange(4), visibility=True, corruptions=(("missing_joints", 0.4),), **kw)[0]
    assert seen.shape == (*plain.shape[:-1], 4)
    np.testing.assert_array_equal(seen[..., :3], plain)
    person = seen[:, 0]  # the one real person: every joint seen
    assert (person[..., 3] == 1).all() and 0.2 < (hidden["keypoint"][:, 0, ..., 3] == 0).mean() < 0.6
    kp, score = torch.rand(1, 1, 4, 17, 2) * 30 + 1, torch.ones(1, 1, 4, 17)
    score[0, 0, 1, 3] = 0  # joint 3 missing in frame 1
    x = render("Skeleton", kp, score, (32, 32), layout=COCO17, visibility=True).view(17, 3, 4)
    assert x[3, 2, 1] == 0 and x[3, :2, 1].abs().sum() == 0 and x[:, 2].sum() == 17 * 4 - 1
    out = cli.main(["synthetic", "--ann_file", str(ann_file), "--run_dir", str(tmp_path), "--name", "vis",
                    "--model_type", "stgcnpp", "--visibility", "--clip_len", "12", "--epochs", "1", "--max_steps",
                    "1", "-b", "4", "-j", "0", "--eval_alphas", "0", "--eval_corruptions", "none",
                    *TINY_GCN])  # fmt: skip
    assert out["robustness"]
    saved = torch.load(tmp_path / "vis" / "last.pt", weights_only=True)
    assert saved["config"]["visibility"] and saved["config"]["model_cfg"]["in_channels"] == 4
    with pytest.raises(SystemExit):
        cli.main(["synthetic", "--ann_file", str(ann_file), "--visibility", "--input_f", "Heatmap", "--epochs", "1"])
