"""The corruption suite: identity at severity 0, missing joints, shapes, determinism, per-family statistics,
the evaluation generators, the CLI parser, and the body parts of the layouts."""

import numpy as np
import pytest

from datasets.pipeline.corruptions import (
    FAMILIES,
    OUTLIER_DISTANCE,
    check_severity,
    corrupt,
    corruption_rng,
    parse_corruptions,
)
from datasets.pipeline.noise import add_joint_noise, eval_noise_rng, noise_scale, visible_joints
from datasets.store.layouts import LAYOUTS, Layout

IMG_SHAPE = (1080, 1920)
TEMPORAL = [name for name, family in FAMILIES.items() if family.temporal]
CASES = [(family, dims, layout) for family in FAMILIES for dims in (2, 3) for layout in LAYOUTS]


def _clip(layout: Layout, dims: int, seed: int = 0, frames: int = 40, persons: int = 2, gaps: bool = True):
    """A read-only clip of `layout`: keypoint (persons, frames, V, dims), score (persons, frames, V).

    2D: pixels of a 1080x1920 frame with scores in [0.2, 1]; 3D: metres with scores 1. With `gaps`, the
    last person leaves for the last quarter (zero coordinates and scores), one joint has a zero score and
    stale coordinates, another zero coordinates and a non-zero score.
    """
    rng = np.random.default_rng(seed)
    v = layout.num_joints
    if dims == 2:
        kp = rng.uniform(100, 1000, size=(persons, frames, v, 2))
        score = rng.uniform(0.2, 1, size=(persons, frames, v))
    else:
        kp = rng.uniform(-1, 1, size=(persons, frames, v, 3)) + np.array([0, 0, 3.0])
        score = np.ones((persons, frames, v))
    if gaps:
        gone = frames * 3 // 4
        kp[-1, gone:], score[-1, gone:] = 0, 0
        score[0, 1, 3] = 0
        kp[0, 2, 4] = 0
    kp, score = kp.astype(np.float32), score.astype(np.float32)
    kp.flags.writeable = False
    score.flags.writeable = False
    return kp, score


def _run(kp, score, family, severity, seed=1, layout=LAYOUTS["coco17"]):
    img_shape = IMG_SHAPE if kp.shape[-1] == 2 else None
    return corrupt(kp, score, family, severity, np.random.default_rng(seed), img_shape=img_shape, layout=layout)


def _severe(family: str) -> float:
    return list(FAMILIES[family].levels.values())[-1]


def _source_frames(kp, score, out_kp, out_score, layout):
    """For families that only select or relabel whole frames: for each output frame, the input frame it
    is and whether its left and right joints were exchanged. Fails when an output frame is neither."""
    order = layout.flip_order()
    sources = []
    for t in range(out_kp.shape[1]):
        found = [
            (s, swapped)
            for s in range(kp.shape[1])
            for swapped in (False, True)
            if np.array_equal(out_kp[:, t], kp[:, s][:, order] if swapped else kp[:, s])
            and np.array_equal(out_score[:, t], score[:, s][:, order] if swapped else score[:, s])
        ]
        assert found, f"output frame {t} is not an input frame"
        sources.append(found[0])
    return sources


@pytest.mark.parametrize("family,dims,layout", CASES)
def test_severity_zero_is_the_identity_and_draws_nothing(family, dims, layout):
    kp, score = _clip(LAYOUTS[layout], dims)
    rng = np.random.default_rng(5)
    img_shape = IMG_SHAPE if dims == 2 else None
    out_kp, out_score = corrupt(kp, score, family, 0, rng, img_shape=img_shape, layout=LAYOUTS[layout])
    assert out_kp.dtype == out_score.dtype == np.float32
    assert out_kp.flags.writeable and out_score.flags.writeable  # copies, not views of the read-only input
    np.testing.assert_array_equal(out_kp, kp)
    np.testing.assert_array_equal(out_score, score)
    assert rng.random() == np.random.default_rng(5).random()


