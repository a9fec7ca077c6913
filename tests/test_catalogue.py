"""A catalogue of bad inputs, as a new user makes them, across the four entry points: training
(`main.py DATASET ...`), `main.py --evaluate`, `main.py predict` / `predict.py`, and
`python -m datasets.convert`. Every one must end with exit code 2, exactly one line on stderr that says
what is wrong (no traceback), and leave every file under the runs folder byte-identical: a finished run
there, and copies of it whose last.pt is damaged: cut short (`broken`) or with a byte of its weights
flipped (`flipped`: torch.load does not notice, the checkpoint's checksum does). Nothing is written by a
command that fails a check.

The finished run is made once per module (a tiny model, two steps) and reused by every case."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import datasets.sources.convert as convert
import main as cli
import predict
from datasets.sources.synthetic import make_synthetic
from datasets.store.layouts import COCO17
from tests.conftest import flip_tensor_byte


@dataclass(frozen=True)
class Ctx:
    """Paths the cases use: `runs` holds the finished run `done`, `broken` and `flipped` (copies with a damaged
    last.pt); `data` holds the input files."""

    runs: Path
    data: Path
    ann: Path

    def base(self, name: str = "done", *extra: str) -> list[str]:
        """The finished run's command line (the same flags, another run when `name` differs)."""
        return [
            "synthetic", "--ann_file", str(self.ann), "--run_dir", str(self.runs), "--name", name,
            "--epochs", "1", "--max_steps", "2", "-b", "4", "--valbatchsize", "8", "-j", "0", "--clip_len", "8",
            "--input_size", "32", "--input_f", "Skeleton", "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)",
            "--eval_alphas", "0", "0.1", "--eval_corruptions", "none", "--device", "cpu", *extra,
        ]  # fmt: skip

    def custom(self, file: str, *extra: str) -> list[str]:
        """The finished run's flags (its model: PoseConv3D) on another annotation file, as the custom dataset."""
        argv = self.base("done", "--model_type", "poseconv", *extra)
        argv[0], argv[2] = "custom", str(self.data / file)
        return argv

    @property
    def best(self) -> str:
        return str(self.runs / "done" / "best.pt")

    def __getitem__(self, name: str) -> str:
        return str(self.data / name)


class NotATensor:
    """A Python object inside a checkpoint: loading it needs full unpickling."""


def write_pkl(path: Path, obj) -> Path:
    path.write_bytes(pickle.dumps(obj))
    return path


def relabelled(data: dict, name_fmt: str, classes: int | None = None) -> dict:
    """A copy of a synthetic file whose clips are renamed (not NTU-named: a custom file counts its
    classes) and, with `classes`, labelled round-robin over that many classes."""
    anns, renamed = [], {}
    for i, a in enumerate(data["annotations"]):
        renamed[a["frame_dir"]] = name_fmt.format(i)
        anns.append({**a, "frame_dir": renamed[a["frame_dir"]], "label": i % classes if classes else a["label"]})
    split = {k: [renamed[n] for n in v] for k, v in data["split"].items()}
    return {"split": split, "annotations": anns, "layout": "coco17"}


