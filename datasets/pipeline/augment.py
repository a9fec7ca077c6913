"""Skeleton augmentations for training (the field's practice on small sets: pyskl, CTR-GCN), numpy only.

Each transform takes keypoints of any joint layout in 2D (pixels, with scores) or 3D (metres) and an explicit
`np.random.Generator`, and returns new arrays (the inputs may be read-only views of the shared store):

    keypoint        (M, T, V, C), C = 2 or 3; a missing joint is all-zero or has score 0
    keypoint_score  (M, T, V)

Missing joints stay missing: they are all-zero again after a spatial transform, and a temporal crop copies
whole frames. `augment_clip` applies the enabled ones to a whole clip, before frame sampling and before the
corruption of the second view (datasets/pipeline/clips.py), so the clean and the corrupted view of a training clip
share the augmentation and differ only by the corruption. Everything is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the training augmentations; the defaults switch every one off.

    rotate: degrees; 3D: an angle in U(-rotate, rotate) about each of x, y, z; 2D: one in-plane angle.
    scale: each axis scaled by 1 + U(-scale, scale) (pyskl's RandomScale).
    shear: each off-diagonal entry of the shear matrix in U(-shear, shear) (2s-AGCN / CTR-GCN's shear).
    temporal_crop: smallest fraction of the frames kept by the random contiguous crop (1: off).
    """

    rotate: float = 0.0
    scale: float = 0.0
    shear: float = 0.0
    temporal_crop: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.rotate <= 180:
            raise ValueError(f"rotate must be an angle in [0, 180] degrees, got {self.rotate}")
        if not 0 <= self.scale < 1:
            raise ValueError(f"scale must be in [0, 1) (factors 1 +- scale), got {self.scale}")
        if not 0 <= self.shear < 1:
            raise ValueError(f"shear must be in [0, 1), got {self.shear}")
        if not 0 < self.temporal_crop <= 1:
            raise ValueError(f"temporal_crop is the smallest fraction of frames kept, in (0, 1]: {self.temporal_crop}")

    @property
    def spatial(self) -> bool:
        return self.rotate > 0 or self.scale > 0 or self.shear > 0

    @property
    def enabled(self) -> bool:
        return self.spatial or self.temporal_crop < 1


