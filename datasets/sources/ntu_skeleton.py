"""Reader of raw NTU RGB+D / NTU RGB+D 120 `.skeleton` files, and the choice of the (at most two) actors.

File layout (Kinect v2 SDK dump, one text file per clip, whitespace separated)::

    F                        number of frames
    per frame:  B            number of bodies tracked in this frame (0 allowed)
      per body: bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence
                handRightState isRestricted leanX leanY trackingState         (10 fields)
                25           number of joints
                25 lines:  x y z depthX depthY colorX colorY orientW orientX orientY orientZ trackingState

x, y, z are camera-space metres; depthX/depthY are pixels of the 512x424 depth image, colorX/colorY of
the 1920x1080 colour image; a joint's trackingState is 2 tracked, 1 inferred, 0 not tracked. The same
person keeps its bodyID while the sensor tracks it, so bodies are followed across frames by bodyID.
File names are SsssCcccPpppRrrrAaaa: setup, camera, performer (subject), replication, action.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_JOINTS = 25
JOINT_FIELDS = (
    "x", "y", "z", "depthX", "depthY", "colorX", "colorY",
    "orientationW", "orientationX", "orientationY", "orientationZ", "trackingState",
)  # fmt: skip
BODY_FIELDS = 10
MAX_BODIES_PER_FRAME = 6  # the Kinect v2 SDK tracks at most six people
COLOR_SHAPE = (1080, 1920)  # (h, w) of the colour frames that colorX/colorY refer to

# Training subjects / cameras / setup parity of the standard benchmarks (Shahroudy et al. 2016; Liu et
# al. 2019). The NTU60 list is the first 20 entries of the NTU120 one.
NTU120_XSUB_TRAIN = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50, 52, 53, 54,
     55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
)  # fmt: skip
NTU60_XSUB_TRAIN = frozenset((1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
NTU60_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))
# Largest setup and action ids of each benchmark: NTU60 is setups 1-17 and actions 1-60.
BENCHMARKS = {"ntu60": (17, 60), "ntu120": (32, 120)}

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


class SkeletonFormatError(ValueError):
    """A malformed raw skeleton file; str() is `path:line: problem` (line 1-based, 0 = the whole file)."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        super().__init__(f"{self.path}:{line}: {problem}")


@dataclass(frozen=True)
class NTUName:
    """The ids encoded in an NTU clip name; `label` is action - 1."""

    setup: int
    camera: int
    subject: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        return self.action - 1


def parse_ntu_name(name: str) -> NTUName:
    """Parse `S001C002P003R001A004` (a file stem; a `.skeleton` suffix is ignored). Raises ValueError."""
    m = _NAME.fullmatch(name.removesuffix(".skeleton"))
    if m is None:
        raise ValueError(f"{name!r} is not an NTU clip name SsssCcccPpppRrrrAaaa")
    return NTUName(*(int(g) for g in m.groups()))


def ntu_splits(name: NTUName, benchmark: str) -> dict[str, str]:
    """Protocol -> 'train' or 'val' for one clip: NTU60 xsub/xview, NTU120 xsub/xset."""
    if benchmark == "ntu60":
        return {
            "xsub": "train" if name.subject in NTU60_XSUB_TRAIN else "val",
            "xview": "train" if name.camera in NTU60_XVIEW_TRAIN_CAMERAS else "val",
        }
    if benchmark == "ntu120":
        return {
            "xsub": "train" if name.subject in NTU120_XSUB_TRAIN else "val",
            "xset": "train" if name.setup % 2 == 0 else "val",
        }
    raise ValueError(f"unknown NTU benchmark {benchmark!r}; choose ntu60 or ntu120")


