"""The built-in synthetic dataset: format, determinism, splits, detector effects, difficulty, cache."""

import pickle
import re

import numpy as np
import pytest

from datasets.sources import synthetic
from datasets.sources.synthetic import (
    CLASS_NAMES,
    IMG_SHAPE,
    TWO_PERSON,
    class_names,
    load_or_create_synthetic,
    make_synthetic,
    val_subjects,
)
from datasets.store.layouts import COCO17

FRAME_DIR = re.compile(r"^S(\d{3})C(00[123])P(\d{3})R(\d{3})A(\d{3})$")


@pytest.fixture(scope="module")
def default_data() -> dict:
    return make_synthetic()  # 240 clips, well under a second


@pytest.fixture(scope="module")
def all_classes() -> dict:
    return make_synthetic(num_classes=len(CLASS_NAMES), clips_per_class_per_subject=1, num_subjects=3, seed=5)


def _is_val(data: dict) -> np.ndarray:
    val = set(data["split"]["xsub_val"])
    return np.array([a["frame_dir"] in val for a in data["annotations"]])


def test_class_names():
    assert len(CLASS_NAMES) >= 12 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert class_names() == list(CLASS_NAMES[:12])
    assert class_names(len(CLASS_NAMES))[-1] == "turn around"
    with pytest.raises(ValueError):
        class_names(len(CLASS_NAMES) + 1)


def test_format(all_classes):
    anns = all_classes["annotations"]
    assert len(anns) == len(CLASS_NAMES) * 3
    for a in anns:
        assert set(a) == {
            "frame_dir",
            "label",
            "img_shape",
            "original_shape",
            "total_frames",
            "keypoint",
            "keypoint_score",
        }
        assert type(a["label"]) is int and type(a["total_frames"]) is int
        assert a["img_shape"] == a["original_shape"] == IMG_SHAPE == (1080, 1920)
        m, t = a["keypoint"].shape[:2]
        assert a["keypoint"].dtype == np.float16 and a["keypoint"].shape == (m, t, 17, 2)
        assert a["keypoint_score"].dtype == np.float16 and a["keypoint_score"].shape == (m, t, 17)
        assert t == a["total_frames"] and 30 <= t <= 300 and m in (1, 2)
        setup, camera, subject, rep, action = map(int, FRAME_DIR.match(a["frame_dir"]).groups())
        assert action == a["label"] + 1 and 1 <= subject <= 3 and rep == 1 and 1 <= setup <= 17
        if CLASS_NAMES[a["label"]] in TWO_PERSON:
            assert m == 2
    assert len({a["frame_dir"] for a in anns}) == len(anns)
    # Round-trips through pickle protocol 4 like pyskl files.
    again = pickle.loads(pickle.dumps(all_classes, protocol=4))
    assert np.array_equal(again["annotations"][0]["keypoint"], anns[0]["keypoint"])


def test_person_counts(default_data):
    counts = {}
    for a in default_data["annotations"]:
        counts.setdefault(CLASS_NAMES[a["label"]], []).append(a["keypoint"].shape[0])
    one_person = [m for name, ms in counts.items() if name not in TWO_PERSON for m in ms]
    # Some one-person clips show an idle second person, most do not.
    assert 0.05 < np.mean(np.array(one_person) == 2) < 0.4


def test_deterministic():
    opts = dict(num_classes=13, clips_per_class_per_subject=1, num_subjects=2, seed=3, min_frames=20, max_frames=60)
    a, b = make_synthetic(**opts), make_synthetic(**opts)
    assert a["split"] == b["split"]
    for x, y in zip(a["annotations"], b["annotations"], strict=True):
        assert x["frame_dir"] == y["frame_dir"] and x["total_frames"] == y["total_frames"]
        assert x["keypoint"].tobytes() == y["keypoint"].tobytes()
        assert x["keypoint_score"].tobytes() == y["keypoint_score"].tobytes()
    c = make_synthetic(**{**opts, "seed": 4})
    assert any(
        x["keypoint"].shape != y["keypoint"].shape or not np.array_equal(x["keypoint"], y["keypoint"])
        for x, y in zip(a["annotations"], c["annotations"], strict=True)
    )
    # Growing the dataset keeps the existing clips: each clip has its own generator.
    more = make_synthetic(**{**opts, "clips_per_class_per_subject": 2})
    by_name = {x["frame_dir"]: x for x in more["annotations"]}
    for x in a["annotations"]:
        assert np.array_equal(by_name[x["frame_dir"]]["keypoint"], x["keypoint"])