@pytest.mark.parametrize("family,dims,layout", CASES)
def test_shapes_determinism_and_untouched_inputs(family, dims, layout):
    kp, score = _clip(LAYOUTS[layout], dims)
    before = kp.copy(), score.copy()
    severity = _severe(family)
    out_kp, out_score = _run(kp, score, family, severity, seed=3, layout=LAYOUTS[layout])
    m, t, v, c = kp.shape
    assert out_kp.dtype == out_score.dtype == np.float32
    assert out_kp.shape[0] == m and out_kp.shape[2:] == (v, c) and out_score.shape == out_kp.shape[:3]
    if FAMILIES[family].temporal:
        assert 1 <= out_kp.shape[1] < t
    else:
        assert out_kp.shape[1] == t
    assert not np.array_equal(out_kp, kp[:, : out_kp.shape[1]]) or not np.array_equal(
        out_score, score[:, : out_kp.shape[1]]
    ), "a severe corruption changed nothing"
    again = _run(kp, score, family, severity, seed=3, layout=LAYOUTS[layout])
    np.testing.assert_array_equal(again[0], out_kp)
    np.testing.assert_array_equal(again[1], out_score)
    other = _run(kp, score, family, severity, seed=4, layout=LAYOUTS[layout])
    assert not (np.array_equal(other[0], out_kp) and np.array_equal(other[1], out_score))
    np.testing.assert_array_equal(kp, before[0])
    np.testing.assert_array_equal(score, before[1])


@pytest.mark.parametrize("family,dims,layout", CASES)
def test_missing_joints_stay_missing(family, dims, layout):
    lay = LAYOUTS[layout]
    kp, score = _clip(lay, dims)
    out_kp, out_score = _run(kp, score, family, _severe(family), layout=lay)
    if FAMILIES[family].temporal or family == "swap":  # whole input frames, maybe relabelled
        sources = _source_frames(kp, score, out_kp, out_score, lay)
        if family == "swap":
            assert [s for s, _ in sources] == list(range(kp.shape[1]))
        else:
            assert [s for s, _ in sources] == sorted({s for s, _ in sources})  # in order, no repeats
            assert not any(swapped for _, swapped in sources)
        return  # exact copies of input frames: missing joints are carried over bit for bit
    missing = ~visible_joints(kp, score)
    assert missing.sum() > kp.shape[1] // 4 * lay.num_joints  # the clip does have gaps
    assert not visible_joints(out_kp, out_score)[missing].any()  # never revived
    moved = np.any(out_kp[missing] != kp[missing], axis=-1)
    assert np.all(out_kp[missing][moved] == 0)  # never moved (only possibly zeroed)


def test_levels_are_at_least_three_increasing_valid_severities():
    assert list(FAMILIES) == [
        "jitter",
        "missing_joints",
        "occlusion",
        "frame_rate",
        "frame_drop",
        "block_drop",
        "outliers",
        "swap",
    ]
    for name, family in FAMILIES.items():
        assert family.name == name and family.parameter and "\n" not in family.parameter
        values = list(family.levels.values())
        assert len(values) >= 3 and all(a < b for a, b in zip(values, values[1:], strict=False))
        assert values[0] > 0 and all(check_severity(name, value) == value for value in values)
    assert FAMILIES["frame_rate"].levels == {"light": 2, "moderate": 3, "severe": 4}
    assert set(TEMPORAL) == {"frame_rate", "frame_drop", "block_drop"}


def test_check_severity_rejects_out_of_range_values():
    for family, bad in [
        ("jitter", -0.1),
        ("jitter", float("inf")),
        ("missing_joints", 1.5),
        ("swap", float("nan")),
        ("frame_rate", 2.5),
        ("frame_rate", -1),
        ("nope", 0.1),
        ("jitter", 1e300),  # would overflow float32 keypoints to inf
        ("frame_rate", 1e300),  # would overflow NumPy's int64 frame indices
        ("jitter", 10.5),
        ("frame_rate", 1001),
    ]:
        with pytest.raises(ValueError):
            check_severity(family, bad)
    assert check_severity("jitter", 3) == 3.0 and check_severity("frame_rate", 8) == 8.0
    assert check_severity("jitter", 10) == 10.0 and check_severity("frame_rate", 1000) == 1000.0


def test_the_largest_severities_stay_finite_and_keep_a_frame():
    kp, score = _clip(LAYOUTS["ntu25"], 2)
    out, _ = _run(kp, score, "jitter", 10.0, seed=1, layout=LAYOUTS["ntu25"])
    assert np.isfinite(out).all()
    out, out_score = _run(kp, score, "frame_rate", 1000.0, seed=1, layout=LAYOUTS["ntu25"])
    assert out.shape[1] == 1 and out_score.shape[1] == 1


