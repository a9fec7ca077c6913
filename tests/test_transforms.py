"""Keypoint transforms against pyskl's own outputs (tests/fixtures/pipeline/) and hand-computed values."""

import json
import pickle

import numpy as np
import pytest

from datasets.pipeline.transforms import (
    CenterCrop,
    Compose,
    Flip,
    PoseCompact,
    PoseDecode,
    RandomResizedCrop,
    Resize,
    UniformSampleFrames,
    pose_test_pipeline,
    pose_train_pipeline,
    split_sampling,
)
from datasets.store.layouts import COCO17
from tests.conftest import FIXTURES

PIPE = FIXTURES / "pipeline"


def _annotation() -> dict:
    """The golden annotation, prepared as pyskl's PoseDataset does (test mode)."""
    with open(PIPE / "val_c24_s56_annotation.pkl", "rb") as f:
        ann = pickle.load(f)
    return dict(ann, modality="Pose", start_index=0, test_mode=True)


# ----- UniformSampleFrames -----------------------------------------------------------------------------


def test_uniform_sample_frames_test_mode_matches_pyskl():
    cases = json.loads((PIPE / "uniform_sample_frames_test.json").read_text())["cases"]
    assert len(cases) == 36
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002
    for c in cases:
        t = UniformSampleFrames(c["clip_len"], c["num_clips"], seed=255)
        results = t({"total_frames": c["total_frames"], "start_index": 0, "test_mode": True})
        got = results["frame_inds"]
        assert got.dtype == np.int64
        assert got.tolist() == c["frame_inds"], (c["total_frames"], c["clip_len"], c["num_clips"])
    # The legacy stream is replayed locally: numpy's global RNG is left alone.
    assert np.array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002


@pytest.mark.parametrize("total_frames", [1, 7, 30, 47, 100, 301])
def test_uniform_sample_frames_train_mode(total_frames):
    t = UniformSampleFrames(24, num_clips=2)
    a = t({"total_frames": total_frames}, np.random.default_rng(3))["frame_inds"]
    b = t({"total_frames": total_frames}, np.random.default_rng(3))["frame_inds"]
    assert a.shape == (48,) and np.array_equal(a, b)
    assert a.min() >= 0 and a.max() < total_frames
    if total_frames >= 48:
        # Long clips: exactly one frame from each of the 24 equal segments, in order.
        seg = np.arange(24) * total_frames // 24
        for clip in a.reshape(2, 24):
            assert np.all(clip >= seg) and np.all(clip < np.append(seg[1:], total_frames))
    elif total_frames >= 24:
        # 1x..2x: increasing, covering each frame at most once with skips of at most one frame.
        for clip in a.reshape(2, 24):
            assert np.all(np.diff(clip) >= 1) and np.all(np.diff(clip) <= 2)
    with pytest.raises(ValueError, match="Generator"):
        t({"total_frames": total_frames})


# ----- PoseCompact ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["p0_2person_inside", "p1_near_corner_pad", "p2_below_threshold"])
def test_pose_compact_matches_pyskl(case):
    arrays = np.load(PIPE / "pose_compact.npz")
    ref = json.loads((PIPE / "pose_compact.json").read_text())["cases"][case]
    kp_in = arrays[f"{case}.keypoint_in"]
    kp_before = kp_in.copy()
    out = PoseCompact(padding=0.25, threshold=10, hw_ratio=1.0, allow_imgpad=True)(
        {"keypoint": kp_in, "img_shape": tuple(ref["img_shape_in"])}
    )
    assert out["keypoint"].dtype == np.float32
    np.testing.assert_allclose(out["keypoint"], arrays[f"{case}.keypoint_out"], atol=1e-3, rtol=0)
    assert tuple(out["img_shape"]) == tuple(ref["img_shape_out"])
    if ref["crop_quadruple"] is None:
        assert "crop_quadruple" not in out
    else:
        np.testing.assert_allclose(out["crop_quadruple"], ref["crop_quadruple"], rtol=0, atol=1e-12)
    # Missing joints stay at zero, and the input array is not edited in place.
    assert np.all(out["keypoint"][kp_in == 0] == 0)
    assert np.array_equal(kp_in, kp_before)


# ----- the golden validation pipeline, step by step --------------------------------------------------------


