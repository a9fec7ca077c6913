"""The corruption suite: named, graded ways a skeleton clip goes wrong, for evaluation and training.

One function, `corrupt(keypoint, keypoint_score, family, severity, rng, img_shape=, layout=)`, maps a
clip to a new float32 clip. It makes the fixed corrupted copies of the test clips (with the generator
of `corruption_rng(family, severity, index)`, identical for every model and run) and draws the
corrupted view of a training clip (with the item's own generator).

Clip: keypoint (M, T, V, C), C = 2 (pixels of a frame of shape img_shape (h, w)) or C = 3 (metres), and
keypoint_score (M, T, V), any joint layout. Notation below:
- visible(m, t, v): score != 0 and not all coordinates 0 (`datasets.pipeline.noise.visible_joints`); a joint that
  is not visible is missing, and stays missing under every family: never moved, never revived;
- dropping a joint sets its coordinates and its score to 0;
- s = `datasets.pipeline.noise.noise_scale`: (h + w) / 2 pixels in 2D, the diagonal of the bounding box of the
  clip's visible joints (all persons and frames) in 3D;
- U(...) = rng.random(shape), uniform in [0, 1); N(...) = rng.standard_normal(shape); I(n) =
  rng.integers(n), uniform in {0, ..., n - 1}; round() is Python's (halves to even).
Severity 0 is the identity (float32 copies, nothing drawn). Draws are always whole arrays of the listed
shape, in the listed order, whatever the visibility, so a joint's fate depends only on the generator
state and its position in the clip. Families, in the order of `FAMILIES`:

jitter, severity alpha in [0, 10]: x' = x + alpha * s * N(M, T, V, C) on every coordinate of every visible
    joint; scores unchanged. Exactly `datasets.pipeline.noise.add_joint_noise`, so today's noise sweep keeps its
    numbers. Levels 0.01 / 0.02 / 0.05.
missing_joints, severity p in [0, 1]: u = U(M, T, V); every visible joint with u < p is dropped.
    Levels 0.1 / 0.2 / 0.4.
occlusion, severity f in [0, 1]: part i = I(P) of the layout's P body parts (`Layout.parts`), then
    n = round(f * T), start = I(T - n + 1); the joints of part i are dropped in frames
    [start, start + n) for every person. Levels 0.25 / 0.5 / 1.0.
frame_rate (temporal), severity k in {0, 1, ..., 1000}: offset o = I(min(k, T)); frames o, o + k,
    o + 2k, ... < T are kept (1/k of the frame rate). k = 1 is the identity too (nothing drawn). Levels 2 / 3 / 4.
frame_drop (temporal), severity p in [0, 1]: u = U(T); frames with u >= p are kept; when none is, the
    frame of largest u is. Levels 0.5 / 2/3 / 0.75: on average as many frames as frame_rate's levels.
block_drop (temporal), severity f in [0, 1]: n = min(round(f * T), T - 1), start = I(T - n + 1);
    frames [start, start + n) are removed. Levels 0.5 / 2/3 / 0.75, as frame_drop.
outliers, severity q in [0, 1]: u = U(M, T, V), g = N(M, T, V, C); every visible joint with u < q is
    displaced by 0.2 * s * g / |g| (length exactly 0.2 * s, direction uniform); scores unchanged, as
    the estimator is confidently wrong. Levels 0.02 / 0.05 / 0.1.
swap, severity f in [0, 1]: u = U(T); in every frame with u < f the layout's left and right joints
    exchange coordinates and scores (left[i] <-> right[i]) for every person: a left/right confusion,
    not a mirror. Levels 0.1 / 0.25 / 0.5.

The temporal families (frame degradation as in SHARDeg, Malzard et al. 2025, on NTU-120) change T
and keep at least one frame; they keep whole frames unchanged, in order, and run before frame
sampling. Their levels remove 1/2, 2/3 and 3/4 of the frames (on average for frame_drop), so the
three are compared at the same effective frame rate.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from datasets.pipeline.noise import (
    EVAL_NOISE_SEED,
    MAX_ALPHA,
    add_joint_noise,
    eval_noise_rng,
    noise_scale,
    visible_joints,
)
from datasets.store.layouts import Layout

OUTLIER_DISTANCE = 0.2  # an outlier lands 0.2 * s from its joint: about a forearm in 2D, a body part in 3D


@dataclass(frozen=True)
class Family:
    """One kind of corruption.

    name: its identifier (`missing_joints`, ...). parameter: what the severity means, one line.
    levels: named severities in increasing order (at least three). temporal: True when it changes the
    number of frames, so it must run on the whole clip before frame sampling.
    """

    name: str
    parameter: str
    levels: dict[str, float]
    temporal: bool


def _levels(light: float, moderate: float, severe: float) -> dict[str, float]:
    return {"light": light, "moderate": moderate, "severe": severe}


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "jitter",
            "noise std alpha per coordinate, a fraction of the frame or skeleton size",
            _levels(0.01, 0.02, 0.05),
            False,
        ),
        Family("missing_joints", "probability p that a visible joint is dropped", _levels(0.1, 0.2, 0.4), False),
        Family("occlusion", "fraction f of the frames in which a body part is hidden", _levels(0.25, 0.5, 1.0), False),
        Family("frame_rate", "integer factor k by which the frame rate is divided", _levels(2.0, 3.0, 4.0), True),
        Family("frame_drop", "probability p that a frame is dropped", _levels(0.5, 2 / 3, 0.75), True),
        Family("block_drop", "fraction f of the frames removed as one block", _levels(0.5, 2 / 3, 0.75), True),
        Family("outliers", "probability q that a visible joint jumps 0.2 * s away", _levels(0.02, 0.05, 0.1), False),
        Family("swap", "probability f that a frame has left and right exchanged", _levels(0.1, 0.25, 0.5), False),
    )
}

# The largest severity of the families whose severity is not a probability or fraction in [0, 1]: jitter's
# MAX_ALPHA (noise.py), and a frame rate divided by 1000, which keeps one frame of a clip of 33 s at 30 fps
# (larger factors overflow NumPy's int64 frame indices).
_MAX_SEVERITY = {"jitter": MAX_ALPHA, "frame_rate": 1000.0}
_INTEGER = {"frame_rate"}


def _family(family: str) -> Family:
    if family not in FAMILIES:
        raise ValueError(f"unknown corruption family {family!r}; known families: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def check_severity(family: str, severity: float) -> float:
    """Return `severity` as a float, or fail with a one-line message when `family` does not accept it.

    jitter: in [0, MAX_ALPHA]; frame_rate: a whole number in [0, 1000]; the others: a probability or fraction
    in [0, 1].
    """
    _family(family)
    value = float(severity)
    top = _MAX_SEVERITY.get(family, 1.0)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{family} severity must be a finite number >= 0, got {severity}")
    if family in _INTEGER and value != int(value):
        raise ValueError(f"{family} severity must be a whole number (keep 1 frame in k), got {severity}")
    if family not in _MAX_SEVERITY and value > 1:
        raise ValueError(f"{family} severity is a probability or fraction in [0, 1], got {severity}")
    if value > top:
        raise ValueError(f"{family} severity must be at most {top:g}, got {severity}")
    return value


def _check_clip(keypoint: np.ndarray, score: np.ndarray, img_shape: tuple[int, int] | None, layout: Layout) -> None:
    if keypoint.ndim != 4 or keypoint.shape[-1] not in (2, 3):
        raise ValueError(f"keypoint must be (M, T, V, C) with C = 2 or 3, got shape {keypoint.shape}")
    if score.shape != keypoint.shape[:3]:
        raise ValueError(f"keypoint_score shape {score.shape} does not match keypoint {keypoint.shape[:3]}")
    if keypoint.shape[2] != layout.num_joints:
        raise ValueError(f"keypoint has {keypoint.shape[2]} joints but layout {layout.name} has {layout.num_joints}")
    if keypoint.shape[1] < 1:
        raise ValueError("cannot corrupt an empty clip (T = 0)")
    if keypoint.shape[-1] == 2 and img_shape is None:
        raise ValueError("2D corruptions are relative to the frame: pass img_shape=(h, w)")


def corrupt(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    family: str,
    severity: float,
    rng: np.random.Generator,
    *,
    img_shape: tuple[int, int] | None,
    layout: Layout,
) -> tuple[np.ndarray, np.ndarray]:
    """Return a corrupted copy of a clip (see the module docstring for every family's formula).

    keypoint: (M, T, V, C), C = 2 pixels (img_shape (h, w) required) or C = 3 metres.
    keypoint_score: (M, T, V), 0 marks a missing joint.
    family, severity: a name of `FAMILIES` and its severity (0 = identity).
    rng: the only source of randomness; the same state gives the same output.
    layout: the clip's joint layout (its parts for occlusion, its left/right pairs for swap).
    Returns new float32 arrays (keypoint (M, T', V, C), keypoint_score (M, T', V)), T' = T unless the
    family is temporal (1 <= T' <= T). The inputs are never modified and may be read-only.
    """
    severity = check_severity(family, severity)
    keypoint, keypoint_score = np.asarray(keypoint), np.asarray(keypoint_score)
    _check_clip(keypoint, keypoint_score, img_shape, layout)
    _check_layout_fits(family, layout)
    kp, score = keypoint.astype(np.float32), keypoint_score.astype(np.float32)  # copies
    if severity == 0:
        return kp, score
    if family == "jitter":  # the one definition of joint noise, bit for bit
        return add_joint_noise(keypoint, keypoint_score, severity, rng, img_shape=img_shape), score
    visible = visible_joints(keypoint, keypoint_score)  # (M, T, V)
    m, t, v, _ = keypoint.shape

    if family in ("missing_joints", "outliers"):
        hit = visible & (rng.random((m, t, v)) < severity)
        if family == "missing_joints":
            kp[hit], score[hit] = 0, 0
        else:
            shift = _outlier_shift(keypoint, visible, rng, img_shape)  # (M, T, V, C)
            kp[hit] = (kp[hit].astype(np.float64) + shift[hit]).astype(np.float32)
        return kp, score

    if family == "occlusion":
        _occlude(kp, score, layout, severity, rng)
        return kp, score

    if family == "swap":
        frames = rng.random(t) < severity  # (T,)
        order = layout.flip_order()
        kp[:, frames] = kp[:, frames][:, :, order]
        score[:, frames] = score[:, frames][:, :, order]
        return kp, score

    # Temporal families: choose the frames to keep, then take them whole.
    keep = _kept_frames(family, severity, t, rng)
    if keep is None:
        return kp, score
    return kp[:, keep], score[:, keep]


def _check_layout_fits(family: str, layout: Layout) -> None:
    """Fail when `family` needs what `layout` lacks: body parts for occlusion, left/right pairs for swap."""
    if family == "occlusion" and not layout.parts:
        raise ValueError(f"occlusion hides a body part, but layout {layout.name} declares no parts")
    if family == "swap" and not layout.left:
        raise ValueError(f"swap exchanges left and right joints, but layout {layout.name} has no left/right pairs")


def _outlier_shift(
    keypoint: np.ndarray, visible: np.ndarray, rng: np.random.Generator, img_shape: tuple[int, int] | None
) -> np.ndarray:
    """The outliers family's displacement of every joint, (M, T, V, C) float64: OUTLIER_DISTANCE * s in a
    uniform direction, g / |g| with g = N(M, T, V, C) drawn from `rng`.

    keypoint: (M, T, V, C) the clip; visible: (M, T, V) its visible joints, which set s in 3D.
    """
    g = rng.standard_normal(keypoint.shape)
    direction = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), np.finfo(np.float64).tiny)
    return OUTLIER_DISTANCE * noise_scale(keypoint, visible, img_shape) * direction


def _occlude(kp: np.ndarray, score: np.ndarray, layout: Layout, severity: float, rng: np.random.Generator) -> None:
    """The occlusion family, in place: drop part I(P) of the layout's P body parts in the n = round(f * T)
    frames from start = I(T - n + 1), for every person. kp: (M, T, V, C) and score: (M, T, V), float32 copies."""
    t = kp.shape[1]
    _, joints = layout.parts[int(rng.integers(len(layout.parts)))]
    n = round(severity * t)
    start = int(rng.integers(t - n + 1))
    kp[:, start : start + n, list(joints)] = 0
    score[:, start : start + n, list(joints)] = 0


def _kept_frames(family: str, severity: float, t: int, rng: np.random.Generator) -> np.ndarray | None:
    """The frames a temporal family keeps out of T = t, in order, (T',) int64 with 1 <= T' <= T; None when it
    keeps them all (frame_rate with k = 1, nothing drawn). family: frame_rate, frame_drop or block_drop."""
    if family == "frame_rate":
        k = int(severity)
        if k <= 1:
            return None
        return np.arange(int(rng.integers(min(k, t))), t, k)
    if family == "frame_drop":
        u = rng.random(t)
        keep = np.flatnonzero(u >= severity)
        if keep.size == 0:
            keep = np.array([int(np.argmax(u))])
        return keep
    # block_drop
    n = min(round(severity * t), t - 1)
    start = int(rng.integers(t - n + 1))
    return np.concatenate([np.arange(start), np.arange(start + n, t)])


def corruption_rng(family: str, severity: float, index: int) -> np.random.Generator:
    """The fixed evaluation generator of one (family, severity, clip index).

    Seeded from (EVAL_NOISE_SEED, crc32 of the family name, round(severity * 1e6), index) alone, so the
    corrupted test set does not depend on batch order, worker count or model. For 'jitter' it is
    exactly `eval_noise_rng(severity, index)`, so the Gaussian noise sweep keeps its numbers.
    """
    severity = check_severity(family, severity)
    if family == "jitter":
        return eval_noise_rng(severity, index)
    if index < 0:
        raise ValueError(f"clip index must be >= 0, got {index}")
    family_id = zlib.crc32(family.encode())
    return np.random.default_rng(
        np.random.SeedSequence([EVAL_NOISE_SEED, family_id, round(severity * 1e6), int(index)])
    )


def _valid_corruptions() -> str:
    """One line listing what `parse_corruptions` accepts."""
    families = ", ".join(
        f"{f.name} ({', '.join(f'{name}={value:g}' for name, value in f.levels.items())})" for f in FAMILIES.values()
    )
    return f"valid: 'all', FAMILY (all its levels), FAMILY:LEVEL or FAMILY:NUMBER with FAMILY one of {families}"


def parse_corruptions(specs: list[str]) -> list[tuple[str, float]]:
    """Turn CLI strings into (family, severity) pairs, in the order given, without repeats.

    'all': every family at every named level (in `FAMILIES` order); 'FAMILY': all its named levels;
    'FAMILY:LEVEL': one named level; 'FAMILY:NUMBER': that severity (checked by `check_severity`).
    Unknown names and bad numbers raise ValueError with a one-line message listing the valid ones.
    """
    pairs: list[tuple[str, float]] = []
    for spec in specs:
        text = spec.strip()
        if text == "all":
            found = [(f.name, value) for f in FAMILIES.values() for value in f.levels.values()]
        else:
            name, colon, level = text.partition(":")
            name, level = name.strip(), level.strip()
            if name not in FAMILIES:
                raise ValueError(f"unknown corruption {spec!r}; {_valid_corruptions()}")
            family = FAMILIES[name]
            if not colon:
                found = [(name, value) for value in family.levels.values()]
            elif level in family.levels:
                found = [(name, family.levels[level])]
            else:
                try:
                    value = float(level)
                except ValueError:
                    raise ValueError(f"unknown level in corruption {spec!r}; {_valid_corruptions()}") from None
                try:
                    found = [(name, check_severity(name, value))]
                except ValueError as err:
                    raise ValueError(f"corruption {spec!r}: {err}") from None
        pairs += [pair for pair in found if pair not in pairs]
    return pairs
