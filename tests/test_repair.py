"""The repair steps: interpolation by hand, outliers, swaps and missing joints injected by the corruption suite
into a smooth synthetic clip and measured against the clean one, in 2D and 3D; inputs never written to."""

import numpy as np
import pytest

from datasets.pipeline.corruptions import FAMILIES, corrupt
from datasets.pipeline.noise import noise_scale, visible_joints
from datasets.pipeline.repair import (
    RECOMMENDED_STEPS,
    REPAIRS,
    fix_swaps,
    interpolate_missing,
    reject_outliers,
    repair,
)
from datasets.store.layouts import LAYOUTS, Layout

NTU = LAYOUTS["ntu25"]
IMG_SHAPE = (1080, 1920)
PIXELS_PER_METRE = 350.0

# An NTU-25 body at rest, (x, y) in metres, y up, the subject's left at +x; 1.7 m tall.
REST = {
    0: (0.0, 0.0), 1: (0.0, 0.25), 20: (0.0, 0.5), 2: (0.0, 0.6), 3: (0.0, 0.75),
    4: (0.18, 0.5), 5: (0.22, 0.22), 6: (0.25, -0.02), 7: (0.26, -0.1), 21: (0.27, -0.18), 22: (0.21, -0.12),
    12: (0.1, -0.05), 13: (0.12, -0.5), 14: (0.12, -0.9), 15: (0.15, -0.95),
}  # fmt: skip


def _smooth_clip(dims: int, persons: int = 2, frames: int = 100, seed: int = 0):
    """A read-only NTU-25 clip whose joints move on sines: keypoint (persons, frames, 25, dims), score.

    Each joint of each person swings about the rest pose with its own phase, amplitude (2 cm on the trunk up
    to 25 cm at the hands, on a 20-frame period: up to 8 cm per frame) and direction, while the person walks
    sideways 5 mm per frame; persons stand 1.2 m apart, 3 m from the camera. 3D: metres, scores 1.
    2D: 350 pixels per metre in a 1080x1920 frame, scores in [0.5, 1].
    """
    rng = np.random.default_rng(seed)
    rest = np.zeros((25, 3))
    for joint, (x, y) in REST.items():
        rest[joint, :2] = x, y
        mirror = NTU.flip_order()[joint]
        rest[mirror, :2] = -x, y
    distal = np.isin(np.arange(25), [6, 7, 10, 11, 21, 22, 23, 24, 14, 15, 18, 19])
    amplitude = np.where(distal, 0.25, 0.02)[:, None] * rng.uniform(0.5, 1, size=(persons, 1, 25, 1))
    period = np.where(distal, 20.0, 40.0)[:, None]  # (25, 1) frames
    phase = rng.uniform(0, 2 * np.pi, size=(persons, 1, 25, 3))
    t = np.arange(frames)[None, :, None, None]  # (1, T, 1, 1)
    swing = amplitude * np.sin(2 * np.pi * t / period + phase)  # (M, T, 25, 3)
    offset = np.stack([np.array([1.2 * m - 0.6 + 0.005 * s, 0.0, 3.0]) for m in range(persons) for s in range(frames)])
    kp = rest + swing + offset.reshape(persons, frames, 1, 3)  # (M, T, 25, 3) metres
    if dims == 2:
        centre = np.array([IMG_SHAPE[1] / 2, IMG_SHAPE[0] / 2])
        kp = centre + PIXELS_PER_METRE * kp[..., :2] * np.array([1.0, -1.0])  # (M, T, 25, 2) pixels, y down
        score = rng.uniform(0.5, 1, size=kp.shape[:3])
    else:
        score = np.ones(kp.shape[:3])
    kp, score = kp.astype(np.float32), score.astype(np.float32)
    kp.flags.writeable = False
    score.flags.writeable = False
    return kp, score


def _img_shape(kp):
    return IMG_SHAPE if kp.shape[-1] == 2 else None


def _corrupt(kp, score, family, severity, seed=1):
    rng = np.random.default_rng(seed)
    return corrupt(kp, score, family, severity, rng, img_shape=_img_shape(kp), layout=NTU)


def _error(kp, clean, clean_score):
    """Mean distance of the clip's joints to the clean ones over the clean visible joints, in units of s;
    a missing joint counts with its zero coordinates."""
    visible = visible_joints(clean, clean_score)
    s = noise_scale(clean, visible, _img_shape(clean))
    return float(np.linalg.norm(kp[visible].astype(np.float64) - clean[visible], axis=-1).mean() / s)


