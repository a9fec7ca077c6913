"""Reader of MSR Action3D skeleton text files (Li et al., CVPR Workshops 2010; Kinect v1, 20 joints).

Two folders hold the same 567 sequences (README.txt of the data)::

    MSRAction3DSkeletonReal3D/aAA_sSS_eEE_skeleton3D.txt     x y z c   (x, y, z camera metres)
    MSRAction3DSkeleton(20joints)/aAA_sSS_eEE_skeleton.txt   u v d c   (u, v pixels of the 320x240
                                                                        depth image, d its depth value)

one joint per line, 20 lines per frame, joints in the KINECT20 order (datasets/store/layouts.py). AA is the
action 01-20 (label AA-1), SS the subject 01-10, EE the repetition. c is a tracking value in [0, 1].
A frame whose 20 joints are all zero holds no skeleton (the sensor lost the person, mostly while they
bend down in 'bend' and 'pickup and throw'). In the 2D files, v = 2147480000 marks a joint outside the
image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.sources.ntu_skeleton import SkeletonFormatError, parse_number_lines

NUM_JOINTS = 20
DEPTH_SHAPE = (240, 320)  # (h, w) of the depth image the 2D files' u, v refer to
OUTSIDE_IMAGE = 1e6  # |u| or |v| above this is the file's "outside the image" sentinel (2147480000)
# A sequence with no skeleton in at least this fraction of its frames counts as broken. On the 567
# sequences this rule flags exactly MSR_BROKEN (the next worst sequence, a20_s08_e02, lacks 35%),
# matching the count of 10 unusable sequences the literature reports (557 used, e.g. Wang et al. 2012).
MAX_EMPTY_FRACTION = 0.4
MSR_BROKEN = (
    "a07_s04_e01", "a13_s02_e02", "a13_s06_e01", "a13_s06_e02", "a13_s09_e02", "a13_s09_e03",
    "a20_s02_e01", "a20_s02_e02", "a20_s02_e03", "a20_s06_e01",
)  # fmt: skip
# Standard cross-subject protocol (Li et al. 2010): odd subjects train, even subjects test.
XSUB_TRAIN_SUBJECTS = frozenset((1, 3, 5, 7, 9))

_NAME = re.compile(r"(a(\d{2})_s(\d{2})_e(\d{2}))_skeleton(3D)?\.txt")


@dataclass(frozen=True)
class MSRName:
    """The ids in an MSR file name; `stem` is `aAA_sSS_eEE`, `label` is action - 1."""

    stem: str
    action: int
    subject: int
    repetition: int

    @property
    def label(self) -> int:
        return self.action - 1

    @property
    def split(self) -> str:
        """'train' (odd subject) or 'val' (even subject) in the cross-subject protocol."""
        return "train" if self.subject in XSUB_TRAIN_SUBJECTS else "val"


def parse_msr_name(filename: str) -> MSRName:
    """Parse `a01_s02_e03_skeleton3D.txt` or `a01_s02_e03_skeleton.txt`. Raises ValueError."""
    m = _NAME.fullmatch(filename)
    if m is None:
        raise ValueError(f"{filename!r} is not an MSR Action3D file name aAA_sSS_eEE_skeleton[3D].txt")
    return MSRName(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))


def read_msr_skeleton(path: str | Path) -> np.ndarray:
    """Parse one MSR Action3D text file into (T, 20, 4) float64: (x, y, z, c) or (u, v, d, c) per joint.

    Blank lines are ignored. Raises SkeletonFormatError (`path:line: problem`) for a line without 4
    numbers, a non-numeric or non-finite value, an empty file, or a joint count that is not a
    multiple of 20 (a truncated file; the line is the last one read).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise SkeletonFormatError(path, line, "non-ASCII bytes; not an MSR Action3D text file") from None
    lines = text.split("\n")
    rows = [k for k, line in enumerate(lines) if line.strip()]
    if not rows:
        raise SkeletonFormatError(path, 1, "the file holds no joints")
    values = parse_number_lines(path, lines, rows, 4)  # (rows, 4)
    if len(rows) % NUM_JOINTS:
        raise SkeletonFormatError(
            path, rows[-1] + 1, f"{len(rows)} joint lines is not a multiple of 20 (truncated last frame?)"
        )
    return values.reshape(-1, NUM_JOINTS, 4)  # (T, 20, 4)


def empty_frames(joints: np.ndarray) -> np.ndarray:
    """(T,) bool: frames whose 20 joints are all zero (no skeleton). joints: (T, 20, >=3)."""
    return ~np.any(joints[..., :3] != 0, axis=(1, 2))


def broken_reason(joints: np.ndarray, other_frames: int | None = None) -> str | None:
    """Why a sequence is unusable, or None. joints: (T, 20, 4) of one file; other_frames: frame count
    of the same sequence in the other folder, when known (the two must agree)."""
    t = len(joints)
    if other_frames is not None and other_frames != t:
        return f"{t} frames here but {other_frames} in the other folder"
    empty = int(empty_frames(joints).sum())
    if empty == t:
        return f"no skeleton in any of its {t} frames"
    if empty >= MAX_EMPTY_FRACTION * t:
        return f"no skeleton in {empty} of its {t} frames"
    return None


def msr_clip(joints: np.ndarray, two_d: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The pyskl keypoints of one sequence; frames without a skeleton are dropped.

    joints: (T, 20, 4) from read_msr_skeleton of the 3D file (two_d False) or the 2D file (two_d True).
    Returns 3D: keypoint (1, T', 20, 3) float32 metres, score None; 2D: keypoint (1, T', 20, 2) float32
    depth-image pixels and score (1, T', 20) float32, 1 for every joint except those outside the image
    (the sentinel; coordinates set to 0, score 0). The file's 4th column is not used as a score: it is
    near 0 for the neck, spine, hip centre and feet in almost every frame although those are in place.
    """
    kept = joints[~empty_frames(joints)]  # (T', 20, 4)
    if not two_d:
        return kept[None, ..., :3].astype(np.float32), None
    xy = kept[..., :2].copy()  # (T', 20, 2)
    outside = np.any(np.abs(xy) > OUTSIDE_IMAGE, axis=-1)  # (T', 20)
    xy[outside] = 0.0
    score = (~outside).astype(np.float32)
    return xy[None].astype(np.float32), score[None]
