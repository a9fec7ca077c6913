"""MotionBERT's input preprocessing for action recognition, per clip, in numpy (Dataset workers, CPU).

A pyskl annotation (2D COCO-17 keypoints in pixels, with scores) becomes the (2, T, 17, 3) clip that
MotionBERT's `ActionNet` reads: x, y in [-1, 1] in H36M-17 joint order, and a score channel. Keypoints
already in H36M-17 order (the `h36m17` layout, MotionBERT's own) skip `coco2h36m` (`joint_order="h36m17"`),
and their scores stay with their joints. The path is that of MotionBERT's `NTURGBD` dataset (`__init__`
then `__getitem__`):

    resample ids -> make_cam -> human_tracking (all F frames) -> coco2h36m -> concat score
    -> zero second person if M == 1 -> gather resampled frames -> float32
    -> [random_move] -> crop_scale -> float32

The golden fixtures (`../shared/golden/motionbert_data/`) confirm this order: tracking runs on all F
frames before the frames are resampled.

Upstream behaviour kept on purpose, because published checkpoints were trained on it:
- `make_cam` is evaluated in the keypoints' own dtype (float16 for pyskl's NTU pickles). Evaluating it
  in float32/64 moves the model input by up to ~1e-3.
- The score channel stays in COCO joint order while x, y are in H36M order (upstream concatenates the
  raw `keypoint_score` with the reordered coordinates), so joint j of the clip carries the score of
  COCO joint j. `crop_scale` also selects its valid joints through that channel.

Upstream bugs fixed here (test-time numbers unchanged unless noted):
- `human_tracking` swaps the coordinates of the two persons but not their scores. We swap both; pass
  `upstream_score_bug=True` to get upstream's numbers. Only clips where tracking swaps identities are
  affected, and there only the score channel (and `crop_scale`'s valid-joint mask, if the two persons'
  zero-score patterns differ).
- `random_move` writes through a transposed view into the clip the dataset stores, so augmentations
  pile up epoch after epoch. Nothing here mutates its inputs.
- Train-mode resampling happens once in upstream's `__init__` (one fixed draw per clip for the whole
  run); here it is drawn per call from the generator the caller passes, i.e. fresh every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "COCO_TO_H36M",
    "JOINT_ORDERS",
    "coco2h36m",
    "crop_scale",
    "human_tracking",
    "make_cam",
    "motionbert_clip",
    "prepare_motion",
    "random_move",
    "resample",
    "track_swaps",
]

NUM_JOINTS = 17
# The 2D joint orders the path reads (datasets/store/layouts.py names): COCO-17 is mapped to H36M-17 as upstream
# does for NTU's HRNet keypoints; H36M-17 is MotionBERT's own order and needs no mapping.
JOINT_ORDERS = ("coco17", "h36m17")

# H36M-17 joint j is COCO joint COCO_TO_H36M[j], or the midpoint of a COCO pair; 7 (belly) is the
# midpoint of H36M 0 (root) and 8 (neck).
# H36M: 0 root, 1 rhip, 2 rknee, 3 rankle, 4 lhip, 5 lknee, 6 lankle, 7 belly, 8 neck, 9 nose, 10 head,
# 11 lshoulder, 12 lelbow, 13 lwrist, 14 rshoulder, 15 relbow, 16 rwrist.
COCO_TO_H36M: tuple[int | tuple[int, int] | None, ...] = (
    (11, 12), 12, 14, 16, 11, 13, 15, None, (5, 6), 0, (1, 2), 5, 7, 9, 6, 8, 10,
)  # fmt: skip


def _require_rng(rng: np.random.Generator | None, what: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{what} is random: pass rng=np.random.Generator (got {type(rng).__name__})")
    return rng


def resample(ori_len: int, target_len: int, randomness: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices that stretch or squeeze a clip of `ori_len` frames to `target_len` frames.

    Test mode (`randomness=False`): `np.linspace(0, ori_len, target_len, endpoint=False, dtype=int)`,
    evenly spaced and truncated; a shorter clip repeats frames, a longer one skips frames.
    Train mode (`randomness=True`, needs `rng`), with `even = linspace(0, ori_len, target_len,
    endpoint=False)`:
    - clip shorter than the target (`ori_len < target_len`): each index is floor or ceil of its `even`
      position with probability 1/2, then the indices are sorted (so they stay non-decreasing);
    - otherwise: each index is drawn uniformly in `[even_i, even_i + ori_len / target_len)` and
      truncated, i.e. one random frame from each of `target_len` equal segments.
    Both are clipped to `[0, ori_len - 1]`. Draws from `rng`: `target_len` integers or uniforms.

    Returns: int64 (target_len,) frame indices into the original clip.
    """
    if int(ori_len) != ori_len or ori_len < 1 or int(target_len) != target_len or target_len < 1:
        raise ValueError(f"resample needs positive integer lengths, got ori_len={ori_len}, target_len={target_len}")
    ori_len, target_len = int(ori_len), int(target_len)
    if not randomness:
        return np.linspace(0, ori_len, target_len, endpoint=False, dtype=int).astype(np.int64)
    rng = _require_rng(rng, "resample(randomness=True)")
    even = np.linspace(0, ori_len, target_len, endpoint=False)  # (target_len,) float64
    if ori_len < target_len:
        take_floor = rng.integers(0, 2, size=target_len)
        result = np.sort(np.where(take_floor == 1, np.floor(even), np.ceil(even)))
    else:
        interval = ori_len / target_len
        result = even + rng.random(target_len) * interval
    return np.clip(result, 0, ori_len - 1).astype(np.int64)