def test_jitter_is_add_joint_noise_bit_for_bit():
    for dims in (2, 3):
        kp, score = _clip(LAYOUTS["ntu25"], dims)
        img_shape = IMG_SHAPE if dims == 2 else None
        out_kp, out_score = _run(kp, score, "jitter", 0.02, seed=9, layout=LAYOUTS["ntu25"])
        expected = add_joint_noise(kp, score, 0.02, np.random.default_rng(9), img_shape=img_shape)
        np.testing.assert_array_equal(out_kp, expected)
        np.testing.assert_array_equal(out_score, score)


def test_missing_joints_drop_about_p_of_the_visible_joints():
    kp, score = _clip(LAYOUTS["coco17"], 2, frames=400)
    visible = visible_joints(kp, score)
    out_kp, out_score = _run(kp, score, "missing_joints", 0.5)
    dropped = visible & (out_score == 0)
    assert abs(dropped.sum() / visible.sum() - 0.5) < 0.02
    assert np.all(out_kp[dropped] == 0)
    kept = ~dropped
    np.testing.assert_array_equal(out_kp[kept], kp[kept])
    np.testing.assert_array_equal(out_score[kept], score[kept])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_occlusion_hides_exactly_one_part_over_round_f_t_consecutive_frames(layout):
    lay = LAYOUTS[layout]
    kp, score = _clip(lay, 3, frames=30, gaps=False)
    parts_seen = set()
    for seed in range(40):
        out_kp, out_score = _run(kp, score, "occlusion", 0.5, seed=seed, layout=lay)
        hidden = out_score == 0  # (M, T, V)
        assert np.all(out_kp[hidden] == 0)
        np.testing.assert_array_equal(out_kp[~hidden], kp[~hidden])
        frames = np.flatnonzero(hidden.any(axis=(0, 2)))
        assert len(frames) == 15 and np.all(np.diff(frames) == 1)
        joints = tuple(np.flatnonzero(hidden.any(axis=(0, 1))))
        part = [name for name, part_joints in lay.parts if tuple(sorted(part_joints)) == joints]
        assert len(part) == 1
        assert hidden[:, frames][:, :, list(joints)].all()  # every person, every frame of the block
        parts_seen.add(part[0])
    assert parts_seen == {name for name, _ in lay.parts}  # every part can be drawn
    out_kp, out_score = _run(kp, score, "occlusion", 1.0, layout=lay)
    assert (out_score == 0).all(axis=(0, 2)).sum() == 0 and (out_score == 0).any(axis=(0, 2)).all()


def test_frame_rate_keeps_every_kth_frame_from_a_random_offset():
    lay = LAYOUTS["coco17"]
    kp, score = _clip(lay, 2, frames=40)
    offsets = set()
    for seed in range(20):
        out_kp, out_score = _run(kp, score, "frame_rate", 2, seed=seed)
        assert out_kp.shape[1] == 20
        sources = [s for s, _ in _source_frames(kp, score, out_kp, out_score, lay)]
        assert np.all(np.diff(sources) == 2) and sources[0] < 2
        offsets.add(sources[0])
    assert offsets == {0, 1}
    assert _run(kp, score, "frame_rate", 4)[0].shape[1] == 10
    assert _run(kp, score, "frame_rate", 3)[0].shape[1] in (13, 14)
    np.testing.assert_array_equal(_run(kp, score, "frame_rate", 1)[0], kp)
    short = kp[:, :2], score[:, :2]
    for seed in range(10):  # fewer frames than k: one frame is still kept
        assert _run(*short, "frame_rate", 4, seed=seed)[0].shape[1] == 1


def test_frame_drop_keeps_about_1_minus_p_of_the_frames_and_at_least_one():
    kp, score = _clip(LAYOUTS["coco17"], 3, frames=2000, persons=1, gaps=False)
    for p in (0.5, 0.75):
        assert abs(_run(kp, score, "frame_drop", p)[0].shape[1] / 2000 - (1 - p)) < 0.04
    short = kp[:, :10], score[:, :10]
    for seed in range(10):
        out_kp, out_score = _run(*short, "frame_drop", 1.0, seed=seed)
        assert out_kp.shape[1] == 1
        _source_frames(*short, out_kp, out_score, LAYOUTS["coco17"])


