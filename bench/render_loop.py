"""Reference renderer: pyskl's GeneratePoseTarget algorithm as plain NumPy loops, one joint at a time.

This is the way upstream renders (per frame, per joint, per person, a small NumPy patch each), kept
as the baseline that `bench/render.py` times `datasets.batch.render` against, and as a second, independent
implementation that the tests compare the vectorised renderer with on random inputs.

Dtypes follow what upstream computes under NumPy 1.x, spelled out so that NumPy 2 gives the same:
- window bounds: the float32 coordinate minus a Python float is float64 there, then `int()` truncates
  towards zero (so a centre at x = -2.1 still draws column 0);
- the squared limb length: the coordinate differences are float32 scalars, but `scalar ** 2` (a Python
  int exponent, no array involved) is float64 there; it is compared with 1 in float64 and rounded to
  float32 where it meets the pixel arrays. This moves the limb values by up to ~2e-6;
- everything else is float32: the coordinates, the per-pixel squared distances (upstream's
  `1 - bool - bool` segment mask is uint8 under value-based casting, so it does not promote them), the
  Gaussian and the score it is scaled by.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-3  # upstream skips joints (and limbs) whose value is below this


def _bounds(lo: float, hi: float, sigma: float, size: int) -> tuple[int, int]:
    """Pixel range [start, end) of the truncated 3-sigma window around [lo, hi], clipped to the frame."""
    return max(int(lo - 3 * sigma), 0), min(int(hi + 3 * sigma) + 1, size)


def splat_point(plane: np.ndarray, x: float, y: float, value: float, sigma: float) -> None:
    """Max a Gaussian of peak `value` centred at pixel (x, y) into `plane` (H, W), in place."""
    if value < EPS:
        return
    h, w = plane.shape
    x0, x1 = _bounds(float(x), float(x), sigma, w)
    y0, y1 = _bounds(float(y), float(y), sigma, h)
    if x1 <= x0 or y1 <= y0:  # window entirely outside the frame
        return
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    d2 = (xs - np.float32(x)) ** 2 + (ys - np.float32(y)) ** 2  # (h', w') float32
    patch = np.exp(-d2 / np.float32(2) / np.float32(sigma**2)) * np.float32(value)
    np.maximum(plane[y0:y1, x0:x1], patch, out=plane[y0:y1, x0:x1])


def splat_limb(
    plane: np.ndarray, start: np.ndarray, end: np.ndarray, v_start: float, v_end: float, sigma: float
) -> None:
    """Max a Gaussian of the distance to the segment start-end into `plane` (H, W), in place.

    start, end: (2,) float32 pixel x, y. The peak is min(v_start, v_end). A limb shorter than 1 px
    is drawn as the start joint alone, with the start joint's value (upstream's short-limb case).
    """
    value = min(v_start, v_end)
    if value < EPS:
        return
    h, w = plane.shape
    sx, sy = np.float32(start[0]), np.float32(start[1])
    ex, ey = np.float32(end[0]), np.float32(end[1])
    x0, x1 = _bounds(float(min(sx, ex)), float(max(sx, ex)), sigma, w)
    y0, y1 = _bounds(float(min(sy, ey)), float(max(sy, ey)), sigma, h)
    if x1 <= x0 or y1 <= y0:
        return
    d2_ab64 = float(sx - ex) ** 2 + float(sy - ey) ** 2  # float64, see the module docstring
    if d2_ab64 < 1:
        splat_point(plane, sx, sy, v_start, sigma)
        return
    d2_ab = np.float32(d2_ab64)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    d2_start = (xs - sx) ** 2 + (ys - sy) ** 2
    d2_end = (xs - ex) ** 2 + (ys - ey) ** 2
    # Position of the foot of the perpendicular along the segment, 0 at start and 1 at end.
    coeff = (d2_start - d2_end + d2_ab) / np.float32(2) / d2_ab
    proj_x = sx + coeff * (ex - sx)
    proj_y = sy + coeff * (ey - sy)
    d2_line = (xs - proj_x) ** 2 + (ys - proj_y) ** 2
    d2 = np.where(coeff <= 0, d2_start, np.where(coeff >= 1, d2_end, d2_line))
    patch = np.exp(-d2 / np.float32(2) / np.float32(sigma**2)) * np.float32(value)
    np.maximum(plane[y0:y1, x0:x1], patch, out=plane[y0:y1, x0:x1])


def render_clip(
    kp: np.ndarray,
    score: np.ndarray,
    size: tuple[int, int],
    sigma: float = 0.6,
    use_score: bool = True,
    limbs: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Render one clip, joint by joint.

    kp: (M, T, V, 2) pixel x, y in the (H, W) frame; score: (M, T, V).
    limbs: None renders one channel per joint, otherwise one channel per (start, end) pair.
    Returns (C, T, H, W) float32, C = V or len(limbs).
    """
    kp = np.asarray(kp, dtype=np.float32)
    score = np.asarray(score, dtype=np.float32)
    if not use_score:
        score = np.ones_like(score)
    m, t, v, _ = kp.shape
    h, w = size
    channels = v if limbs is None else len(limbs)
    out = np.zeros((channels, t, h, w), dtype=np.float32)
    for ti in range(t):
        for c in range(channels):
            for mi in range(m):
                if limbs is None:
                    x, y = kp[mi, ti, c]
                    splat_point(out[c, ti], x, y, score[mi, ti, c], sigma)
                else:
                    a, b = limbs[c]
                    p, q = kp[mi, ti, a], kp[mi, ti, b]
                    splat_limb(out[c, ti], p, q, score[mi, ti, a], score[mi, ti, b], sigma)
    return out


def render_batch(
    kp: np.ndarray,
    score: np.ndarray,
    size: tuple[int, int],
    sigma: float = 0.6,
    use_score: bool = True,
    limbs: Sequence[tuple[int, int]] | None = None,
) -> np.ndarray:
    """`render_clip` over a batch: kp (N, M, T, V, 2), score (N, M, T, V) -> (N, C, T, H, W) float32."""
    return np.stack([render_clip(k, s, size, sigma, use_score, limbs) for k, s in zip(kp, score, strict=True)])