def make_cam(keypoint: np.ndarray, img_shape: Sequence[float]) -> np.ndarray:
    """Pixel coordinates to MotionBERT's camera frame: `x / max(h, w) * 2 - 1`.

    The longer image side maps to [-1, 1]; the shorter one to [-1, -1 + 2 * short / long] (the origin is
    the top-left corner, not the image centre, as upstream). Missing joints at pixel (0, 0) land on
    (-1, -1).

    keypoint: (..., 2) x, y in pixels. Evaluated in its own floating dtype, one rounding per operation,
      exactly as upstream: float16 keypoints (pyskl's NTU pickles) give float16 results.
    img_shape: (h, w) in pixels.
    Returns: same shape and dtype as `keypoint` (integer input is promoted to float64).
    """
    long_side = _image_long_side(img_shape)
    x = np.asarray(keypoint)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    # A Python float (not a numpy scalar) keeps float16 arrays in float16, under NumPy 1.x and 2.x.
    return x / long_side * 2 - 1


def _image_long_side(img_shape: Sequence[float]) -> float:
    try:
        h, w = (float(v) for v in img_shape)
    except (TypeError, ValueError):
        raise ValueError(f"img_shape must be (h, w), got {img_shape!r}") from None
    if not (np.isfinite(h) and np.isfinite(w) and h > 0 and w > 0):
        raise ValueError(f"img_shape must be two positive sizes (h, w) in pixels, got {img_shape!r}")
    return max(h, w)


def track_swaps(x: np.ndarray) -> np.ndarray:
    """Upstream's 2-person identity tracking: in which frames persons 0 and 1 trade places.

    For t >= 1, a swap event happens at frame t when person 0 at t is farther from person 0 at t-1 than
    from person 1 at t-1, distance = sum over joints of the Euclidean distance. Only person 0 is
    consulted, and both terms use the raw (untracked) frames; frame t is swapped when an odd number of
    events happened in frames 1..t. Computed in `x`'s dtype (float16 for float16 input, as upstream):
    near-ties decide differently in another precision.

    x: (2, F, V, 2) coordinates (camera frame).
    Returns: bool (F,), True where the two persons must be exchanged; frame 0 is never swapped.
    """
    if x.ndim != 4 or x.shape[0] != 2:
        raise ValueError(f"track_swaps needs (2, F, V, C) coordinates, got shape {x.shape}")
    stay = np.sum(np.linalg.norm(x[0, 1:] - x[0, :-1], axis=-1), axis=-1)  # (F-1,)
    cross = np.sum(np.linalg.norm(x[0, 1:] - x[1, :-1], axis=-1), axis=-1)  # (F-1,)
    parity = np.cumsum(stay > cross) % 2  # (F-1,)
    return np.concatenate([[False], parity == 1])


def _apply_swaps(a: np.ndarray, swapped: np.ndarray) -> np.ndarray:
    """Exchange persons 0 and 1 of `a` (2, F, ...) in the frames where `swapped` (F,) is True."""
    mask = swapped.reshape((1, -1) + (1,) * (a.ndim - 2))  # (1, F, 1, ...)
    return np.where(mask, a[::-1], a)


