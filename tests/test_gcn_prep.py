"""Tests of datasets/pipeline/gcn_prep.py: pyskl's GCN pipelines against its own outputs
(../shared/golden/gcn/pipeline/, skipped when absent) and hand-computed cases that need no shared data."""

import json
import pickle
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from datasets.batch.streams import parents
from datasets.pipeline.gcn_prep import (
    PYSKL_BONE_PARENTS,
    bone_parents,
    format_gcn_input,
    gcn_clip,
    gcn_features,
    pre_normalize_2d,
    pre_normalize_3d,
    uniform_sample_decode_indices,
    uniform_sample_indices,
)
from datasets.store.layouts import COCO17, KINECT20, NTU25
from tests.conftest import shared_or_skip

CASES_3D = ("S001C003P008R002A058", "S004C002P003R001A017", "S002C001P003R001A003")
CASES_2D = ("S001C001P001R001A001", "S001C003P008R002A058")
FEAT_SETS = {"j": ["j"], "b": ["b"], "jm": ["jm"], "bm": ["bm"], "mix": ["j", "b"]}
ATOL_2D = 1e-5  # README: 2D arrays, and feat.* given the stored prenorm.keypoint
CLIP_LEN = 100


def _pipeline_dir() -> Path:
    return shared_or_skip("golden", "gcn", "pipeline")


@cache
def _golden(kind: str, name: str) -> dict[str, np.ndarray]:
    return dict(np.load(_pipeline_dir() / f"{kind}_{name}.npz"))


@cache
def _annotation(kind: str, name: str) -> dict:
    with open(_pipeline_dir() / f"annotations_{kind}.pkl", "rb") as f:
        return next(a for a in pickle.load(f)["annotations"] if a["frame_dir"] == name)


@cache
def _pipeline_json() -> dict:
    return json.loads((_pipeline_dir() / "pipeline.json").read_text())


def _atol_3d(name: str, array: str) -> float:
    """README: 3D arrays derived from PreNormalize3D, atol = max(1e-5, 2 x float64_max_abs_diff)."""
    return max(1e-5, 2 * _pipeline_json()["float64_max_abs_diff"][f"3d_{name}"][array])


def _close(got: np.ndarray, want: np.ndarray, atol: float) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=atol)


# ----- PreNormalize3D / PreNormalize2D on real clips ---------------------------------------------------------


@pytest.mark.parametrize("name", CASES_3D)
def test_pre_normalize_3d_matches_pyskl(name):
    ann, g = _annotation("3d", name), _golden("3d", name)
    before = ann["keypoint"].copy()
    kp, total_frames, center = pre_normalize_3d(ann["keypoint"], ann["total_frames"])
    assert np.array_equal(ann["keypoint"], before)  # the store's array is left alone
    assert kp.dtype == np.float64 and total_frames == int(g["prenorm.total_frames"]) == kp.shape[1]
    assert center.dtype == np.float16 and np.array_equal(center, g["prenorm.body_center"])
    _close(kp, g["prenorm.keypoint"], _atol_3d(name, "prenorm.keypoint"))


@pytest.mark.parametrize("name", CASES_3D)
def test_pre_normalize_3d_without_rotation_stays_float16(name):
    ann, g = _annotation("3d", name), _golden("3d", name)
    kp, total_frames, center = pre_normalize_3d(ann["keypoint"], align_spine=False)
    assert kp.dtype == np.float16 and total_frames == int(g["dg.prenorm.total_frames"])
    assert np.array_equal(center, g["dg.prenorm.body_center"])
    _close(kp, g["dg.prenorm.keypoint"], _atol_3d(name, "dg.prenorm.keypoint"))


def test_pre_normalize_3d_drops_the_main_persons_empty_frames():
    ann = _annotation("3d", "S004C002P003R001A017")
    kp, total_frames, _ = pre_normalize_3d(ann["keypoint"])
    assert ann["keypoint"].shape[1] == 124 and total_frames == 121  # frames 40-42 are all zero
    # Hand joints missing in (original) frames 60-69, now 57-66, stay exactly zero after centring and rotation.
    assert np.all(kp[0, 57:67][:, [7, 11, 21, 22, 23, 24]] == 0)


