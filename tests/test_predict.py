"""`predict.main([...])`: top-5 per clip from a trained checkpoint, equal to what `main.py --evaluate` computes."""

import json
import pickle
import sys
import types

import numpy as np
import pytest
import torch

import main as cli
import predict
from datasets.sources import inputs
from datasets.sources.synthetic import class_names as synthetic_names
from datasets.sources.synthetic import make_synthetic
from datasets.store.label_maps import NTU60_CLASSES, NTU120_CLASSES, class_names
from tests.conftest import error_line, shared_or_skip

TINY_POSE = ["--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)"]
NUM_CLIPS = 4  # clips of the prediction input


def dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny PoseConv3D trained with 2 test clips + flip, and a pickle of a few validation clips."""
    root = tmp_path_factory.mktemp("predict")
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    train_file = dump(data, root / "tiny.pkl")
    cli.main(
        [
            "synthetic", "--ann_file", str(train_file), "--run_dir", str(root), "--name", "run",
            "--epochs", "1", "--max_steps", "1", "-b", "4", "-j", "0", "--clip_len", "8", "--input_size", "32",
            "--eval_alphas", "0",
            "--eval_corruptions", "none", "--device", "cpu", "--num_clips", "2", "--test_flip", *TINY_POSE,
        ]
    )  # fmt: skip
    val = set(data["split"]["xsub_val"])
    clips = [a for a in data["annotations"] if a["frame_dir"] in val][:: len(val) // NUM_CLIPS][:NUM_CLIPS]
    names = [a["frame_dir"] for a in clips]
    # Both splits name the clips, so that `main.py --evaluate` can score the same file.
    clip_file = dump({"split": {"xsub_train": names, "xsub_val": names}, "annotations": clips}, root / "clips.pkl")
    return {"root": root, "ckpt": root / "run" / "best.pt", "clips": clips, "clip_file": clip_file}


def run_predict(setup, *extra):
    return predict.main(["--checkpoint", str(setup["ckpt"]), "--device", "cpu", *extra])


def test_top5_named_classes_and_json(setup, tmp_path, capsys):
    out_file = tmp_path / "probs.json"
    res = run_predict(setup, "--input", str(setup["clip_file"]), "--save_probs", str(out_file))
    stdout = capsys.readouterr().out
    names = synthetic_names(12)
    assert list(res) == [a["frame_dir"] for a in setup["clips"]]
    for clip, r in zip(setup["clips"], res.values(), strict=True):
        probs = np.array(r["probs"])
        assert probs.shape == (12,) and abs(probs.sum() - 1) < 1e-5 and (probs >= 0).all()
        assert len(r["top5"]) == 5 and r["label"] == clip["label"]
        ids = [c for c, _, _ in r["top5"]]
        assert ids == list(np.argsort(-probs)[:5])
        assert all(name == names[c] and p == pytest.approx(probs[c]) for c, name, p in r["top5"])
        assert clip["frame_dir"] in stdout and r["top5"][0][1] in stdout
    assert json.loads(out_file.read_text()) == json.loads(json.dumps(res))


def test_equals_main_evaluate(setup, tmp_path, eval_logits):
    """Probabilities equal the softmax-mean over views of the logits `main.py --evaluate` computes;
    the views (2 clips + flip) come from the checkpoint's saved flags."""
    out = cli.main(
        [
            "synthetic", "--ann_file", str(setup["clip_file"]), "--evaluate", str(setup["ckpt"]),
            "--run_dir", str(tmp_path), "--name", "ev", "--eval_alphas", "0",
            "--eval_corruptions", "none", "--num_clips", "2", "--test_flip",
            "--valbatchsize", "3", "-j", "0", "--device", "cpu",
        ]
    )  # fmt: skip
    ref = torch.cat(eval_logits).softmax(-1).view(NUM_CLIPS, 2 * 2, -1).mean(1).numpy()  # (N, C): 2 clips x 2 flips
    res = run_predict(setup, "--input", str(setup["clip_file"]))
    got = np.array([res[a["frame_dir"]]["probs"] for a in setup["clips"]])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    labels = np.array([a["label"] for a in setup["clips"]])
    assert out["robustness"][0]["top1"] == pytest.approx((got.argmax(1) == labels).mean())
    # Other views give other probabilities: the options are read.
    single = run_predict(setup, "--input", str(setup["clip_file"]), "--num_clips", "1", "--no-test_flip")
    assert not np.allclose(np.array([single[a["frame_dir"]]["probs"] for a in setup["clips"]]), got)