def test_block_drop_removes_one_block_of_round_f_t_frames():
    lay = LAYOUTS["ntu25"]
    kp, score = _clip(lay, 3, frames=40)
    starts = set()
    for seed in range(30):
        out_kp, out_score = _run(kp, score, "block_drop", 0.25, seed=seed, layout=lay)
        assert out_kp.shape[1] == 30
        sources = [s for s, _ in _source_frames(kp, score, out_kp, out_score, lay)]
        removed = sorted(set(range(40)) - set(sources))
        assert len(removed) == 10 and removed[-1] - removed[0] == 9
        starts.add(removed[0])
    assert len(starts) > 5
    assert _run(kp, score, "block_drop", 1.0, layout=lay)[0].shape[1] == 1


@pytest.mark.parametrize("dims", [2, 3])
def test_outliers_move_joints_by_exactly_a_fifth_of_s(dims):
    kp, score = _clip(LAYOUTS["coco17"], dims, frames=300)
    visible = visible_joints(kp, score)
    s = noise_scale(kp, visible, IMG_SHAPE if dims == 2 else None)
    out_kp, out_score = _run(kp, score, "outliers", 1.0)
    np.testing.assert_array_equal(out_score, score)
    shift = out_kp[visible].astype(np.float64) - kp[visible]  # (P, C)
    np.testing.assert_allclose(np.linalg.norm(shift, axis=-1), OUTLIER_DISTANCE * s, rtol=1e-5)
    np.testing.assert_allclose(shift.mean(axis=0) / (OUTLIER_DISTANCE * s), 0, atol=0.03)  # no preferred direction
    np.testing.assert_array_equal(out_kp[~visible], kp[~visible])
    out_kp, _ = _run(kp, score, "outliers", 0.1)
    moved = np.any(out_kp != kp, axis=-1)
    assert abs(moved.sum() / visible.sum() - 0.1) < 0.01 and not moved[~visible].any()


def test_swap_exchanges_left_and_right_in_every_frame_at_f_1():
    for layout in LAYOUTS.values():
        kp, score = _clip(layout, 2)
        order = layout.flip_order()
        out_kp, out_score = _run(kp, score, "swap", 1.0, layout=layout)
        np.testing.assert_array_equal(out_kp, kp[:, :, order])
        np.testing.assert_array_equal(out_score, score[:, :, order])
    ntu = LAYOUTS["ntu25"]
    kp, score = _clip(ntu, 3, frames=2000, gaps=False)
    out_kp, out_score = _run(kp, score, "swap", 0.25, layout=ntu)
    swapped = np.any(out_kp != kp, axis=(0, 2, 3))  # (T,)
    assert abs(swapped.mean() - 0.25) < 0.03
    np.testing.assert_array_equal(out_kp[:, swapped], kp[:, swapped][:, :, ntu.flip_order()])


def test_corrupt_fails_loudly_on_bad_input():
    kp, score = _clip(LAYOUTS["coco17"], 2)
    coco, ntu = LAYOUTS["coco17"], LAYOUTS["ntu25"]
    rng = np.random.default_rng(0)
    bare = Layout("bare", 17, (), (), ())
    with pytest.raises(ValueError, match="known families: jitter, missing_joints"):
        corrupt(kp, score, "blur", 0.1, rng, img_shape=IMG_SHAPE, layout=coco)
    with pytest.raises(ValueError, match="img_shape"):
        corrupt(kp, score, "missing_joints", 0.1, rng, img_shape=None, layout=coco)
    with pytest.raises(ValueError, match="25"):
        corrupt(kp, score, "missing_joints", 0.1, rng, img_shape=IMG_SHAPE, layout=ntu)
    with pytest.raises(ValueError, match="score shape"):
        corrupt(kp, score[:, :-1], "missing_joints", 0.1, rng, img_shape=IMG_SHAPE, layout=coco)
    with pytest.raises(ValueError, match="no parts"):
        corrupt(kp, score, "occlusion", 0.1, rng, img_shape=IMG_SHAPE, layout=bare)
    with pytest.raises(ValueError, match="no left/right"):
        corrupt(kp, score, "swap", 0.1, rng, img_shape=IMG_SHAPE, layout=bare)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(kp, score, "missing_joints", 2, rng, img_shape=IMG_SHAPE, layout=coco)


