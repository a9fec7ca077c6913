"""pyskl's GCN data pipeline, per clip, in numpy (Dataset workers, CPU).

The joint-coordinate input of pyskl's skeleton GCNs (ST-GCN, ST-GCN++, CTR-GCN, AAGCN, DG-STGCN), built as
the configs of pyskl at commit 3f6795f build it::

    3D (nturgb+d, 25 joints):  pre_normalize_3d -> gcn_features -> uniform_sample_indices -> gather -> format_gcn_input
    2D (coco, 17 joints):      pre_normalize_2d -> gcn_features -> uniform_sample_indices -> gather -> format_gcn_input
    DG-STGCN (3D):             pre_normalize_3d(align_spine=False) -> gcn_features -> uniform_sample_decode_indices
                               -> gather -> format_gcn_input

(pyskl's PreNormalize3D / PreNormalize2D, GenSkeFeat, UniformSample, UniformSampleDecode, PoseDecode and
FormatGCNInput; `gcn_clip` runs the first two whole). The arrays are those of pyskl's `results` dict:

    keypoint        (M, T, V, C): M persons, T frames, V joints; C = 3 for x, y, z (3D) or x, y, score (2D)
    keypoint_score  (M, T, V): 2D detection scores, folded into `keypoint` by pre_normalize_2d
    total_frames    int: T
    frame_inds      int64 (num_clips * clip_len,): the sampled frames, clip after clip, in [0, T)

Every function returns new arrays; inputs (views of the shared store) are never written to.
`tests/test_gcn_prep.py` checks every step against pyskl's outputs (../shared/golden/gcn/pipeline/).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from datasets.batch.streams import parents
from datasets.pipeline.transforms import UniformSampleFrames
from datasets.store.layouts import LAYOUTS, Layout, get_layout

__all__ = [
    "FEATS",
    "PYSKL_BONE_PARENTS",
    "bone_parents",
    "format_gcn_input",
    "gcn_clip",
    "gcn_features",
    "pre_normalize_2d",
    "pre_normalize_3d",
    "uniform_sample_decode_indices",
    "uniform_sample_indices",
]

# GenSkeFeat's streams: joints, bones, joint motion, bone motion.
FEATS = ("j", "b", "jm", "bm")

# The joint each joint's bone starts from in pyskl's JointToBone (a joint that is its own parent has a
# zero bone). They differ from `parents(layout)`, the tree of the layouts' limbs, in four places, so the
# two built-in layouts keep pyskl's own table (checked against pyskl's outputs):
# - ntu25: the hand tips 21 and 23 hang from the thumbs 22 and 24, not from the hands 7 and 11;
# - coco17: the hips 11 and 12 hang from the nose 0, not from the shoulders 5 and 6.
PYSKL_BONE_PARENTS: dict[str, tuple[int, ...]] = {
    "ntu25": (1, 20, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 20, 22, 7, 24, 11),
    "coco17": (0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 0, 0, 11, 12, 13, 14),
}
# pyskl's names of the two layouts (its `dataset` / graph `layout` argument).
PYSKL_NAMES = {"nturgb+d": "ntu25", "coco": "coco17"}

# np.isclose(x, 0)'s test with its default tolerances: |x| <= atol + rtol * 0.
ZERO_ATOL = 1e-8


# ----------------------------------------------------------------------------------- normalisation


def _rotation_onto(v: np.ndarray, target: tuple[float, float, float]) -> np.ndarray:
    """(3, 3) float64 rotation R with R @ v along the unit vector `target`: about v x target, by the angle
    between them.

    The identity where the turn is undefined or negligible, as in pyskl: the cross product's L1 norm or the
    angle below 1e-6 (v already along target, v zero, or v exactly opposite target).
    """
    x, y, z = (float(c) for c in v)
    tx, ty, tz = target
    axis = np.array([y * tz - z * ty, z * tx - x * tz, x * ty - y * tx])  # v x target
    if np.abs(axis).sum() < 1e-6:
        return np.eye(3)
    # The unit vector is taken in v's own dtype: pyskl normalises the float16 spine vector in float16,
    # and the angle carries that rounding (up to 1e-4 in the output).
    unit = (v / np.linalg.norm(v)).astype(np.float64)
    angle = np.arccos(np.clip(unit @ np.array(target, dtype=np.float64), -1.0, 1.0))
    if abs(angle) < 1e-6:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])  # cross @ u = k x u
    # Rodrigues' formula.
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * (cross @ cross)


def _main_person_frames(kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """kp (M, T, V, 3), M in (1, 2) -> (kp with the main person first, frames where the main person has a
    non-zero joint). The main person is the one present in more frames (person 0 on a tie)."""
    present = (np.abs(kp) > ZERO_ATOL).any(axis=(2, 3))  # (M, T)
    if kp.shape[0] == 2 and present[1].sum() > present[0].sum():
        return kp[::-1], present[1]
    return kp, present[0]


def _first_seen(present: np.ndarray, joints: Sequence[int]) -> int:
    """The first frame of `present` (T, V) bool in which every joint of `joints` is present; 0 when there is none."""
    frames = np.flatnonzero(present[:, joints].all(axis=1))
    return int(frames[0]) if frames.size else 0


def pre_normalize_3d(
    keypoint: np.ndarray,
    total_frames: int | None = None,
    align_spine: bool = True,
    *,
    center_joint: int = 1,
    z_axis: tuple[int, int] = (0, 1),
    x_axis: tuple[int, int] = (4, 8),
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """pyskl's PreNormalize3D: drop empty frames, centre on the body, turn the body to face the axes.

    keypoint: (M, T, V, 3) x, y, z (metres for NTU), M in {1, 2}; float16 as in pyskl's NTU pickles (any
      float dtype; integers are taken as float64). All-zero joints are missing.
    total_frames: T, checked when given.
    align_spine: rotate after centring (False for DG-STGCN's configs).
    center_joint: the joint the clip is centred on (1, spine middle, for NTU's 25 joints; pyskl takes
      the last joint for other skeletons).
    z_axis, x_axis: (a, b) joints whose vector b - a is turned onto +z, then onto +x: spine base to
      spine middle, then left to right shoulder (NTU's joints).

    Steps: (1) the main person (present in more frames) goes first and the frames in which it is all
    zero are dropped, for both persons; (2) every joint that is not missing has joint `center_joint` of
    the main person in its first frame subtracted (the first frame in which that joint is not missing:
    pyskl takes frame 0's, a joint at the origin when it is missing there, which leaves the clip
    uncentred), computed in keypoint's dtype (float16 for pyskl's pickles, as upstream: a float32
    centring moves the output by up to ~1e-3); (3) with align_spine,
    the clip is rotated so that the main person's first-frame z_axis vector points along +z, then its
    x_axis vector (taken after the first turn) along +x; each vector from the first frame in which both
    its joints are present (pyskl: frame 0, whatever is missing). A clip whose first frame is whole gets
    pyskl's numbers; one that loses these joints there is centred and turned as if it had not.

    Returns (keypoint (M, T1, V, 3), T1, body_center (3,) in keypoint's dtype): float64 after the
    rotation, keypoint's dtype without it. An all-zero clip comes back unchanged with body_center None.
    """
    kp = np.asarray(keypoint)
    if kp.ndim != 4 or kp.shape[-1] != 3 or kp.shape[0] not in (1, 2):
        raise ValueError(f"pre_normalize_3d expects keypoint (M, T, V, 3) with M in (1, 2), got {kp.shape}")
    if total_frames is not None and total_frames != kp.shape[1]:
        raise ValueError(f"total_frames is {total_frames} but keypoint has {kp.shape[1]} frames")
    if not np.issubdtype(kp.dtype, np.floating):
        kp = kp.astype(np.float64)
    dtype = kp.dtype
    # Work in float32 at least: NumPy's float16 arithmetic is float32 arithmetic rounded to float16, so
    # rounding the centred clip once to kp's dtype gives upstream's float16 numbers, at a third of the cost.
    work = kp.astype(np.promote_types(dtype, np.float32))  # (M, T, V, 3)
    if not work.any():
        return kp, kp.shape[1], None
    work, keep = _main_person_frames(work)
    work = work[:, keep]  # (M, T1, V, 3)
    # (M, T1, V): missing joints stay at 0 (three compares beat a reduction over an axis of 3)
    present = (work[..., 0] != 0) | (work[..., 1] != 0) | (work[..., 2] != 0)
    center = work[0, _first_seen(present[0], [center_joint]), center_joint].copy()  # (3,)
    kp = ((work - center) * present[..., None]).astype(dtype)  # centred in the input's dtype, as upstream
    if align_spine:
        kp = kp @ _body_turn(kp[0], present[0], z_axis, x_axis).T  # (M, T1, V, 3) float64
    return kp, kp.shape[1], center.astype(dtype)


def _body_turn(kp: np.ndarray, present: np.ndarray, z_axis: tuple[int, int], x_axis: tuple[int, int]) -> np.ndarray:
    """(3, 3) float64: the rotation that turns the z_axis vector (b - a) of the main person's `kp` (T, V, 3)
    onto +z, then its x_axis vector (after the first turn) onto +x, each from the first frame in which both
    of its joints are `present` (T, V)."""
    a, b = z_axis
    t = _first_seen(present, [a, b])
    to_z = _rotation_onto(kp[t, b] - kp[t, a], (0.0, 0.0, 1.0))
    a, b = x_axis
    t = _first_seen(present, [a, b])
    ends = kp[t, [a, b]] @ to_z.T  # (2, 3): the x_axis joints after the first turn
    to_x = _rotation_onto(ends[1] - ends[0], (1.0, 0.0, 0.0))
    return to_x @ to_z  # both turns at once


def pre_normalize_2d(
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    img_shape: tuple[int, int] = (1080, 1920),
    threshold: float = 0.01,
) -> np.ndarray:
    """pyskl's PreNormalize2D: pixels to [-1, 1] about the frame centre, the score as a third channel.

    keypoint: (M, T, V, 2) x, y in pixels; keypoint_score: (M, T, V) in [0, 1]; img_shape: (h, w) pixels.
    x -> (x - w/2) / (w/2), y -> (y - h/2) / (h/2) in float32; then x, y are set to 0 where the score is
    <= threshold (compared in float32), so an undetected joint sits at the centre, not at the corner.

    Returns: float32 (M, T, V, 3) x, y, score (the score unchanged, low ones included).
    """
    kp = np.asarray(keypoint, dtype=np.float32)
    score = np.asarray(keypoint_score, dtype=np.float32)
    if kp.ndim != 4 or kp.shape[-1] != 2 or score.shape != kp.shape[:-1]:
        raise ValueError(
            f"pre_normalize_2d expects keypoint (M, T, V, 2), score (M, T, V); got {kp.shape}, {score.shape}"
        )
    h, w = img_shape
    out = np.empty((*kp.shape[:-1], 3), dtype=np.float32)  # (M, T, V, 3)
    out[..., 0] = (kp[..., 0] - w / 2) / (w / 2)
    out[..., 1] = (kp[..., 1] - h / 2) / (h / 2)
    out[..., 2] = score
    out[score <= np.float32(threshold), :2] = 0
    return out


# Joint names (datasets/store/layouts.py) that pre_normalize_3d's centre and axes are found by, in any layout.
_SPINE_BASE, _SPINE_MID = ("spine_base", "hip_center", "pelvis"), ("spine_mid", "spine")


def body_axes(bones: Layout | str | Sequence[int]) -> tuple[int, dict | None]:
    """Where pre_normalize_3d centres and turns a clip of this layout: (center_joint, {'z_axis', 'x_axis'} or
    None). By joint name: the spine's middle, turned along the spine (its base to its middle) and the
    shoulders (left to right), as pyskl does for NTU's 25 joints (1, (0, 1), (4, 8)); a layout without
    these joints (or given as bare parents) is centred on the root of its tree and not turned."""
    layout = get_layout(PYSKL_NAMES.get(bones, bones)) if isinstance(bones, str) else bones
    index = {name: v for v, name in enumerate(layout.joints)} if isinstance(layout, Layout) else {}
    base = next((index[n] for n in _SPINE_BASE if n in index), None)
    mid = next((index[n] for n in _SPINE_MID if n in index), None)
    shoulders = index.get("left_shoulder"), index.get("right_shoulder")
    if base is None or mid is None or None in shoulders:
        root = next(v for v, p in enumerate(bone_parents(bones)) if v == p)
        return root, None
    return mid, {"z_axis": (base, mid), "x_axis": shoulders}


# ----------------------------------------------------------------------------------- features


def bone_parents(bones: Layout | str | Sequence[int]) -> tuple[int, ...]:
    """The joint each joint's bone starts from, for `gcn_features`.

    bones: a layout or its name (pyskl's 'nturgb+d' and 'coco' name ntu25 and coco17), or the parents
    themselves (V joint indices). ntu25 and coco17 get pyskl's JointToBone table (PYSKL_BONE_PARENTS);
    any other layout, declared ones included, the tree of its limbs (`datasets.batch.streams.parents`).
    """
    if isinstance(bones, str):
        name = PYSKL_NAMES.get(bones, bones)
        return PYSKL_BONE_PARENTS[name] if name in PYSKL_BONE_PARENTS else parents(get_layout(name))
    if isinstance(bones, Layout):
        builtin = LAYOUTS.get(bones.name) == bones
        return PYSKL_BONE_PARENTS[bones.name] if builtin and bones.name in PYSKL_BONE_PARENTS else parents(bones)
    parent = tuple(int(p) for p in bones)
    if any(not 0 <= p < len(parent) for p in parent):
        raise ValueError(f"bone parents must be joint indices in [0, {len(parent)}), got {parent}")
    return parent


def _bone(kp: np.ndarray, parent: tuple[int, ...], coord_dim: int) -> np.ndarray:
    """kp (M, T, V, C) -> float32 (M, T, V, C): joint minus parent in the coordinates, the mean of the two
    scores in the channels after them. The difference is taken in kp's dtype and then stored as float32,
    as pyskl does (it matters for float16 input)."""
    bone = (kp - kp[:, :, parent]).astype(np.float32)
    bone[..., coord_dim:] = (kp[..., coord_dim:] + kp[:, :, parent, coord_dim:]) / 2
    return bone


def _motion(x: np.ndarray, coord_dim: int) -> np.ndarray:
    """x (M, T, V, C) -> (M, T, V, C) in x's dtype: frame t + 1 minus frame t in the coordinates, the mean of
    the two frames' scores in the channels after them; all 0 in the last frame."""
    motion = np.zeros_like(x)
    motion[:, :-1] = x[:, 1:] - x[:, :-1]
    motion[:, :-1, :, coord_dim:] = (x[:, 1:, :, coord_dim:] + x[:, :-1, :, coord_dim:]) / 2
    return motion


def gcn_features(
    keypoint: np.ndarray, feats: Sequence[str], bones: Layout | str | Sequence[int], *, coord_dim: int
) -> np.ndarray:
    """pyskl's GenSkeFeat: the streams `feats` of a clip, concatenated on the channel axis in that order.

    keypoint: (M, T, V, C), the output of pre_normalize_3d (C = coord_dim = 3) or pre_normalize_2d
      (C = 3, coord_dim = 2: channel 2 is a score).
    feats: a sequence of FEATS: 'j' joints, 'b' bones, 'jm' joint motion, 'bm' bone motion.
    bones: what `bone_parents` reads (a layout, a layout name, or V parent indices).
    coord_dim: how many channels are coordinates; those after them are scores.

    A bone is joint minus parent (0 at a joint that is its own parent); motion is frame t + 1 minus frame t,
    0 in the last frame. A score channel is the mean of the two scores instead (the joint's and its
    parent's; frame t's and t + 1's, 0 in the last frame). Nothing is masked: as in pyskl, a missing
    joint (all zero) gives bones and motions of its neighbours' full size.

    Returns: float32 (M, T, V, C * len(feats)). pyskl keeps 'j' and 'jm' in the input's dtype; its
    PoseDecode casts them to float32 right after, so nothing downstream changes.
    """
    kp = np.asarray(keypoint)
    if kp.ndim != 4 or not 1 <= coord_dim <= kp.shape[-1]:
        raise ValueError(f"gcn_features expects keypoint (M, T, V, C) with coord_dim <= C, got {kp.shape}, {coord_dim}")
    unknown = [f for f in feats if f not in FEATS]
    if unknown or not feats:
        raise ValueError(f"feats must be a non-empty list of {', '.join(FEATS)}; got {list(feats)}")
    parent = bone_parents(bones)
    if len(parent) != kp.shape[2]:
        raise ValueError(f"keypoint has {kp.shape[2]} joints but the bone parents name {len(parent)}")
    bone = _bone(kp, parent, coord_dim) if {"b", "bm"} & set(feats) else None
    streams = {
        "j": lambda: kp,
        "b": lambda: bone,
        "jm": lambda: _motion(kp, coord_dim),
        "bm": lambda: _motion(bone, coord_dim),
    }
    return np.concatenate([streams[f]().astype(np.float32) for f in feats], axis=-1)  # (M, T, V, C * F)


# ----------------------------------------------------------------------------------- sampling and format


@lru_cache(maxsize=4096)
def _test_indices(total_frames: int, clip_len: int, num_clips: int, seed: int, decode: bool) -> np.ndarray:
    """The test-mode indices of UniformSample (decode False) or UniformSampleDecode (True), read-only.

    Cached: they depend on these arguments alone, and seeding a legacy RandomState (~0.1 ms) costs more
    than the rest of a clip's sampling.
    """
    sampler = UniformSampleFrames(clip_len, num_clips, seed=seed)
    if decode:
        if total_frames < 1:
            raise ValueError(f"uniform_sample_decode_indices needs total_frames >= 1, got {total_frames}")
        legacy = np.random.RandomState(seed)
        # UniformSampleFrames' training-mode rule (a short clip starts at random) on the seeded legacy stream.
        inds = sampler._sample(
            total_frames,
            rand=legacy.rand,
            randint=legacy.randint,
            choice=lambda n, k: legacy.choice(n, k, replace=False),
            test_mode=False,
        )
        inds = np.mod(inds, total_frames).astype(np.int64)
    else:
        inds = sampler({"total_frames": total_frames, "test_mode": True})["frame_inds"]
    inds.flags.writeable = False
    return inds


def uniform_sample_indices(
    total_frames: int,
    clip_len: int,
    num_clips: int = 1,
    test_mode: bool = True,
    seed: int = 255,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """pyskl's UniformSample frame indices: `num_clips` clips of `clip_len` frames, one frame per equal
    segment (every frame once plus random skips for clips up to twice clip_len; consecutive frames, looped,
    for shorter clips).

    Test mode is pyskl's bit for bit: it replays NumPy's legacy stream seeded with `seed` in upstream's call
    order on a local RandomState (NumPy's global RNG is left alone), and spreads the starts of the clips
    of a short clip over it. Training mode draws from `rng` (required) and starts a short clip anywhere.
    This is `datasets.pipeline.transforms.UniformSampleFrames`, the same transform in pyskl.

    Returns: int64 (num_clips * clip_len,) indices in [0, total_frames), clip after clip.
    """
    if test_mode:
        return _test_indices(int(total_frames), clip_len, num_clips, seed, decode=False).copy()
    sampler = UniformSampleFrames(clip_len, num_clips, seed=seed)
    return sampler({"total_frames": total_frames, "test_mode": False}, rng)["frame_inds"]


def uniform_sample_decode_indices(
    total_frames: int,
    clip_len: int,
    num_clips: int = 1,
    test_mode: bool = True,
    seed: int = 255,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The frames pyskl's UniformSampleDecode (DG-STGCN's configs) takes: UniformSample's rule, except that
    a clip shorter than clip_len starts at a random frame in test mode too.

    Test mode replays NumPy's legacy stream seeded with `seed` once per call (pyskl's draws: per clip
    rand() and randint(1) for the sub-segment, then the clip's own draws); training mode draws from `rng`
    and is UniformSample's training mode.

    Returns: int64 (num_clips * clip_len,) indices in [0, total_frames), clip after clip. Gather them with
    `keypoint[:, inds].astype(np.float32)` (UniformSampleDecode gathers itself).
    """
    if test_mode:
        return _test_indices(int(total_frames), clip_len, num_clips, seed, decode=True).copy()
    return uniform_sample_indices(total_frames, clip_len, num_clips, test_mode=False, rng=rng)


def format_gcn_input(keypoint: np.ndarray, num_person: int = 2, num_clips: int = 1) -> np.ndarray:
    """pyskl's FormatGCNInput: a fixed person count, the clips split off.

    keypoint: (M, num_clips * clip_len, V, C), the sampled frames clip after clip.
    The first `num_person` persons are kept, or zero persons are added after the others.

    Returns: float32 (num_clips, num_person, clip_len, V, C), contiguous.
    """
    kp = np.asarray(keypoint, dtype=np.float32)
    m, t, v, c = kp.shape
    if t % num_clips:
        raise ValueError(f"format_gcn_input: {t} frames do not split into {num_clips} clips")
    if m < num_person:
        kp = np.concatenate([kp, np.zeros((num_person - m, t, v, c), np.float32)])
    kp = kp[:num_person].reshape(num_person, num_clips, t // num_clips, v, c)  # (M, k, clip_len, V, C)
    return np.ascontiguousarray(kp.transpose(1, 0, 2, 3, 4))  # (k, M, clip_len, V, C)


def gcn_clip(
    keypoint: np.ndarray,
    feats: Sequence[str],
    bones: Layout | str | Sequence[int],
    *,
    keypoint_score: np.ndarray | None = None,
    img_shape: tuple[int, int] = (1080, 1920),
    clip_len: int = 100,
    num_clips: int = 1,
    num_person: int = 2,
    test_mode: bool = True,
    seed: int = 255,
    rng: np.random.Generator | None = None,
    visibility: bool = False,
) -> np.ndarray:
    """pyskl's GCN pipeline for one clip (the 3dkp or hrnet configs' pipelines, without augmentation).

    3D: keypoint (M, T, V, 3) x, y, z and no keypoint_score -> pre_normalize_3d.
    2D: keypoint (M, T, V, 2) pixels with keypoint_score (M, T, V) and img_shape (h, w) -> pre_normalize_2d.
    Then gcn_features(feats, bones), uniform_sample_indices (test_mode, seed; rng in training), the
    sampled frames, format_gcn_input(num_person, num_clips).

    visibility: append one channel per joint, 1 where it is seen and 0 where it is missing (not pyskl's: a
    missing joint is otherwise a joint at the origin).

    Returns: float32 (num_clips, num_person, clip_len, V, C * len(feats) (+ 1)), C = 3.
    """
    if keypoint_score is None:
        center, axes = body_axes(bones)
        kp, total_frames, _ = pre_normalize_3d(keypoint, align_spine=axes is not None, center_joint=center,
                                               **(axes or {}))  # fmt: skip
        coord_dim = 3
    else:
        kp = pre_normalize_2d(keypoint, keypoint_score, img_shape)
        total_frames, coord_dim = kp.shape[1], 2
    feat = gcn_features(kp, feats, bones, coord_dim=coord_dim)  # (M, T1, V, C * F)
    if visibility:  # 1 where the joint was seen, 0 where it is missing (x, y, z 0 in 3D; a score <= 0.01 in 2D)
        seen = (kp[..., :3] != 0).any(-1) if coord_dim == 3 else kp[..., 2] > 0
        feat = np.concatenate([feat, seen[..., None].astype(feat.dtype)], axis=-1)  # (M, T1, V, C * F + 1)
    inds = uniform_sample_indices(total_frames, clip_len, num_clips, test_mode, seed, rng)
    return format_gcn_input(feat[:, inds], num_person, num_clips)  # (k, M, clip_len, V, C * F (+ 1))