def test_list_and_single_dict_inputs(setup, tmp_path):
    full = run_predict(setup, "--input", str(setup["clip_file"]))
    unlabelled = [{k: v for k, v in a.items() if k != "label"} for a in setup["clips"]]
    as_list = run_predict(setup, "--input", str(dump(unlabelled, tmp_path / "list.pkl")))
    assert list(as_list) == list(full)
    for name, r in as_list.items():
        assert r["label"] == -1 and np.allclose(r["probs"], full[name]["probs"])
    one = {k: v for k, v in setup["clips"][1].items() if k not in ("label", "frame_dir")}
    single = run_predict(setup, "--input", str(dump(one, tmp_path / "one.pkl")))
    [(name, r)] = single.items()
    assert name == "one.pkl#0" and np.allclose(r["probs"], full[setup["clips"][1]["frame_dir"]]["probs"])


def test_defaults_without_saved_args(setup, tmp_path):
    """A checkpoint without the run's flags: 1 clip, no flip, and 'class N' names (no known dataset)."""
    ckpt = torch.load(setup["ckpt"], weights_only=True)
    del ckpt["args"], ckpt["checksum"]  # as an older checkpoint: no flags, no checksum
    bare = tmp_path / "bare.pt"
    torch.save(ckpt, bare)
    args = ["--device", "cpu", "--input", str(setup["clip_file"])]
    res = predict.main(["--checkpoint", str(bare), *args])
    ref = run_predict(setup, "--input", str(setup["clip_file"]), "--num_clips", "1", "--no-test_flip")
    for name, r in res.items():
        assert np.allclose(r["probs"], ref[name]["probs"])
        assert all(n == f"class {c}" for c, n, _ in r["top5"])


def _bad_inputs(tmp_path, clip):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle")
    joints = dict(clip, keypoint=clip["keypoint"][:, :, :15], keypoint_score=clip["keypoint_score"][:, :, :15])
    m, t = clip["keypoint"].shape[:2]
    skel = tmp_path / "S001C001P001R001A001.skeleton"
    skel.write_text("not a skeleton\n")
    other = tmp_path / "clip.txt"
    other.write_text("?")
    return {
        "input_missing": (tmp_path / "absent.pkl", "does not exist"),
        "unreadable": (garbage, "cannot unpickle"),
        "wrong_joints": (dump([joints], tmp_path / "v15.pkl"), "15 joints"),
        "skeleton": (skel, "skeleton"),
        "unknown_type": (other, "unknown file type"),
    }


@pytest.mark.parametrize("case", ["input_missing", "unreadable", "wrong_joints", "skeleton", "unknown_type"])
def test_bad_inputs_are_one_line(setup, tmp_path, case, capsys):
    path, words = _bad_inputs(tmp_path, setup["clips"][0])[case]
    with pytest.raises(SystemExit) as e:
        run_predict(setup, "--input", str(path))
    msg = error_line(capsys, e)
    assert msg.startswith("error:") and words in msg and "\n" not in msg


def test_ntu_skeleton_file_reaches_the_layout_check(setup, capsys):
    """A raw Kinect file (25 joints) is read by datasets/sources/ntu_skeleton.py, then refused by a COCO-17 model."""
    path = shared_or_skip("data", "ntu_samples", "skeleton", "S001C001P001R001A011.skeleton")
    with pytest.raises(SystemExit) as e:
        run_predict(setup, "--input", str(path))
    msg = error_line(capsys, e)
    assert ("3D keypoints" in msg or "25 joints" in msg) and "\n" not in msg


