"""Annotation files: loading, one-pass validation, the packed KeypointStore and the dataset catalog.

Synthetic clips are built here with numpy; the real pyskl-format files are the golden MotionBERT and
pyskl annotations (copied under tests/fixtures/) and the mediapipe NTU samples under ../shared (skipped
when absent).
"""

from __future__ import annotations

import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest

from datasets.store.annotations import AnnotationError, KeypointStore, load_pickle, pack_annotations
from datasets.store.catalog import CATALOG, dataset_spec, load_store, resolve_ann_file, split_names
from datasets.store.layouts import Layout
from tests.conftest import FIXTURES, shared_or_skip

V = 17  # COCO-17 joints


def make_ann(
    name: str,
    m: int,
    t: int,
    rng: np.random.Generator,
    label: int = 0,
    v: int = V,
    c: int = 2,
    dtype: type = np.float16,
) -> dict:
    """One pyskl annotation: keypoint (M, T, V, C) in pixels (C=2, with scores) or metres (C=3, no scores)."""
    ann = {"frame_dir": name, "label": label, "total_frames": t}
    if c == 2:
        ann["keypoint"] = (rng.random((m, t, v, c)) * 1000).astype(dtype)
        ann["keypoint_score"] = rng.random((m, t, v)).astype(dtype)
        ann["img_shape"] = (1080, 1920)
        ann["original_shape"] = (1080, 1920)
    else:
        ann["keypoint"] = rng.normal(size=(m, t, v, c)).astype(dtype)
    return ann


