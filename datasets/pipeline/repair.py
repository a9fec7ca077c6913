"""Repairs of one skeleton clip: explicit steps that undo what the corruption suite does, in numpy, per clip.

Each step reads a clip and returns a repaired float32 copy; the inputs are never written to (they may be
read-only views of the shared store):

    keypoint        (M, T, V, C): C = 2 (pixels, with scores) or C = 3 (metres)
    keypoint_score  (M, T, V): 0 marks a missing joint

A joint is visible when its score is not 0 and its coordinates are not all 0
(`datasets.pipeline.noise.visible_joints`); in 3D the store's scores are 1 for present joints and 0 for
all-zero ones, so this is "not all coordinates 0". The steps, each the inverse of corruption families
(datasets/pipeline/corruptions.py):

    interpolate  `interpolate_missing`: fill missing joints from the same joint's nearest visible frames
                 (missing_joints, occlusion, frames dropped and left as zeros, outliers once rejected)
    outliers     `reject_outliers`: mark joints that jump away from their temporal neighbours as missing
    swaps        `fix_swaps`: undo frames whose left and right joints are exchanged

`repair(keypoint, keypoint_score, steps, layout)` applies named steps in the order given. The order that
undoes the most is `RECOMMENDED_STEPS`, swaps, outliers, interpolate: a swapped frame looks like a frame
of outliers (every paired joint jumps), and rejected outliers are holes that interpolation then fills.
tests/test_repair.py measures each step against clean clips.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from datasets.pipeline.noise import noise_scale, visible_joints
from datasets.store.layouts import Layout

__all__ = [
    "OUTLIER_THRESHOLD",
    "OUTLIER_WINDOW",
    "RECOMMENDED_STEPS",
    "REPAIRS",
    "fix_swaps",
    "interpolate_missing",
    "reject_outliers",
    "repair",
]

# A joint farther than OUTLIER_THRESHOLD * s from the median of its neighbours is an outlier; s as in the
# corruption suite. The corruption's outliers land 0.2 * s away, twice as far, while the clean motion of a
# body joint strays from its neighbours' median by a few hundredths of s (tests/test_repair.py).
OUTLIER_THRESHOLD = 0.1
# Neighbours: the OUTLIER_WINDOW frames on each side of a joint. Their median ignores up to two other
# outliers among the six; a smaller window lets two of four pull it and doubles the false alarms next to
# outliers, a larger one follows fast motion less closely.
OUTLIER_WINDOW = 3
# ... or farther than OUTLIER_SPREAD times the median, over the clip, of that joint's own distance to its
# neighbours' median, when that is larger: a fast joint in a clip whose frames are far apart in time (a lower
# frame rate, dropped frames) strays in every frame. On MSR Action3D's 290 training clips at the suite's
# moderate levels (the fixed threshold alone / with this): frame_rate 13.4 % / 2.3 % of the joints rejected,
# frame_drop 11.7 % / 3.1 %, jitter 1.7 % / 0.5 %, outliers (5 % displaced) 6.2 % / 5.9 %.
OUTLIER_SPREAD = 3.0

Clip = tuple[np.ndarray, np.ndarray]


def _float_copies(keypoint: np.ndarray, keypoint_score: np.ndarray) -> Clip:
    """float32 copies of a clip after checking its shapes: keypoint (M, T, V, C), C = 2 or 3; score (M, T, V)."""
    keypoint, keypoint_score = np.asarray(keypoint), np.asarray(keypoint_score)
    if keypoint.ndim != 4 or keypoint.shape[-1] not in (2, 3):
        raise ValueError(f"keypoint must be (M, T, V, C) with C = 2 or 3, got shape {keypoint.shape}")
    if keypoint_score.shape != keypoint.shape[:3]:
        raise ValueError(f"keypoint_score shape {keypoint_score.shape} does not match keypoint {keypoint.shape[:3]}")
    return keypoint.astype(np.float32), keypoint_score.astype(np.float32)


def interpolate_missing(keypoint: np.ndarray, keypoint_score: np.ndarray, max_gap: int | None = None) -> Clip:
    """Fill every missing joint from the same joint of the same person in its nearest visible frames.

    keypoint: (M, T, V, C) pixels or metres; keypoint_score: (M, T, V).
    Inside a gap (visible frames p < t < n on both sides) the joint is the linear interpolation
    x_t = x_p + (t - p) / (n - p) * (x_n - x_p); before its first or after its last visible frame it holds
    that frame's value. Its score is interpolated with the same weights (held at the ends), so a filled joint
    is as confident as the frames it was built from, and > 0 (its neighbours are visible) in 2D and 3D alike.
    Frames where a person is entirely missing are gaps like any other. A joint never visible in the clip
    stays missing; so does every joint of a gap (interior or at an end) longer than `max_gap` frames, when
    given (an int >= 0). Visible joints and joints left missing keep their values.
    Returns float32 (keypoint (M, T, V, C), keypoint_score (M, T, V)).
    """
    if max_gap is not None and (isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 0):
        raise ValueError(f"max_gap must be None or a whole number of frames >= 0, got {max_gap!r}")
    kp, score = _float_copies(keypoint, keypoint_score)
    visible = visible_joints(kp, score)  # (M, T, V)
    t = kp.shape[1]
    frame = np.arange(t)[None, :, None]  # (1, T, 1)
    # The nearest visible frame at or before / at or after each frame: -1 / T where there is none.
    prev = np.maximum.accumulate(np.where(visible, frame, -1), axis=1)  # (M, T, V)
    after = np.minimum.accumulate(np.where(visible, frame, t)[:, ::-1], axis=1)[:, ::-1]  # (M, T, V)
    has_prev, has_after = prev >= 0, after < t
    fill = ~visible & (has_prev | has_after)
    if max_gap is not None:
        gap = after - prev - 1  # the missing run through each frame; at an end it runs to the clip's edge
        fill &= gap <= max_gap
    if not fill.any():
        return kp, score
    lo = np.where(has_prev, prev, after).clip(0, t - 1)  # an end holds its one neighbour: lo == hi
    hi = np.where(has_after, after, prev).clip(0, t - 1)
    w = np.where(hi > lo, (frame - lo) / np.maximum(hi - lo, 1), 0.0)  # (M, T, V) float64, in (0, 1)
    x_lo = np.take_along_axis(kp, lo[..., None], axis=1).astype(np.float64)  # (M, T, V, C)
    x_hi = np.take_along_axis(kp, hi[..., None], axis=1).astype(np.float64)
    s_lo, s_hi = np.take_along_axis(score, lo, axis=1), np.take_along_axis(score, hi, axis=1)  # (M, T, V)
    kp[fill] = ((1 - w[..., None]) * x_lo + w[..., None] * x_hi)[fill]
    score[fill] = ((1 - w) * s_lo + w * s_hi)[fill]
    return kp, score


def _window_median(kp: np.ndarray, visible: np.ndarray, window: int) -> np.ndarray:
    """(M, T, V, C) float64: per coordinate, the median of each joint's visible positions in the `window`
    frames on either side of it (the frame itself excluded); NaN where none of them is visible.
    kp: (M, T, V, C) float32; visible: (M, T, V)."""
    m, t, v, c = kp.shape
    x = np.where(visible[..., None], kp, np.float32(np.inf))  # (M, T, V, C); a missing joint sorts last
    pad = np.full((m, window, v, c), np.inf, np.float32)
    padded = np.concatenate([pad, x, pad], axis=1)  # (M, T + 2 window, V, C)
    shifts = [s for s in range(-window, window + 1) if s != 0]
    near = np.stack([padded[:, window + s : window + s + t] for s in shifts])  # (n, M, T, V, C)
    # Sort the n neighbours by odd-even transposition (n rounds of compare-exchange between rows): twice
    # as fast as np.sort, whose cost goes to the M * T * V * C rows of 2 * window values each.
    n = len(shifts)
    for r in range(n):
        for i in range(r % 2, n - 1, 2):
            low = np.minimum(near[i], near[i + 1])
            np.maximum(near[i], near[i + 1], out=near[i + 1])
            near[i] = low
    count = np.isfinite(near[..., :1]).sum(axis=0)  # (M, T, V, 1) visible neighbours
    lo = np.take_along_axis(near, np.maximum(count - 1, 0)[None] // 2, axis=0)[0]  # the middle two
    hi = np.take_along_axis(near, np.minimum(count // 2, n - 1)[None], axis=0)[0]
    return np.where(count > 0, (lo.astype(np.float64) + hi) / 2, np.nan)


def _usual_deviation(dev: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(M, 1, V) float64: per person and joint, the median over frames of `dev` (M, T, V) where the joint is
    visible and dev is defined; 0 where there is no such frame."""
    d = np.where(visible & ~np.isnan(dev), dev, np.nan)
    if not np.isfinite(d).any():
        return np.zeros((dev.shape[0], 1, dev.shape[2]))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN joints
        return np.nan_to_num(np.nanmedian(d, axis=1, keepdims=True))