def test_corruption_rng_is_fixed_and_jitter_keeps_the_noise_sweep():
    for alpha, index in [(0.01, 0), (0.02, 17), (0.05, 123456)]:
        np.testing.assert_array_equal(
            corruption_rng("jitter", alpha, index).standard_normal(16),
            eval_noise_rng(alpha, index).standard_normal(16),
        )
    streams = {
        (family, severity, index): corruption_rng(family, severity, index).random(4).tobytes()
        for family in FAMILIES
        for severity in FAMILIES[family].levels.values()
        for index in (0, 1, 2)
    }
    assert len(set(streams.values())) == len(streams)  # every family, level and clip its own stream
    np.testing.assert_array_equal(
        corruption_rng("occlusion", 0.5, 3).random(8), corruption_rng("occlusion", 0.5, 3).random(8)
    )
    with pytest.raises(ValueError):
        corruption_rng("swap", 0.1, -1)
    with pytest.raises(ValueError):
        corruption_rng("blur", 0.1, 0)


def test_parse_corruptions_reads_every_form():
    assert parse_corruptions(["missing_joints"]) == [("missing_joints", p) for p in (0.1, 0.2, 0.4)]
    assert parse_corruptions(["swap:severe", "frame_rate:3", " outliers : 0.3 "]) == [
        ("swap", 0.5),
        ("frame_rate", 3.0),
        ("outliers", 0.3),
    ]
    everything = parse_corruptions(["all"])
    assert len(everything) == sum(len(f.levels) for f in FAMILIES.values())
    assert [name for name, _ in everything][::3] == list(FAMILIES)
    assert parse_corruptions(["all", "jitter:moderate", "jitter:0.03"]) == [*everything, ("jitter", 0.03)]
    assert parse_corruptions([]) == []


@pytest.mark.parametrize(
    "spec", ["blur", "jitter:extreme", "jitter:", "frame_rate:2.5", "missing_joints:1.5", "jitter:-1", "swap:nan", ""]
)
def test_parse_corruptions_errors_are_one_line(spec):
    with pytest.raises(ValueError) as err:
        parse_corruptions(["jitter", spec])
    message = str(err.value)
    assert "\n" not in message and repr(spec) in message
    if spec in ("blur", "jitter:extreme", "jitter:", ""):
        assert all(name in message for name in FAMILIES) and "moderate=0.02" in message


def test_layouts_are_valid_with_parts_covering_every_joint_once():
    for layout in LAYOUTS.values():
        layout.validate()
        hash(layout)
        joints = sorted(j for _, part in layout.parts for j in part)
        assert joints == list(range(layout.num_joints))
        names = {name for name, _ in layout.parts}
        assert {"left_arm", "right_arm", "left_leg", "right_leg"} <= names and len(names) == 5
        parts = dict(layout.parts)
        for side in ("arm", "leg"):  # the left part mirrors onto the right part
            order = layout.flip_order()
            assert sorted(order[j] for j in parts[f"left_{side}"]) == sorted(parts[f"right_{side}"])
    positional = Layout("tiny", 3, (0,), (1,), ((0, 2), (1, 2)))  # old positional construction still works
    assert positional.parts == ()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"left": (0, 1), "right": (2,)}, "pair up"),
        ({"left": (0,), "right": (0,)}, "disjoint"),
        ({"left": (0,), "right": (5,)}, "ints in"),
        ({"limbs": ((0, 4),)}, "limb"),
        ({"limbs": ((1, 1),)}, "limb"),
        ({"parts": (("arm", ()),)}, "part 'arm'"),
        ({"parts": (("arm", (0, 9)),)}, "part 'arm'"),
        (
            {
                "parts": (("arm", (0,)), ("arm", (1,))),
            },
            "unique",
        ),
        ({"num_joints": 0, "left": (), "right": ()}, "num_joints"),
    ],
)
def test_invalid_layouts_fail_on_construction(kwargs, match):
    fields = {"name": "bad", "num_joints": 4, "left": (0,), "right": (1,), "limbs": ((0, 1),), "parts": ()}
    with pytest.raises(ValueError, match=match):
        Layout(**{**fields, **kwargs})
