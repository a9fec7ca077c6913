"""Gaussian joint noise: scale, visibility, determinism of the evaluation generator."""

import numpy as np
import pytest

from datasets.pipeline.noise import add_joint_noise, eval_noise_rng, noise_scale, visible_joints


def _clip_2d(rng: np.random.Generator, frames: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A 2-person clip in a 1080x1920 frame, (2, frames, 17, 2) pixels and (2, frames, 17) scores."""
    kp = rng.uniform(100, 1000, size=(2, frames, 17, 2)).astype(np.float32)
    score = rng.uniform(0.2, 1, size=(2, frames, 17)).astype(np.float32)
    gone = frames * 3 // 4
    score[1, gone:] = 0  # person 1 leaves: zero score ...
    kp[1, gone:] = 0  # ... and zero coordinates
    score[0, 1, 3] = 0  # a missing joint with (stale) non-zero coordinates
    kp[0, 2, 4] = 0  # a joint at (0, 0) with a non-zero score: missing as well
    return kp, score


def test_alpha_zero_is_an_exact_copy_and_draws_nothing():
    kp, score = _clip_2d(np.random.default_rng(0))
    rng = np.random.default_rng(5)
    out = add_joint_noise(kp, score, 0.0, rng, img_shape=(1080, 1920))
    assert out is not kp and out.dtype == np.float32
    np.testing.assert_array_equal(out, kp)
    assert rng.random() == np.random.default_rng(5).random()


def test_missing_joints_stay_exactly_missing():
    kp, score = _clip_2d(np.random.default_rng(1))
    before = kp.copy()
    out = add_joint_noise(kp, score, 0.05, np.random.default_rng(2), img_shape=(1080, 1920))
    visible = visible_joints(kp, score)
    assert not visible[1, 150:].any() and not visible[0, 1, 3] and not visible[0, 2, 4]
    np.testing.assert_array_equal(out[~visible], kp[~visible])
    assert np.all(out[1, 150:] == 0)
    assert np.all(out[visible] != kp[visible])
    np.testing.assert_array_equal(kp, before)  # input untouched


def test_2d_std_is_alpha_times_mean_frame_side():
    kp, score = _clip_2d(np.random.default_rng(3), frames=1000)
    alpha = 0.01
    out = add_joint_noise(kp, score, alpha, np.random.default_rng(4), img_shape=(1080, 1920))
    visible = visible_joints(kp, score)
    diff = out[visible].astype(np.float64) - kp[visible]  # (P, 2)
    expected = alpha * (1080 + 1920) / 2  # 15 px
    assert diff.shape[0] > 20000
    np.testing.assert_allclose(diff.std(axis=0), [expected, expected], rtol=0.03)
    np.testing.assert_allclose(diff.mean(axis=0), [0, 0], atol=0.03 * expected)
    # x and y are independent.
    assert abs(np.corrcoef(diff.T)[0, 1]) < 0.03


def test_3d_scale_is_the_visible_bounding_box_diagonal():
    rng = np.random.default_rng(6)
    kp = 1 + rng.uniform(0, 1, size=(1, 500, 17, 3)) * np.array([3.0, 4.0, 12.0])  # (M, T, V, 3)
    kp[0, 0, 0] = [1, 1, 1]  # pin the box to exactly [1, 4] x [1, 5] x [1, 13]
    kp[0, 0, 1] = [4, 5, 13]
    score = np.ones((1, 500, 17))
    kp[0, 7, 5] = [1000.0, -1000.0, 50.0]
    score[0, 7, 5] = 0  # a missing outlier must not count towards the box
    kp = kp.astype(np.float32)
    visible = visible_joints(kp, score)
    assert noise_scale(kp, visible) == pytest.approx(13.0, rel=1e-6)  # sqrt(3^2 + 4^2 + 12^2)
    out = add_joint_noise(kp, score, 0.02, np.random.default_rng(7))
    diff = out[visible].astype(np.float64) - kp[visible]  # (P, 3)
    np.testing.assert_allclose(diff.std(axis=0), [0.26] * 3, rtol=0.05)
    np.testing.assert_array_equal(out[0, 7, 5], kp[0, 7, 5])


def test_eval_noise_rng_is_fixed_per_alpha_and_index():
    a = eval_noise_rng(0.01, 17).standard_normal(8)
    np.testing.assert_array_equal(a, eval_noise_rng(0.01, 17).standard_normal(8))
    assert not np.array_equal(a, eval_noise_rng(0.01, 18).standard_normal(8))
    assert not np.array_equal(a, eval_noise_rng(0.02, 17).standard_normal(8))
    assert not np.array_equal(a, eval_noise_rng(0.01, 17, base_seed=1).standard_normal(8))
    # Same corrupted clip whatever else was drawn before (batch order, worker count).
    kp, score = _clip_2d(np.random.default_rng(8), frames=20)
    first = add_joint_noise(kp, score, 0.01, eval_noise_rng(0.01, 3), img_shape=(1080, 1920))
    for index in range(5):
        add_joint_noise(kp, score, 0.01, eval_noise_rng(0.01, index), img_shape=(1080, 1920))
    again = add_joint_noise(kp, score, 0.01, eval_noise_rng(0.01, 3), img_shape=(1080, 1920))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("alpha", [-0.01, float("nan"), float("inf"), 10.5, 1e300])
def test_invalid_alpha_is_rejected(alpha):
    kp, score = _clip_2d(np.random.default_rng(9), frames=4)
    with pytest.raises(ValueError, match="alpha"):
        add_joint_noise(kp, score, alpha, np.random.default_rng(0), img_shape=(10, 10))
    with pytest.raises(ValueError, match="alpha"):
        eval_noise_rng(alpha, 0)


def test_bad_inputs_fail_loudly():
    kp, score = _clip_2d(np.random.default_rng(10), frames=4)
    with pytest.raises(ValueError, match="img_shape"):
        add_joint_noise(kp, score, 0.01, np.random.default_rng(0))
    with pytest.raises(ValueError, match="coordinates"):
        add_joint_noise(np.zeros((1, 2, 17, 4)), None, 0.01, np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not match"):
        add_joint_noise(kp, score[:, :1], 0.01, np.random.default_rng(0), img_shape=(10, 10))
