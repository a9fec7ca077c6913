"""Tests of datasets/pipeline/motionbert_prep.py against MotionBERT's own outputs (tests/fixtures/motionbert_data/)."""

import json
from pathlib import Path

import numpy as np
import pytest

from datasets.pipeline.motionbert_prep import (
    coco2h36m,
    crop_scale,
    human_tracking,
    make_cam,
    motionbert_clip,
    prepare_motion,
    random_move,
    resample,
    track_swaps,
)

DATA = Path(__file__).resolve().parent / "fixtures" / "motionbert_data"
CASES = json.loads((DATA / "cases.json").read_text())
NAMES = sorted(CASES)
SWAP_CASE = "S002C001P004R002A055"  # identities swap at frame 20; per-person score ranges are distinct
ATOL = 1e-6  # README tolerance on `motion` and `item`


def _golden(name: str) -> dict[str, np.ndarray]:
    return dict(np.load(DATA / f"{name}.npz"))


def _img_shape(name: str) -> tuple[int, int]:
    return tuple(CASES[name]["img_shape"])


def _golden_swapped_frames(g: dict[str, np.ndarray]) -> np.ndarray:
    """(F,) bool: frames where upstream's tracking exchanged the persons, read off the golden arrays."""
    cam, tracked = g["make_cam"].astype(np.float64), g["human_tracking"]
    same = np.all(tracked == cam, axis=(0, 2, 3))
    crossed = np.all(tracked == cam[::-1], axis=(0, 2, 3))
    assert np.all(same | crossed)
    return crossed & ~same


def _swap_scores(a: np.ndarray, swapped_out_frames: np.ndarray) -> np.ndarray:
    """Exchange the score channel of persons 0 and 1 of a (2, T, 17, 3) clip in the given frames."""
    out = a.copy()
    out[:, swapped_out_frames, :, 2] = a[::-1][:, swapped_out_frames, :, 2]
    return out


# ---------------------------------------------------------------- intermediate arrays, per golden case


@pytest.mark.parametrize("name", NAMES)
def test_resample_ids_exact(name):
    g = _golden(name)
    ids = resample(CASES[name]["total_frames"], 243, randomness=False)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, g["resample_ids"])


@pytest.mark.parametrize("name", NAMES)
def test_make_cam_float16(name):
    g = _golden(name)
    cam = make_cam(g["keypoint"], _img_shape(name))
    assert cam.dtype == np.float16
    np.testing.assert_array_equal(cam, g["make_cam"])
    # numpy-integer sizes must not promote the float16 arithmetic either
    np.testing.assert_array_equal(make_cam(g["keypoint"], np.array(_img_shape(name))), g["make_cam"])


@pytest.mark.parametrize("name", NAMES)
def test_human_tracking(name):
    g = _golden(name)
    tracked = human_tracking(g["make_cam"])
    assert tracked.dtype == g["human_tracking"].dtype
    np.testing.assert_array_equal(tracked, g["human_tracking"])
    if CASES[name]["persons"] == 2:
        np.testing.assert_array_equal(track_swaps(g["make_cam"]), _golden_swapped_frames(g))


def test_tracking_finds_the_swap():
    swapped = track_swaps(_golden(SWAP_CASE)["make_cam"])
    np.testing.assert_array_equal(np.flatnonzero(swapped), np.arange(20, 50))


@pytest.mark.parametrize("name", NAMES)
def test_coco2h36m(name):
    g = _golden(name)
    y = coco2h36m(g["human_tracking"])
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, g["coco2h36m"], rtol=0, atol=1e-12)


def test_coco2h36m_joint_map():
    x = np.arange(17 * 2, dtype=np.float64).reshape(1, 1, 17, 2)
    y = coco2h36m(x)[0, 0]
    mid = lambda a, b: (x[0, 0, a] + x[0, 0, b]) / 2  # noqa: E731
    np.testing.assert_array_equal(y[0], mid(11, 12))  # root = mid-hip
    np.testing.assert_array_equal(y[8], mid(5, 6))  # neck = mid-shoulder
    np.testing.assert_array_equal(y[7], (mid(11, 12) + mid(5, 6)) / 2)  # belly
    np.testing.assert_array_equal(y[10], mid(1, 2))  # head = mid-eyes
    for h36m, coco in [(1, 12), (2, 14), (3, 16), (4, 11), (5, 13), (6, 15), (9, 0), (11, 5), (16, 10)]:
        np.testing.assert_array_equal(y[h36m], x[0, 0, coco])


@pytest.mark.parametrize("name", NAMES)
def test_crop_scale_on_golden_motion(name):
    g = _golden(name)
    item = crop_scale(g["motion"], (2, 2))
    assert item.dtype == np.float32
    np.testing.assert_allclose(item, g["item"], rtol=0, atol=ATOL)