@dataclass
class NTUBody:
    """One tracked body (one bodyID) of a clip.

    frames: (n,) int64 indices of the file frames in which it appears, increasing.
    joints: (n, 25, 12) float64, the raw joint fields in JOINT_FIELDS order.
    """

    body_id: str
    frames: np.ndarray
    joints: np.ndarray

    @property
    def xyz(self) -> np.ndarray:
        """(n, 25, 3) camera-space coordinates in metres."""
        return self.joints[..., 0:3]

    @property
    def color_xy(self) -> np.ndarray:
        """(n, 25, 2) colour-image pixel coordinates (colorX, colorY)."""
        return self.joints[..., 5:7]

    @property
    def tracking(self) -> np.ndarray:
        """(n, 25) int64 tracking state: 2 tracked, 1 inferred, 0 not tracked."""
        return self.joints[..., 11].astype(np.int64)

    @property
    def motion(self) -> float:
        """How much the body moves: the variance of its 3D joint positions, pooled over its frames and
        joints, summed over x, y, z (m^2). This is the ranking of the NTU denoising scripts (Zhang et al.,
        View Adaptive networks, get_raw_skes_data.py) whose output pyskl and CTR-GCN use; pooling
        joints means the body's spatial extent counts as well as its motion, which matters little
        because people have similar extents while noise bodies flicker across the scene."""
        return float(self.xyz.reshape(-1, 3).var(axis=0).sum())  # (n*25, 3) -> scalar


@dataclass
class NTUSkeleton:
    """A parsed `.skeleton` file: num_frames as in its header, bodies in order of first appearance."""

    path: str
    num_frames: int
    bodies: list[NTUBody]


def _end_of_file(path: Path, lines: list[str], what: str) -> SkeletonFormatError:
    """The error for a file that stops early; it names the last line of the file."""
    return SkeletonFormatError(path, len(lines), f"the file ends here, expected {what} (truncated file?)")


def _int_field(path: Path, lines: list[str], i: int, what: str) -> int:
    if i >= len(lines):
        raise _end_of_file(path, lines, what)
    tokens = lines[i].split()
    if len(tokens) != 1 or not tokens[0].lstrip("-").isdigit():
        raise SkeletonFormatError(path, i + 1, f"expected {what} (one integer), got {lines[i].strip()!r}")
    return int(tokens[0])