@pytest.mark.parametrize("name", CASES_2D)
def test_pre_normalize_2d_matches_pyskl(name):
    ann, g = _annotation("2d", name), _golden("2d", name)
    kp = pre_normalize_2d(ann["keypoint"], ann["keypoint_score"], ann["img_shape"])
    assert kp.dtype == np.float32
    _close(kp, g["prenorm.keypoint"], ATOL_2D)
    assert int(g["prenorm.total_frames"]) == kp.shape[1]


# ----- GenSkeFeat, given the stored PreNormalize output ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"), [("3d", n) for n in CASES_3D] + [("2d", n) for n in CASES_2D], ids=lambda x: x
)
@pytest.mark.parametrize("feat", ["j", "b", "jm", "bm", "mix"])
def test_gcn_features_match_pyskl(kind, name, feat):
    g = _golden(kind, name)
    prenorm = g["prenorm.keypoint"]
    layout, coord_dim = ("nturgb+d", 3) if kind == "3d" else ("coco", 2)
    got = gcn_features(prenorm, FEAT_SETS[feat], layout, coord_dim=coord_dim)
    assert got.dtype == np.float32
    if feat == "j":
        want = prenorm
    elif feat == "mix":
        want = np.concatenate([prenorm, g["feat.b"]], axis=-1)
    else:
        want = g[f"feat.{feat}"]
    _close(got, want, ATOL_2D)


# ----- UniformSample / UniformSampleDecode ---------------------------------------------------------------------


def test_sample_indices_match_pyskl_frame_inds_test():
    cases = json.loads((_pipeline_dir() / "frame_inds_test.json").read_text())["cases"]
    assert len(cases) == 28
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002
    samplers = {"uniform_sample": uniform_sample_indices, "uniform_sample_decode": uniform_sample_decode_indices}
    for c in cases:
        args = (c["total_frames"], c["clip_len"], c["num_clips"])
        for key, sampler in samplers.items():
            got = sampler(*args, test_mode=True, seed=c["seed"])
            assert got.dtype == np.int64 and got.tolist() == c[key], (key, args)
    # The legacy stream is replayed locally: numpy's global RNG is left alone.
    assert np.array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002


@pytest.mark.parametrize(
    ("kind", "name"), [("3d", n) for n in CASES_3D] + [("2d", n) for n in CASES_2D], ids=lambda x: x
)
def test_sample_indices_of_the_golden_clips(kind, name):
    g = _golden(kind, name)
    total_frames = int(g["prenorm.total_frames"])
    for k in (1, 10):
        assert np.array_equal(uniform_sample_indices(total_frames, CLIP_LEN, k), g[f"inds.nc{k}"])
        if kind == "3d":
            got = uniform_sample_decode_indices(int(g["dg.prenorm.total_frames"]), CLIP_LEN, k)
            assert np.array_equal(got, g[f"dg.inds.nc{k}"])


# ----- the whole pipelines -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES_3D)
@pytest.mark.parametrize("feat", ["j", "b", "jm", "bm", "mix"])
def test_gcn_clip_3d_matches_pyskl(name, feat):
    ann, g = _annotation("3d", name), _golden("3d", name)
    got = gcn_clip(ann["keypoint"], FEAT_SETS[feat], "nturgb+d")
    assert got.dtype == np.float32 and got.flags.c_contiguous
    _close(got, g[f"out.{feat}.nc1"], _atol_3d(name, f"out.{feat}.nc1"))


@pytest.mark.parametrize("name", CASES_2D)
@pytest.mark.parametrize("feat", ["j", "b", "jm", "bm", "mix"])
def test_gcn_clip_2d_matches_pyskl(name, feat):
    ann, g = _annotation("2d", name), _golden("2d", name)
    got = gcn_clip(
        ann["keypoint"], FEAT_SETS[feat], "coco", keypoint_score=ann["keypoint_score"], img_shape=(1080, 1920)
    )
    assert got.dtype == np.float32
    _close(got, g[f"out.{feat}.nc1"], ATOL_2D)