def test_lengths_follow_options():
    data = make_synthetic(num_classes=4, clips_per_class_per_subject=2, num_subjects=2, min_frames=40, max_frames=50)
    lengths = [a["total_frames"] for a in data["annotations"]]
    assert min(lengths) >= 40 and max(lengths) <= 50


def test_splits_by_subject(default_data):
    split = default_data["split"]
    train, val = set(split["xsub_train"]), set(split["xsub_val"])
    assert not train & val and train | val == {a["frame_dir"] for a in default_data["annotations"]}
    subject = {a["frame_dir"]: int(FRAME_DIR.match(a["frame_dir"]).group(3)) for a in default_data["annotations"]}
    assert {subject[f] for f in train} == set(range(1, 8))
    assert {subject[f] for f in val} == {8, 9, 10} == set(val_subjects(10))
    label = {a["frame_dir"]: a["label"] for a in default_data["annotations"]}
    assert {label[f] for f in train} == {label[f] for f in val} == set(range(12))
    assert val_subjects(2) == [2] and val_subjects(20) == list(range(15, 21))


def test_visible_joints_in_frame_and_missing_joints(default_data):
    h, w = IMG_SHAPE
    missing, scores = 0, []
    for a in default_data["annotations"]:
        kp, sc = a["keypoint"].astype(np.float32), a["keypoint_score"].astype(np.float32)
        vis = sc > 0
        assert np.all((kp[vis] >= 0) & (kp[vis] <= [w - 1, h - 1]))
        assert np.all(kp[~vis] == 0), "missing joints must have coordinates 0"
        assert np.all(sc <= 1) and np.all(sc >= 0)
        missing += int((~vis).sum())
        scores.append(sc[vis])
    scores = np.concatenate(scores)
    total = sum(a["keypoint_score"].size for a in default_data["annotations"])
    assert 0.002 < missing / total < 0.1  # occasional, not pervasive
    assert 0.8 < np.mean(scores >= 0.6) < 0.99  # detector-like: mostly confident, some low scores


def test_kinematics_keep_segment_lengths_and_handedness():
    rng = np.random.default_rng(0)
    body = synthetic._random_body(rng, 1.7)
    pose = synthetic._rest_pose(50, 0.1)
    for key in pose:  # random angles everywhere: lengths must not change
        pose[key] = pose[key] + rng.uniform(-1.5, 1.5, 50) * (key not in ("root_x", "root_z", "lift"))
    j = synthetic._forward_kinematics(pose, body)
    for (a, b), length in [
        ((5, 7), body.upper_arm),
        ((8, 10), body.forearm),
        ((11, 13), body.thigh),
        ((14, 16), body.shin),
    ]:
        np.testing.assert_allclose(np.linalg.norm(j[:, a] - j[:, b], axis=-1), length, rtol=1e-9)
    np.testing.assert_allclose(np.minimum(j[:, 15, 1], j[:, 16, 1]), body.ankle_h)  # feet on the ground
    # Standing and facing the camera, the person's left side (odd COCO index) is on the image's right.
    rest = synthetic._forward_kinematics(synthetic._rest_pose(1, 0.1), body)
    cam = {"f": 1000.0, "cx": 960.0, "cy": 540.0, "height": 1.0, "dist": 4.0, "x0": 0.0}
    pix, _ = synthetic._project(rest, cam)
    for left, right in zip(COCO17.left, COCO17.right, strict=True):
        assert pix[0, left, 0] > pix[0, right, 0]
    assert pix[0, 0, 1] < pix[0, 11, 1] < pix[0, 15, 1]  # nose above hips above ankles