def _numbers(text: str) -> np.ndarray | None:
    """Whitespace-separated floats of text, or None when some token is not a number."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns (DeprecationWarning) or raises, depending on version
        try:
            return np.fromstring(text, dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


def parse_number_lines(path: str | Path, lines: list[str], rows: list[int] | np.ndarray, fields: int) -> np.ndarray:
    """Parse lines[rows], each `fields` whitespace-separated numbers, into (len(rows), fields) float64.

    Raises SkeletonFormatError naming the 1-based line of the first line with another field count, the
    first token that is not a number, or the first nan/inf.
    """
    rows = [int(r) for r in rows]
    for r in rows:  # per line, so that a short line and a long one cannot balance out
        n = len(lines[r].split())
        if n != fields:
            raise SkeletonFormatError(path, r + 1, f"expected {fields} numbers, got {n}")
    values = _numbers("\n".join(lines[r] for r in rows))  # one C-level parse for the whole file
    if values is None or values.size != len(rows) * fields:
        for r in rows:  # slow path, only for broken files: find the first bad token
            for tok in lines[r].split():
                parsed = _numbers(tok)
                if parsed is None or parsed.size != 1:
                    raise SkeletonFormatError(path, r + 1, f"cannot read {tok!r} as a number")
    values = values.reshape(len(rows), fields)
    bad = ~np.isfinite(values)
    if bad.any():
        r = int(np.argwhere(bad)[0, 0])
        raise SkeletonFormatError(path, rows[r] + 1, "non-finite value (nan or inf)")
    return values


def read_ntu_skeleton(path: str | Path) -> NTUSkeleton:
    """Parse one raw `.skeleton` file.

    Returns an NTUSkeleton whose bodies hold all 12 joint fields per frame they appear in.
    Raises SkeletonFormatError (`path:line: problem`) for a truncated file, a joint count other than 25,
    a joint line without 12 numbers, a non-numeric or non-finite value, a tracking state outside
    {0, 1, 2}, or text after the last frame.
    """
    path = Path(path)
    lines = _text_lines(path)
    num_frames = _int_field(path, lines, 0, "the frame count")
    if num_frames < 0:
        raise SkeletonFormatError(path, 1, f"negative frame count {num_frames}")
    frames_of, blocks_of = _body_blocks(path, lines, num_frames)
    bodies = [_read_body(path, lines, body_id, frames_of[body_id], blocks_of[body_id]) for body_id in frames_of]
    return NTUSkeleton(str(path), num_frames, bodies)


def _text_lines(path: Path) -> list[str]:
    """The lines of a `.skeleton` file without their line ends, trailing blank lines dropped (so that a
    truncated file's error names its last line). Raises SkeletonFormatError for non-ASCII bytes or an empty
    file."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise SkeletonFormatError(path, line, "non-ASCII bytes; not an NTU .skeleton text file") from None
    lines = text.split("\n")  # read_text turned CRLF into LF
    while lines and not lines[-1].strip():  # so that a truncated file's error names its last line
        lines.pop()
    if not lines:
        raise SkeletonFormatError(path, 1, "the file is empty")
    return lines


def _body_blocks(path: Path, lines: list[str], num_frames: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Walk the frame and body headers after the frame count (line 0) without parsing the joint lines.

    Returns (frames_of, blocks_of), both keyed by body id in order of first appearance: the 0-based frame
    indices in which the body appears, and the 0-based index of the first line of its 25-line joint block
    in each of them. Raises SkeletonFormatError for a truncated file, a body count outside 0..6, a body line
    without 10 fields, a joint count other than 25, a body twice in one frame, or text after the last frame.
    """
    i = 1
    frames_of: dict[str, list[int]] = {}
    blocks_of: dict[str, list[int]] = {}
    for f in range(num_frames):
        where = f"in frame {f + 1} of {num_frames}"
        num_bodies = _int_field(path, lines, i, f"the body count {where}")
        if not 0 <= num_bodies <= MAX_BODIES_PER_FRAME:
            raise SkeletonFormatError(path, i + 1, f"body count {num_bodies} {where} is not in 0..6")
        i += 1
        for _ in range(num_bodies):
            if i >= len(lines):
                raise _end_of_file(path, lines, f"a body line {where}")
            info = lines[i].split()
            if len(info) != BODY_FIELDS:
                raise SkeletonFormatError(path, i + 1, f"body line {where} has {len(info)} fields, not 10")
            body_id = info[0]
            num_joints = _int_field(path, lines, i + 1, f"the joint count {where}")
            if num_joints != NUM_JOINTS:
                raise SkeletonFormatError(path, i + 2, f"joint count is {num_joints}, expected 25")
            i += 2
            if i + NUM_JOINTS > len(lines):
                raise _end_of_file(path, lines, f"25 joint lines {where}")
            if body_id not in frames_of:  # dicts keep insertion order: bodies in order of first appearance
                frames_of[body_id], blocks_of[body_id] = [], []
            if frames_of[body_id] and frames_of[body_id][-1] == f:
                raise SkeletonFormatError(path, i - 1, f"body {body_id} appears twice {where}")
            frames_of[body_id].append(f)
            blocks_of[body_id].append(i)
            i += NUM_JOINTS
    rest = [k for k in range(i, len(lines)) if lines[k].strip()]
    if rest:
        raise SkeletonFormatError(path, rest[0] + 1, f"text after the last of the {num_frames} frames")
    return frames_of, blocks_of


def _read_body(path: Path, lines: list[str], body_id: str, frames: list[int], blocks: list[int]) -> NTUBody:
    """Parse the joint blocks of one body: `blocks` holds the first line index of each 25-line block, one
    per frame in `frames`. Returns an NTUBody with joints (n, 25, 12) float64. Raises SkeletonFormatError for
    a joint line without 12 numbers, a non-numeric or non-finite value, or a tracking state outside {0, 1, 2}.
    """
    starts = np.array(blocks, dtype=np.int64)
    rows = (starts[:, None] + np.arange(NUM_JOINTS)).reshape(-1)  # (n*25,) line indices
    values = parse_number_lines(path, lines, rows, len(JOINT_FIELDS))  # (n*25, 12)
    state = values[:, 11]
    bad = ~np.isin(state, (0.0, 1.0, 2.0))
    if bad.any():
        r = int(np.argmax(bad))
        raise SkeletonFormatError(path, rows[r] + 1, f"tracking state {state[r]:g} is not 0, 1 or 2")
    joints = values.reshape(len(starts), NUM_JOINTS, len(JOINT_FIELDS))  # (n, 25, 12)
    return NTUBody(body_id, np.array(frames, dtype=np.int64), joints)


def assign_actors(bodies: list[NTUBody], max_actors: int = 2) -> list[list[NTUBody]]:
    """Group bodies into at most `max_actors` actors, most moving first.

    Rule (the two-actor assignment of the NTU denoising scripts, Zhang et al.): bodies are visited in
    order of decreasing `motion` (ties: first appearance). Each joins the first actor whose frame span
    (first to last frame of the bodies it holds) does not share a frame with the body's span, so one
    person whose bodyID changed mid-clip (the sensor lost and re-found them) stays one actor; a body
    that overlaps every actor is dropped. Unlike the upstream script, a single shared frame counts as
    overlap. Returns per actor its bodies in frame order; an empty input gives [].
    """
    ranked = sorted(enumerate(bodies), key=lambda ib: (-ib[1].motion, ib[0]))
    actors: list[list[NTUBody]] = []
    spans: list[tuple[int, int]] = []
    for _, body in ranked:
        lo, hi = int(body.frames[0]), int(body.frames[-1])
        for a, (alo, ahi) in enumerate(spans):
            if hi < alo or lo > ahi:  # disjoint spans
                actors[a].append(body)
                spans[a] = (min(lo, alo), max(hi, ahi))
                break
        else:
            if len(actors) < max_actors:
                actors.append([body])
                spans.append((lo, hi))
    return [sorted(a, key=lambda b: int(b.frames[0])) for a in actors]


def actor_arrays(
    skeleton: NTUSkeleton, max_actors: int = 2, two_d: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The pyskl keypoints of a clip: actors chosen by `assign_actors`, frames without any actor dropped.

    Frames in which no body was tracked carry no skeleton and are dropped, as the NTU denoising scripts
    do (so T can be less than the file's frame count); within the kept frames an absent actor is zeros.
    Returns (keypoint, score):
      3D: keypoint (M, T, 25, 3) float32 metres, score None.
      2D: keypoint (M, T, 25, 2) float32 colour pixels (colorX, colorY), score (M, T, 25) float32 from
          the joint tracking state (tracked 1.0, inferred 0.5, not tracked 0.0; absent actor 0).
    M is 0 (and T 0) when the file holds no body at all.
    """
    actors = assign_actors(skeleton.bodies, max_actors)
    present = np.zeros(skeleton.num_frames, dtype=bool)
    for bodies in actors:
        for b in bodies:
            present[b.frames] = True
    keep = np.flatnonzero(present)
    new_index = np.full(skeleton.num_frames, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    c = 2 if two_d else 3
    keypoint = np.zeros((len(actors), len(keep), NUM_JOINTS, c), dtype=np.float32)
    score = np.zeros((len(actors), len(keep), NUM_JOINTS), dtype=np.float32) if two_d else None
    state_score = np.array([0.0, 0.5, 1.0], dtype=np.float32)  # indexed by tracking state
    for m, bodies in enumerate(actors):
        for b in bodies:
            t = new_index[b.frames]
            keypoint[m, t] = b.color_xy if two_d else b.xyz
            if score is not None:
                score[m, t] = state_score[b.tracking]
    return keypoint, score


def read_skeleton_file(path: str | Path, two_d: bool = False) -> dict:
    """One raw `.skeleton` file as a pyskl annotation dict (up to two actors, 25 joints).

    3D (default): keypoint (M, T, 25, 3) metres; two_d: colour pixels with tracking-state scores and
    img_shape (1080, 1920). The label comes from the file name when it follows the NTU naming, else -1.
    Raises SkeletonFormatError for a malformed file and ValueError when it holds no body.
    """
    path = Path(path)
    skeleton = read_ntu_skeleton(path)
    keypoint, score = actor_arrays(skeleton, max_actors=2, two_d=two_d)
    if keypoint.shape[1] == 0:
        raise ValueError(f"{path}: no body in any of its {skeleton.num_frames} frames")
    stem = path.name.removesuffix(".skeleton")
    try:
        label = parse_ntu_name(stem).label
    except ValueError:
        label = -1
    ann = {"frame_dir": stem, "label": label, "total_frames": keypoint.shape[1], "keypoint": keypoint}
    if two_d:
        ann.update(keypoint_score=score, img_shape=COLOR_SHAPE, original_shape=COLOR_SHAPE)
    return ann