def test_val_c24_s56_pipeline_steps_match_pyskl():
    ref = np.load(PIPE / "val_c24_s56_keypoints.npz")
    pipeline = pose_test_pipeline(clip_len=24, num_clips=1, input_size=56)
    assert [type(t) for t in pipeline] == [UniformSampleFrames, PoseDecode, PoseCompact, Resize]
    results = _annotation()

    results = pipeline[0](results)
    assert np.array_equal(results["frame_inds"], ref["frame_inds"])

    results = pipeline[1](results)
    assert results["keypoint"].dtype == np.float32 and results["keypoint_score"].dtype == np.float32
    np.testing.assert_allclose(results["keypoint"], ref["decode.keypoint"], atol=1e-3, rtol=0)
    np.testing.assert_array_equal(results["keypoint_score"], ref["decode.keypoint_score"])

    for step, name in ((2, "compact"), (3, "resize")):
        results = pipeline[step](results)
        np.testing.assert_allclose(results["keypoint"], ref[f"{name}.keypoint"], atol=1e-3, rtol=0)
        assert tuple(results["img_shape"]) == tuple(ref[f"{name}.img_shape"].tolist())


def test_split_sampling_composes_to_the_whole_pipeline():
    pipeline = pose_test_pipeline(clip_len=24)
    sampling, geometry = split_sampling(pipeline)
    assert [type(t) for t in sampling] == [UniformSampleFrames, PoseDecode]
    assert len(geometry) == 2
    whole = pipeline(_annotation())
    parts = geometry(sampling(_annotation()))
    np.testing.assert_array_equal(whole["keypoint"], parts["keypoint"])
    assert whole["img_shape"] == parts["img_shape"]


# ----- Resize, crops ---------------------------------------------------------------------------------------


def test_resize_short_side():
    kp = np.array([[[[960.0, 540.0], [0.0, 0.0]]]], dtype=np.float32)  # (1, 1, 2, 2)
    out = Resize((-1, 64))({"keypoint": kp, "img_shape": (1080, 1920)})
    # Short side 1080 -> 64; long side int(1920 * 64 / 1080 + 0.5) = int(114.28) = 114.
    assert out["img_shape"] == (64, 114)
    factor = np.array([114 / 1920, 64 / 1080], dtype=np.float32)  # rounded to float32, as upstream
    np.testing.assert_array_equal(out["keypoint"][0, 0, 0], kp[0, 0, 0] * factor)
    assert np.all(out["keypoint"][0, 0, 1] == 0)
    # Portrait frame: the width is the short side; the order of the pair does not matter.
    assert Resize((64, -1))({"img_shape": (100, 50)})["img_shape"] == (128, 64)
    # (long, short) limits: 1920x1080 into 1333x800 -> factor min(1333/1920, 800/1080) -> (750, 1333).
    assert Resize((1333, 800))({"img_shape": (1080, 1920)})["img_shape"] == (750, 1333)


def test_resize_without_ratio_takes_w_h():
    kp = np.array([[[[100.0, 50.0]]]], dtype=np.float32)
    out = Resize((40, 30), keep_ratio=False)({"keypoint": kp, "img_shape": (100, 200)})
    assert out["img_shape"] == (30, 40)
    np.testing.assert_allclose(out["keypoint"][0, 0, 0], [20.0, 15.0], rtol=1e-6)
    np.testing.assert_allclose(out["scale_factor"], [0.2, 0.3], rtol=1e-6)


def test_center_crop():
    kp = np.array([[[[60.0, 40.0], [0.0, 0.0]]]], dtype=np.float32)
    out = CenterCrop(50)({"keypoint": kp, "img_shape": (80, 120)})
    # left = (120 - 50) // 2 = 35, top = (80 - 50) // 2 = 15
    assert out["img_shape"] == (50, 50)
    assert out["crop_bbox"].tolist() == [35, 15, 85, 65]
    np.testing.assert_array_equal(out["keypoint"][0, 0, 0], [25.0, 25.0])
    np.testing.assert_allclose(out["crop_quadruple"], [35 / 120, 15 / 80, 50 / 120, 50 / 80], rtol=1e-6)


def test_random_resized_crop():
    t = RandomResizedCrop(area_range=(0.56, 1.0))
    for seed in range(20):
        left, top, right, bottom = t.get_crop_bbox((60, 80), np.random.default_rng(seed))
        assert 0 <= left < right <= 80 and 0 <= top < bottom <= 60
        area = (right - left) * (bottom - top) / (60 * 80)
        assert 0.5 < area <= 1.0 + 1e-9
        assert 0.7 < (right - left) / (bottom - top) < 1.45
    a = t.get_crop_bbox((60, 80), np.random.default_rng(7))
    assert a == t.get_crop_bbox((60, 80), np.random.default_rng(7))
    # No candidate can fit (full area at aspect 2 in a square): fall back to the centred square.
    impossible = RandomResizedCrop(area_range=(1.0, 1.0), aspect_ratio_range=(2.0, 2.0))
    assert impossible.get_crop_bbox((40, 40), np.random.default_rng(0)) == (0, 0, 40, 40)
    assert impossible.get_crop_bbox((40, 60), np.random.default_rng(0)) == (10, 0, 50, 40)