def other_layout(joints: int, coord_dim: int, layout: str) -> dict:
    """A small file of another joint layout (random keypoints; the checks come before any use of them)."""
    rng = np.random.default_rng(0)
    anns, split = [], {"xsub_train": [], "xsub_val": []}
    for i in range(12):
        kp = (rng.random((1, 20, joints, coord_dim)) * 200 + 20).astype(np.float32)
        ann = {"frame_dir": f"clip{i}", "label": i % 3, "total_frames": 20, "keypoint": kp}
        if coord_dim == 2:
            ann.update(keypoint_score=np.ones((1, 20, joints), np.float32), img_shape=(240, 320))
        anns.append(ann)
        split["xsub_train" if i < 8 else "xsub_val"].append(f"clip{i}")
    return {"split": split, "annotations": anns, "layout": layout}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Ctx:
    root = tmp_path_factory.mktemp("catalogue")
    data, runs = root / "data", root / "runs"
    data.mkdir()
    tiny = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    c = Ctx(runs, data, write_pkl(data / "tiny.pkl", tiny))
    cli.main(c.base())  # the finished run
    shutil.copytree(runs / "done", runs / "broken")
    last = runs / "broken" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a save cut short (a full disk, a copy)
    shutil.copytree(runs / "done", runs / "flipped")
    flip_tensor_byte(runs / "flipped" / "last.pt")  # a bit that changed on a disk or in a copy

    write_pkl(data / "renamed.pkl", relabelled(tiny, "clip{:04d}"))
    write_pkl(data / "classes20.pkl", relabelled(tiny, "clip{:04d}", classes=20))
    no_train = relabelled(tiny, "clip{:04d}")
    no_train["split"] = {"xsub_train": [], "xsub_val": [a["frame_dir"] for a in no_train["annotations"]]}
    write_pkl(data / "no_train.pkl", no_train)
    no_test = relabelled(tiny, "clip{:04d}")
    no_test["split"] = {"xsub_train": [a["frame_dir"] for a in no_test["annotations"]], "xsub_val": []}
    write_pkl(data / "no_test.pkl", no_test)
    write_pkl(data / "kinect20.pkl", other_layout(20, 2, "kinect20"))
    write_pkl(data / "ntu25_3d.pkl", other_layout(25, 3, "ntu25"))
    write_pkl(data / "list.pkl", [1, 2, 3])
    write_pkl(data / "unsafe.pkl", {**tiny, "note": NotATensor()})
    (data / "random.bin").write_bytes(np.random.default_rng(1).bytes(4096))
    (data / "random.pt").write_bytes(np.random.default_rng(2).bytes(4096))
    (data / "random.pkl").write_bytes(np.random.default_rng(3).bytes(4096))
    (data / "empty.pt").write_bytes(b"")
    (data / "notes.txt").write_text("not a checkpoint\n")
    (data / "a_file").write_text("a regular file\n")
    best = (runs / "done" / "best.pt").read_bytes()
    (data / "truncated.pt").write_bytes(best[: len(best) // 3])
    (data / "flipped.pt").write_bytes(best)
    flip_tensor_byte(data / "flipped.pt")
    torch.save({"w": torch.zeros(3)}, data / "state_dict.pt")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": NotATensor()}, data / "unsafe.pt")
    (data / "empty_dir").mkdir()
    (data / "bad_clips").mkdir()
    for i in range(13):  # thirteen malformed clip files: one line says so, the log lists them
        (data / "bad_clips" / f"c{i}.json").write_text('{"keypoint": "nonsense", "label": 0}')
    (data / "clip.txt").write_text("1 2 3\n")
    # A checkpoint of another input (Heatmap volumes, not coordinates) for --pretrained / --tune_from.
    cli.main([*c.base("heatmap"), "--input_f", "Heatmap", "--run_dir", str(root / "other_runs")])
    shutil.copy(root / "other_runs" / "heatmap" / "best.pt", data / "heatmap.pt")
    # Files that are no pyskl file, or name too few classes; COCO-17 keypoints declared as H36M-17.
    write_pkl(data / "no_annotations.pkl", {"split": {}, "clips": tiny["annotations"]})
    write_pkl(data / "two_classes.pkl", {**relabelled(tiny, "clip{:04d}"), "classes": ["a", "b"]})
    write_pkl(data / "h36m17.pkl", {**relabelled(tiny, "clip{:04d}"), "layout": "h36m17"})
    # A model of a declared layout (COCO-17's joints as `mine17`), and data declaring mine17 otherwise.
    mine17 = {**COCO17.to_dict(), "name": "mine17"}
    write_pkl(data / "mine17.pkl", {**relabelled(tiny, "clip{:04d}"), "layout": mine17})
    other17 = {**mine17, "parts": {"body": list(range(17))}}
    write_pkl(data / "mine17_other.pkl", {**relabelled(tiny, "clip{:04d}"), "layout": other17})
    cli.main([*c.custom("mine17.pkl"), "--run_dir", str(root / "other_runs"), "--name", "mine17"])
    shutil.copy(root / "other_runs" / "mine17" / "best.pt", data / "mine17.pt")
    return c


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder (hidden files included), and every folder, by relative path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), folder) + "/"] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, folder)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def train(c: Ctx, *extra: str) -> list[str]:
    return c.base("done", *extra)