@pytest.mark.parametrize(
    ("kind", "name"), [("3d", n) for n in CASES_3D] + [("2d", n) for n in CASES_2D], ids=lambda x: x
)
def test_gcn_clip_ten_clips(kind, name):
    ann, g = _annotation(kind, name), _golden(kind, name)
    if kind == "3d":
        got = gcn_clip(ann["keypoint"], ["j"], "nturgb+d", num_clips=10)
    else:
        got = gcn_clip(ann["keypoint"], ["j"], "coco", keypoint_score=ann["keypoint_score"], num_clips=10)
    assert got.shape == (10, 2, CLIP_LEN, g["prenorm.keypoint"].shape[2], 3)
    if "out.j.nc10" in g:
        atol = _atol_3d(name, "out.j.nc10") if kind == "3d" else ATOL_2D
        _close(got, g["out.j.nc10"], atol)
    else:
        # README: out.j.nc10 equals FormatGCNInput(prenorm.keypoint[:, inds.nc10].astype(float32)).
        want = format_gcn_input(g["prenorm.keypoint"][:, g["inds.nc10"]].astype(np.float32), 2, 10)
        _close(got, want, _atol_3d(name, "prenorm.keypoint") if kind == "3d" else ATOL_2D)


@pytest.mark.parametrize("name", CASES_3D)
@pytest.mark.parametrize("feat", ["j", "b"])
def test_dg_pipeline_matches_pyskl(name, feat):
    ann, g = _annotation("3d", name), _golden("3d", name)
    kp, total_frames, _ = pre_normalize_3d(ann["keypoint"], align_spine=False)
    inds = uniform_sample_decode_indices(total_frames, CLIP_LEN, 1)
    feats = gcn_features(kp, [feat], "nturgb+d", coord_dim=3)
    got = format_gcn_input(feats[:, inds], num_person=2, num_clips=1)
    _close(got, g[f"dg.out.{feat}.nc1"], _atol_3d(name, f"dg.out.{feat}.nc1"))


# ----- hand-computed cases (no shared data) ------------------------------------------------------------------