def human_tracking(x: np.ndarray) -> np.ndarray:
    """Reorder two persons so that each keeps one identity across frames (upstream `human_tracking`).

    x: (M, F, V, C) coordinates. M == 1 is returned as is (a copy, in its own dtype); M == 2 is tracked
    with `track_swaps` and returned as float64, like upstream.
    Returns: (M, F, V, C). Scores are not touched here; `prepare_motion` swaps them too.
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[0] not in (1, 2):
        raise ValueError(f"human_tracking needs (M, F, V, C) with M in (1, 2), got shape {x.shape}")
    if x.shape[0] == 1:
        return x.copy()
    return _apply_swaps(x, track_swaps(x)).astype(np.float64)


def coco2h36m(x: np.ndarray) -> np.ndarray:
    """COCO-17 joint order to H36M-17, deriving root, belly, neck and head as midpoints.

    x: (M, F, 17, C) in COCO order. The pair midpoints are computed in `x`'s dtype (float16 for a
      single person, whose tracking leaves the float16 `make_cam` output unchanged), as upstream; belly
      is the float64 midpoint of the stored root and neck.
    Returns: float64 (M, F, 17, C) in H36M order (see `COCO_TO_H36M`).
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[2] != NUM_JOINTS:
        raise ValueError(f"coco2h36m needs (M, F, 17, C) COCO-17 joints, got shape {x.shape}")
    y = np.zeros(x.shape, dtype=np.float64)
    for j, src in enumerate(COCO_TO_H36M):
        if isinstance(src, tuple):
            y[:, :, j] = (x[:, :, src[0]] + x[:, :, src[1]]) * 0.5
        elif src is not None:
            y[:, :, j] = x[:, :, src]
    y[:, :, 7] = (y[:, :, 0] + y[:, :, 8]) * 0.5
    return y


def crop_scale(motion: np.ndarray, scale_range: Sequence[float], rng: np.random.Generator | None = None) -> np.ndarray:
    """MotionBERT's per-clip normalisation of x, y into [-1, 1] (upstream `crop_scale`).

    Valid joints are those with a non-zero score (channel 2). Their bounding box over all persons and
    frames is enlarged to a square of side `max(width, height) * ratio`, with `ratio ~ U(scale_range)`
    (no draw when the range is a single value, e.g. (2, 2) at test time), centred on the box; x, y are
    mapped from that square to [-1, 1], then every channel is clipped to [-1, 1]. Fewer than 4 valid
    joints, or a zero-size box, give all zeros.

    motion: (..., 3) x, y, score; computed as upstream on a float32 copy (float64 for the offsets).
    scale_range: (low, high).
    rng: needed when low != high.
    Returns: float32, same shape as `motion`; the input is not modified.
    """
    motion = np.asarray(motion, dtype=np.float32)
    if motion.shape[-1] != 3:
        raise ValueError(f"crop_scale needs (..., 3) x, y, score, got shape {motion.shape}")
    low, high = (float(v) for v in scale_range)
    if not (0 < low <= high):
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {tuple(scale_range)}")
    valid = motion[motion[..., 2] != 0][:, :2]  # (K, 2)
    if len(valid) < 4:
        return np.zeros(motion.shape, dtype=np.float32)
    ratio = np.float64(low if low == high else _require_rng(rng, "crop_scale with low != high").uniform(low, high))
    xmin, ymin = valid.min(axis=0)  # float32 scalars, as upstream
    xmax, ymax = valid.max(axis=0)
    scale = max(xmax - xmin, ymax - ymin) * ratio  # float64
    if scale == 0:
        return np.zeros(motion.shape, dtype=np.float32)
    corner = np.array([(xmin + xmax - scale) / 2, (ymin + ymax - scale) / 2])  # float64 (2,)
    result = motion.copy()
    result[..., :2] = (motion[..., :2] - corner) / scale  # in [0, 1] inside the square; stored float32
    result[..., :2] = (result[..., :2] - 0.5) * 2
    return np.clip(result, -1, 1)


