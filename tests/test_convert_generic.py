"""`python -m datasets.convert folder`: any folder of per-clip keypoint files in any joint layout, and the
README's "Your own dataset" commands run end to end on a generated folder in a layout no code knows."""

from __future__ import annotations

import json
import pickle
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

import main as cli
from datasets.sources.convert import ConversionError, convert_folder
from datasets.sources.convert import main as convert_main
from datasets.store.annotations import load_pickle, pack_annotations
from datasets.store.layouts import NTU25, layout_from_dict
from tests.conftest import ROOT, error_line

README = ROOT / "README.md"


def readme_section() -> str:
    text = README.read_text()
    start = text.index("## Your own dataset")
    return text[start : text.index("\n## ", start + 1)]


def readme_blocks(lang: str) -> list[str]:
    """The ```lang blocks of the README's "Your own dataset" section, dedented."""
    blocks = re.findall(rf"```{lang}\n(.*?)```", readme_section(), flags=re.S)
    return ["\n".join(line.strip() for line in b.splitlines()) for b in blocks]


def stick_layout() -> dict:
    """The layout the README declares (its ```json block)."""
    return json.loads(readme_blocks("json")[0])


def clip_keypoints(label: int, subject: int, k: int, frames: int) -> np.ndarray:
    """A 7-joint stick figure (head, neck, pelvis, hands, feet) in a 480x640 frame, (T, 7, 2) pixels:
    class 0 waves the left hand, 1 kicks the right foot, 2 squats; subjects differ in size and place."""
    rng = np.random.default_rng([label, subject, k])
    t = np.linspace(0, 2 * np.pi, frames)
    base = np.array([[0, -60], [0, -45], [0, 0], [-20, -20], [20, -20], [-10, 50], [10, 50]], np.float32)
    kp = np.repeat(base[None], frames, axis=0)  # (T, V, 2)
    if label == 0:
        kp[:, 3, 1] -= 40 * np.abs(np.sin(2 * t))
    elif label == 1:
        kp[:, 6, 0] += 40 * np.abs(np.sin(t))
    else:
        kp[:, :5, 1] += 25 * np.abs(np.sin(t))[:, None]
    scale, offset = 1.5 + 0.2 * subject, np.array([200 + 30 * subject, 240], np.float32)
    return kp * scale + offset + rng.normal(0, 1.0, kp.shape).astype(np.float32)


def make_folder(root: Path, subjects: int = 6, per_class: int = 2) -> Path:
    """A folder of clips of the README's stick layout: .npz and .json files (alternately, in
    subfolders by subject) with keypoint (T, 7, 2), label (a class name), subject and img_shape."""
    classes = ["wave", "kick", "squat"]
    for s in range(subjects):
        folder = root / f"s{s:02d}"
        folder.mkdir(parents=True)
        for label, cls in enumerate(classes):
            for k in range(per_class):
                kp = clip_keypoints(label, s, k, frames=20 + 3 * k + s)
                name = f"{cls}_s{s:02d}_{k}"
                if (s + k) % 2:
                    fields = {"keypoint": kp.tolist(), "label": cls, "subject": s, "img_shape": [480, 640]}
                    (folder / f"{name}.json").write_text(json.dumps(fields))
                else:
                    np.savez(folder / f"{name}.npz", keypoint=kp, label=cls, subject=s, img_shape=(480, 640))
    return root


# custom's own model (the small PoseConv3D), made tiny
TINY = (
    "--epochs 2 --max_steps 2 -b 4 --valbatchsize 8 --clip_len 8 --input_size 32 -j 0 --device cpu "
    "--model_cfg base_channels=4 stage_blocks=(1,1,1)"
)
EVAL = "--eval_alphas 0 --eval_corruptions occlusion:light swap:light -j 0 --device cpu"


