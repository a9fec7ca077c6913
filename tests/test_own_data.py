"""Your own data (issue 22): a folder of per-clip files with a subject field, converted, trained and evaluated
from outside the repository; the clips' fields kept; validation parts that hold out whole subjects; splits
named for how they were made."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets.sources.convert import convert_folder
from datasets.store.annotations import pack_annotations, scalar_fields
from datasets.store.catalog import CATALOG, choose_protocol
from datasets.store.layouts import COCO17
from datasets.store.splits import hold_out, load_split, save_split
from engine.data import RunData, validation_groups
from tests.conftest import ROOT
from utils.errors import UserError

MAIN = str(ROOT / "main.py")
CLASSES, SUBJECTS, VIEWS = ("clap", "jump", "wave"), 4, ("left", "right")


def write_clips(root: Path) -> dict[str, int]:
    """3 classes x 4 subjects x 2 views of tiny 2D COCO-17 clips (T = 10) as .npz files with label, subject,
    view and img_shape; returns each clip's subject by name."""
    root.mkdir()
    subjects = {}
    for label, cls in enumerate(CLASSES):
        for s in range(1, SUBJECTS + 1):
            for v, view in enumerate(VIEWS):
                rng = np.random.default_rng([label, s, v])
                kp = rng.random((10, 17, 2)).astype(np.float32) * 100 + 50 + 30 * label  # (T, V, 2) pixels
                name = f"{cls}_p{s}_{view}"
                np.savez(root / f"{name}.npz", keypoint=kp, label=cls, subject=s, view=view, img_shape=(240, 320))
                subjects[name] = s
    return subjects