def reject_outliers(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    threshold: float = OUTLIER_THRESHOLD,
    *,
    window: int = OUTLIER_WINDOW,
    img_shape: tuple[int, int] | None = None,
) -> Clip:
    """Mark joints that jump away from their temporal neighbours as missing (coordinates 0, score 0).

    keypoint: (M, T, V, C) pixels or metres; keypoint_score: (M, T, V); img_shape: (h, w) of the frame,
    required in 2D. A visible joint is an outlier when its distance to the coordinate-wise median of the same
    joint's visible positions in the `window` frames on each side (itself excluded) exceeds threshold * s,
    with s = `noise_scale`, the size the corruption suite's outliers are measured in (they land 0.2 * s away),
    and exceeds OUTLIER_SPREAD times that joint's median distance over the clip (its usual jump between
    frames, large where frames are far apart in time):
    (h + w) / 2 pixels in 2D; in 3D the diagonal of the bounding box of the window medians, i.e. of the clip
    without its outliers. A joint with no visible neighbour in its window is kept. Smooth motion, even fast,
    stays near the median of its neighbours on both sides; the joints of a swapped frame do not, so fix swaps
    first. `interpolate_missing` then fills the rejected joints.
    Returns float32 (keypoint (M, T, V, C), keypoint_score (M, T, V)).
    """
    if not threshold > 0 or not np.isfinite(threshold):
        raise ValueError(f"threshold is a positive fraction of the clip's scale s, got {threshold}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a whole number of frames >= 1, got {window!r}")
    kp, score = _float_copies(keypoint, keypoint_score)
    if kp.shape[-1] == 2 and img_shape is None:
        raise ValueError("2D outliers are measured against the frame size: pass img_shape=(h, w)")
    visible = visible_joints(kp, score)  # (M, T, V)
    median = _window_median(kp, visible, window)  # (M, T, V, C)
    # In 3D, s of the medians: the outliers themselves stretch the clip's bounding box (by 1.3x to 1.5x at the
    # corruption suite's levels on the tests' clip), which would hide them; the medians' box leaves them out.
    scale = noise_scale(np.nan_to_num(median), ~np.isnan(median[..., 0]), img_shape)
    with np.errstate(invalid="ignore"):
        dev = np.linalg.norm(kp - median, axis=-1)  # (M, T, V), NaN without a visible neighbour
    # A joint's own typical jump: where the frames are far apart in time (a lower frame rate, frames dropped),
    # a moving joint strays from its neighbours' median in every frame; an outlier is the exception.
    usual = _usual_deviation(dev, visible)  # (M, 1, V)
    with np.errstate(invalid="ignore"):
        far = dev > np.maximum(threshold * scale, OUTLIER_SPREAD * usual)  # (M, T, V), False where NaN
    outlier = visible & far
    kp[outlier], score[outlier] = 0, 0
    return kp, score