def test_readme_commands_train_and_evaluate_a_user_declared_layout(tmp_path, monkeypatch, capsys):
    """The README's three commands, in the README's words, on a generated folder: convert, train (tiny
    settings appended), evaluate the best checkpoint; the declared layout reaches every step, and predict."""
    monkeypatch.chdir(tmp_path)
    make_folder(tmp_path / "my_clips")
    (tmp_path / "my_layout.json").write_text(readme_blocks("json")[0])
    commands = [shlex.split(line) for line in readme_blocks("bash")[0].splitlines() if line.strip()]
    assert [c[:3] for c in commands] == [
        ["python", "main.py", "convert"],
        ["python", "main.py", "custom"],
        ["python", "main.py", "custom"],
        ["python", "main.py", "predict"],
    ]
    convert, train, evaluate, predict = commands

    assert convert_main(convert[3:]) == 0
    data = load_pickle("my_data.pkl")
    declared = stick_layout()
    assert data["layout"] == layout_from_dict(declared, "README").to_dict()
    assert data["classes"] == ["kick", "squat", "wave"]
    store = pack_annotations(data)
    assert len(store) == 36 and store.num_joints == 7 and store.coord_dim == 2
    # two of the six subjects are tested, whole, in a split named for them; each clip keeps its subject
    assert list(data["split"]) == ["xsubject_train", "xsubject_val"]
    test_subjects = {n.split("_")[1] for n in data["split"]["xsubject_val"]}
    train_subjects = {n.split("_")[1] for n in data["split"]["xsubject_train"]}
    assert len(test_subjects) == 2 and not test_subjects & train_subjects and len(data["split"]["xsubject_val"]) == 12
    assert all(a["subject"] == int(a["frame_dir"].split("_s")[1][:2]) for a in data["annotations"])

    out = cli.main(train[2:] + shlex.split(TINY) + shlex.split(EVAL))
    ckpt = torch.load(tmp_path / "runs" / "mine" / "best.pt", weights_only=True)
    assert ckpt["config"]["layout"] == "stick7" and ckpt["config"]["num_classes"] == 3
    assert layout_from_dict(ckpt["config"]["layout_def"], "ckpt") == layout_from_dict(declared, "README")
    families = {r["family"] for r in out["robustness"]}
    assert {"occlusion", "swap"} <= families and all(r["clips"] == 12 for r in out["robustness"])

    capsys.readouterr()
    again = cli.main(evaluate[2:] + shlex.split(EVAL))
    assert "declares no joint layout" not in capsys.readouterr().out
    best = [r for r in out["robustness"] if r["checkpoint"] == "best"]
    key = lambda r: (r["family"], r["severity"])  # noqa: E731
    assert sorted((key(r), r["top1"]) for r in again["robustness"]) == sorted((key(r), r["top1"]) for r in best)
    # predict rebuilds the declared layout from the checkpoint alone, on the converted file or the clip files
    preds = cli.main(["predict", "--checkpoint", "runs/mine/best.pt", "--input", "my_data.pkl", "--device", "cpu"])
    assert len(preds) == 36 and all(len(p["probs"]) == 3 for p in preds.values())
    capsys.readouterr()
    from_files = cli.main(predict[2:] + ["--device", "cpu"])
    assert "accuracy on the 36 labelled clip(s): top-1" in capsys.readouterr().out
    assert all(from_files[n]["probs"] == pytest.approx(p["probs"], abs=1e-6) for n, p in preds.items())


# ---------------------------------------------------------------- the converter on its own


def write_npz(path: Path, **fields) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **fields)


def three_d_folder(root: Path, n: int = 6) -> Path:
    """n NTU-25 clips in metres (C = 3), alternately one and two persons, integer labels."""
    rng = np.random.default_rng(0)
    for i in range(n):
        kp = rng.normal(size=(1 + i % 2, 10 + i, 25, 3)).astype(np.float32)
        write_npz(root / f"c{i}.npz", keypoint=kp, label=i % 3)
    return root