def missing_joints(keypoint: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(M, T, V) bool: joints with score 0 or all coordinates 0 (the project's two marks of a missing joint)."""
    return (score <= 0) | np.all(keypoint == 0, axis=-1)


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation by `angles_deg` (degrees). 2D: one angle a -> [[cos a, -sin a], [sin a, cos a]].
    3D: (a, b, c) about x, y and z -> R = Rz(c) @ Ry(b) @ Rx(a), with
    Rx(a) = [[1, 0, 0], [0, cos a, -sin a], [0, sin a, cos a]], Ry(b) = [[cos b, 0, sin b], [0, 1, 0],
    [-sin b, 0, cos b]], Rz(c) = [[cos c, -sin c, 0], [sin c, cos c, 0], [0, 0, 1]]. Returns (C, C) float64."""
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64)).reshape(-1)
    c, s = np.cos(a), np.sin(a)
    if a.size == 1:
        return np.array([[c[0], -s[0]], [s[0], c[0]]])
    if a.size != 3:
        raise ValueError(f"rotation_matrix takes 1 angle (2D) or 3 (3D), got {a.size}")
    rx = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
    ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
    rz = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
    return rz @ ry @ rx


def scale_matrix(factors: np.ndarray) -> np.ndarray:
    """diag(factors): axis k scaled by factors[k]. (C,) -> (C, C) float64."""
    return np.diag(np.asarray(factors, dtype=np.float64))


def shear_matrix(off_diagonal: np.ndarray, dim: int) -> np.ndarray:
    """Identity with the off-diagonal entries filled row by row from `off_diagonal` (dim * (dim - 1) values):
    x'_i = x_i + sum_{j != i} h_ij x_j. Returns (dim, dim) float64."""
    h = np.eye(dim)
    h[~np.eye(dim, dtype=bool)] = np.asarray(off_diagonal, dtype=np.float64)
    return h


def random_affine(cfg: AugmentConfig, dim: int, rng: np.random.Generator) -> np.ndarray:
    """The random linear map A = R @ H @ S of one clip (rotation after shear after scaling), (dim, dim).

    Draws, in this order and whatever ranges are zero (so that one range does not change another's draw):
    dim scale factors 1 + U(-scale, scale), dim * (dim - 1) shears U(-shear, shear), and the angles
    U(-rotate, rotate) (3 in 3D, 1 in 2D). All ranges 0 give exactly the identity.
    """
    if dim not in (2, 3):
        raise ValueError(f"keypoints must have 2 or 3 coordinates, got {dim}")
    s = 1 + rng.uniform(-cfg.scale, cfg.scale, dim)
    h = rng.uniform(-cfg.shear, cfg.shear, dim * (dim - 1))
    angles = rng.uniform(-cfg.rotate, cfg.rotate, 3 if dim == 3 else 1)
    return rotation_matrix(angles) @ shear_matrix(h, dim) @ scale_matrix(s)


def apply_affine(keypoint: np.ndarray, score: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """x' = A (x - c) + c for every visible joint, about the centre c of the visible joints' bounding box
    over the whole clip (so the body stays where it is; the camera origin of 3D data is metres away).

    keypoint (M, T, V, C), score (M, T, V), matrix (C, C). Missing joints stay all-zero. Returns a new array
    of keypoint's dtype (computed in float64).
    """
    out = np.array(keypoint, copy=True)
    seen = ~missing_joints(keypoint, score)  # (M, T, V)
    if not seen.any():
        return out
    pts = keypoint[seen].astype(np.float64)  # (K, C)
    centre = (pts.min(0) + pts.max(0)) / 2
    out[seen] = ((pts - centre) @ matrix.T + centre).astype(out.dtype)
    return out


def crop_indices(num_frames: int, min_fraction: float, out_len: int, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of a random contiguous crop, resampled to `out_len` frames.

    The crop keeps L = max(1, round(f * num_frames)) frames, f ~ U(min_fraction, 1), starting at
    s ~ U{0, ..., num_frames - L}; output frame i is the crop's frame floor((i + 1/2) L / out_len) (nearest
    frame of an even resampling: a longer crop is thinned, a shorter one repeats frames). Non-decreasing.
    Draws f, then s. Returns int64 (out_len,) indices in [s, s + L).
    """
    if num_frames < 1 or out_len < 1:
        raise ValueError(f"crop_indices needs num_frames and out_len >= 1, got {num_frames}, {out_len}")
    f = rng.uniform(min_fraction, 1.0)
    length = max(1, min(num_frames, round(f * num_frames)))
    start = int(rng.integers(num_frames - length + 1))
    return start + np.floor((np.arange(out_len) + 0.5) * length / out_len).astype(np.int64)


def augment_clip(
    keypoint: np.ndarray, score: np.ndarray, cfg: AugmentConfig, out_len: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training clip under the enabled augmentations: the temporal crop (resampled to `out_len` frames,
    the model's clip length), then the affine map of `random_affine` about the clip's centre.

    keypoint (M, T, V, C) 2D pixels or 3D metres, score (M, T, V). Returns (keypoint (M, T', V, C) of
    keypoint's dtype, score (M, T', V)), T' = out_len with the crop on, else T. Disabled parts draw nothing.
    """
    if cfg.temporal_crop < 1:
        ids = crop_indices(keypoint.shape[1], cfg.temporal_crop, out_len, rng)
        keypoint, score = keypoint[:, ids], score[:, ids]
    if cfg.spatial:
        keypoint = apply_affine(keypoint, score, random_affine(cfg, keypoint.shape[-1], rng))
    return keypoint, score