def random_move(
    motion: np.ndarray,
    rng: np.random.Generator,
    angle_range: tuple[float, float] = (-10.0, 10.0),
    scale_range: tuple[float, float] = (0.9, 1.1),
    translate_range: tuple[float, float] = (-0.1, 0.1),
) -> np.ndarray:
    """MotionBERT's training augmentation: a 2D similarity transform that drifts linearly over the clip.

    Rotation angle (degrees), scale and x/y translation are each drawn uniformly from their range at the
    first and the last frame (draw order: angles, scales, x shifts, y shifts; 2 values each) and
    interpolated linearly in between; frame t maps (x, y) to `s_t R(a_t) (x, y) + (tx_t, ty_t)`, all
    persons and joints alike (missing ones included, as upstream). Scores are untouched.

    Unlike upstream, which writes through a transposed view into the dataset's stored clip, this
    returns a new array.

    motion: (M, T, V, 3) x, y (camera frame), score.
    Returns: float32 (M, T, V, 3).
    """
    motion = np.asarray(motion)
    if motion.ndim != 4 or motion.shape[-1] != 3:
        raise ValueError(f"random_move needs (M, T, V, 3), got shape {motion.shape}")
    rng = _require_rng(rng, "random_move")
    num_frames = motion.shape[1]
    # One segment: nodes at the first and last frame (upstream's move_time_candidate=[1]).
    ends = [rng.uniform(lo, hi, 2) for lo, hi in (angle_range, scale_range, translate_range, translate_range)]
    angle, scale, tx, ty = (np.linspace(e[0], e[1], num_frames) for e in ends)  # (T,) each
    angle = angle * np.pi / 180
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)  # (T,)
    x = motion[..., 0].astype(np.float64)  # (M, T, V)
    y = motion[..., 1].astype(np.float64)
    out = motion.astype(np.float32)  # a copy
    out[..., 0] = cos[:, None] * x - sin[:, None] * y + tx[:, None]
    out[..., 1] = sin[:, None] * x + cos[:, None] * y + ty[:, None]
    return out


def _check_inputs(keypoint: np.ndarray, keypoint_score: np.ndarray, joint_order: str = "coco17") -> None:
    if joint_order not in JOINT_ORDERS:
        raise ValueError(f"joint_order must be one of {', '.join(JOINT_ORDERS)}, got {joint_order!r}")
    if keypoint.ndim != 4 or keypoint.shape[2:] != (NUM_JOINTS, 2) or keypoint.shape[0] not in (1, 2):
        raise ValueError(
            f"keypoint must be (M, F, 17, 2) {joint_order} pixels with M in (1, 2), got shape {keypoint.shape}"
            " (keep at most the 2 main persons before this step)"
        )
    if keypoint.shape[1] < 1:
        raise ValueError("keypoint has no frames (F == 0)")
    if keypoint_score.shape != keypoint.shape[:3]:
        raise ValueError(f"keypoint_score must be {keypoint.shape[:3]} (M, F, 17), got {keypoint_score.shape}")
    for name, a in (("keypoint", keypoint), ("keypoint_score", keypoint_score)):
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} has {np.size(a) - np.isfinite(a).sum()} non-finite values (NaN/inf)")


def prepare_motion(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    img_shape: Sequence[float],
    frame_ids: np.ndarray,
    upstream_score_bug: bool = False,
    joint_order: str = "coco17",
) -> np.ndarray:
    """The clip upstream's `NTURGBD.__init__` stores, before `crop_scale`.

    keypoint: (M, F, 17, 2) x, y in pixels in `joint_order`, M in (1, 2) (float16 in pyskl's NTU pickles).
    keypoint_score: (M, F, 17) in [0, 1].
    img_shape: (h, w) in pixels.
    frame_ids: (T,) indices into the F frames (see `resample`).
    upstream_score_bug: keep the scores in their untracked order, as upstream does (see module doc).
    joint_order: 'coco17' (mapped to H36M-17 by `coco2h36m`, as upstream) or 'h36m17' (already MotionBERT's
      order: the coordinates are taken as they are, in float64 as the mapping returns them).
    Returns: float32 (2, T, 17, 3): x, y in the camera frame (H36M order), score (the input's joint order:
      COCO's for COCO-17 input); a zero second person when M == 1.
    """
    keypoint, keypoint_score = np.asarray(keypoint), np.asarray(keypoint_score)
    _check_inputs(keypoint, keypoint_score, joint_order)
    frame_ids = np.asarray(frame_ids)
    num_frames = keypoint.shape[1]
    if frame_ids.ndim != 1 or not np.issubdtype(frame_ids.dtype, np.integer):
        raise ValueError(f"frame_ids must be a 1-D integer array, got {frame_ids.dtype} {frame_ids.shape}")
    if frame_ids.size and (frame_ids.min() < 0 or frame_ids.max() >= num_frames):
        raise ValueError(f"frame_ids must lie in [0, {num_frames - 1}], got [{frame_ids.min()}, {frame_ids.max()}]")

    cam = make_cam(keypoint, img_shape)  # (M, F, 17, 2), keypoint's dtype
    score = keypoint_score
    if keypoint.shape[0] == 2:
        swapped = track_swaps(cam)  # (F,)
        cam = _apply_swaps(cam, swapped).astype(np.float64)  # = human_tracking(cam)
        if not upstream_score_bug:
            # Fix: the scores follow their person (upstream leaves them in the untracked order).
            score = _apply_swaps(score, swapped)
    coords = coco2h36m(cam) if joint_order == "coco17" else cam.astype(np.float64)  # (M, F, 17, 2) H36M order
    # Gathering after tracking is upstream's order; the scores stay in COCO joint order (see module doc).
    motion = np.concatenate([coords[:, frame_ids], score[:, frame_ids, :, None]], axis=-1)  # (M, T, 17, 3)
    if motion.shape[0] == 1:
        motion = np.concatenate([motion, np.zeros_like(motion)], axis=0)  # (2, T, 17, 3)
    return motion.astype(np.float32)