def _frame_costs(kp: np.ndarray, visible: np.ndarray, now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """(M, T - 1) float64: for each frame after the first, the mean distance of its joints `now` to the joints
    `before` of the frame before it, over the pairs visible in both; NaN where no pair is.
    kp: (M, T, V, C); visible: (M, T, V); now, before: (P,) joint indices."""
    dist = np.linalg.norm(kp[:, 1:, now].astype(np.float64) - kp[:, :-1, before], axis=-1)  # (M, T - 1, P)
    both = visible[:, 1:, now] & visible[:, :-1, before]  # (M, T - 1, P)
    count = both.sum(axis=-1)
    return np.where(count > 0, (dist * both).sum(axis=-1) / np.maximum(count, 1), np.nan)


def _swapped_frames(keep: np.ndarray, exchange: np.ndarray) -> np.ndarray:
    """(M, T) bool: the frames to exchange back, from the (M, T - 1) costs of keeping or exchanging each frame
    after the first relative to the frame before (NaN: nothing to compare). A frame is exchanged when it
    is preceded, since the start of its segment (a run of frames linked by comparisons), by an odd number of
    frames (itself included) that disagree with their predecessor (exchange < keep); a segment where that
    picks over half of its frames is inverted."""
    m, t = keep.shape[0], keep.shape[1] + 1
    linked = ~np.isnan(keep)  # (M, T - 1)
    disagree = np.concatenate([np.zeros((m, 1), int), np.cumsum(exchange < keep, axis=1)], axis=1)  # (M, T)
    start = np.concatenate([np.ones((m, 1), bool), ~linked], axis=1)  # (M, T): a segment starts here
    first = np.maximum.accumulate(np.where(start, np.arange(t), 0), axis=1)  # (M, T): its segment's start
    flipped = (disagree - np.take_along_axis(disagree, first, axis=1)) % 2 == 1
    segment = (first + t * np.arange(m)[:, None]).ravel()  # (M * T,) a unique id per person and segment
    frames = np.bincount(segment, minlength=m * t)
    majority = 2 * np.bincount(segment, weights=flipped.ravel(), minlength=m * t) > frames
    return flipped ^ majority[segment].reshape(m, t)


def fix_swaps(keypoint: np.ndarray, keypoint_score: np.ndarray, layout: Layout) -> Clip:
    """Undo frames whose left and right joints are exchanged (layout.left[i] <-> layout.right[i]).

    keypoint: (M, T, V, C) pixels or metres; keypoint_score: (M, T, V); layout: the clip's joints.
    Per person, a frame is exchanged back when exchanging its paired joints brings them closer to the same
    joints of the previous repaired frame than keeping it (mean distance over the paired joints visible in
    both; a tie keeps it). As exchanging both frames leaves that distance unchanged, this is: a frame is
    exchanged when an odd number of the frames up to it are closer to their raw predecessor exchanged.
    Two refinements make it hold on real clips: a frame that shares no visible paired joint with the previous
    one (the person absent, or out of sight for a while) starts a new segment, as a comparison across a gap
    means nothing; and the first frame of a segment may be swapped itself, so where the chain leaves over
    half of a segment's frames exchanged, the segment's choice is inverted: a swap is the exception, so the
    majority orientation is taken as the right one (reliable while under half of the frames are swapped).
    Needs the body's left-right separation to exceed its motion between frames. Scores follow their joints.
    Returns float32 (keypoint (M, T, V, C), keypoint_score (M, T, V)).
    """
    if not layout.left:
        raise ValueError(f"fix_swaps exchanges left and right joints, but layout {layout.name} has no left/right pairs")
    kp, score = _float_copies(keypoint, keypoint_score)
    if kp.shape[2] != layout.num_joints:
        raise ValueError(f"keypoint has {kp.shape[2]} joints but layout {layout.name} has {layout.num_joints}")
    if kp.shape[1] < 2:
        return kp, score
    order = np.asarray(layout.flip_order())
    paired = np.asarray(layout.left + layout.right)
    visible = visible_joints(kp, score)  # (M, T, V)
    keep = _frame_costs(kp, visible, paired, paired)  # (M, T - 1)
    exchange = _frame_costs(kp, visible, order[paired], paired)
    swap = _swapped_frames(keep, exchange)  # (M, T)
    kp[swap] = kp[swap][:, order]
    score[swap] = score[swap][:, order]
    return kp, score


# Every step as (keypoint, keypoint_score, layout, img_shape) -> (keypoint, keypoint_score), with its defaults.
# Another setting (a max_gap, a threshold) is a call to the step itself.
Step = Callable[[np.ndarray, np.ndarray, Layout, tuple[int, int] | None], Clip]
REPAIRS: dict[str, Step] = {
    "interpolate": lambda kp, score, layout, img_shape: interpolate_missing(kp, score),
    "outliers": lambda kp, score, layout, img_shape: reject_outliers(kp, score, img_shape=img_shape),
    "swaps": lambda kp, score, layout, img_shape: fix_swaps(kp, score, layout),
}
# The order that undoes the most (module docstring; tests/test_repair.py compares it with the others).
RECOMMENDED_STEPS = ("swaps", "outliers", "interpolate")


def repair(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    steps: Sequence[str],
    layout: Layout,
    *,
    img_shape: tuple[int, int] | None = None,
) -> Clip:
    """Apply the named repair steps (keys of `REPAIRS`), in the order given, with their defaults.

    keypoint: (M, T, V, C) pixels or metres; keypoint_score: (M, T, V); layout: the clip's joints (for
    'swaps'); img_shape: (h, w), needed by 'outliers' in 2D. No steps: float32 copies.
    Unknown names raise ValueError, listing the valid ones, before any work.
    Returns float32 (keypoint (M, T, V, C), keypoint_score (M, T, V)).
    """
    if isinstance(steps, str):
        raise ValueError(f"steps is a sequence of names, e.g. [{steps!r}]; valid: {', '.join(REPAIRS)}")
    unknown = [name for name in steps if name not in REPAIRS]
    if unknown:
        raise ValueError(f"unknown repair step(s) {', '.join(map(repr, unknown))}; valid: {', '.join(REPAIRS)}")
    kp, score = _float_copies(keypoint, keypoint_score)
    for name in steps:
        kp, score = REPAIRS[name](kp, score, layout, img_shape)
    return kp, score