def dump(tmp_path: Path, data: object, name: str = "ann.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data))
    return path


def check_round_trip(store: KeypointStore, anns: list[dict]) -> None:
    """Every clip of the store equals its source annotation, values and keypoint dtype included."""
    assert len(store) == len(anns)
    assert store.names == [a["frame_dir"] for a in anns]
    for i, a in enumerate(anns):
        got = store.get(i)
        assert got["frame_dir"] == a["frame_dir"]
        assert got["label"] == a["label"] and isinstance(got["label"], int)
        assert got["total_frames"] == a["keypoint"].shape[1] == a.get("total_frames", a["keypoint"].shape[1])
        assert got["keypoint"].shape == a["keypoint"].shape
        assert got["keypoint"].dtype == a["keypoint"].dtype
        np.testing.assert_array_equal(got["keypoint"], a["keypoint"])
        if "keypoint_score" in a:
            assert got["img_shape"] == tuple(a["img_shape"])
            # float16 scores widen to float32 exactly
            np.testing.assert_array_equal(got["keypoint_score"], a["keypoint_score"].astype(np.float32))


# ----------------------------------------------------------------------------------------------
# The packed store


@pytest.fixture
def clips() -> dict:
    """Clips of different person counts M and lengths T, with a two-way split."""
    rng = np.random.default_rng(0)
    shapes = [(1, 5), (2, 3), (1, 1), (3, 7), (2, 11)]
    anns = [make_ann(f"clip{i}", m, t, rng, label=i * 7) for i, (m, t) in enumerate(shapes)]
    anns[2]["img_shape"] = (480, 640)
    split = {"xsub_train": ["clip3", "clip0", "clip4"], "xsub_val": ["clip1", "clip2"]}
    return {"split": split, "annotations": anns}


def test_store_round_trips_every_sample(tmp_path: Path, clips: dict) -> None:
    store = pack_annotations(load_pickle(dump(tmp_path, clips)), num_classes=60)
    check_round_trip(store, clips["annotations"])
    assert store.num_joints == V and store.coord_dim == 2
    np.testing.assert_array_equal(store.persons, [1, 2, 1, 3, 2])
    np.testing.assert_array_equal(store.frames, [5, 3, 1, 7, 11])
    np.testing.assert_array_equal(store.offsets, [0, 5, 11, 12, 33, 55])  # cumulative M*T
    np.testing.assert_array_equal(store.labels, [0, 7, 14, 21, 28])
    assert store.get(2)["img_shape"] == (480, 640)


def test_packed_arrays_are_single_contiguous_read_only(clips: dict) -> None:
    store = pack_annotations(clips)
    rows = sum(a["keypoint"].shape[0] * a["keypoint"].shape[1] for a in clips["annotations"])
    assert store.keypoint.shape == (rows, V, 2) and store.keypoint.dtype == np.float16
    assert store.score.shape == (rows, V) and store.score.dtype == np.float32
    for arr in (store.keypoint, store.score):
        assert arr.flags.c_contiguous and arr.base is None  # one owned block, not views of the sources
        assert not arr.flags.writeable
    got = store.get(3)
    assert np.shares_memory(got["keypoint"], store.keypoint)  # views, not copies
    assert np.shares_memory(got["keypoint_score"], store.score)
    with pytest.raises(ValueError, match="read-only"):
        got["keypoint"][0, 0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        got["keypoint_score"][0, 0, 0] = 1
    # the store copied the data: changing a source array later does not reach it
    before = store.get(0)["keypoint"].copy()
    clips["annotations"][0]["keypoint"][:] = 0
    np.testing.assert_array_equal(store.get(0)["keypoint"], before)


def test_mixed_keypoint_dtypes_promote() -> None:
    rng = np.random.default_rng(1)
    anns = [make_ann("a", 1, 4, rng), make_ann("b", 2, 3, rng, dtype=np.float32)]
    store = pack_annotations({"annotations": anns})
    assert store.keypoint.dtype == np.float32
    np.testing.assert_array_equal(store.get(0)["keypoint"], anns[0]["keypoint"].astype(np.float32))
    np.testing.assert_array_equal(store.get(1)["keypoint"], anns[1]["keypoint"])


def test_split_indices(clips: dict) -> None:
    store = pack_annotations(clips)
    np.testing.assert_array_equal(store.split_indices("xsub_train"), [3, 0, 4])  # file order kept
    np.testing.assert_array_equal(store.split_indices("xsub_val"), [1, 2])
    assert store.split_indices("xsub_val").dtype == np.int64
    with pytest.raises(KeyError) as e:
        store.split_indices("xview_train")
    msg = str(e.value)
    assert "xview_train" in msg and "xsub_train" in msg and "xsub_val" in msg and "\n" not in msg
    no_split = pack_annotations({"split": {}, "annotations": clips["annotations"]})
    with pytest.raises(KeyError, match="none"):
        no_split.split_indices("xsub_train")


# ----------------------------------------------------------------------------------------------
# Validation: every problem is one AnnotationError line naming the sample and the problem


def _good_and(bad: dict) -> dict:
    """A file with a good clip, then `bad` at index 1, then another good clip."""
    rng = np.random.default_rng(2)
    return {"split": {}, "annotations": [make_ann("good0", 1, 4, rng), bad, make_ann("good2", 2, 6, rng)]}


def _bad(**changes: object) -> dict:
    """A 2-person, 5-frame clip named 'bad_clip' with `changes` applied (None deletes the key)."""
    ann = make_ann("bad_clip", 2, 5, np.random.default_rng(3), label=3)
    for k, val in changes.items():
        if val is None:
            del ann[k]
        else:
            ann[k] = val
    return ann


def _nan_at(m: int, t: int, v: int) -> np.ndarray:
    kp = np.ones((2, 5, V, 2), np.float16)
    kp[m, t, v, 1] = np.nan
    return kp


# (case id, the bad sample, expected message fragments)
BAD_SAMPLES = [
    ("missing_label", _bad(label=None), ["missing key 'label'"]),
    ("missing_keypoint", _bad(keypoint=None), ["missing key 'keypoint'"]),
    (
        "keypoint_ndim",
        _bad(keypoint=np.zeros((5, V, 2), np.float16)),
        ["'keypoint'", "(M, T, V, C)", "(5, 17, 2)"],
    ),
    ("keypoint_not_array", _bad(keypoint=[[1.0, 2.0]]), ["'keypoint' must be a numpy array"]),
    ("keypoint_int", _bad(keypoint=np.zeros((2, 5, V, 2), np.int32)), ["floating point", "int32"]),
    ("coord_dim_4", _bad(keypoint=np.zeros((2, 5, V, 4), np.float16)), ["last axis", "got 4"]),
    ("coord_dim_1", _bad(keypoint=np.zeros((2, 5, V, 1), np.float16)), ["last axis", "got 1"]),
    (
        "zero_frames",
        _bad(keypoint=np.zeros((2, 0, V, 2), np.float16), keypoint_score=np.zeros((2, 0, V)), total_frames=0),
        ["at least one person and one frame", "(2, 0, 17, 2)"],
    ),
    ("total_frames", _bad(total_frames=9), ["'total_frames' is 9", "5 frames"]),
    ("total_frames_not_a_number", _bad(total_frames=[5]), ["'total_frames' must be a number of frames, got a list"]),
    (
        "nan_keypoint",
        _bad(keypoint=_nan_at(1, 2, 3)),
        ["non-finite keypoint", "[person, frame, joint]", "[1, 2, 3]"],
    ),
    (
        "inf_score",
        _bad(keypoint_score=np.where(np.arange(V) == 4, np.inf, 0.5) * np.ones((2, 5, 1))),
        ["non-finite keypoint_score"],
    ),
    (
        "score_shape",
        _bad(keypoint_score=np.ones((2, 5, 16), np.float16)),
        ["keypoint_score", "(2, 5, 17)", "(2, 5, 16)"],
    ),
    ("score_missing_2d", _bad(keypoint_score=None), ["2D keypoints need 'keypoint_score'"]),
    ("img_shape_missing_2d", _bad(img_shape=None), ["2D keypoints need 'img_shape'", "None"]),
    ("img_shape_not_pair", _bad(img_shape=1080), ["2D keypoints need 'img_shape'", "1080"]),
    ("img_shape_zero", _bad(img_shape=(0, 1920)), ["'img_shape'", "positive"]),
    ("negative_label", _bad(label=-1), ["'label'", "non-negative integer", "-1"]),
    ("float_label", _bad(label=2.0), ["'label'", "non-negative integer", "2.0"]),
    ("label_out_of_range", _bad(label=60), ["label 60 is out of range for 60 classes"]),
]


@pytest.mark.parametrize("bad,fragments", [c[1:] for c in BAD_SAMPLES], ids=[c[0] for c in BAD_SAMPLES])
def test_bad_sample_is_named(tmp_path: Path, bad: dict, fragments: list[str]) -> None:
    data = load_pickle(dump(tmp_path, _good_and(bad)))  # through a real file, as the CLI reads it
    with pytest.raises(AnnotationError) as e:
        pack_annotations(data, num_classes=60)
    msg = str(e.value)
    assert "\n" not in msg
    assert "'bad_clip'" in msg and "index 1" in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_label_equal_to_num_classes_minus_one_is_fine() -> None:
    pack_annotations(_good_and(_bad(label=59)), num_classes=60)
    pack_annotations(_good_and(_bad(label=np.int64(59))), num_classes=60)
    pack_annotations(_good_and(_bad(label=600)))  # no class count given: any non-negative label


def test_sample_without_frame_dir_is_named_by_index() -> None:
    with pytest.raises(AnnotationError, match=r"sample '#1' \(index 1\): missing key 'frame_dir'"):
        pack_annotations(_good_and(_bad(frame_dir=None)))
    with pytest.raises(AnnotationError, match=r"'#1'.*expected a dict, got list"):
        pack_annotations(_good_and([1, 2]))
    # A name that is no string (an array, whose repr spans lines) is no name: the sample goes by its index.
    with pytest.raises(AnnotationError, match=r"^sample '#1' \(index 1\): 'frame_dir' must be the clip's name, a "
                       r"string, got a ndarray$"):  # fmt: skip
        pack_annotations(_good_and(_bad(frame_dir=np.zeros((3, 3)))))


def _one_line_error(data: dict, *fragments: str) -> None:
    with pytest.raises(AnnotationError) as e:
        pack_annotations(data)
    msg = str(e.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_file_class_names_are_checked_against_the_labels() -> None:
    """'classes' (as `datasets.convert folder` writes it) names every label once; labels 1, 2 and 3 here."""
    data = _good_and(_bad())
    assert pack_annotations(data).classes is None
    assert pack_annotations({**data, "classes": ["a", "b", "c", "d", "e"]}).classes == ("a", "b", "c", "d", "e")
    _one_line_error({**data, "classes": ["a", "b", "c"]}, "'bad_clip' has label 3", "names only 3 classes")
    _one_line_error({**data, "classes": ["a", "b", "a", "d"]}, "names 'a' twice")
    _one_line_error({**data, "classes": "abcd"}, "'classes' must be a non-empty list of class names")
    _one_line_error({**data, "classes": ["a", "", "c", "d"]}, "'classes' must be a non-empty list of class names")


def test_files_that_are_not_pyskl_files_are_named(tmp_path: Path) -> None:
    for name, obj, fragment in [
        ("list", [1, 2, 3], "expected a dict with 'annotations' (and 'split'), got a list of int"),
        ("keys", {"split": {}, "clips": []}, "got a dict without 'annotations' (keys: 'split', 'clips')"),
        ("anns", {"annotations": {"c0": {}}}, "its 'annotations' is a dict; expected a list of dicts"),
        ("split", {"split": None, "annotations": []}, "its 'split' must map each split's name to a list of clip"),
        ("members", {"split": {"train": [["c0"]]}, "annotations": []}, "got {'train': [['c0']]}"),
    ]:
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(pickle.dumps(obj))
        with pytest.raises(AnnotationError) as e:
            load_pickle(path)
        msg = str(e.value)
        assert msg.startswith(f"{path} is not a pyskl annotation file: ") and fragment in msg and "\n" not in msg
    (tmp_path / "p.pkl").write_bytes(b"P")  # pickle's own message spans two lines
    with pytest.raises(AnnotationError, match=r"cannot unpickle \(UnpicklingError: A load persistent id .*, but no"):
        load_pickle(tmp_path / "p.pkl")
    anns = [make_ann("c0", 1, 4, np.random.default_rng(0))]
    (tmp_path / "bare.pkl").write_bytes(pickle.dumps(anns))  # a bare list of annotations is still read
    assert load_pickle(tmp_path / "bare.pkl")["annotations"][0]["frame_dir"] == "c0"


def test_mixed_joint_counts_and_dims() -> None:
    rng = np.random.default_rng(4)
    _one_line_error(_good_and(make_ann("bad_clip", 1, 4, rng, v=25)), "'bad_clip'", "(25, 2)", "(17, 2)")
    _one_line_error(_good_and(make_ann("bad_clip", 1, 4, rng, c=3)), "'bad_clip'", "(17, 3)", "(17, 2)")


def test_duplicate_frame_dir() -> None:
    data = _good_and(make_ann("good2", 1, 3, np.random.default_rng(5)))
    _one_line_error(data, "'good2'", "more than once")


def test_split_naming_absent_clip(clips: dict) -> None:
    clips["split"]["xsub_val"] = ["clip1", "S999C001P001R001A001"]
    _one_line_error(clips, "'xsub_val'", "'S999C001P001R001A001'", "absent")


def test_empty_annotation_list(tmp_path: Path) -> None:
    _one_line_error(load_pickle(dump(tmp_path, {"split": {}, "annotations": []})), "no samples")


# ----------------------------------------------------------------------------------------------
# Reading files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pkl"
    with pytest.raises(FileNotFoundError) as e:
        load_pickle(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("cut", [0, 1, 100, -1], ids=["empty", "1_byte", "100_bytes", "last_byte_missing"])
def test_truncated_pickle(tmp_path: Path, clips: dict, cut: int) -> None:
    blob = pickle.dumps(clips)
    path = tmp_path / "truncated.pkl"
    path.write_bytes(blob[:cut])
    with pytest.raises(AnnotationError) as e:
        load_pickle(path)
    msg = str(e.value)
    assert str(path) in msg and "cannot unpickle" in msg and "\n" not in msg


def test_corrupt_pickle(tmp_path: Path) -> None:
    path = tmp_path / "ntu60_hrnet.pkl"
    path.write_bytes(b"<!DOCTYPE html>\n<html>Access denied</html>\n")  # what a failed download leaves
    with pytest.raises(AnnotationError) as e:
        load_pickle(path)
    msg = str(e.value)
    assert str(path) in msg and "cannot unpickle" in msg and "pyskl" in msg and "\n" not in msg


@pytest.mark.parametrize("data", [42, "annotations", (1, 2), {"split": {}}, {"keypoint": np.zeros(3)}], ids=str)
def test_non_pyskl_pickle(tmp_path: Path, data: object) -> None:
    path = dump(tmp_path, data)
    with pytest.raises(AnnotationError) as e:
        load_pickle(path)
    msg = str(e.value)
    assert str(path) in msg and "'annotations'" in msg and "pyskl" in msg and "\n" not in msg


def test_bare_list_and_missing_split(tmp_path: Path, clips: dict) -> None:
    for data in (clips["annotations"], {"annotations": clips["annotations"]}):
        loaded = load_pickle(dump(tmp_path, data))
        assert loaded["split"] == {}
        check_round_trip(pack_annotations(loaded), clips["annotations"])


# ----------------------------------------------------------------------------------------------
# 3D files


def test_3d_file_loads_and_scores_seen_joints(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    anns = [
        make_ann("a", 2, 4, rng, c=3, v=25, dtype=np.float32),
        make_ann("b", 1, 3, rng, c=3, v=25, dtype=np.float32),
    ]
    anns[0]["keypoint"][1, 2:] = 0  # person 1 missing in the last two frames
    anns[0]["keypoint"][0, 0, 5] = (0.0, 0.0, 0.7)  # on two axes zero, still a seen joint
    anns[1]["keypoint"][0, 1, 7] = 0
    anns[1]["img_shape"] = None  # 3D files may carry a None shape; it is not needed
    store = pack_annotations(load_pickle(dump(tmp_path, {"split": {"xsub_val": ["b"]}, "annotations": anns})))
    assert store.coord_dim == 3 and store.num_joints == 25 and store.score is None
    check_round_trip(store, anns)

    score = store.get(0)["keypoint_score"]
    expected = np.ones((2, 4, 25), np.float32)
    expected[1, 2:] = 0
    assert score.dtype == np.float32
    np.testing.assert_array_equal(score, expected)
    expected = np.ones((1, 3, 25), np.float32)
    expected[0, 1, 7] = 0
    np.testing.assert_array_equal(store.get(1)["keypoint_score"], expected)
    assert store.get(0)["img_shape"] == (0, 0) and store.get(1)["img_shape"] == (0, 0)
    np.testing.assert_array_equal(store.split_indices("xsub_val"), [1])


def test_3d_with_scores_keeps_them() -> None:
    rng = np.random.default_rng(7)
    ann = make_ann("a", 1, 3, rng, c=3)
    ann["keypoint_score"] = rng.random((1, 3, V)).astype(np.float32)
    store = pack_annotations({"annotations": [ann]})
    np.testing.assert_array_equal(store.get(0)["keypoint_score"], ann["keypoint_score"])


# ----------------------------------------------------------------------------------------------
# Catalog

NTU60_URL = "https://download.openmmlab.com/mmaction/pyskl/data/nturgbd/ntu60_hrnet.pkl"
NTU120_URL = "https://download.openmmlab.com/mmaction/pyskl/data/nturgbd/ntu120_hrnet.pkl"


def test_resolve_missing_ntu60(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        resolve_ann_file(CATALOG["ntu60"], tmp_path, None)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / "nturgbd" / "ntu60_hrnet.pkl") in msg
    assert NTU60_URL in msg and "synthetic" in msg and "--ann_file" in msg


def test_resolve_and_load_missing_ntu120(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as e:
        load_store("ntu120", data_root=tmp_path)
    assert NTU120_URL in str(e.value) and str(tmp_path / "nturgbd" / "ntu120_hrnet.pkl") in str(e.value)


def test_resolve_default_path_and_override(tmp_path: Path, clips: dict) -> None:
    default = tmp_path / "nturgbd" / "ntu60_hrnet.pkl"
    default.parent.mkdir()
    dump(default.parent, clips, default.name)
    assert resolve_ann_file(CATALOG["ntu60"], tmp_path, None) == default

    other = dump(tmp_path, clips, "mine.pkl")
    # --ann_file wins over --data_root, even when the data root does not exist
    assert resolve_ann_file(CATALOG["ntu60"], tmp_path / "absent", other) == other
    assert resolve_ann_file(CATALOG["ntu60"], tmp_path, str(other)) == other
    with pytest.raises(FileNotFoundError, match="typo.pkl"):
        resolve_ann_file(CATALOG["ntu60"], tmp_path, tmp_path / "typo.pkl")

    store, path = load_store("ntu60", data_root=tmp_path / "absent", ann_file=other)
    assert path == other
    check_round_trip(store, clips["annotations"])


def test_load_store_checks_labels_against_dataset_classes(tmp_path: Path, clips: dict) -> None:
    clips["annotations"][4]["label"] = 60  # NTU60 labels are 0..59
    path = dump(tmp_path, clips)
    with pytest.raises(AnnotationError, match="'clip4'.*label 60 is out of range for 60 classes"):
        load_store("ntu60", ann_file=path)
    store, _ = load_store("ntu120", ann_file=path)
    assert store.labels[4] == 60


def test_split_names() -> None:
    assert split_names(CATALOG["ntu60"], "xsub") == ("xsub_train", "xsub_val")
    assert split_names(CATALOG["ntu60"], "xview") == ("xview_train", "xview_val")
    assert split_names(CATALOG["ntu120"], "xsub") == ("xsub_train", "xsub_val")
    assert split_names(CATALOG["ntu120"], "xset") == ("xset_train", "xset_val")
    assert CATALOG["ntu60"].num_classes == 60 and CATALOG["ntu120"].num_classes == 120
    with pytest.raises(ValueError) as e:
        split_names(CATALOG["ntu60"], "xset")  # NTU60 has no cross-setup protocol
    assert "xsub" in str(e.value) and "xview" in str(e.value) and "'xset'" in str(e.value)
    with pytest.raises(ValueError, match="xset"):
        split_names(CATALOG["ntu120"], "xview")
    with pytest.raises(KeyError, match="ntu60"):
        dataset_spec("kinetics")


# ----------------------------------------------------------------------------------------------
# Real pyskl-format files


def _real(fixture: str, *shared: str) -> Path:
    """A real file from tests/fixtures, else from ../shared, else skip."""
    path = FIXTURES / fixture
    return path if path.is_file() else shared_or_skip(*shared)


def test_real_pyskl_single_annotation() -> None:
    """pyskl's own pipeline input (golden README, `val_c24_s56_annotation.pkl`)."""
    path = _real("pipeline/val_c24_s56_annotation.pkl", "golden", "pipeline", "val_c24_s56_annotation.pkl")
    with open(path, "rb") as f:
        ann = pickle.load(f)
    store = pack_annotations({"split": {}, "annotations": [ann]}, num_classes=60)
    check_round_trip(store, [ann])
    got = store.get(0)
    # the facts the golden README states about this file
    assert got["keypoint"].shape == (2, 100, 17, 2) and got["keypoint"].dtype == np.float16
    assert got["label"] == 12 and got["img_shape"] == (1080, 1920) and got["total_frames"] == 100
    assert not got["keypoint"][1, 90:].any() and not got["keypoint_score"][1, 90:].any()
    assert got["keypoint"][1, :90].any(axis=-1).all()  # present before the last 10 frames
    assert got["keypoint_score"][0, 3, 5] == pytest.approx(0.0005, abs=1e-6)
    assert (got["keypoint"][0, 4, 2] == 0).all() and got["keypoint_score"][0, 4, 2] > 0


def test_real_motionbert_annotations() -> None:
    """The MotionBERT golden input: 4 NTU clips, float16, xsub splits (golden README, `motionbert_data/`)."""
    path = _real("annotations/annotations.pkl", "golden", "motionbert_data", "annotations.pkl")
    data = load_pickle(path)
    store = pack_annotations(data, num_classes=60)
    check_round_trip(store, data["annotations"])
    assert store.keypoint.dtype == np.float16
    names = ["S001C001P001R001A050", "S001C002P002R002A001", "S002C001P004R002A055", "S003C001P005R001A010"]
    assert store.names == names
    np.testing.assert_array_equal(store.labels, [int(n[-3:]) - 1 for n in names])  # NTU: label = A - 1
    np.testing.assert_array_equal(store.persons, [2, 1, 2, 1])
    np.testing.assert_array_equal(store.frames, [40, 30, 50, 20])
    for split in ("xsub_train", "xsub_val"):
        np.testing.assert_array_equal(store.split_indices(split), [0, 1, 2, 3])

    a050 = store.get(0)  # person 1 missing (zeros, score 0) in frames 25-31
    assert not a050["keypoint"][1, 25:32].any() and not a050["keypoint_score"][1, 25:32].any()
    assert a050["keypoint_score"][1, 24].any() and a050["keypoint_score"][1, 32].any()
    a001 = store.get(1)  # 3 zero scores in frame 4
    assert (a001["keypoint_score"][0, 4] == 0).sum() == 3
    s = store.get(2)["keypoint_score"]  # persons with distinct score ranges
    assert s.min() >= 0.3 and s.max() <= 1.0  # [0.7, 1.0) rounded to float16
    assert not store.get(3)["keypoint_score"].any()  # every score 0

    # the per-clip npz files of the same golden set hold the same input arrays
    for i, name in enumerate(names):
        npz = _real(f"motionbert_data/{name}.npz", "golden", "motionbert_data", f"{name}.npz")
        with np.load(npz) as z:
            np.testing.assert_array_equal(store.get(i)["keypoint"], z["keypoint"])
            np.testing.assert_array_equal(store.get(i)["keypoint_score"], z["keypoint_score"].astype(np.float32))


def test_real_ntu_mediapipe_samples() -> None:
    """Real NTU videos run through mediapipe (shared/data/ntu_samples/README.txt).

    float32 keypoints; the extra mediapipe-33 keys are ignored."""
    path = shared_or_skip("data", "ntu_samples", "mediapipe", "ntu_videos_mediapipe.pkl")
    data = load_pickle(path)
    store = pack_annotations(data, num_classes=60)
    check_round_trip(store, data["annotations"])
    assert store.names == ["S001C001P001R001A001", "ntu_sample"]
    np.testing.assert_array_equal(store.labels, [0, 54])
    np.testing.assert_array_equal(store.frames, [103, 72])
    np.testing.assert_array_equal(store.persons, [1, 1])
    assert store.keypoint.dtype == np.float32 and store.num_joints == 17
    # README: mean score 0.96 and 0.91
    assert store.get(0)["keypoint_score"].mean() == pytest.approx(0.96, abs=0.005)
    assert store.get(1)["keypoint_score"].mean() == pytest.approx(0.91, abs=0.005)
    assert set(store.get(0)) == {
        "frame_dir",
        "label",
        "img_shape",
        "total_frames",
        "keypoint",
        "keypoint_score",
    }


# ----------------------------------------------------------------------------------------------
# Memory: what a spawned DataLoader worker receives


def test_store_pickles_fast_and_small() -> None:
    rng = np.random.default_rng(8)
    n, m, t = 1000, 2, 50
    kp = (rng.random((n, m, t, V, 2)) * 1000).astype(np.float16)
    sc = rng.random((n, m, t, V)).astype(np.float16)
    anns = [
        {
            "frame_dir": f"S001C001P{i:03d}R001A001",
            "label": i % 60,
            "img_shape": (1080, 1920),
            "total_frames": t,
            "keypoint": kp[i],
            "keypoint_score": sc[i],
        }
        for i in range(n)
    ]
    store = pack_annotations({"split": {"all": [a["frame_dir"] for a in anns]}, "annotations": anns})

    # Only flat arrays and the name strings: no per-sample containers for a worker to touch.
    for field, value in vars(store).items():
        if field == "names":
            assert all(type(s) is str for s in value)
        elif field == "splits":
            assert all(isinstance(a, np.ndarray) for a in value.values())
        elif field == "layout":
            assert value is None or isinstance(value, (str, Layout))  # one per file
        elif field in ("classes", "fields"):  # one name per class; the clips' own fields (subject, ...): none here
            assert value == {"classes": None, "fields": {}}[field]
        else:
            assert isinstance(value, np.ndarray), field

    # What multiprocessing sends a spawned worker: the flat arrays as a few large buffers and the names,
    # nothing per sample (its size is checked against the arrays below; speed is bench/'s business).
    blob = bytes(ForkingPickler.dumps(store))
    back = pickle.loads(blob)

    arrays = sum(
        a.nbytes
        for a in (
            store.keypoint,
            store.score,
            store.offsets,
            store.persons,
            store.frames,
            store.labels,
            store.img_shapes,
            store.splits["all"],
        )
    )
    names = sum(len(s) + 8 for s in store.names)  # the pickled string plus its framing
    assert arrays <= len(blob) <= arrays + names + 4096, (len(blob), arrays, names)

    # the copy a worker gets is the same data, still read-only (protocol 4 alone would make it writable)
    for copy in (back, *(pickle.loads(pickle.dumps(store, protocol=p)) for p in (2, 4, 5))):
        assert not copy.keypoint.flags.writeable and not copy.score.flags.writeable
    for i in (0, 517, n - 1):
        np.testing.assert_array_equal(back.get(i)["keypoint"], kp[i])
        np.testing.assert_array_equal(back.get(i)["keypoint_score"], sc[i].astype(np.float32))
    np.testing.assert_array_equal(back.split_indices("all"), np.arange(n))