def test_two_joint_bones_and_motions_by_hand():
    # One person, 3 frames, joint 1's bone starts from joint 0, joint 0 is its own parent.
    kp = np.array([[[[0, 0, 0], [1, 2, 3]], [[1, 0, 0], [1, 4, 3]], [[1, 1, 0], [0, 4, 5]]]], np.float64)
    got = gcn_features(kp, ["j", "b", "jm", "bm"], [0, 0], coord_dim=3)
    assert got.shape == (1, 3, 2, 12) and got.dtype == np.float32
    j, b, jm, bm = np.split(got[0], 4, axis=-1)  # (T, V, 3) each
    np.testing.assert_array_equal(j, kp[0])
    np.testing.assert_array_equal(b[:, 0], 0)
    np.testing.assert_array_equal(b[:, 1], [[1, 2, 3], [0, 4, 3], [-1, 3, 5]])
    np.testing.assert_array_equal(jm[:, 0], [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(jm[:, 1], [[0, 2, 0], [-1, 0, 2], [0, 0, 0]])
    np.testing.assert_array_equal(bm[:, 1], [[-1, 2, 0], [-1, -1, 2], [0, 0, 0]])


def test_two_joint_scores_by_hand():
    # 2D (x, y, score): a bone's score is the mean of its joints', a motion's the mean over the two frames.
    kp = np.array([[[[0, 0, 0.5], [2, 1, 0.9]], [[1, 1, 0.7], [2, 3, 0.1]]]], np.float32)
    b, jm, bm = np.split(gcn_features(kp, ["b", "jm", "bm"], [0, 0], coord_dim=2)[0], 3, axis=-1)
    np.testing.assert_allclose(b[0], [[0, 0, 0.5], [2, 1, 0.7]], atol=1e-7)
    np.testing.assert_allclose(b[1], [[0, 0, 0.7], [1, 2, 0.4]], atol=1e-7)
    np.testing.assert_allclose(jm, [[[1, 1, 0.6], [0, 2, 0.5]], [[0, 0, 0], [0, 0, 0]]], atol=1e-7)
    np.testing.assert_allclose(bm, [[[0, 0, 0.6], [-1, 1, 0.55]], [[0, 0, 0], [0, 0, 0]]], atol=1e-7)


def _spine_clip(spine: tuple, shoulder: tuple, m: int = 1, t: int = 2) -> np.ndarray:
    """(m, t, 25, 3) NTU clip: joint 1 at (1, 2, 3) (the centre), joint 0 at 1 - spine, joint 4 at 1 - shoulder / 2,
    joint 8 at 1 + shoulder / 2, every other joint at joint 1; frame t moved by t along y."""
    kp = np.tile(np.array([1.0, 2.0, 3.0]), (m, t, 25, 1))
    kp[:, :, 0] -= spine
    kp[:, :, 4] -= np.array(shoulder) / 2
    kp[:, :, 8] += np.array(shoulder) / 2
    kp[:, :, :, 1] += np.arange(t)[:, None]
    return kp


def test_pre_normalize_3d_rotation_by_hand():
    # Spine along -y, shoulders along +z: a quarter turn about -x puts the spine on +z (and the shoulders on
    # +y), then a quarter turn about -z puts the shoulders on +x.
    kp, total_frames, center = pre_normalize_3d(_spine_clip(spine=(0, -2, 0), shoulder=(0, 0, 1)))
    np.testing.assert_array_equal(center, [1, 2, 3])
    np.testing.assert_allclose(kp[0, 0, 0], [0, 0, -2], atol=1e-12)  # spine base below the centre
    np.testing.assert_allclose(kp[0, 0, 8] - kp[0, 0, 4], [1, 0, 0], atol=1e-12)  # shoulders along +x
    np.testing.assert_allclose(kp[0, 1, 1], [0, 0, -1], atol=1e-12)  # frame 1's shift along +y (down) is now -z
    # Lengths and the joints on the centre are kept: a rotation.
    assert total_frames == 2 and np.allclose(np.linalg.norm(kp[0, 0, 4]), 0.5)
    # Already aligned: the identity.
    aligned, _, _ = pre_normalize_3d(_spine_clip(spine=(0, 0, 1), shoulder=(1, 0, 0)))
    np.testing.assert_allclose(aligned[0, 0, 0], [0, 0, -1], atol=1e-12)


def test_pre_normalize_3d_main_person_and_empty_clips():
    kp = _spine_clip(spine=(0, 0, 1), shoulder=(1, 0, 0), m=2, t=4)
    kp[1] += 5
    kp[0, [0, 2]] = 0  # person 0 present in 2 frames, person 1 in 4: person 1 is the main person
    out, total_frames, center = pre_normalize_3d(kp, 4)
    assert total_frames == 4 and np.array_equal(center, kp[1, 0, 1])
    assert np.all(out[1, [0, 2]] == 0)  # the swapped-in person's zero frames stay zero
    np.testing.assert_allclose(out[0, 0, 1], 0, atol=1e-12)
    kp[1, 3] = 0
    kp[0] = 0  # person 0 never present; person 1 missing in frame 3, which is dropped
    assert pre_normalize_3d(kp)[1] == 3
    zero = np.zeros((2, 5, 25, 3), np.float16)
    out, total_frames, center = pre_normalize_3d(zero)
    assert center is None and total_frames == 5 and out.dtype == np.float16 and not out.any()
    with pytest.raises(ValueError, match="total_frames"):
        pre_normalize_3d(zero, total_frames=4)


def test_pre_normalize_3d_anchors_on_the_first_frame_that_shows_them():
    # pyskl centres on frame 0's spine joint and turns by frame 0's spine and shoulders; when those are missing
    # there (a joint at the origin), the clip would be left uncentred and turned at random. Frames 0 and 1 are
    # the same pose here, so taking the anchors from frame 1 must give the whole clip's numbers.
    whole = _spine_clip(spine=(0, -2, 0), shoulder=(0, 0, 1), t=4)
    whole[0, 1] = whole[0, 0]
    holed = whole.copy()
    holed[0, 0, [0, 1, 4]] = 0  # the centre joint and one end of each axis, lost in frame 0
    expected, _, center = pre_normalize_3d(whole)
    expected[0, 0, [0, 1, 4]] = 0
    got, _, got_center = pre_normalize_3d(holed)
    np.testing.assert_array_equal(got_center, center)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # An anchor never seen falls back to frame 0, as pyskl (the origin): no error.
    holed[0, :, 1] = 0
    assert np.isfinite(pre_normalize_3d(holed)[0]).all()


def test_pre_normalize_3d_centres_float16_in_float16():
    # The centring is pyskl's float16 arithmetic, (kp - centre) * mask with one rounding per operation.
    rng = np.random.default_rng(0)
    kp = rng.normal(scale=2.0, size=(2, 30, 25, 3)).astype(np.float16)
    kp[1, :, 3:7] = 0  # missing joints
    centred, _, center = pre_normalize_3d(kp, align_spine=False)
    assert centred.dtype == np.float16 and center.dtype == np.float16
    np.testing.assert_array_equal(centred, (kp - kp[0, 0, 1]) * (kp != 0).any(axis=-1, keepdims=True))
    assert np.all(centred[1, :, 3:7] == 0)
    with pytest.raises(ValueError, match="M in"):
        pre_normalize_3d(np.ones((3, 4, 25, 3)))


def test_pre_normalize_2d_by_hand():
    kp = np.array([[[[960, 540], [0, 1080], [1920, 0], [1920, 0]]]], np.float32)  # (1, 1, 4, 2) pixels
    # 0.01 is at the threshold (zeroed); float16's nearest to 0.01 is 0.0100021, above it (kept).
    score = np.array([[[0.9, 0.5, 0.01, np.float16(0.01)]]], np.float32)
    out = pre_normalize_2d(kp, score)
    assert out.shape == (1, 1, 4, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0, :, :2], [[0, 0], [-1, 1], [0, 0], [1, -1]])
    np.testing.assert_array_equal(out[..., 2], score)


def test_uniform_sample_index_counts():
    rng = np.random.default_rng(0)
    for total_frames in (1, 37, 100, 150, 230):
        for k in (1, 3):
            for sampler in (uniform_sample_indices, uniform_sample_decode_indices):
                inds = sampler(total_frames, 20, k, test_mode=False, rng=rng)
                assert inds.shape == (20 * k,) and inds.dtype == np.int64
                assert inds.min() >= 0 and inds.max() < total_frames
    # Long enough clips: one frame from each of the clip_len equal segments, increasing.
    inds = uniform_sample_indices(230, 100, 1, test_mode=False, rng=np.random.default_rng(1))
    bounds = np.arange(101) * 230 // 100
    assert np.all(inds >= bounds[:-1]) and np.all(inds < bounds[1:])
    with pytest.raises(ValueError, match="Generator"):
        uniform_sample_indices(50, 20, 1, test_mode=False)


def test_gcn_clip_training_mode_draws_from_the_generator():
    kp = np.random.default_rng(0).normal(size=(1, 150, 25, 3))
    a = gcn_clip(kp, ["j", "bm"], "ntu25", test_mode=False, rng=np.random.default_rng(5))
    b = gcn_clip(kp, ["j", "bm"], "ntu25", test_mode=False, rng=np.random.default_rng(5))
    assert a.shape == (1, 2, 100, 25, 6) and np.array_equal(a, b)
    assert not np.array_equal(a, gcn_clip(kp, ["j", "bm"], "ntu25"))  # not the test-mode frames


def test_format_gcn_input_pads_and_keeps_persons():
    kp = np.arange(1 * 6 * 2 * 3, dtype=np.float64).reshape(1, 6, 2, 3)
    out = format_gcn_input(kp, num_person=2, num_clips=3)
    assert out.shape == (3, 2, 2, 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, 0], kp[0, 2:4])
    assert not out[:, 1].any()
    three = np.concatenate([kp, kp + 100, kp + 200])
    np.testing.assert_array_equal(format_gcn_input(three, 2, 1)[0], three[:2])


def test_bone_parents_pyskl_tables_and_layout_trees():
    assert bone_parents("nturgb+d") == bone_parents(NTU25) == PYSKL_BONE_PARENTS["ntu25"]
    assert bone_parents("coco") == bone_parents("coco17") == PYSKL_BONE_PARENTS["coco17"]
    # pyskl's tables have one self-paired root each: joint 20 for NTU, joint 0 for COCO.
    assert [v for v, p in enumerate(PYSKL_BONE_PARENTS["ntu25"]) if v == p] == [20]
    assert [v for v, p in enumerate(PYSKL_BONE_PARENTS["coco17"]) if v == p] == [0]
    # The limb trees of the layouts differ from pyskl's tables in these joints only.
    for layout, joints in [(NTU25, [21, 23]), (COCO17, [11, 12])]:
        tree, table = parents(layout), PYSKL_BONE_PARENTS[layout.name]
        assert [v for v in range(layout.num_joints) if tree[v] != table[v]] == joints
    # Any other layout uses its limb tree.
    assert bone_parents(KINECT20) == bone_parents("kinect20") == parents(KINECT20)
    with pytest.raises(ValueError, match="joint indices"):
        bone_parents([0, 2])
