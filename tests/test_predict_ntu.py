"""Raw NTU .skeleton files end to end: convert, train on the converted file (`main.py custom`), predict
on a .skeleton file. The class names are NTU60's, and the probabilities are those `main.py --evaluate`
computes for the same clip."""

import json
import pickle

import numpy as np
import pytest
import torch

import main as cli
import predict
from datasets.sources import convert
from datasets.store.label_maps import NTU60_CLASSES, class_names, ntu_label_map
from tests.conftest import error_line, shared_or_skip
from tests.test_predict import dump

TINY_POSE = ["--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)"]
TINY_MB = ["--model_cfg", "dim_feat=16", "dim_rep=16", "depth=1", "num_heads=2", "hidden_dim=32"]
# Subjects 1 and 2 train and subject 3 tests in NTU60's cross-subject protocol; A058 (handshaking) has
# two bodies. The largest label is 57, so only the NTU label map makes the model's 60 classes.
TRAIN = ("S001C001P001R001A001", "S001C002P002R001A023", "S001C001P001R001A058")
TEST = ("S002C001P003R001A001", "S002C001P003R001A058")
RUNS = {  # name: (convert flags, training flags, views per clip of the evaluation)
    "pose3d": ([], ["--input_f", "Heatmap", "--num_clips", "2", "--test_flip", *TINY_POSE], 4),
    "pose2d": (["--2d"], ["--input_f", "Limb", "--test_flip", *TINY_POSE], 2),
    "motionbert": ([], ["--model_type", "motionbert", "--input_f", "Skeleton", "--clip_len", "16", *TINY_MB], 1),
}


def skeleton_text(rng: np.random.Generator, name: str, num_frames: int = 14) -> str:
    """A raw .skeleton file (datasets/sources/ntu_skeleton.py): per frame its bodies, each a 10-field body line,
    the joint count 25 and 25 lines of x y z depthX depthY colorX colorY orientation(4) trackingState.
    The joints of a class move at their own speed, so that the clips differ."""
    action = int(name[-3:])
    bodies = 2 if action >= 50 else 1
    rest = rng.normal(0, 0.3, (bodies, 25, 3)) + np.array([0.0, 0.0, 3.0])  # (B, 25, 3) metres
    lines = [str(num_frames)]
    for f in range(num_frames):
        lines.append(str(bodies))
        for b in range(bodies):
            xyz = rest[b] + 0.05 * np.sin(0.1 * action * f + np.arange(25))[:, None]  # (25, 3)
            lines += [f"7205759403794{b} 0 1 1 1 1 0 0.01 -0.2 2", "25"]
            for j, (x, y, z) in enumerate(xyz):
                state = 1 if j == 21 else 2  # one inferred joint: a 2D score of 0.5
                lines.append(f"{x:.6f} {y:.6f} {z:.6f} 250 200 {960 + 500 * x:.3f} {540 - 500 * y:.3f} 0 0 0 0 {state}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def skeletons(tmp_path_factory):
    src = tmp_path_factory.mktemp("skeleton")
    rng = np.random.default_rng(0)
    for name in TRAIN + TEST:
        (src / f"{name}.skeleton").write_text(skeleton_text(rng, name))
    return src


def train(root, src, name: str) -> dict:
    """Convert the .skeleton folder with `python -m datasets.convert ntu` and train one tiny run on it."""
    convert_flags, train_flags, views = RUNS[name]
    ann_file = root / f"{name}.pkl"
    assert convert.main(["ntu", str(src), str(ann_file), *convert_flags]) == 0
    cli.main(
        [
            "custom", "--ann_file", str(ann_file), "--run_dir", str(root), "--name", name, "--epochs", "1",
            "-b", "3", "-j", "0", "--clip_len", "8", "--input_size", "32", "--eval_alphas", "0",
            "--eval_corruptions", "none", "--device", "cpu",
            *train_flags,
        ]
    )  # fmt: skip
    return {"name": name, "ann_file": ann_file, "ckpt": root / name / "best.pt", "views": views}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, skeletons):
    """name -> the run of that name, trained on first use."""
    runs = {}

    def get(name: str) -> dict:
        if name not in runs:
            runs[name] = train(tmp_path_factory.mktemp(name), skeletons, name)
        return runs[name]

    return get


@pytest.fixture(params=list(RUNS))
def run(request, trained):
    return trained(request.param)


def run_predict(ckpt, path, *extra):
    return predict.main(["--checkpoint", str(ckpt), "--input", str(path), "--device", "cpu", *extra])


def test_ntu_label_map():
    names = list(TRAIN + TEST)
    labels = np.array([int(n[-3:]) - 1 for n in names])
    assert ntu_label_map(names, labels) == "ntu60"
    assert ntu_label_map([*names, "S018C001P003R001A001"], np.append(labels, 0)) == "ntu120"  # setup 18
    assert ntu_label_map([*names, "S001C001P003R001A061"], np.append(labels, 60)) == "ntu120"  # action 61
    assert ntu_label_map(names, np.arange(len(names))) is None  # relabelled: NTU names would lie
    assert ntu_label_map(["clip0", "clip1"], np.array([0, 1])) is None
    assert class_names("ntu60", 60)[57] == "handshaking"


