"""Data files are unpickled with only what pyskl's files hold (utils/safe_pickle.py): a crafted file whose objects
reduce to os.system, eval, subprocess.Popen or a class of its own is refused by every reader (main.py custom,
main.py predict, the scripts) with one line naming the file and the type, and nothing of it runs; --trust_data
loads it as pickle does. Real files (the project's synthetic data, float16 3D files, OrderedDicts, NumPy
scalars, protocols 2 to 5, the golden pyskl files) load identically with and without the restriction."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import main as cli
from datasets.sources.inputs import pack_unlabelled, read_input
from datasets.sources.synthetic import load_or_create_synthetic, make_synthetic
from datasets.store.annotations import AnnotationError, load_pickle, pack_annotations
from tests.conftest import error_line, shared_or_skip
from tests.test_export import export, score
from utils import safe_pickle

PROTOCOLS = (2, 3, 4, 5)


class Touch:
    """A class of the file's own: unpickling it runs __setstate__, which touches `self.marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).touch()


class Reduce:
    """An object that unpickles as `fn(*args)`."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads(marker: Path) -> dict[str, object]:
    """Objects that create `marker` when unpickled, by the type their file names."""
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        f"{os.system.__module__}.system": Reduce(os.system, f"touch {marker}"),
        "builtins.eval": Reduce(eval, code),
        "builtins.exec": Reduce(exec, code),
        "subprocess.Popen": Reduce(subprocess.Popen, ["touch", str(marker)]),
        f"{Touch.__module__}.Touch": Touch(marker),
        "builtins.getattr": Reduce(getattr, "", "join"),
        "numpy.load": Reduce(np.load, str(marker), "r", True),
    }


def pyskl_file(evil: object | None = None) -> dict:
    """A small pyskl annotation file (6 clips); `evil` rides along in the first clip, as an extra key."""
    data = make_synthetic(num_classes=2, clips_per_class_per_subject=1, num_subjects=3, min_frames=8, max_frames=9)
    if evil is not None:
        data["annotations"][0]["extra"] = evil
    return data


def write(path: Path, obj: object, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def same(a: object, b: object) -> bool:
    """Equal values of equal types all the way down: arrays by dtype, shape, memory order and value."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        orders = (a.flags.c_contiguous, a.flags.f_contiguous) == (b.flags.c_contiguous, b.flags.f_contiguous)
        return a.dtype == b.dtype and a.shape == b.shape and orders and np.array_equal(a, b)
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# -- crafted files are refused, and nothing of them runs


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_every_foreign_global_is_refused_before_it_runs(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    for kind, evil in payloads(marker).items():
        path = write(tmp_path / "evil.pkl", pyskl_file(evil), protocol)
        with pytest.raises(safe_pickle.UnsafePickleError) as e:
            safe_pickle.load(path)
        assert str(e.value) == (
            f"{path} holds a {kind} object, which an annotation file never does: refused (nothing of it ran); "
            "pass --trust_data if you trust the file"
        )
        assert not marker.exists(), kind


def test_bytes_of_protocol_2_are_latin1_text_only(tmp_path):
    """`_codecs.encode` is how protocols 0-2 write bytes; any other use of it is refused."""
    assert safe_pickle.load(io.BytesIO(pickle.dumps(b"\x00\xff", protocol=2))) == b"\x00\xff"
    crafted = pickle.dumps(Reduce(__import__("_codecs").encode, "abc", "rot13"), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="not pickled bytes"):
        safe_pickle.load(io.BytesIO(crafted))


def custom_argv(path: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["custom", "--ann_file", str(path), "--run_dir", str(tmp_path / "runs"), "--device", "cpu", "-j", "0",
            *extra]  # fmt: skip


@pytest.mark.parametrize("kind", ["system", "builtins.eval", "subprocess.Popen", "Touch"])
def test_main_custom_refuses_a_crafted_annotation_file(tmp_path, capsys, kind):
    marker = tmp_path / "MARKER"
    name, evil = next((k, v) for k, v in payloads(marker).items() if k.endswith(kind))
    path = write(tmp_path / "evil.pkl", pyskl_file(evil))
    with pytest.raises(SystemExit) as excinfo:
        cli.main(custom_argv(path, tmp_path))
    line = error_line(capsys, excinfo)
    assert f"{path} holds a {name} object" in line and "--trust_data" in line, line
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_trust_data_loads_as_pickle_does(tmp_path, capsys):
    """The crafted file runs its command under --trust_data: the ordinary loader is used (in tmp_path only)."""
    marker = tmp_path / "MARKER"
    path = write(tmp_path / "evil.pkl", Reduce(os.system, f"touch {marker}"))
    with pytest.raises(SystemExit) as excinfo:
        cli.main(custom_argv(path, tmp_path, "--trust_data"))
    # os.system's exit status is all the file holds: no pyskl file, but it was unpickled in full.
    assert "is not a pyskl annotation file" in error_line(capsys, excinfo) and marker.exists()
    marker.unlink()
    assert load_pickle(write(tmp_path / "touch.pkl", pyskl_file(Touch(marker))), trusted=True) and marker.exists()


def test_readers_keep_their_one_line_errors(tmp_path):
    path = write(tmp_path / "evil.pkl", pyskl_file(Touch(tmp_path / "MARKER")))
    with pytest.raises(AnnotationError, match="Touch object, which an annotation file never does"):
        load_pickle(path)
    with pytest.raises(ValueError, match="Touch object, which an annotation file never does"):
        read_input(path)  # InputError
    assert not (tmp_path / "MARKER").exists()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny PoseConv3D trained for one step on the synthetic data."""
    root = tmp_path_factory.mktemp("safe_pickle")
    write(root / "tiny.pkl", make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40))
    cli.main([
        "synthetic", "--ann_file", str(root / "tiny.pkl"), "--run_dir", str(root), "--name", "run", "--epochs", "1",
        "--max_steps", "1", "-b", "4", "-j", "0", "--clip_len", "8", "--input_size", "32", "--input_f", "Skeleton",
        "--eval_alphas", "0", "--eval_corruptions", "none", "--device", "cpu",
        "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)",
    ])  # fmt: skip
    return root / "run" / "best.pt"


def test_main_predict_refuses_a_crafted_input(tmp_path, capsys, checkpoint):
    marker = tmp_path / "MARKER"
    for name, evil in payloads(marker).items():
        path = write(tmp_path / "evil.pkl", [evil])
        with pytest.raises(SystemExit) as excinfo:
            cli.main(["predict", "--checkpoint", str(checkpoint), "--input", str(path), "--device", "cpu"])
        line = error_line(capsys, excinfo)
        assert f"{path} holds a {name} object" in line and "--trust_data" in line, line
        assert not marker.exists(), name
    path = write(tmp_path / "evil.pkl", Reduce(os.system, f"touch {marker}"))
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["predict", "--checkpoint", str(checkpoint), "--input", str(path), "--device", "cpu", "--trust_data"])
    assert "got int" in error_line(capsys, excinfo) and marker.exists()


def test_scripts_refuse_crafted_files(tmp_path, capsys):
    """scripts/export_corrupted.py (an annotation file) and scripts/score_results.py (a result file)."""
    marker = tmp_path / "MARKER"
    evil = write(tmp_path / "evil.pkl", pyskl_file(Reduce(os.system, f"touch {marker}")))
    with pytest.raises(SystemExit) as excinfo:
        export.main([str(evil), str(tmp_path / "bench"), "--split", "xsub_val", "--eval_corruptions", "none"])
    assert f"{evil} holds a {os.system.__module__}.system object" in error_line(capsys, excinfo)
    ann = write(tmp_path / "tiny.pkl", pyskl_file())
    manifest = export.main([str(ann), str(tmp_path / "bench"), "--eval_corruptions", "none", "--eval_alphas", "0"])
    results = tmp_path / "results"
    results.mkdir()
    labels = [c["label"] for c in manifest["clips"]]
    write(results / "clean.pkl", [Reduce(os.system, f"touch {marker}") for _ in labels])
    argv = [str(tmp_path / "bench" / "manifest.json"), str(results)]
    with pytest.raises(SystemExit) as excinfo:
        score.main(argv)
    line = error_line(capsys, excinfo)
    assert f"clean.pkl holds a {os.system.__module__}.system object, which a result file never does" in line
    assert not marker.exists()
    with pytest.raises(SystemExit) as excinfo:  # trusted: the commands ran, and left no scores
        score.main([*argv, "--trust_data"])
    assert "class scores" in error_line(capsys, excinfo) and marker.exists()
    # mmaction2 >= 1.0's tensors are scores all the same, under the restriction
    entries = [{"pred_score": torch.eye(2)[y], "gt_label": torch.tensor([y])} for y in labels]
    write(results / "clean.pkl", entries, protocol=2)
    assert score.main([*argv, "--out_dir", str(tmp_path / "report")])["summary"]["clean"] == 1.0


# -- real files load identically with and without the restriction


def pyskl_scalars_file() -> dict:
    """pyskl's variants: float16 3D keypoints without scores, NumPy scalar labels and frame counts, 2D clips
    with float32 scores, an OrderedDict of splits, a string array, a Fortran-ordered array."""
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"S001C001P00{i}R001A00{i + 1}", "label": np.int64(i), "total_frames": np.int32(9 + i),
             "keypoint": rng.normal(size=(2, 9 + i, 25, 3)).astype(np.float16), "mean": np.float32(0.5 * i),
             "valid": np.bool_(i % 2), "img_shape": None} for i in range(3)]  # fmt: skip
    anns.append({"frame_dir": "2d", "label": 1, "img_shape": (np.int64(1080), 1920), "original_shape": (1080, 1920),
                 "total_frames": 5, "keypoint": rng.random((1, 5, 25, 2)).astype(np.float32) * 1000,
                 "keypoint_score": np.asfortranarray(rng.random((1, 5, 25)).astype(np.float64))})  # fmt: skip
    split = OrderedDict(xsub_train=[a["frame_dir"] for a in anns[:2]], xsub_val=[a["frame_dir"] for a in anns[2:]])
    names = np.array([a["frame_dir"] for a in anns])
    return {"split": split, "annotations": anns, "names": names, "version": (1, 0.5, 2j, b"x", {"ntu"})}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pyskl_files_load_identically(tmp_path, protocol):
    data = pyskl_scalars_file()
    path = write(tmp_path / "real.pkl", data, protocol)
    restricted, trusted = load_pickle(path), load_pickle(path, trusted=True)
    assert same(restricted, data) and same(restricted, trusted)
    assert type(restricted["split"]) is OrderedDict
    store = pack_annotations({"annotations": restricted["annotations"][:3]})  # the 3D clips
    assert store.keypoint.dtype == np.float16 and store.coord_dim == 3
    annotations, _ = read_input(path)
    assert same(annotations, data["annotations"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_synthetic_data_loads_identically(tmp_path, protocol):
    data = make_synthetic(clips_per_class_per_subject=1, seed=1)
    path = write(tmp_path / "synthetic.pkl", data, protocol)
    assert same(load_pickle(path), data) and same(load_pickle(path), load_pickle(path, trusted=True))


def test_the_synthetic_cache_loads_under_the_restriction(tmp_path):
    """The file `main.py synthetic` writes and reads (protocol 4)."""
    path = load_or_create_synthetic(tmp_path, clips_per_class_per_subject=1)
    assert same(load_pickle(path), load_pickle(path, trusted=True))


@pytest.mark.parametrize("folder", [("gcn", "pipeline"), ("pipeline",)])
def test_golden_pyskl_files_load_under_the_restriction(folder):
    files = sorted(shared_or_skip("golden", *folder).glob("*.pkl"))
    if not files:
        pytest.skip(f"no .pkl in golden/{'/'.join(folder)}")
    for path in files:  # whole files, and one annotation (golden/pipeline), which predict reads
        with open(path, "rb") as f:
            assert same(safe_pickle.load(path), pickle.load(f)), path
        annotations, declared = read_input(path)
        assert len(pack_unlabelled(annotations, path.name, declared)[0]) == len(annotations)


def test_extra_globals_and_file_objects():
    """A caller may allow more (scripts/score_results.py: tensors); a file object names itself, or 'the pickle'."""
    blob = pickle.dumps([torch.arange(3)])
    with pytest.raises(safe_pickle.UnsafePickleError, match="^the pickle holds a torch._utils._rebuild_tensor_v2"):
        safe_pickle.load(io.BytesIO(blob), what="result file")
    (back,) = safe_pickle.load(io.BytesIO(blob), extra=score.TENSOR_GLOBALS)
    assert torch.equal(back, torch.arange(3))