@pytest.mark.parametrize("case", ["missing", "foreign"])
def test_bad_checkpoint_is_one_line(setup, tmp_path, case, capsys):
    path = tmp_path / "model.pt"
    if case == "foreign":
        torch.save({"conv.weight": torch.zeros(2)}, path)  # a plain state dict, no run configuration
    with pytest.raises(SystemExit) as e:
        predict.main(["--checkpoint", str(path), "--input", str(setup["clip_file"]), "--device", "cpu"])
    msg = error_line(capsys, e)
    assert msg.startswith("error:") and "model.pt" in msg and "\n" not in msg


def test_video_without_mediapipe_says_how_to_install(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails, installed or not
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")
    with pytest.raises(SystemExit) as e:
        run_predict(setup, "--input", str(video))
    msg = error_line(capsys, e)
    assert "pip install mediapipe==0.10.21" in msg and "\n" not in msg


@pytest.fixture
def fake_mediapipe(fixtures, monkeypatch):
    """mediapipe and cv2 stand-ins replaying the landmarks that mediapipe 0.10.21 found on the first
    frames of NTU's S001C001P001R001A001_rgb.avi (../shared/data/ntu_samples/mediapipe); one extra
    frame has no person."""
    ref = dict(np.load(fixtures / "predict" / "mediapipe_S001C001P001R001A001.npz"))
    h, w = (int(s) for s in ref["img_shape"])
    norm = ref["keypoint_mp33"] / np.array([w, h], dtype=np.float32)  # (T, 33, 2) fractions of the frame
    point = types.SimpleNamespace
    landmarks = [
        point(landmark=[point(x=x, y=y, visibility=v) for (x, y), v in zip(xy, vis, strict=True)])
        for xy, vis in zip(norm, ref["keypoint_score_mp33"], strict=True)
    ] + [None]

    class Pose:
        def __init__(self, **kwargs):
            self.frame = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def process(self, rgb):
            assert rgb.shape == (h, w, 3)
            self.frame += 1
            return types.SimpleNamespace(pose_landmarks=landmarks[self.frame - 1])

    class VideoCapture:
        def __init__(self, path):
            self.left = len(landmarks)

        def isOpened(self):
            return True

        def read(self):
            self.left -= 1
            return (True, np.zeros((h, w, 3), np.uint8)) if self.left >= 0 else (False, None)

        def release(self):
            pass

    mp = types.ModuleType("mediapipe")
    mp.solutions = types.SimpleNamespace(pose=types.SimpleNamespace(Pose=Pose))
    cv2 = types.ModuleType("cv2")
    cv2.VideoCapture, cv2.COLOR_BGR2RGB, cv2.cvtColor = VideoCapture, 4, lambda img, code: img
    monkeypatch.setitem(sys.modules, "mediapipe", mp)
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    return ref


def test_video_keypoints_are_coco17_pixels(setup, tmp_path, fake_mediapipe, capsys):
    ref = fake_mediapipe
    video = tmp_path / "S001C001P001R001A001_rgb.avi"
    video.write_bytes(b"\0")
    ann = inputs.read_video(video)
    t = len(ref["keypoint"])
    assert ann["keypoint"].shape == (1, t + 1, 17, 2) and ann["img_shape"] == (1080, 1920)
    np.testing.assert_allclose(ann["keypoint"][0, :t], ref["keypoint"], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(ann["keypoint_score"][0, :t], ref["keypoint_score"])
    assert not ann["keypoint"][0, t].any() and not ann["keypoint_score"][0, t].any()  # no person: missing
    res = run_predict(setup, "--input", str(video))
    assert list(res) == ["S001C001P001R001A001_rgb"] and len(res["S001C001P001R001A001_rgb"]["top5"]) == 5


def test_label_maps():
    assert len(NTU60_CLASSES) == 60 and len(NTU120_CLASSES) == 120 and len(set(NTU120_CLASSES)) == 120
    assert NTU120_CLASSES[0] == "drink water"
    assert NTU60_CLASSES[59] == "walking apart from each other"
    assert NTU120_CLASSES[57] == "handshaking"  # A058, the two-person sample of ../shared/data/ntu_samples
    assert NTU120_CLASSES[119] == "finger-guessing game (playing rock-paper-scissors)"
    assert class_names("ntu60", 60) == list(NTU60_CLASSES)
    assert class_names("ntu120", 120)[60] == "put on headphone"
    assert class_names("synthetic", 12) == synthetic_names(12)
    assert class_names("ntu60", 10) == [f"class {i}" for i in range(10)]  # fine-tuned to another label set
    assert class_names(None, 3) == ["class 0", "class 1", "class 2"]


def test_3d_clips_go_through_the_projection(setup, tmp_path):
    """A pose model takes 3D clips of its layout (datasets/pipeline/clips.project_3d), as training does."""
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(1, 20, 17, 3)).astype(np.float32)
    path = dump({"frame_dir": "x3d", "label": 0, "total_frames": 20, "keypoint": kp}, tmp_path / "3d.pkl")
    res = run_predict(setup, "--input", str(path))
    assert len(res["x3d"]["top5"]) == 5 and abs(sum(res["x3d"]["probs"]) - 1) < 1e-5


def test_declared_layouts_of_the_model_are_accepted_others_refused(setup, tmp_path, capsys):
    """The file-level 'layout' reaches the check: the model's layout by name or by its declaration, file
    level or per clip, gives the probabilities of the undeclared file; another 17-joint layout is refused."""
    from datasets.store.layouts import COCO17

    clips = setup["clips"]
    ref = run_predict(setup, "--input", str(setup["clip_file"]))
    for i, declared in enumerate(["coco17", COCO17.to_dict()]):
        file_level = dump({"split": {}, "annotations": clips, "layout": declared}, tmp_path / f"f{i}.pkl")
        per_clip = dump([{**a, "layout": declared} for a in clips], tmp_path / f"c{i}.pkl")
        for path in (file_level, per_clip):
            res = run_predict(setup, "--input", str(path))
            assert all(np.allclose(res[n]["probs"], ref[n]["probs"]) for n in ref)
    for declared in ("h36m17", {**COCO17.to_dict(), "name": "mine17"}):
        path = dump({"split": {}, "annotations": clips, "layout": declared}, tmp_path / "other.pkl")
        with pytest.raises(SystemExit) as e:
            run_predict(setup, "--input", str(path))
        name = declared if isinstance(declared, str) else declared["name"]
        assert f"other.pkl is in the {name} joint layout, but the model was trained on coco17" in error_line(capsys, e)


def test_class_names_of_a_converted_file_are_the_runs_label_map(tmp_path, capsys):
    """A file that names its classes ('classes', as `datasets.convert folder` writes them) trains a run whose
    label map they are: its checkpoint carries them, and predict prints them. A name for a class without
    clips still counts, so the model predicts every class the file names."""
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    names = [f"move {chr(ord('a') + i)}" for i in range(13)]  # 12 labelled classes + one without clips
    custom = {**data, "classes": names}
    path = dump(custom, tmp_path / "named.pkl")
    cli.main(
        [
            "custom", "--ann_file", str(path), "--run_dir", str(tmp_path), "--name", "named", "--epochs", "1",
            "--max_steps", "1", "-b", "4", "-j", "0", "--clip_len", "8", "--input_size", "32", "--input_f", "Skeleton",
            "--eval_alphas", "0", "--eval_corruptions", "none", "--device", "cpu", *TINY_POSE,
        ]
    )  # fmt: skip
    ckpt = torch.load(tmp_path / "named" / "last.pt", weights_only=True)
    assert ckpt["config"]["label_map"] == names and ckpt["config"]["num_classes"] == 13
    clip = data["annotations"][0]
    capsys.readouterr()
    res = cli.main(["predict", "--checkpoint", str(tmp_path / "named" / "last.pt"), "--input", str(path), "--device",
                    "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert f"{clip['frame_dir']}  (label {clip['label']}: {names[clip['label']]})" in out
    for r in res.values():
        assert len(r["probs"]) == 13 and all(n == names[c] for c, n, _ in r["top5"])
        assert all(f"{c:>3d}  {n}" in out for c, n, _ in r["top5"])
    assert class_names(names, 13) == names and class_names(names, 12) == [f"class {i}" for i in range(12)]


def test_per_clip_files_and_folders_give_the_pickles_probabilities_and_the_accuracy(setup, tmp_path, capsys):
    # The same clips as per-clip files, as `main.py convert folder` reads them: .npz with a class name as
    # label (looked up in the run's classes), .json with an int label, one without a label at all.
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    names = synthetic_names(12)
    clips = setup["clips"]
    np.savez(folder / f"{clips[0]['frame_dir']}.npz", keypoint=clips[0]["keypoint"], score=clips[0]["keypoint_score"],
             img_shape=np.array(clips[0]["img_shape"]), label=names[clips[0]["label"]], subject=3)  # fmt: skip
    for c in clips[1:3]:
        fields = {"keypoint": c["keypoint"].tolist(), "score": c["keypoint_score"].tolist(), "label": int(c["label"])}
        (folder / "sub" / f"{c['frame_dir']}.json").write_text(json.dumps(fields))
    np.savez(folder / f"{clips[3]['frame_dir']}.npz", keypoint=clips[3]["keypoint"], score=clips[3]["keypoint_score"])
    full = run_predict(setup, "--input", str(setup["clip_file"]))
    capsys.readouterr()
    got = run_predict(setup, "--input", str(folder), "--img_shape", "1080", "1920")
    out = capsys.readouterr().out
    assert sorted(got) == sorted(full)
    for name, r in got.items():
        np.testing.assert_allclose(r["probs"], full[name]["probs"], rtol=1e-5, atol=1e-6)
    assert [got[c["frame_dir"]]["label"] for c in clips] == [c["label"] for c in clips[:3]] + [-1]
    probs = np.array([full[c["frame_dir"]]["probs"] for c in clips[:3]])
    top1 = (probs.argmax(1) == np.array([c["label"] for c in clips[:3]])).mean()
    assert f"accuracy on the 3 labelled clip(s): top-1 {100 * top1:.2f}%" in out
    assert "confusion matrix (rows: true class, columns: predicted" in out
    # One file alone; a 2D file without its frame size is one line that says how to give it.
    one = run_predict(setup, "--input", str(folder / f"{clips[0]['frame_dir']}.npz"))
    np.testing.assert_allclose(one[clips[0]["frame_dir"]]["probs"], full[clips[0]["frame_dir"]]["probs"], atol=1e-6)
    with pytest.raises(SystemExit) as e:
        run_predict(setup, "--input", str(folder))
    assert "--img_shape H W" in error_line(capsys, e)


def test_accuracy_lines_count_only_labelled_clips_and_summarise_large_confusions():
    from engine.predict import accuracy_lines, confusion
    from utils.runtime import setup_runtime

    rt = setup_runtime("cpu", None, "none")[0]
    probs = np.eye(4)[[0, 1, 1, 3, 2]] * 0.9 + 0.025  # predicted 0, 1, 1, 3, 2
    labels = np.array([0, 2, 1, -1, 2])
    lines = accuracy_lines(labels, probs, ["a", "b", "c", "d"], rt)
    assert lines[0] == "accuracy on the 4 labelled clip(s): top-1 75.00%, top-4 100.00%"
    assert lines[2].split() == ["0", "1", "2"] and lines[4].split() == ["1", "0", "1", "0"]
    assert lines[5].split() == ["2", "0", "1", "1"]  # the true c clips: one taken for b, one right
    assert accuracy_lines(np.array([-1, -1]), probs[:2], list("abcd"), rt) == []
    summary = accuracy_lines(labels, probs, list("abcd"), rt, full_up_to=2)
    assert summary[1] == "most confused (true -> predicted: clips): c -> b: 1"
    assert confusion(np.array([0, 0, 1]), np.array([1, 1, 1]), 2).tolist() == [[0, 2], [0, 1]]