def test_skeleton_prediction_has_ntu60_names(run, skeletons, tmp_path, capsys):
    """The converted file holds labels 0..57 only; the model still has NTU60's 60 named classes."""
    ckpt = torch.load(run["ckpt"], weights_only=True)
    assert ckpt["config"]["num_classes"] == 60 and ckpt["config"]["label_map"] == "ntu60"
    assert ckpt["config"]["coord_dim"] == (2 if run["name"] == "pose2d" else 3)
    out = tmp_path / "probs.json"
    res = run_predict(run["ckpt"], skeletons / f"{TEST[1]}.skeleton", "--save_probs", str(out))
    stdout = capsys.readouterr().out
    r = res[TEST[1]]
    probs = np.array(r["probs"])
    assert probs.shape == (60,) and abs(probs.sum() - 1) < 1e-5 and r["label"] == 57
    assert [c for c, _, _ in r["top5"]] == list(np.argsort(-probs, kind="stable")[:5])
    assert all(name == NTU60_CLASSES[c] and p == pytest.approx(probs[c]) for c, name, p in r["top5"])
    assert "(label 57: handshaking)" in stdout and r["top5"][0][1] in stdout and "60 classes" in stdout
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))


def test_skeleton_prediction_equals_main_evaluate(run, skeletons, tmp_path, eval_logits):
    """predict on a .skeleton file = the softmax mean over the views (the checkpoint's --num_clips and
    --test_flip) of the logits `main.py --evaluate` computes on the converted clip."""
    data = pickle.load(open(run["ann_file"], "rb"))
    [ann] = [a for a in data["annotations"] if a["frame_dir"] == TEST[0]]
    split = {"xsub_train": [TEST[0]], "xsub_val": [TEST[0]]}
    # No 'layout' key: --evaluate takes the joint layout from the checkpoint, which the clip must fit.
    clip_file = dump({"split": split, "annotations": [ann]}, tmp_path / "clip.pkl")
    views = run["views"]
    flags = (["--num_clips", "2"] if views == 4 else []) + (["--test_flip"] if views in (2, 4) else [])
    cli.main(
        [
            "custom", "--ann_file", str(clip_file), "--evaluate", str(run["ckpt"]), "--run_dir", str(tmp_path),
            "--name", "ev", "--eval_alphas", "0", "--eval_corruptions", "none", "-j", "0", "--device", "cpu", *flags,
        ]
    )  # fmt: skip
    ref = torch.cat(eval_logits).softmax(-1).view(1, views, -1).mean(1)[0].numpy()  # (C,)
    got = np.array(run_predict(run["ckpt"], skeletons / f"{TEST[0]}.skeleton")[TEST[0]]["probs"])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    if run["name"] == "pose3d":  # the options are read: other views, other probabilities
        single = run_predict(run["ckpt"], skeletons / f"{TEST[0]}.skeleton", "--num_clips", "1", "--no-test_flip")
        assert not np.allclose(single[TEST[0]]["probs"], got)


def test_evaluate_refuses_data_of_another_layout(trained, tmp_path, capsys):
    """--evaluate of an NTU-25 model on COCO-17 keypoints stops with one line naming both."""
    ann = {"frame_dir": "clip", "label": 0, "img_shape": (1080, 1920), "original_shape": (1080, 1920),
           "total_frames": 8, "keypoint": np.ones((1, 8, 17, 2), np.float32),
           "keypoint_score": np.ones((1, 8, 17), np.float32)}  # fmt: skip
    clip_file = dump(
        {"split": {"xsub_train": ["clip"], "xsub_val": ["clip"]}, "annotations": [ann]}, tmp_path / "c.pkl"
    )
    with pytest.raises(SystemExit) as e:
        cli.main(["custom", "--ann_file", str(clip_file), "--evaluate", str(trained("pose3d")["ckpt"]),
                  "--run_dir", str(tmp_path), "--eval_alphas", "0",
                  "--eval_corruptions", "none", "-j", "0", "--device", "cpu"])  # fmt: skip
    msg = error_line(capsys, e)
    assert msg.startswith("error:") and "17 joints" in msg and "ntu25" in msg and "\n" not in msg


@pytest.mark.parametrize("flag", [["--test_flip"], ["--num_clips", "2"]])
def test_motionbert_refuses_rendered_views(trained, skeletons, flag, capsys):
    """MotionBERT tests one view, the whole clip resampled: more views are refused in one line."""
    with pytest.raises(SystemExit) as e:
        run_predict(trained("motionbert")["ckpt"], skeletons / f"{TEST[0]}.skeleton", *flag)
    msg = error_line(capsys, e)
    assert msg.startswith("error:") and flag[0] in msg and "motionbert" in msg.lower() and "\n" not in msg


def test_real_ntu_skeleton_files(tmp_path, capsys):
    """The five real NTU60 files of ../shared: converted, a tiny MotionBERT trained on them, and the
    two-person handshaking clip (A058) predicted with NTU60 names."""
    src = shared_or_skip("data", "ntu_samples", "skeleton")
    ann_file = tmp_path / "ntu5.pkl"
    assert convert.main(["ntu", str(src), str(ann_file)]) == 0
    cli.main(
        [
            "custom", "--ann_file", str(ann_file), "--run_dir", str(tmp_path), "--name", "mb", "--epochs", "1",
            "-b", "3", "-j", "0", "--clip_len", "16", "--eval_alphas", "0",
            "--eval_corruptions", "none", "--device", "cpu",
            "--model_type", "motionbert", "--input_f", "Skeleton", *TINY_MB,
        ]
    )  # fmt: skip
    name = "S001C003P008R002A058"
    res = run_predict(tmp_path / "mb" / "best.pt", src / f"{name}.skeleton")
    stdout = capsys.readouterr().out
    assert "60 classes" in stdout and f"{name}  (label 57: handshaking)" in stdout
    assert len(res[name]["probs"]) == 60 and all(n == NTU60_CLASSES[c] for c, n, _ in res[name]["top5"])
