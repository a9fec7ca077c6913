"""Gaussian joint noise, defined once (DESIGN.md, "Noise is defined once, precisely").

`add_joint_noise` adds independent N(0, (alpha * s)^2) noise to every coordinate of every visible joint:
- 2D keypoints (C = 2, pixels): s = (h + w) / 2, the mean side of the frame the keypoints live in;
- 3D keypoints (C = 3): s = the diagonal of the clip's skeleton bounding box over visible joints
  (all persons and frames together).
Missing joints (score 0, or all coordinates exactly 0) are returned bit-identical, so they stay missing.

`eval_noise_rng(alpha, index)` gives the fixed evaluation generator of one (noise level, sample), so every
model and every run sees the same corrupted clip whatever the batch order or worker count.
"""

from __future__ import annotations

import math

import numpy as np

# Base entropy of the evaluation noise; change it to draw a different (equally fixed) evaluation set.
EVAL_NOISE_SEED = 20240611
# The largest alpha: noise of std ten frame (or skeleton) sizes, where no trace of the skeleton is left (the
# severe level is 0.05). Beyond it the noise only grows towards float32's overflow (inf keypoints at ~1e35).
MAX_ALPHA = 10.0


def check_alpha(alpha: float) -> float:
    """Return `alpha` as a float, or fail with a clear message when it is not in [0, MAX_ALPHA]."""
    alpha = float(alpha)
    if not (math.isfinite(alpha) and 0 <= alpha <= MAX_ALPHA):
        raise ValueError(
            f"noise alpha must be a finite number in [0, {MAX_ALPHA:g}] (a fraction of the frame or skeleton size), "
            f"got {alpha}"
        )
    return alpha


def visible_joints(keypoint: np.ndarray, keypoint_score: np.ndarray | None = None) -> np.ndarray:
    """bool (M, T, V): present joints, i.e. non-zero score (if given) and not all-zero coordinates."""
    visible = np.any(keypoint != 0, axis=-1)
    if keypoint_score is not None:
        visible &= keypoint_score != 0
    return visible


def noise_scale(
    keypoint: np.ndarray,
    visible: np.ndarray,
    img_shape: tuple[int, int] | None = None,
) -> float:
    """The size s that alpha is a fraction of: (h + w) / 2 pixels in 2D, the bounding-box diagonal in 3D.

    keypoint: (M, T, V, C); visible: bool (M, T, V); img_shape: (h, w), required for C = 2.
    Returns 0 in 3D when no joint is visible.
    """
    channels = keypoint.shape[-1]
    if channels == 2:
        if img_shape is None:
            raise ValueError("2D joint noise is relative to the frame size: pass img_shape=(h, w)")
        h, w = img_shape
        return (float(h) + float(w)) / 2
    if channels == 3:
        pts = keypoint[visible].astype(np.float64)  # (P, 3)
        if pts.shape[0] == 0:
            return 0.0
        return float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0)))
    raise ValueError(f"keypoint must have 2 (x, y pixels) or 3 (x, y, z) coordinates, got shape {keypoint.shape}")


def add_joint_noise(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray | None,
    alpha: float,
    rng: np.random.Generator,
    img_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Return a noisy float32 copy of `keypoint`; the input is not modified.

    keypoint: (M, T, V, C), C = 2 (pixels of a frame of shape `img_shape` (h, w)) or C = 3 (3D).
    keypoint_score: (M, T, V) or None; a zero score marks a missing joint.
    alpha: noise level, std = alpha * s per coordinate (see `noise_scale`).
    rng: source of the noise. A full (M, T, V, C) standard normal draw is taken whatever the
        visibility, so a joint's noise depends only on the generator and its position in the clip.
        alpha == 0 draws nothing.
    """
    alpha = check_alpha(alpha)
    keypoint = np.asarray(keypoint)
    if keypoint.ndim != 4:
        raise ValueError(f"keypoint must be (M, T, V, C), got shape {keypoint.shape}")
    if keypoint_score is not None and np.shape(keypoint_score) != keypoint.shape[:3]:
        raise ValueError(
            f"keypoint_score shape {np.shape(keypoint_score)} does not match keypoint {keypoint.shape[:3]}"
        )
    out = keypoint.astype(np.float32, copy=True)
    visible = visible_joints(keypoint, None if keypoint_score is None else np.asarray(keypoint_score))
    scale = noise_scale(keypoint, visible, img_shape)  # checks C and img_shape even when alpha == 0
    if alpha == 0:
        return out
    std = alpha * scale
    noise = rng.standard_normal(keypoint.shape) * std  # (M, T, V, C) float64
    # Only visible joints move; missing ones keep their exact bits.
    out[visible] = (out[visible].astype(np.float64) + noise[visible]).astype(np.float32)
    return out


def eval_noise_rng(alpha: float, index: int, base_seed: int = EVAL_NOISE_SEED) -> np.random.Generator:
    """The fixed generator for the evaluation noise of sample `index` at level `alpha`.

    Seeded from (base_seed, round(alpha * 1e6), index) alone, so it does not depend on batch order,
    worker count or the model, and distinct alphas (to 1e-6) draw independent noise.
    """
    alpha = check_alpha(alpha)
    if index < 0 or base_seed < 0:
        raise ValueError(f"index and base_seed must be >= 0, got {index}, {base_seed}")
    return np.random.default_rng(np.random.SeedSequence([int(base_seed), round(alpha * 1e6), int(index)]))