def run(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """python /abs/main.py ARGV in `cwd` (outside the repository), on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, MAIN, *argv], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


EVAL = ("--valbatchsize", "8", "-j", "0", "--device", "cpu", "--eval_alphas", "0", "--eval_corruptions", "none")
# custom's own model (the small PoseConv3D), made tiny
TINY = ("--epochs", "1", "--max_steps", "2", "-b", "4", "--clip_len", "8", "--input_size", "32",
        "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)", *EVAL)  # fmt: skip


def test_own_data_from_outside_the_repository(tmp_path):
    """convert (cross-view test split), train (validation: whole subjects, by the clips' field), --evaluate
    (the run's files untouched) and predict, each as `python /abs/main.py ...` run in tmp_path."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    subjects = write_clips(tmp_path / "clips")
    done = run(tmp_path, "convert", "folder", "clips", "own.pkl", "--layout", "coco17", "--group_field", "view")
    assert "fields: subject (4 values), view (2 values)" in done.stdout
    data = pickle.loads((tmp_path / "own.pkl").read_bytes())
    assert list(data["split"]) == ["xview_train", "xview_val"]  # named for what it is
    assert {(a["subject"], a["view"]) == (subjects[a["frame_dir"]], a["frame_dir"].split("_")[-1])
            for a in data["annotations"]} == {True}  # fmt: skip

    # no --split: the file's own pair; no --val_group_field: whole subjects, as the clips' field says
    done = run(tmp_path, "custom", "--ann_file", "own.pkl", "--name", "mine", *TINY)
    assert "12 train / 12 test clips" in done.stdout
    assert "held out by subject (the clips' 'subject' field)" in done.stdout
    rundir = tmp_path / "runs" / "mine"
    split = json.loads((rundir / "split.json").read_text())
    assert split["validation_by"] == "subject (the clips' 'subject' field)"
    held = {subjects[n] for n in split["validation"]}
    kept = {subjects[n] for n in split["labelled"] + split["unlabelled"]}
    assert len(held) == 1 and not held & kept and len(split["validation"]) == len(CLASSES)  # one whole subject

    before = hashes(rundir)
    run(tmp_path, "custom", "--ann_file", "own.pkl", "--evaluate", "runs/mine/last.pt", *EVAL)
    after = hashes(rundir)
    assert {f: after[f] for f in before} == before  # the training run's files, byte for byte
    assert all(f.startswith("evaluate_last_on_own/") for f in set(after) - set(before))

    run(tmp_path, "predict", "--checkpoint", "runs/mine/last.pt", "--input", "own.pkl", "--device", "cpu")
    # the clip files themselves, labels known: the accuracy and the confusion matrix
    done = run(tmp_path, "predict", "--checkpoint", "runs/mine/last.pt", "--input", "clips", "--device", "cpu")
    assert f"accuracy on the {len(subjects)} labelled clip(s): top-1 " in done.stdout
    assert "confusion matrix (rows: true class, columns: predicted" in done.stdout


def test_convert_from_main_py_names_itself_in_its_errors(tmp_path):
    done = subprocess.run([sys.executable, MAIN, "convert", "folder", "nowhere", "x.pkl", "--layout", "coco17"],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("main.py convert: error: nowhere is not a folder")
    assert "python /path/to/main.py convert" in subprocess.run(
        [sys.executable, MAIN, "convert", "folder", "--help"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.replace("\n", " ")


def test_scalar_fields_are_kept_by_the_converter_and_the_store(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    kp = np.ones((6, 17, 2), np.float32)
    extra = {"subject": 3, "view": "left", "weight": 0.5, "outdoor": True, "bbox": np.zeros(4), "frame_dir": "x"}
    np.savez(src / "a.npz", keypoint=kp, label=0, img_shape=(9, 9), **extra)
    (src / "b.json").write_text(json.dumps({"keypoint": kp.tolist(), "label": 1, "img_shape": [9, 9], "view": "top",
                                            "notes": ["a list"], "gone": None}))  # fmt: skip
    data = convert_folder(src, COCO17).data
    a, b = data["annotations"]
    assert scalar_fields(a) == {"subject": 3, "view": "left", "weight": 0.5, "outdoor": True}
    assert type(a["subject"]) is int and a["frame_dir"] == "a"  # a plain value; the clip's name is its file's
    assert scalar_fields(b) == {"view": "top"} and "notes" not in b and "gone" not in b
    store = pack_annotations(pickle.loads(pickle.dumps(data)))
    assert store.fields == {"subject": (3, None), "view": ("left", "top"), "weight": (0.5, None),
                            "outdoor": (True, None)}  # fmt: skip
    assert list(data["split"]) == ["random_train", "random_val"]


def test_hold_out_by_groups():
    names = [f"c{i}" for i in range(12)]
    labels, groups = np.arange(12) % 3, [i // 3 for i in range(12)]  # 4 groups of 3 clips
    keep, val, by = hold_out(names, labels, 0.3, seed=0, groups=groups)
    assert by == "groups" and len(val) == 6 and len({groups[i] for i in val}) == 2
    assert not {groups[i] for i in val} & {groups[i] for i in keep}
    assert hold_out(names, labels, 0.3, seed=0, groups=[0] * 12)[2] == "class"  # one group: per class
    # without groups, the names decide as before: subjects of NTU names, else per class
    ntu = [f"S001C001P{i // 4 + 1:03d}R001A{i % 4 + 1:03d}" for i in range(12)]
    assert hold_out(ntu, labels, 0.2, seed=0)[2] == "subject" and hold_out(names, labels, 0.2, seed=0)[2] == "class"


def test_validation_groups_default_explicit_and_errors(tmp_path):
    def data(**fields) -> RunData:
        anns = [{"frame_dir": f"c{i}", "label": i % 2, "keypoint": np.ones((1, 4, 17, 3), np.float32),
                 **{k: v[i] for k, v in fields.items()}} for i in range(4)]  # fmt: skip
        store = pack_annotations({"split": {}, "annotations": anns})
        return RunData(store, tmp_path / "f.pkl", 2, None, COCO17, np.arange(4), np.arange(0))

    both = data(subject=[1, 1, 2, 2], view=["a", "b", "a", "b"])
    assert validation_groups(both, None) == ("subject", [1, 1, 2, 2])
    assert validation_groups(both, "view") == ("view", ["a", "b", "a", "b"])
    assert validation_groups(both, "none") == (None, None)
    assert validation_groups(data(view=[1, 2, 1, 2]), None) == (None, None)  # no subject field: as before
    for fields, flag, message in [
        ({"view": [1, 2, 1, 2]}, "camera", "the clips of f.pkl have no 'camera' field (the clips' fields: view)"),
        ({"subject": [1, 2, 3, None]}, "subject", "clip 'c3' of f.pkl has no 'subject' field"),
        ({"subject": [1, 1, 1, 1]}, "subject", "every training clip has the same subject (1)"),
    ]:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            validation_groups(data(**fields), flag)


def test_split_json_records_how_validation_was_drawn(tmp_path):
    path = tmp_path / "split.json"
    save_split(path, ["a", "b", "c"], validation_by="class", labelled=np.array([0, 1]), validation=np.array([2]))
    assert json.loads(path.read_text())["validation_by"] == "class"
    parts = load_split(path, ["a", "b", "c"])
    assert list(parts) == ["labelled", "validation"] and parts["validation"].tolist() == [2]


def test_default_protocol_of_a_file():
    custom = CATALOG["custom"]
    assert choose_protocol(custom, None, ["xview_train", "xview_val", "xsub_train", "xsub_val"], "f") == "xview"
    assert choose_protocol(custom, None, ["random_val", "csv_train", "random_train"], "f") == "random"
    assert choose_protocol(custom, "xsub", ["random_train", "random_val"], "f") == "xsub"  # --split decides
    assert choose_protocol(CATALOG["ntu60"], None, [], "f") == "xsub"
    with pytest.raises(ValueError, match=r"f has no pair of splits .* \(its splits: train, test\)"):
        choose_protocol(custom, None, ["train", "test"], "f")


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")))
def test_scripts_start_from_any_folder(tmp_path, script):
    """Every script finds the project's modules when run by its path from another folder: its --help (or its
    one-line error, diagnose_objective.py's without `-- MAIN.PY ARGUMENTS`), never an ImportError's traceback."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