def motionbert_clip(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    img_shape: Sequence[float],
    clip_len: int = 243,
    test_mode: bool = True,
    scale_range: tuple[float, float] | None = None,
    rng: np.random.Generator | None = None,
    random_move_aug: bool | None = None,
    upstream_score_bug: bool = False,
    joint_order: str = "coco17",
) -> np.ndarray:
    """One MotionBERT model input from one pyskl annotation (the whole path, see the module doc).

    keypoint: (M, F, 17, 2) x, y in pixels in `joint_order` ('coco17', mapped to H36M-17, or 'h36m17',
      MotionBERT's own order, taken as it is), M in (1, 2); float16 inputs are normalised in
      float16 as upstream does. Never modified.
    keypoint_score: (M, F, 17) in [0, 1]. Never modified.
    img_shape: (h, w) in pixels.
    clip_len: T, output frames (243 for the released models).
    test_mode: evenly spaced frames and no augmentation; otherwise random resampling (see `resample`),
      `random_move` and a random `crop_scale` ratio, all drawn from `rng` in that order.
    scale_range: `crop_scale` ratio range; default (2, 2) in test mode, (1, 3) in train mode (upstream's
      NTU configs).
    rng: required in train mode.
    random_move_aug: apply `random_move`; default: in train mode only (upstream's NTU configs).
    upstream_score_bug: reproduce upstream's untracked scores (see module doc).
    Returns: float32 (2, clip_len, 17, 3): x, y in [-1, 1] (H36M order), score.
    """
    keypoint, keypoint_score = np.asarray(keypoint), np.asarray(keypoint_score)
    _check_inputs(keypoint, keypoint_score, joint_order)
    if scale_range is None:
        scale_range = (2.0, 2.0) if test_mode else (1.0, 3.0)
    if random_move_aug is None:
        random_move_aug = not test_mode
    if not test_mode or random_move_aug or scale_range[0] != scale_range[1]:
        rng = _require_rng(rng, "motionbert_clip in train mode / with augmentation")

    frame_ids = resample(keypoint.shape[1], clip_len, randomness=not test_mode, rng=rng)  # (T,)
    motion = prepare_motion(keypoint, keypoint_score, img_shape, frame_ids, upstream_score_bug, joint_order)
    if random_move_aug:
        motion = random_move(motion, rng)
    return crop_scale(motion, scale_range, rng)


def motionbert_clip_3d(
    keypoint: np.ndarray,
    clip_len: int = 243,
    test_mode: bool = True,
    rng: np.random.Generator | None = None,
    max_persons: int = 2,
) -> np.ndarray:
    """MotionBERT's input from 3D joints (NTU-25, Kinect-20, ... any layout): (max_persons, clip_len, V, 3).

    keypoint (M, F, V, 3) metres, all-zero joints missing. Frames are resampled as `resample` does (random
    in training). The clip is centred on the middle of its visible joints' bounding box and divided by half
    its diagonal, so the body lies within the unit ball whatever its size or position; missing joints stay
    0. Persons beyond `max_persons` (the least visible) are dropped, absent ones are zeros.
    """
    if keypoint.ndim != 4 or keypoint.shape[-1] != 3:
        raise ValueError(f"motionbert_clip_3d expects keypoint (M, F, V, 3), got {keypoint.shape}")
    ids = resample(keypoint.shape[1], clip_len, randomness=not test_mode, rng=rng)
    kp = keypoint[:, ids].astype(np.float32)  # (M, T, V, 3), a copy
    visible = np.abs(kp).sum(-1) > 0  # (M, T, V)
    if kp.shape[0] > max_persons:
        keep = np.sort(np.argsort(-visible.sum((1, 2)), kind="stable")[:max_persons])
        kp, visible = kp[keep], visible[keep]
    if visible.any():
        pts = kp[visible]  # (K, 3)
        lo, hi = pts.min(0), pts.max(0)
        kp[visible] = (pts - (lo + hi) / 2) / max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)
    out = np.zeros((max_persons, clip_len, kp.shape[2], 3), np.float32)
    out[: kp.shape[0]] = kp
    return out