# ---------------------------------------------------------------- the whole path


@pytest.mark.parametrize("name", NAMES)
def test_upstream_mode_matches_golden_everywhere(name):
    g = _golden(name)
    kp, score = g["keypoint"], g["keypoint_score"]
    motion = prepare_motion(kp, score, _img_shape(name), g["resample_ids"], upstream_score_bug=True)
    np.testing.assert_allclose(motion, g["motion"], rtol=0, atol=ATOL)
    item = motionbert_clip(kp, score, _img_shape(name), upstream_score_bug=True)
    assert item.shape == (2, 243, 17, 3) and item.dtype == np.float32
    np.testing.assert_allclose(item, g["item"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", [n for n in NAMES if n != SWAP_CASE])
def test_fixed_scores_unchanged_without_swaps(name):
    g = _golden(name)
    kp, score = g["keypoint"], g["keypoint_score"]
    motion = prepare_motion(kp, score, _img_shape(name), g["resample_ids"])
    np.testing.assert_allclose(motion, g["motion"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(motionbert_clip(kp, score, _img_shape(name)), g["item"], rtol=0, atol=ATOL)


def test_fixed_scores_follow_their_person():
    g = _golden(SWAP_CASE)
    kp, score = g["keypoint"], g["keypoint_score"]
    swapped_out = _golden_swapped_frames(g)[g["resample_ids"]]  # (243,)
    assert swapped_out.any() and not swapped_out.all()
    for key, out in [
        ("motion", prepare_motion(kp, score, _img_shape(SWAP_CASE), g["resample_ids"])),
        ("item", motionbert_clip(kp, score, _img_shape(SWAP_CASE))),
    ]:
        np.testing.assert_allclose(out[..., :2], g[key][..., :2], rtol=0, atol=ATOL)
        np.testing.assert_allclose(out, _swap_scores(g[key], swapped_out), rtol=0, atol=ATOL)
        # each tracked person now keeps one score range ([0.3, 0.6) or [0.7, 1.0)) over the whole clip
        for person in out[..., 2]:
            assert np.all(person < 0.65) or np.all(person > 0.65)
    # upstream's scores jump between the ranges where the identities swap
    assert not (np.all(g["item"][0, ..., 2] < 0.65) or np.all(g["item"][0, ..., 2] > 0.65))


def test_all_zero_scores_give_zeros():
    g = _golden("S003C001P005R001A010")
    item = motionbert_clip(g["keypoint"], g["keypoint_score"], _img_shape("S003C001P005R001A010"))
    np.testing.assert_array_equal(item, np.zeros((2, 243, 17, 3), np.float32))


def test_crop_scale_needs_four_valid_joints():
    rng = np.random.default_rng(0)
    motion = np.concatenate([rng.uniform(-1, 1, (2, 5, 17, 2)), np.zeros((2, 5, 17, 1))], -1)
    motion[0, 1, [2, 5, 9], 2] = 0.5  # 3 valid joints
    np.testing.assert_array_equal(crop_scale(motion, (2, 2)), 0)
    motion[1, 4, 0, 2] = 0.5  # 4 valid joints: normalised by their box
    out = crop_scale(motion, (1, 1))
    valid = out[out[..., 2] != 0][:, :2]
    side = max(np.ptp(valid[:, 0]), np.ptp(valid[:, 1]))
    np.testing.assert_allclose(side, 2.0, atol=1e-6)  # the box's long side spans [-1, 1] at ratio 1


# ---------------------------------------------------------------- no mutation, train mode


@pytest.mark.parametrize("test_mode", [True, False])
def test_inputs_never_mutated(test_mode):
    g = _golden(SWAP_CASE)
    kp, score = g["keypoint"].copy(), g["keypoint_score"].copy()
    kp.setflags(write=False)
    score.setflags(write=False)  # any in-place write raises
    first = motionbert_clip(kp, score, (1080, 1920), test_mode=test_mode, rng=np.random.default_rng(3))
    second = motionbert_clip(kp, score, (1080, 1920), test_mode=test_mode, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(kp, g["keypoint"])
    np.testing.assert_array_equal(score, g["keypoint_score"])
    np.testing.assert_array_equal(first, second)  # nothing accumulated between calls


def test_augmentations_do_not_mutate_the_stored_clip():
    # Upstream's random_move writes through a view into the dataset's stored clip.
    stored = _golden(SWAP_CASE)["motion"]
    before = stored.copy()
    moved = random_move(stored, np.random.default_rng(0))
    crop_scale(moved, (1, 3), np.random.default_rng(0))
    crop_scale(stored, (1, 3), np.random.default_rng(0))
    np.testing.assert_array_equal(stored, before)
    assert not np.array_equal(moved[..., :2], stored[..., :2])
    np.testing.assert_array_equal(moved[..., 2], stored[..., 2])  # scores untouched


def test_random_move_identity_and_rotation():
    motion = _golden(SWAP_CASE)["motion"]
    rng = np.random.default_rng(0)
    same = random_move(motion, rng, angle_range=(0, 0), scale_range=(1, 1), translate_range=(0, 0))
    np.testing.assert_allclose(same, motion, atol=1e-7)
    quarter = random_move(motion, rng, angle_range=(90, 90), scale_range=(2, 2), translate_range=(0.5, 0.5))
    np.testing.assert_allclose(quarter[..., 0], -2 * motion[..., 1] + 0.5, atol=1e-6)
    np.testing.assert_allclose(quarter[..., 1], 2 * motion[..., 0] + 0.5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_train_mode_shape_and_determinism(name):
    g = _golden(name)
    kp, score = g["keypoint"], g["keypoint_score"]

    def run(seed: int, clip_len: int = 243) -> np.ndarray:
        return motionbert_clip(kp, score, (1080, 1920), clip_len, test_mode=False, rng=np.random.default_rng(seed))

    a, b, c = run(0), run(0), run(1)
    assert a.shape == (2, 243, 17, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a) <= 1)
    if score.any():  # all-zero scores give all-zero clips whatever the draw
        assert not np.array_equal(a, c)
    assert run(0, clip_len=16).shape == (2, 16, 17, 3)  # a clip longer than the target


@pytest.mark.parametrize("ori_len, target_len", [(40, 243), (243, 243), (300, 243), (1000, 16), (1, 5)])
def test_resample_train_mode(ori_len, target_len):
    ids = resample(ori_len, target_len, randomness=True, rng=np.random.default_rng(0))
    again = resample(ori_len, target_len, randomness=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(ids, again)
    assert ids.dtype == np.int64 and ids.shape == (target_len,)
    assert ids.min() >= 0 and ids.max() <= ori_len - 1
    assert np.all(np.diff(ids) >= 0)
    even = np.linspace(0, ori_len, target_len, endpoint=False)
    if ori_len < target_len:  # floor or ceil of the even position (sorting keeps the multiset)
        assert np.all(
            (ids == np.clip(np.floor(even), 0, ori_len - 1)) | (ids == np.clip(np.ceil(even), 0, ori_len - 1))
        )
    else:  # one frame from each of target_len equal segments
        assert np.all((ids >= np.floor(even)) & (ids < even + ori_len / target_len))
    if ori_len == target_len:
        np.testing.assert_array_equal(ids, np.arange(ori_len))


def test_resample_train_mode_varies():
    draws = {tuple(resample(40, 243, True, np.random.default_rng(s))) for s in range(5)}
    assert len(draws) > 1


# ---------------------------------------------------------------- validation


def _err(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_input_validation():
    g = _golden("S001C001P001R001A050")
    kp, score = g["keypoint"], g["keypoint_score"]
    _err(motionbert_clip, kp[..., :1], score, (1080, 1920))
    _err(motionbert_clip, kp[:, :, :16], score[:, :, :16], (1080, 1920))
    _err(motionbert_clip, np.concatenate([kp, kp[:1]]), np.concatenate([score, score[:1]]), (1080, 1920))
    _err(motionbert_clip, kp, score[:, :-1], (1080, 1920))
    _err(motionbert_clip, kp[:, :0], score[:, :0], (1080, 1920))
    bad = kp.copy()
    bad[1, 3, 4, 0] = np.nan
    assert "non-finite" in _err(motionbert_clip, bad, score, (1080, 1920))
    bad_score = score.astype(np.float32)
    bad_score[0, 0, 0] = np.inf
    assert "non-finite" in _err(motionbert_clip, kp, bad_score, (1080, 1920))
    _err(motionbert_clip, kp, score, (0, 1920))
    _err(motionbert_clip, kp, score, (1080,))
    assert "rng" in _err(motionbert_clip, kp, score, (1080, 1920), test_mode=False)
    assert "rng" in _err(resample, 40, 243, True)
    _err(resample, 0, 243, False)
    _err(crop_scale, g["motion"], (3, 1))
    _err(prepare_motion, kp, score, (1080, 1920), np.array([0, 40]))


def test_motionbert_clip_3d_centres_scales_and_keeps_missing_joints():
    from datasets.pipeline.motionbert_prep import motionbert_clip_3d

    rng = np.random.default_rng(0)
    kp = (rng.normal(size=(3, 30, 25, 3)) * 0.3 + [1.0, 0.5, 3.0]).astype(np.float32)
    kp[2] = 0  # a person never seen: dropped in favour of the two visible ones
    kp[0, 4, 7] = 0  # a missing joint
    before = kp.copy()
    out = motionbert_clip_3d(kp, clip_len=30)
    assert out.shape == (2, 30, 25, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(kp, before)  # the input is not modified
    assert (out[0, 4, 7] == 0).all()
    seen = np.abs(out).sum(-1) > 0
    pts = out[seen]
    np.testing.assert_allclose((pts.min(0) + pts.max(0)) / 2, 0, atol=1e-5)  # centred
    assert abs(np.linalg.norm(pts.max(0) - pts.min(0)) - 2) < 1e-4  # half-diagonal 1
    train = motionbert_clip_3d(kp, clip_len=16, test_mode=False, rng=np.random.default_rng(1))
    assert train.shape == (2, 16, 25, 3)


# ---------------------------------------------------------------- 2D keypoints already in H36M-17 order


def _as_h36m(kp: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 pixels and scores as a file in MotionBERT's own H36M-17 order holds them (the scores of the
    joints each H36M joint comes from, all equal here, so that both paths see the same valid joints)."""
    return coco2h36m(kp.astype(np.float64)).astype(np.float32), np.ones(score.shape, np.float32)


@pytest.mark.parametrize("name", [SWAP_CASE, NAMES[0]])
def test_h36m17_keypoints_are_taken_without_the_coco_mapping(name):
    """The same skeletons given in COCO-17 (mapped by coco2h36m) and in H36M-17 order (taken as they are)
    give MotionBERT the same coordinates; mapping H36M-17 input again would scramble them."""
    g = _golden(name)
    kp, score = g["keypoint"].astype(np.float32), np.ones(g["keypoint_score"].shape, np.float32)
    h36m, h36m_score = _as_h36m(kp, score)
    coco_path = motionbert_clip(kp, score, _img_shape(name), clip_len=32)
    own_order = motionbert_clip(h36m, h36m_score, _img_shape(name), clip_len=32, joint_order="h36m17")
    np.testing.assert_allclose(own_order, coco_path, rtol=0, atol=1e-5)
    remapped = motionbert_clip(h36m, h36m_score, _img_shape(name), clip_len=32)  # read as COCO-17: wrong
    assert np.abs(remapped - coco_path).max() > 0.05
    # the scores stay with their joints: a joint missing in the file is missing in the clip
    h36m_score[:, :, 10] = 0  # the head
    item = motionbert_clip(h36m, h36m_score, _img_shape(name), clip_len=32, joint_order="h36m17")
    assert (item[: len(kp), :, 10, 2] == 0).all() and (item[: len(kp), :, 9, 2] == 1).all()
    assert "joint_order" in _err(motionbert_clip, h36m, h36m_score, _img_shape(name), joint_order="ntu25")


def test_motionbert_reads_2d_h36m17_through_the_clips_and_refuses_other_layouts():
    """SkeletonClips hands MotionBERT 2D h36m17 clips unmapped (and COCO-17 mapped); resolve_run_config
    accepts both and refuses other 2D layouts in one line that says what works."""
    from datasets.pipeline.clips import JOINTS, SkeletonClips
    from datasets.store.annotations import pack_annotations
    from datasets.store.layouts import COCO17, H36M17, OPENPOSE18
    from engine.config import resolve_run_config
    from utils.errors import UserError

    g = _golden(SWAP_CASE)
    kp, score = g["keypoint"].astype(np.float32), g["keypoint_score"].astype(np.float32)
    ann = {"frame_dir": "c0", "label": 0, "keypoint": kp, "keypoint_score": score, "img_shape": (1080, 1920)}
    store = pack_annotations({"annotations": [ann]})
    for layout, order in ((H36M17, "h36m17"), (COCO17, "coco17")):
        clips = SkeletonClips(store, np.array([0]), reads=JOINTS, train=False, clip_len=32, layout=layout)
        expected = motionbert_clip(kp, score, (1080, 1920), clip_len=32, joint_order=order)
        np.testing.assert_array_equal(clips[0]["keypoint"][0], expected)

    def config(layout, coord_dim=2):
        return resolve_run_config("motionbert", input_format="Skeleton", layout=layout, num_joints=layout.num_joints,
                                  coord_dim=coord_dim, num_classes=3, dropout=0.0, clip_len=None, input_size=56,
                                  max_persons=2)  # fmt: skip

    assert config(H36M17).layout == "h36m17" and config(COCO17).layout == "coco17"
    assert config(OPENPOSE18, coord_dim=3).layout == "openpose18"  # 3D: any layout
    with pytest.raises(UserError) as e:
        config(OPENPOSE18)
    msg = str(e.value)
    assert "\n" not in msg and "not openpose18" in msg and "coco17" in msg and "h36m17" in msg and "3D" in msg