# ----------------------------------------------------------------------------------- interpolation


def _gap_clip():
    """1 person, 7 frames, 3 joints, 2D: joint 0 visible at t = 1 and t = 5 only (a 3-frame gap, both ends
    missing, t = 3 with stale coordinates and score 0); joint 1 never visible; joint 2 always visible but for
    t = 6, where the whole person is missing."""
    kp = np.zeros((1, 7, 3, 2), np.float32)
    score = np.zeros((1, 7, 3), np.float32)
    kp[0, 1, 0], score[0, 1, 0] = (10, 20), 0.4
    kp[0, 5, 0], score[0, 5, 0] = (30, 60), 0.8
    kp[0, 3, 0] = (99, 99)
    kp[0, :6, 2], score[0, :6, 2] = np.arange(6)[:, None] + 1, 0.9
    kp.flags.writeable = False
    score.flags.writeable = False
    return kp, score


def test_interpolation_of_a_three_frame_gap_is_exactly_linear_and_holds_the_ends():
    kp, score = _gap_clip()
    out_kp, out_score = interpolate_missing(kp, score)
    assert out_kp.dtype == np.float32 and out_score.dtype == np.float32
    expected = [(10, 20), (10, 20), (15, 30), (20, 40), (25, 50), (30, 60), (30, 60)]
    np.testing.assert_array_equal(out_kp[0, :, 0], expected)
    np.testing.assert_allclose(out_score[0, :, 0], [0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(out_kp[0, :, 1], 0)  # never visible: stays missing
    np.testing.assert_array_equal(out_score[0, :, 1], 0)
    np.testing.assert_array_equal(out_kp[0, :6, 2], kp[0, :6, 2])  # visible joints are untouched
    np.testing.assert_array_equal(out_kp[0, 6, 2], kp[0, 5, 2])  # the person's missing frame is held
    assert out_score[0, 6, 2] == pytest.approx(0.9)


def test_max_gap_leaves_longer_gaps_missing():
    kp, score = _gap_clip()
    out_kp, out_score = interpolate_missing(kp, score, max_gap=2)
    assert (out_score[0, 2:5, 0] == 0).all() and (out_kp[0, 2:5, 0] == kp[0, 2:5, 0]).all()  # the 3-frame gap
    assert out_score[0, 0, 0] > 0 and out_score[0, 6, 0] > 0 and out_score[0, 6, 2] > 0  # 1-frame ends
    np.testing.assert_array_equal(interpolate_missing(kp, score, max_gap=3)[0], interpolate_missing(kp, score)[0])
    np.testing.assert_array_equal(interpolate_missing(kp, score, max_gap=0)[1], score)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_gap"):
            interpolate_missing(kp, score, max_gap=bad)


def test_interpolation_in_3d_gives_filled_joints_a_score():
    kp, score = _smooth_clip(3, frames=20)
    holes = np.zeros(score.shape, bool)
    holes[0, 5:9, 3] = holes[1, :4] = holes[1, -2:, 7] = True
    kp_holes = np.where(holes[..., None], 0, kp).astype(np.float32)
    score_store = visible_joints(kp_holes).astype(np.float32)  # the store's 3D scores
    out_kp, out_score = interpolate_missing(kp_holes, score_store)
    assert (out_score == 1).all()
    assert _error(out_kp, kp, score) < 0.05 * _error(kp_holes, kp, score)  # measured: 0.026


# ----------------------------------------------------------------------------------- outliers


@pytest.mark.parametrize("dims", [2, 3])
def test_outliers_of_the_corruption_suite_are_found_with_few_false_alarms(dims):
    kp, score = _smooth_clip(dims)
    _, clean_score = reject_outliers(kp, score, img_shape=_img_shape(kp))
    assert (clean_score > 0).all()  # measured: no false alarm on the clean clip
    for severity in FAMILIES["outliers"].levels.values():
        for seed in range(3):
            out_kp, out_score = _corrupt(kp, score, "outliers", severity, seed)
            moved = np.any(out_kp != kp, axis=-1)  # (M, T, V)
            rep_kp, rep_score = reject_outliers(out_kp, out_score, img_shape=_img_shape(kp))
            rejected = rep_score == 0
            assert np.all(rep_kp[rejected] == 0)
            assert (rejected & moved).sum() >= 0.99 * moved.sum()  # measured: all, in 2D and 3D
            assert (rejected & ~moved).sum() <= 0.003 * (~moved).sum()  # measured: at most 0.0011
            np.testing.assert_array_equal(rep_kp[~rejected], out_kp[~rejected])
            # Interpolated, the rejected joints are back within 1.3% of the corrupted clip's error (0.7-1.1%).
            fill_kp, _ = interpolate_missing(rep_kp, rep_score)
            assert _error(fill_kp, kp, score) < 0.015 * _error(out_kp, kp, score)


@pytest.mark.parametrize("dims", [2, 3])
def test_outliers_at_a_lower_frame_rate_are_judged_against_the_joints_own_jumps(dims):
    # One frame in four: the hands swing up to 25 cm over 5 frames, so they stray from their neighbours'
    # median in every frame; the fixed threshold alone would reject them (measured: 1.6 % of the joints in 2D,
    # 11 % in 3D), with each joint's usual jump taken into account none is.
    kp, score = _smooth_clip(dims, frames=400)
    kp, score = kp[:, ::4], score[:, ::4]
    _, kept = reject_outliers(kp, score, img_shape=_img_shape(kp))
    assert (kept == 0).mean() < 0.002
    # The suite's outliers are still found on such a clip, except some of those on the fast joints, whose own
    # jumps are as large (measured: 79 % found in 2D, 74 % in 3D; all of them at the full frame rate).
    out_kp, out_score = _corrupt(kp, score, "outliers", FAMILIES["outliers"].levels["severe"])
    moved = np.any(out_kp != kp, axis=-1)
    _, rep_score = reject_outliers(out_kp, out_score, img_shape=_img_shape(kp))
    assert ((rep_score == 0) & moved).sum() >= 0.7 * moved.sum()


def test_outliers_need_the_frame_size_in_2d_and_a_sound_rule():
    kp, score = _smooth_clip(2, frames=10)
    with pytest.raises(ValueError, match="img_shape"):
        reject_outliers(kp, score)
    for bad in ({"threshold": 0}, {"threshold": float("nan")}, {"window": 0}, {"window": 1.5}):
        with pytest.raises(ValueError):
            reject_outliers(kp, score, img_shape=IMG_SHAPE, **bad)
    lonely = np.zeros_like(kp)
    lonely[0, 4] = kp[0, 4]  # one frame of one person: no neighbours, nothing to compare with, kept
    out_kp, _ = reject_outliers(lonely, score, img_shape=IMG_SHAPE)
    np.testing.assert_array_equal(out_kp, lonely)


# ----------------------------------------------------------------------------------- swaps


@pytest.mark.parametrize("dims", [2, 3])
def test_swaps_of_the_corruption_suite_are_undone(dims):
    kp, score = _smooth_clip(dims)
    np.testing.assert_array_equal(fix_swaps(kp, score, NTU)[0], kp)  # a clean clip is left alone
    for level in ("light", "moderate"):
        for seed in range(5):
            out_kp, out_score = _corrupt(kp, score, "swap", FAMILIES["swap"].levels[level], seed)
            rep_kp, rep_score = fix_swaps(out_kp, out_score, NTU)
            # Measured: every swapped frame found, the clean clip back exactly (its corrupted error: 0.007 to
            # 0.025 s). At the severe level (half the frames) the majority is a coin toss: not asserted.
            assert _error(rep_kp, kp, score) <= 1e-3 * _error(out_kp, kp, score)
            np.testing.assert_array_equal(rep_score, score)


def test_swaps_are_judged_per_person_and_not_across_gaps():
    kp, score = _smooth_clip(3, frames=30)
    order = NTU.flip_order()
    bad_kp, bad_score = kp.copy(), score.copy()
    bad_kp[1, 3:6] = kp[1, 3:6][:, order]  # person 1 only, frames 3-5
    bad_kp[0, 10:14], bad_score[0, 10:14] = 0, 0  # person 0 leaves for 4 frames...
    bad_kp[0, 14:] = kp[0, 14:][:, order]  # ... and comes back swapped for more than half of its frames
    rep_kp, _ = fix_swaps(bad_kp, bad_score, NTU)
    np.testing.assert_array_equal(rep_kp[1], kp[1])
    np.testing.assert_array_equal(rep_kp[0, :10], kp[0, :10])
    np.testing.assert_array_equal(rep_kp[0, 14:], bad_kp[0, 14:])  # a new segment: its own majority stands
    with pytest.raises(ValueError, match="no left/right pairs"):
        fix_swaps(kp, score, Layout("bare", 25, (), (), ()))
    with pytest.raises(ValueError, match="joints"):
        fix_swaps(kp[:, :, :17], score[:, :, :17], NTU)


# ----------------------------------------------------------------------------------- missing joints


def _retimed(clean, out_kp, out_score):
    """A frame-dropping corruption's output put back on the clean clip's time line: the kept frames (found by
    equality) at their own times, the dropped ones all zero (persons entirely missing)."""
    sources = [
        int(np.flatnonzero(np.all(clean == out_kp[:, i : i + 1], axis=(0, 2, 3)))[0]) for i in range(out_kp.shape[1])
    ]
    kp, score = np.zeros_like(clean), np.zeros(clean.shape[:3], np.float32)
    kp[:, sources], score[:, sources] = out_kp, out_score
    return kp, score


# Measured ratios of the error after interpolation to the corrupted clip's (zeros included), worst of 10
# seeds at the severe level (occlusion: the moderate one; at f = 1 the part is never seen and stays
# missing): missing_joints 0.004 (2D) and 0.005 (3D), occlusion 0.044 and 0.056, frame_drop 0.022 and 0.030.
BOUNDS = {"missing_joints": 0.01, "occlusion": 0.1, "frame_drop": 0.05}


@pytest.mark.parametrize("family", list(BOUNDS))
@pytest.mark.parametrize("dims", [2, 3])
def test_interpolation_brings_dropped_joints_back(family, dims):
    kp, score = _smooth_clip(dims)
    for level, severity in FAMILIES[family].levels.items():
        for seed in range(3):
            out_kp, out_score = _corrupt(kp, score, family, severity, seed)
            if family == "frame_drop":
                out_kp, out_score = _retimed(kp, out_kp, out_score)
            rep_kp, rep_score = interpolate_missing(out_kp, out_score)
            before, after = _error(out_kp, kp, score), _error(rep_kp, kp, score)
            if family == "occlusion" and severity == 1:
                assert after == before  # nothing left to interpolate from
            else:
                assert after < BOUNDS[family] * before, (level, seed, after / before)
                assert (rep_score > 0).all()


# ----------------------------------------------------------------------------------- repair


@pytest.mark.parametrize("dims", [2, 3])
def test_repair_in_the_recommended_order_undoes_a_chain_of_corruptions(dims):
    kp, score = _smooth_clip(dims)
    out_kp, out_score = _corrupt(kp, score, "swap", 0.25, seed=1)
    out_kp, out_score = _corrupt(out_kp, out_score, "outliers", 0.05, seed=2)
    out_kp, out_score = _corrupt(out_kp, out_score, "missing_joints", 0.2, seed=3)
    errors = {
        steps: _error(repair(out_kp, out_score, steps, NTU, img_shape=_img_shape(kp))[0], kp, score)
        for steps in (RECOMMENDED_STEPS, ("outliers", "swaps", "interpolate"), ("outliers", "interpolate", "swaps"))
    }
    # Measured over 10 seeds: 0.3-0.5% of the corrupted error in the recommended order, 0.8-14% in the others.
    assert errors[RECOMMENDED_STEPS] < 0.006 * _error(out_kp, kp, score)
    assert errors[RECOMMENDED_STEPS] == min(errors.values())


def test_repair_applies_the_steps_in_order_and_rejects_unknown_names():
    kp, score = _smooth_clip(3, frames=30)
    out_kp, out_score = _corrupt(kp, score, "outliers", 0.1)
    by_hand = interpolate_missing(*reject_outliers(out_kp, out_score))
    for a, b in zip(repair(out_kp, out_score, ["outliers", "interpolate"], NTU), by_hand, strict=True):
        np.testing.assert_array_equal(a, b)
    none_kp, none_score = repair(out_kp, out_score, [], NTU)
    np.testing.assert_array_equal(none_kp, out_kp)
    assert none_kp.dtype == np.float32 and none_kp is not out_kp
    with pytest.raises(ValueError, match="'blur'.*valid: interpolate, outliers, swaps"):
        repair(kp, score, ["swaps", "blur"], NTU)
    with pytest.raises(ValueError, match=r"\['swaps'\]"):
        repair(kp, score, "swaps", NTU)
    assert set(REPAIRS) == set(RECOMMENDED_STEPS)


@pytest.mark.parametrize("dims", [2, 3])
def test_no_step_writes_to_its_inputs(dims):
    kp, score = _smooth_clip(dims)
    for family, severity in (("missing_joints", 0.2), ("outliers", 0.05), ("swap", 0.25)):  # work for every step
        kp, score = _corrupt(kp, score, family, severity)
    steps = {
        "interpolate": interpolate_missing,
        "outliers": lambda k, s: reject_outliers(k, s, img_shape=_img_shape(k)),
        "swaps": lambda k, s: fix_swaps(k, s, NTU),
        "repair": lambda k, s: repair(k, s, RECOMMENDED_STEPS, NTU, img_shape=_img_shape(k)),
    }
    for name, step in steps.items():
        for dtype in (np.float16, np.float32):  # the store's float16 and float32
            clip = kp.astype(dtype), score.copy()
            before = [a.copy() for a in clip]
            rep_kp, rep_score = step(*clip)
            assert rep_kp.dtype == np.float32 and rep_score.dtype == np.float32, name
            assert not np.shares_memory(rep_kp, clip[0]) and not np.shares_memory(rep_score, clip[1]), name
            assert not np.array_equal(rep_kp, clip[0]), f"{name} had nothing to repair"
            for a, b in zip(clip, before, strict=True):
                np.testing.assert_array_equal(a, b)
            for a in clip:
                a.flags.writeable = False
            step(*clip)  # read-only views of the shared store are fine


# ---------------------------------------------------------------------------------------------------
# --repair through the Dataset and the CLI


def test_dataset_repairs_every_view_after_its_corruption():
    """An evaluation clip under missing joints, repaired by interpolation, has no missing joint left where the
    clean clip has none; without --repair it keeps its holes. The clean clip is left as it is."""
    from datasets.pipeline.clips import SkeletonClips
    from datasets.sources.synthetic import make_synthetic
    from datasets.store.annotations import pack_annotations
    from datasets.store.layouts import COCO17

    store = pack_annotations(make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=30))
    kw = {"reads": "joints", "joints_prep": "gcn", "train": False, "clip_len": 16, "layout": COCO17}
    idx = store.split_indices("xsub_val")[:4]
    holes = SkeletonClips(store, idx, corruptions=(("missing_joints", 0.4),), **kw)
    fixed = SkeletonClips(store, idx, corruptions=(("missing_joints", 0.4),), repair=("interpolate",), **kw)
    clean = SkeletonClips(store, idx, **kw)
    clean_fixed = SkeletonClips(store, idx, repair=("interpolate",), **kw)
    for i in range(len(idx)):
        seen = clean[i]["keypoint"][..., 2] > 0  # (S, M, T, V): visible in the clean clip
        assert (holes[i]["keypoint"][..., 2][seen] == 0).any()
        assert (fixed[i]["keypoint"][..., 2][seen] > 0).all()
        np.testing.assert_allclose(clean_fixed[i]["keypoint"][seen], clean[i]["keypoint"][seen], atol=1e-6)


def test_cli_repairs_at_test_time_on_any_checkpoint(tmp_path):
    import pickle

    import main as cli
    from datasets.sources.synthetic import make_synthetic

    ann = tmp_path / "tiny.pkl"
    ann.write_bytes(pickle.dumps(make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=30)))
    base = ["synthetic", "--ann_file", str(ann), "--run_dir", str(tmp_path), "-j", "0", "--device", "cpu",
            "--eval_alphas", "0", "--eval_corruptions", "missing_joints:0.4"]  # fmt: skip
    cli.main([*base, "--name", "r", "--model_type", "stgcnpp", "--input_f", "Skeleton", "--model_cfg",
              "base_channels=6", "--clip_len", "12", "--epochs", "1", "--max_steps", "2", "-b", "4", "--gamma", "0",
              "--val_fraction", "0"])  # fmt: skip
    plain = cli.main([*base, "--evaluate", str(tmp_path / "r" / "last.pt"), "--name", "plain"])["robustness"]
    fixed = cli.main([*base, "--evaluate", str(tmp_path / "r" / "last.pt"), "--name", "fixed", "--repair",
                      "interpolate"])["robustness"]  # fmt: skip
    assert [r["family"] for r in fixed] == ["clean", "missing_joints"] and len(fixed) == len(plain)
    assert fixed[0]["top1"] == plain[0]["top1"]  # the synthetic clean clips hold few holes to fill