def test_3d_clips_of_a_built_in_layout(tmp_path):
    conv = convert_folder(three_d_folder(tmp_path / "src"), NTU25, test_fraction=0.5, seed=1)
    data = conv.data
    assert not conv.problems and "classes" not in data
    store = pack_annotations(data)
    assert store.coord_dim == 3 and store.score is None and store.layout == NTU25
    assert [store.get(i)["keypoint"].shape[0] for i in range(6)] == [1, 2, 1, 2, 1, 2]
    assert sorted(store.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    # each class of two clips: one to test, one to train; the split depends on the seed alone
    test = data["split"]["random_val"]
    assert sorted(int(n[1:]) % 3 for n in test) == [0, 1, 2]
    assert convert_folder(tmp_path / "src", NTU25, test_fraction=0.5, seed=1).data["split"] == data["split"]
    others = [convert_folder(tmp_path / "src", NTU25, test_fraction=0.5, seed=s).data["split"] for s in range(2, 8)]
    assert any(o != data["split"] for o in others)


def test_npy_with_labels_csv_split_csv_and_xy_score(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(2)
    for i in range(4):
        xys = np.concatenate([rng.random((12, 17, 2)) * 300, rng.random((12, 17, 1))], axis=-1)
        np.save(src / f"clip{i}.npy", xys.astype(np.float32))  # (T, V, 3): x, y, score
    (tmp_path / "labels.csv").write_text("name,label\nclip0,1\nclip1.npy,0\nclip2,1\nclip3,0\n")
    (tmp_path / "split.csv").write_text("clip0,train\nclip1,train\nclip2,test\nclip3,test\n")
    from datasets.store.layouts import COCO17

    conv = convert_folder(src, COCO17, tmp_path / "labels.csv", tmp_path / "split.csv", img_shape=(360, 480),
                          xy_score=True)  # fmt: skip
    data = conv.data
    assert data["split"] == {"csv_train": ["clip0", "clip1"], "csv_val": ["clip2", "clip3"]}
    ann = data["annotations"][0]
    xys = np.load(src / "clip0.npy")
    np.testing.assert_array_equal(ann["keypoint"][0], xys[..., :2])
    np.testing.assert_array_equal(ann["keypoint_score"][0], xys[..., 2])
    assert ann["img_shape"] == (360, 480) and [a["label"] for a in data["annotations"]] == [1, 0, 1, 0]
    pack_annotations(data)


def test_2d_without_scores_marks_all_zero_joints_missing(tmp_path):
    kp = np.full((5, 17, 2), 50.0, np.float32)
    kp[2, 4] = 0
    write_npz(tmp_path / "src" / "a.npz", keypoint=kp, label=0, img_shape=(100, 100))
    write_npz(tmp_path / "src" / "b.npz", keypoint=kp, label=1, img_shape=(100, 100))
    from datasets.store.layouts import COCO17

    ann = convert_folder(tmp_path / "src", COCO17).data["annotations"][0]
    expected = np.ones((1, 5, 17), np.float32)
    expected[0, 2, 4] = 0
    np.testing.assert_array_equal(ann["keypoint_score"], expected)


BAD_FILES = [
    ("ndim", {"keypoint": np.zeros((4, 25)), "label": 0}, "(T, V, C) or (M, T, V, C)"),
    ("nan", {"keypoint": np.where(np.eye(25)[None, :, :3] > 0, np.nan, 1.0), "label": 0}, "non-finite keypoint"),
    ("joints", {"keypoint": np.zeros((4, 17, 3)), "label": 0}, "17 joints per frame, but the layout has 25"),
    ("coords", {"keypoint": np.zeros((4, 25, 4)), "label": 0}, "last axis must be 2"),
    ("no_label", {"keypoint": np.ones((4, 25, 3))}, "no label"),
    ("no_shape", {"keypoint": np.ones((4, 25, 2)), "label": 0}, "need the frame size"),
    ("score_shape", {"keypoint": np.ones((4, 25, 2)), "score": np.ones((4, 24)), "label": 0}, "'score' must"),
    ("3d_score", {"keypoint": np.ones((4, 25, 3)), "score": np.ones((4, 25)), "label": 0}, "3D keypoints take no"),
    ("no_keypoint", {"points": np.ones((4, 25, 3)), "label": 0}, "no keypoints"),
]


@pytest.mark.parametrize("fields,fragment", [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_malformed_file_is_one_line_and_left_out(tmp_path, fields, fragment):
    three_d_folder(tmp_path / "src", n=3)
    write_npz(tmp_path / "src" / "bad.npz", **fields)
    reported = []
    conv = convert_folder(tmp_path / "src", NTU25, report=reported.append)
    assert len(conv.problems) == 1 and conv.problems == reported
    line = conv.problems[0]
    assert line.startswith(str(tmp_path / "src" / "bad.npz") + ":0: ") and fragment in line and "\n" not in line
    assert [a["frame_dir"] for a in conv.data["annotations"]] == ["c0", "c1", "c2"]
    with pytest.raises(ConversionError, match=re.escape(fragment)):
        convert_folder(tmp_path / "src", NTU25, strict=True)


def test_broken_json_and_duplicate_names(tmp_path):
    three_d_folder(tmp_path / "src", n=2)
    (tmp_path / "src" / "broken.json").write_text("{not json")
    (tmp_path / "src" / "empty.npy").write_bytes(b"")
    good = (tmp_path / "src" / "c1.npz").read_bytes()
    (tmp_path / "src" / "truncated.npz").write_bytes(good[: len(good) // 2])
    (tmp_path / "src" / "list.json").write_text("[1, 2]")
    write_npz(tmp_path / "src" / "sub" / "c0.npz", keypoint=np.ones((3, 25, 3)), label=0)
    conv = convert_folder(tmp_path / "src", NTU25)
    assert len(conv.problems) == 5 and all("\n" not in p for p in conv.problems)
    for name in ("broken.json", "empty.npy", "truncated.npz", "list.json"):
        assert any(f"{name}:0: " in p for p in conv.problems), name
    assert any("sub/c0.npz:0: clip name 'c0' is also" in p for p in conv.problems)


def test_cli_errors_are_one_line(tmp_path, capsys):
    src = three_d_folder(tmp_path / "src", n=4)
    out = tmp_path / "o.pkl"
    assert convert_main(["folder", str(src), str(out), "--layout", "kinect99"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown joint layout 'kinect99'" in err and "mediapipe33" in err and ".json" in err
    assert convert_main(["folder", str(src), str(out), "--layout", "coco17"]) != 0  # every clip has 25 joints
    assert "25 joints per frame, but the layout has 17" in capsys.readouterr().err and not out.exists()
    write_npz(src / "named.npz", keypoint=np.ones((3, 25, 3)), label="jump")
    assert convert_main(["folder", str(src), str(out), "--layout", "ntu25"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'jump'" in err and "class names" in err
    (tmp_path / "labels.csv").write_text("c0;1\n")
    assert (
        convert_main(["folder", str(src), str(out), "--layout", "ntu25", "--labels", str(tmp_path / "labels.csv")]) == 2
    )
    assert "labels.csv:1: expected 'name,label'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        convert_main(["folder", str(src), str(out), "--layout", "ntu25", "--test_fraction", "1"])
    assert e.value.code == 2 and "--test_fraction" in capsys.readouterr().err


def test_written_file_trains_with_the_layout_it_carries(tmp_path, capsys):
    """A converted file needs no --layout: its declaration comes with it (and a wrong --layout is refused)."""
    make_folder(tmp_path / "clips", subjects=3, per_class=1)
    (tmp_path / "stick.json").write_text(json.dumps(stick_layout()))
    out = tmp_path / "stick.pkl"
    assert convert_main(["folder", str(tmp_path / "clips"), str(out), "--layout", str(tmp_path / "stick.json")]) == 0
    with pytest.raises(SystemExit) as e:
        cli.main(
            ["custom", "--ann_file", str(out), "--layout", "coco17", "--run_dir", str(tmp_path), "--device", "cpu"]
        )
    msg = error_line(capsys, e)
    assert "'coco17'" in msg and "'stick7'" in msg
    assert pickle.loads(out.read_bytes())["layout"]["name"] == "stick7"