def _trivial_features(a: dict) -> list[float]:
    """Clip length, mean x, mean y, mean person height (pixels), person count."""
    kp, vis = a["keypoint"].astype(np.float32), a["keypoint_score"] > 0
    seen = vis.any(-1)  # (M, T): frames where the person was detected
    top = np.where(vis, kp[..., 1], np.inf).min(-1)
    bottom = np.where(vis, kp[..., 1], -np.inf).max(-1)
    height = (bottom - top)[seen].mean()
    return [a["total_frames"], kp[..., 0][vis].mean(), kp[..., 1][vis].mean(), height, kp.shape[0]]


def _motion_features(a: dict) -> np.ndarray:
    """Per-joint spread and speed relative to the hips, in body heights; max over persons."""
    feats = []
    for kp, sc in zip(a["keypoint"].astype(np.float32), a["keypoint_score"], strict=True):
        vis = sc > 0
        mean = np.nanmean(np.where(vis[..., None], kp, np.nan), axis=0)  # (17, 2)
        kp = np.where(vis[..., None], kp, np.nan_to_num(mean))  # fill missing joints by their mean
        scale = np.median(np.ptp(kp[..., 1], axis=1)) + 1.0
        rel = (kp - kp[:, [11, 12]].mean(1, keepdims=True)) / scale  # (T, 17, 2)
        speed = np.abs(np.diff(kp, axis=0)).mean(0) / scale
        feats.append(np.concatenate([rel.std(0).ravel(), rel.mean(0).ravel(), speed.ravel()]))
    return np.max(feats, axis=0)


def _nearest_centroid_accuracy(data: dict, features) -> float:
    x = np.array([features(a) for a in data["annotations"]], dtype=np.float64)
    y = np.array([a["label"] for a in data["annotations"]])
    val = _is_val(data)
    x = (x - x[~val].mean(0)) / (x[~val].std(0) + 1e-9)
    centroids = np.stack([x[~val & (y == c)].mean(0) for c in range(y.max() + 1)])
    pred = np.argmin(((x[val, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float(np.mean(pred == y[val]))


def test_trivial_statistics_do_not_separate_classes(default_data):
    # Chance is 1/12; the classes must not be told apart by length, position, scale or person count.
    assert _nearest_centroid_accuracy(default_data, _trivial_features) < 0.4


def test_motion_makes_classes_learnable(default_data):
    # The same classifier on simple motion statistics does far better: the labels follow the motion.
    assert _nearest_centroid_accuracy(default_data, _motion_features) > 0.7


def test_cache_reuse(tmp_path, monkeypatch):
    opts = dict(num_classes=3, clips_per_class_per_subject=1, num_subjects=2, seed=1)
    path = load_or_create_synthetic(tmp_path, **opts)
    assert path.parent == tmp_path and path.is_file() and [p.name for p in tmp_path.iterdir()] == [path.name]
    with open(path, "rb") as f:
        cached = pickle.load(f)
    fresh = make_synthetic(**opts)
    assert cached["split"] == fresh["split"]
    assert all(
        np.array_equal(a["keypoint"], b["keypoint"])
        for a, b in zip(cached["annotations"], fresh["annotations"], strict=True)
    )

    def fail(**_):
        raise AssertionError("the cached file should have been reused")

    monkeypatch.setattr(synthetic, "make_synthetic", fail)
    mtime = path.stat().st_mtime_ns
    assert load_or_create_synthetic(tmp_path, **opts) == path and path.stat().st_mtime_ns == mtime
    monkeypatch.undo()
    # Any other size gets its own file, never the stale one.
    other = load_or_create_synthetic(tmp_path, **{**opts, "clips_per_class_per_subject": 2})
    assert other != path and other.is_file()
    assert len(list(tmp_path.glob("*.tmp"))) == 0


@pytest.mark.parametrize(
    "bad",
    [
        dict(num_classes=0),
        dict(num_classes=len(CLASS_NAMES) + 1),
        dict(clips_per_class_per_subject=0),
        dict(num_subjects=1),
        dict(seed=-1),
        dict(min_frames=50, max_frames=40),
    ],
)
def test_rejects_bad_options(bad):
    with pytest.raises(ValueError):
        make_synthetic(**bad)