# (id, entry point, argv from the context, a fragment the one line must hold)
# fmt: off
CASES = [
    # -- training: flags
    ("nan_noise", "main", lambda c: train(c, "--noise_alpha", "nan"), "finite number"),
    ("inf_lr", "main", lambda c: train(c, "--lr", "inf"), "finite number"),
    ("unknown_flag", "main", lambda c: train(c, "--no_such_flag"), "unrecognized arguments"),
    ("batch_zero", "main", lambda c: train(c, "-b", "0"), "argument --batch-size/-b: must be an integer >= 1, got 0"),
    ("epochs_zero", "main", lambda c: train(c, "--epochs", "0"), "argument --epochs: must be an integer >= 1, got 0"),
    ("val_fraction_one", "main", lambda c: train(c, "--val_fraction", "1"), "--val_fraction"),
    ("percentage_one", "main", lambda c: train(c, "--percentage", "1.0"), "--percentage"),
    ("motionbert_heatmap", "main", lambda c: train(c, "--model_type", "motionbert", "--input_f", "Heatmap"),
     "joint coordinates"),
    ("model_cfg_unknown", "main", lambda c: train(c, "--model_cfg", "nonsense=3"), "not an argument"),
    ("model_cfg_no_value", "main", lambda c: train(c, "--model_cfg", "base_channels"), "KEY=VALUE"),
    # --model_cfg values the backbone's constructor refuses, found by building it (on the meta device) as the
    # run is resolved, before its directory is made: a new run's name, so that a folder made would show
    ("model_cfg_negative_width", "main", lambda c: c.base("fresh", "--model_cfg", "base_channels=-1"),
     "--model_cfg base_channels=-1: poseconv3d cannot be built: Trying to create tensor with negative dimension"),
    ("model_cfg_zero_width", "main", lambda c: c.base("fresh", "--model_cfg", "base_channels=0"),
     "--model_cfg base_channels=0: poseconv3d would have a layer without weights"),
    ("model_cfg_wrong_type", "main", lambda c: c.base("fresh", "--model_cfg", "stage_blocks=5"),
     "--model_cfg stage_blocks=5: poseconv3d cannot be built: object of type 'int' has no len()"),
    ("model_cfg_heads", "main", lambda c: c.base("fresh", "--model_type", "motionbert", "--model_cfg", "num_heads=3"),
     "motionbert cannot be built: dim_feat=512 must be divisible by num_heads=3"),
    ("corruption_unknown", "main", lambda c: train(c, "--eval_corruptions", "earthquake"), "--eval_corruptions"),
    ("ckpt_every_negative", "main", lambda c: train(c, "--ckpt_every", "-1"), "--ckpt_every"),
    ("ckpt_every_nan", "main", lambda c: train(c, "--ckpt_every", "nan"), "finite number"),
    ("evaluate_and_resume", "main", lambda c: train(c, "--evaluate", c.best, "--resume", c.best), "exclude"),
    # -- training: each numeric flag's range, checked by its converter (utils/argtypes.py) as it is parsed
    ("workers_negative", "main", lambda c: train(c, "-j", "-1"), "argument --workers/-j: must be an integer >= 0"),
    ("max_steps_negative", "main", lambda c: train(c, "--max_steps", "-1"), "--max_steps: must be an integer >= 0"),
    ("epochs_not_a_number", "main", lambda c: train(c, "--epochs", "ten"),
     "--epochs: must be an integer >= 1, got 'ten'"),
    ("lr_zero", "main", lambda c: train(c, "--lr", "0"), "--lr: must be a finite number > 0, got 0"),
    ("gamma_negative", "main", lambda c: train(c, "--gamma", "-1"), "--gamma: must be a finite number >= 0"),
    ("consistency_weight_negative", "main", lambda c: train(c, "--consistency_weight", "-0.5"),
     "--consistency_weight: must be a finite number >= 0"),
    ("dropout_one", "main", lambda c: train(c, "--dropout", "1"), "--dropout: must be a finite number in [0, 1)"),
    ("seed_negative", "main", lambda c: train(c, "--seed", "-1"), "--seed: must be an integer in [0, 4294967295]"),
    ("noise_alpha_huge", "main", lambda c: train(c, "--noise_alpha", "1e300"),
     "--noise_alpha: must be a finite number in [0, 10]"),
    ("jitter_severity_huge", "main", lambda c: train(c, "--eval_corruptions", "jitter:1e300"),
     "jitter severity must be at most 10"),
    ("frame_rate_severity_huge", "main", lambda c: train(c, "--train_corruptions", "frame_rate:1e300"),
     "frame_rate severity must be at most 1000"),
    ("nesterov_without_momentum", "main", lambda c: train(c, "--momentum", "0"), "pass --no-nesterov"),
    ("value_with_a_line_break", "main", lambda c: train(c, "--val_fraction", "0.1\n0.2"), "got '0.1\\n0.2'"),
    # -- training: data
    ("ntu_file_missing", "main", lambda c: ["ntu60", "--data_root", c["empty_dir"], "--run_dir", str(c.runs),
                                            "--name", "done", "--device", "cpu"], "ntu60_hrnet.pkl"),
    ("custom_without_file", "main", lambda c: ["custom", "--run_dir", str(c.runs), "--device", "cpu"], "--ann_file"),
    ("custom_file_missing", "main", lambda c: c.custom("nope.pkl"), "custom annotation file not found at"),
    ("ann_random_bytes", "main", lambda c: c.custom("random.bin"), "random.bin"),
    ("ann_not_pyskl", "main", lambda c: c.custom("list.pkl"),
     "list.pkl is not a pyskl annotation file: expected a dict with 'annotations' (and 'split'), got a list of int"),
    ("unknown_split", "main", lambda c: train(c, "--split", "xnothing"), "xnothing"),
    ("empty_training_split", "main", lambda c: c.custom("no_train.pkl"), "no clip in its training split"),
    ("name_reused_other_data", "main", lambda c: c.custom("renamed.pkl"), "split.json"),
    ("name_reused_other_model", "main", lambda c: train(c, "--model_cfg", "base_channels=8", "stage_blocks=(1,1,1)"),
     "another configuration (model_cfg base_channels: checkpoint 4, now 8)"),
    ("corrupt_last_pt", "main", lambda c: c.base("broken"), "delete it to start the run over"),
    ("flipped_last_pt", "main", lambda c: c.base("flipped"),
     "last.pt is damaged: its contents do not match the checksum stored in it (bytes changed after it was written, "
     "or it was edited and saved without utils/checkpoint.save_atomic): delete it to start the run over"),
    # -- training: the run directory
    ("run_dir_is_a_file", "main", lambda c: train(c, "--run_dir", c["a_file"]), "is a file"),
    ("run_dir_under_a_file", "main", lambda c: train(c, "--run_dir", c["a_file"] + "/runs"), "is a file"),
    ("run_dir_not_writable", "main", lambda c: train(c, "--run_dir", "/proc/sys/runs"), "not writable"),
    # -- training: checkpoints to resume from or start with
    ("resume_missing", "main", lambda c: train(c, "--resume", c["nope.pt"]), "does not exist"),
    ("resume_random_bytes", "main", lambda c: train(c, "--resume", c["random.pt"]), "not a torch checkpoint"),
    ("resume_state_dict", "main", lambda c: train(c, "--resume", c["state_dict.pt"]), "not a training checkpoint"),
    ("resume_flipped_bytes", "main", lambda c: train(c, "--resume", c["flipped.pt"]), "do not match the checksum"),
    ("tune_from_flipped_bytes", "main", lambda c: train(c, "--tune_from", c["flipped.pt"]), "not match the checksum"),
    ("pretrained_missing", "main", lambda c: train(c, "--pretrained", c["nope.pt"]), "does not exist"),
    ("pretrained_random_bytes", "main", lambda c: train(c, "--pretrained", c["random.pt"]), "not a torch checkpoint"),
    ("pretrained_unsafe", "main", lambda c: train(c, "--pretrained", c["unsafe.pt"]), "--trust_checkpoint"),
    ("pretrained_other_input", "main", lambda c: train(c, "--pretrained", c["heatmap.pt"]), "another input"),
    ("tune_from_text", "main", lambda c: train(c, "--tune_from", c["notes.txt"]), "not a torch checkpoint"),
    ("tune_from_other_input", "main", lambda c: train(c, "--tune_from", c["heatmap.pt"]), "another input"),
    # -- --evaluate
    ("evaluate_missing", "main", lambda c: train(c, "--evaluate", c["nope.pt"]), "does not exist"),
    ("evaluate_folder", "main", lambda c: train(c, "--evaluate", str(c.runs / "done")), "is a folder"),
    ("evaluate_random_bytes", "main", lambda c: train(c, "--evaluate", c["random.pt"]), "not a torch checkpoint"),
    ("evaluate_empty_file", "main", lambda c: train(c, "--evaluate", c["empty.pt"]), "not a torch checkpoint"),
    ("evaluate_truncated", "main", lambda c: train(c, "--evaluate", c["truncated.pt"]), "damaged"),
    ("evaluate_flipped_bytes", "main", lambda c: train(c, "--evaluate", c["flipped.pt"]),
     "flipped.pt is damaged: its contents do not match the checksum stored in it"),
    ("evaluate_state_dict", "main", lambda c: train(c, "--evaluate", c["state_dict.pt"]), "no run configuration"),
    ("evaluate_unsafe", "main", lambda c: train(c, "--evaluate", c["unsafe.pt"]), "--trust_checkpoint"),
    ("evaluate_other_classes", "main", lambda c: c.custom("classes20.pkl", "--evaluate", c.best), "20 classes"),
    ("evaluate_other_joints", "main", lambda c: c.custom("kinect20.pkl", "--evaluate", c.best), "joints"),
    ("evaluate_3d_on_2d_model", "main", lambda c: c.custom("ntu25_3d.pkl", "--evaluate", c.best), "ntu25_3d.pkl"),
    ("evaluate_no_test_clips", "main", lambda c: c.custom("no_test.pkl", "--evaluate", c.best), "test split"),
    ("train_no_test_clips", "main", lambda c: c.custom("no_test.pkl", "--name", "fresh"), "no clip in its test split"),
    ("evaluate_bad_flag", "main", lambda c: train(c, "--evaluate", c.best, "--eval_alphas", "-1"), "--eval_alphas"),
    ("evaluate_run_dir_file", "main", lambda c: train(c, "--evaluate", c.best, "--run_dir", c["a_file"]), "a file"),
    # -- predict (main.py predict and predict.py)
    ("predict_no_input_flag", "main", lambda c: ["predict", "--checkpoint", c.best], "--input"),
    ("predict_checkpoint_missing", "main", lambda c: ["predict", "--checkpoint", c["nope.pt"], "--input", str(c.ann)],
     "does not exist"),
    ("predict_checkpoint_random", "predict", lambda c: ["--checkpoint", c["random.pt"], "--input", str(c.ann)],
     "not a torch checkpoint"),
    ("predict_checkpoint_truncated", "predict", lambda c: ["--checkpoint", c["truncated.pt"], "--input", str(c.ann)],
     "damaged"),
    ("predict_checkpoint_flipped", "predict", lambda c: ["--checkpoint", c["flipped.pt"], "--input", str(c.ann)],
     "flipped.pt is damaged: its contents do not match the checksum"),
    ("predict_input_missing", "main", lambda c: ["predict", "--checkpoint", c.best, "--input", c["nope.pkl"]],
     "nope.pkl"),
    ("predict_input_random", "predict", lambda c: ["--checkpoint", c.best, "--input", c["random.pkl"]], "random.pkl"),
    ("predict_input_unknown_kind", "predict", lambda c: ["--checkpoint", c.best, "--input", c["clip.txt"]],
     "clip.txt"),
    ("predict_other_joints", "predict", lambda c: ["--checkpoint", c.best, "--input", c["kinect20.pkl"]], "joints"),
    ("predict_num_clips_zero", "main", lambda c: ["predict", "--checkpoint", c.best, "--input", str(c.ann),
                                                  "--num_clips", "0"], "--num_clips"),
    ("predict_workers_negative", "predict", lambda c: ["--checkpoint", c.best, "--input", str(c.ann), "-j", "-2"],
     "argument --workers/-j: must be an integer >= 0, got -2"),
    ("predict_save_probs_in_run", "predict", lambda c: ["--checkpoint", c.best, "--input", c["random.pkl"],
                                                        "--save_probs", str(c.runs / "done" / "p.json")],
     "random.pkl"),
    ("predict_save_probs_is_a_folder", "predict", lambda c: ["--checkpoint", c.best, "--input", str(c.ann),
                                                             "--save_probs", str(c.runs / "done")],
     "is a folder; give --save_probs a file name"),
    ("predict_save_probs_under_a_file", "main", lambda c: ["predict", "--checkpoint", c.best, "--input", str(c.ann),
                                                           "--save_probs", c["a_file"] + "/p.json"],
     "a_file is a file; choose another --save_probs"),
    # -- python -m datasets.convert
    ("convert_no_args", "convert", lambda c: [], "required"),
    ("convert_unknown_source", "convert", lambda c: ["kinect", c["empty_dir"], str(c.runs / "o.pkl")], "invalid"),
    ("convert_src_missing", "convert", lambda c: ["ntu", c["nope"], str(c.runs / "o.pkl")], "not a folder"),
    ("convert_src_is_file", "convert", lambda c: ["msr", c["a_file"], str(c.runs / "o.pkl")], "not a folder"),
    ("convert_no_skeleton_files", "convert", lambda c: ["ntu", c["empty_dir"], str(c.runs / "o.pkl")], ".skeleton"),
    ("convert_no_msr_files", "convert", lambda c: ["msr", c["empty_dir"], str(c.runs / "o.pkl")], "no "),
    ("convert_bad_benchmark", "convert", lambda c: ["ntu", "--benchmark", "ntu99", c["empty_dir"],
                                                    str(c.runs / "o.pkl")], "ntu99"),
    ("convert_out_under_a_file", "convert", lambda c: ["ntu", c["empty_dir"], c["a_file"] + "/o.pkl"],
     "not a writable folder"),
    ("convert_out_not_writable", "convert", lambda c: ["msr", c["empty_dir"], "/proc/sys/o.pkl"],
     "not a writable folder"),
    ("convert_all_clips_malformed", "convert", lambda c: ["folder", c["bad_clips"], str(c.runs / "bad.pkl"),
                                                          "--layout", "coco17"],
     "no clip of"),
    ("convert_strict_malformed", "convert", lambda c: ["folder", c["bad_clips"], str(c.runs / "bad.pkl"),
                                                       "--layout", "coco17", "--strict"],
     "--strict stops at the first malformed file"),
    ("convert_out_is_a_folder", "convert", lambda c: ["ntu", c["empty_dir"], str(c.runs / "done")], "is a folder"),
    ("convert_missing_list_missing", "convert", lambda c: ["ntu", "--missing_list", c["nope.txt"], c["empty_dir"],
                                                           str(c.runs / "o.pkl")], "--missing_list"),
    # -- leftovers of the reliability and layout work
    ("synthetic_file_missing", "main", lambda c: train(c, "--ann_file", c["nope.pkl"]),
     "synthetic annotation file not found at"),
    ("ann_dict_without_annotations", "main", lambda c: c.custom("no_annotations.pkl"),
     "no_annotations.pkl is not a pyskl annotation file"),
    ("ann_classes_too_few", "main", lambda c: c.custom("two_classes.pkl"), "names only 2 classes"),
    ("motionbert_2d_kinect20", "main", lambda c: ["custom", "--ann_file", c["kinect20.pkl"], "--run_dir", str(c.runs),
                                                  "--name", "done", "--model_type", "motionbert", "--input_f",
                                                  "Skeleton", "--device", "cpu"],
     "reads 2D keypoints in coco17"),
    ("evaluate_other_layout_same_joints", "main", lambda c: c.custom("h36m17.pkl", "--evaluate", c.best),
     "h36m17.pkl is in the h36m17 joint layout, but the model was trained on coco17"),
    ("evaluate_layout_declared_differently", "main", lambda c: c.custom("mine17_other.pkl", "--evaluate",
                                                                        c["mine17.pt"]),
     "declares joint layout 'mine17' differently from the model's (parts differ)"),
    ("predict_other_layout_same_joints", "predict", lambda c: ["--checkpoint", c.best, "--input", c["h36m17.pkl"]],
     "h36m17.pkl is in the h36m17 joint layout, but the model was trained on coco17"),
    ("predict_layout_declared_differently", "predict", lambda c: ["--checkpoint", c["mine17.pt"], "--input",
                                                                  c["mine17_other.pkl"]],
     "declares joint layout 'mine17' differently from the model's (parts differ)"),
    # -- data files that name other objects than pyskl's (utils/safe_pickle.py)
    ("ann_unsafe", "main", lambda c: c.custom("unsafe.pkl"), "NotATensor object, which an annotation file never does"),
    ("predict_input_unsafe", "predict", lambda c: ["--checkpoint", c.best, "--input", c["unsafe.pkl"]],
     "unsafe.pkl holds a tests.test_catalogue.NotATensor object"),
]
# fmt: on


def call(entry: str, argv: list[str]) -> int:
    """Run an entry point in this process; returns its exit code (0 when it returned normally)."""
    try:
        if entry == "main":
            cli.main(argv)
        elif entry == "predict":
            predict.main(argv)
        else:
            return convert.main(argv)
    except SystemExit as e:
        return e.code
    return 0


def test_the_catalogue_is_large():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1] for c in CASES} == {"main", "predict", "convert"}


@pytest.mark.parametrize(("entry", "make_argv", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_the_runs_untouched(ctx, capsys, entry, make_argv, fragment):
    argv = make_argv(ctx)
    before = tree_hashes(ctx.runs)
    capsys.readouterr()
    code = call(entry, argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ": error: " in lines[0] and fragment in lines[0], lines[0]
    assert tree_hashes(ctx.runs) == before