# ----- Flip -----------------------------------------------------------------------------------------------


def _flip_input(rng: np.random.Generator) -> dict:
    kp = rng.uniform(1, 55, size=(2, 3, 17, 2)).astype(np.float32)
    kp[1, 2] = 0  # a missing person
    score = rng.uniform(0.1, 1, size=(2, 3, 17)).astype(np.float32)
    score[1, 2] = 0
    return {"keypoint": kp, "keypoint_score": score, "img_shape": (56, 56)}


def test_flip_swaps_coordinates_and_scores():
    results = _flip_input(np.random.default_rng(0))
    kp, score = results["keypoint"].copy(), results["keypoint_score"].copy()
    t = Flip(1.0, COCO17.left, COCO17.right)
    out = t(dict(results), np.random.default_rng(0))
    assert out["flip"] is True
    order = COCO17.flip_order()
    assert order[5] == 6 and order[6] == 5 and order[0] == 0
    np.testing.assert_array_equal(out["keypoint"][0, :, 5, 0], 56 - kp[0, :, 6, 0])
    np.testing.assert_array_equal(out["keypoint"][0, :, 5, 1], kp[0, :, 6, 1])
    np.testing.assert_array_equal(out["keypoint"][:, :, :, 1], kp[:, :, order, 1])
    np.testing.assert_array_equal(out["keypoint_score"], score[:, :, order])
    assert np.all(out["keypoint"][1, 2] == 0)  # missing joints stay at 0, not at x = w
    assert np.array_equal(results["keypoint"], kp)  # input untouched


def test_flip_twice_is_identity_and_ratio_zero_never_flips():
    results = _flip_input(np.random.default_rng(1))
    t = Flip(1.0, COCO17.left, COCO17.right)
    twice = t(t(dict(results), np.random.default_rng(0)), np.random.default_rng(0))
    np.testing.assert_allclose(twice["keypoint"], results["keypoint"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(twice["keypoint_score"], results["keypoint_score"])
    never = Flip(0.0, COCO17.left, COCO17.right)(dict(results), np.random.default_rng(0))
    assert never["flip"] is False and never["keypoint"] is results["keypoint"]


# ----- the training pipeline -----------------------------------------------------------------------------


def test_train_pipeline_shapes_ranges_and_determinism():
    pipeline = pose_train_pipeline(clip_len=32, input_size=56)
    assert isinstance(pipeline, Compose) and len(pipeline) == 7
    assert pipeline[3].scale == (np.inf, 64)
    ann = dict(_annotation(), test_mode=False)
    inside = []
    for seed in range(6):
        out = pipeline(dict(ann), np.random.default_rng(seed))
        again = pipeline(dict(ann), np.random.default_rng(seed))
        np.testing.assert_array_equal(out["keypoint"], again["keypoint"])
        np.testing.assert_array_equal(out["frame_inds"], again["frame_inds"])
        assert out["keypoint"].shape == (2, 32, 17, 2) and out["keypoint"].dtype == np.float32
        assert out["keypoint_score"].shape == (2, 32, 17)
        assert out["img_shape"] == (56, 56)
        assert out["frame_inds"].min() >= 0 and out["frame_inds"].max() < 100
        visible = out["keypoint"][out["keypoint_score"] > 0]  # (P, 2)
        # The crop keeps >= 56% of the compacted box, so joints stay near the frame ...
        assert np.all(visible > -56) and np.all(visible < 112)
        inside.append(np.mean(np.all((visible >= 0) & (visible <= 56), axis=-1)))
    # ... and mostly inside it.
    assert np.mean(inside) > 0.85
    other = pipeline(dict(ann), np.random.default_rng(100))
    assert not np.array_equal(other["keypoint"], out["keypoint"])
    # The compact + short-side step alone: the short side becomes 64.
    sampled = split_sampling(pipeline)[0](dict(ann), np.random.default_rng(0))
    assert min(pipeline[3](pipeline[2](sampled))["img_shape"]) == 64
