"""pyskl annotation files: load, validate once, and pack into one contiguous keypoint store.

The pyskl format is a pickled dict::

    {'split': {name: [frame_dir, ...]},
     'annotations': [{'frame_dir': str, 'label': int, 'img_shape': (h, w), 'original_shape': (h, w),
                      'total_frames': T, 'keypoint': (M, T, V, C), 'keypoint_score': (M, T, V)}, ...]}

2D files (C=2, pixels) carry `keypoint_score`; 3D files (C=3, metres) have none. The joint layout
(datasets/store/layouts.py) may be declared by a top-level 'layout' entry, by a 'layout' entry in each
annotation, or both; each is a built-in name or a declaration dict, and they must all agree. An optional
top-level 'classes' list names the labels (label i is classes[i]; `datasets.convert folder` writes it).
Any other key of an annotation that holds a str, int, float or bool (subject, view, setup, ...: pyskl's format
allows more keys, and `datasets.convert folder` keeps those of the clip files) is a field of the clips, kept
in the store (KeypointStore.fields): the validation part of training holds out whole subjects by it.

Why a packed store: a list of per-sample dicts of small numpy arrays is touched (refcounts) by every
DataLoader worker and so copied into each of them; memory then grows with `-j`. One contiguous array
plus offsets is shared copy-on-write after fork and pickles in one piece.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datasets.store.layouts import Layout, declared_layout
from utils import safe_pickle
from utils.errors import MissingFileError, UserError

# The keys of pyskl's annotations (and a clip's own 'layout'); any other scalar is a field of the clip.
ANNOTATION_KEYS = frozenset(
    ("frame_dir", "label", "img_shape", "original_shape", "total_frames", "keypoint", "keypoint_score", "layout")
)


def scalar_fields(record: dict) -> dict[str, str | int | float | bool]:
    """The fields of one clip beyond pyskl's keys (ANNOTATION_KEYS) that hold a single value: a str, int,
    float or bool (a NumPy scalar or 0-d array becomes one), e.g. {'subject': 3, 'view': 'left'}. Arrays,
    lists, None and anything else are left out."""
    out = {}
    for key, value in record.items():
        if not isinstance(key, str) or key in ANNOTATION_KEYS:
            continue
        if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
            value = value.item()
        if isinstance(value, (str, int, float, bool)):
            out[key] = value
    return out


class AnnotationError(UserError, ValueError):
    """A malformed annotation file or sample; the message names the sample and the problem."""


def load_pickle(path: str | Path, trusted: bool = False) -> dict:
    """Read a pyskl annotation pickle. Fails with one line when the file is missing or unreadable, or names a
    type that an annotation file never holds (utils/safe_pickle.py); `trusted` (--trust_data) unpickles
    anything."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"annotation file {path} does not exist")
    try:
        data = safe_pickle.load(path, trusted=trusted, what="annotation file")
    except safe_pickle.UnsafePickleError as e:
        raise AnnotationError(str(e)) from e
    except Exception as e:  # truncated or foreign files raise many different types
        why = " ".join(str(e).split())  # pickle's own messages may span lines
        raise AnnotationError(f"{path}: cannot unpickle ({type(e).__name__}: {why}); is it a pyskl .pkl?") from e
    # Some pyskl files are a bare list of annotation dicts with no split; a list of anything else is no
    # annotation file at all, and saying so beats naming its first element as a bad sample.
    if isinstance(data, list) and data and all(isinstance(a, dict) for a in data):
        data = {"split": {}, "annotations": data}
    if not isinstance(data, dict) or "annotations" not in data:
        raise AnnotationError(f"{path} is not a pyskl annotation file: {_pyskl_expected(data)}")
    anns = data["annotations"]
    if not isinstance(anns, list) or not all(isinstance(a, dict) for a in anns):
        if isinstance(anns, list):
            got = "a list holding " + ", ".join(sorted({type(a).__name__ for a in anns if not isinstance(a, dict)})[:3])
        else:
            got = f"a {type(anns).__name__}"
        raise AnnotationError(
            f"{path} is not a pyskl annotation file: its 'annotations' is {got}; expected a list of dicts, one per clip"
        )
    split = data.setdefault("split", {})
    if not isinstance(split, dict) or not all(
        isinstance(members, (list, tuple)) and all(isinstance(m, str) for m in members) for members in split.values()
    ):
        raise AnnotationError(
            f"{path} is not a pyskl annotation file: its 'split' must map each split's name to a list of clip names "
            f"(frame_dir), got {' '.join(repr(split).split()):.80}"
        )
    return data


def _pyskl_expected(data: object) -> str:
    """What a pyskl file holds, and what `data` (an unpickled object that is not one) holds instead."""
    if isinstance(data, dict):
        keys = ", ".join(repr(k) for k in list(data)[:6]) + (", ..." if len(data) > 6 else "")
        got = f"a dict without 'annotations' (keys: {keys or 'none'})"
    elif isinstance(data, list) and data:
        kinds = sorted({type(a).__name__ for a in data if not isinstance(a, dict)})
        got = f"a list of {', '.join(kinds[:3])}"
    else:
        got = "an empty list" if isinstance(data, list) else type(data).__name__
    return f"expected a dict with 'annotations' (and 'split'), got {got}"


def release_freed_memory() -> bool:
    """Hand the heap memory that freed Python objects leave behind back to the OS (glibc's malloc_trim).

    Unpickling a pyskl file makes one small array per clip; once they are packed and the file's dict is
    dropped, glibc keeps the freed heap, because live objects (the clip names) stay scattered through
    it: 1.2 GB resident beside a 0.76 GB store at NTU60 scale (bench/data.py). Call it after the dict is
    gone. Returns False where there is no glibc (macOS, musl), where it does nothing.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (OSError, AttributeError):  # not glibc
        return False
    trim(0)
    return True


def _check_sample(i: int, ann: dict, num_classes: int | None) -> tuple[int, int]:
    """Validate one annotation; return its (V, C). Raises AnnotationError naming the sample."""
    name = ann.get("frame_dir") if isinstance(ann, dict) else None
    name = name if isinstance(name, str) else f"#{i}"  # what else a file holds there may span lines

    def fail(msg: str) -> None:
        msg = " ".join(msg.split())  # a value shown in it (an array's repr) may span lines
        raise AnnotationError(f"sample {name!r} (index {i}): {msg}")

    if not isinstance(ann, dict):
        fail(f"expected a dict, got {type(ann).__name__}")
    for key in ("frame_dir", "label", "keypoint"):
        if key not in ann:
            fail(f"missing key {key!r}")
    if not isinstance(ann["frame_dir"], str):
        fail(f"'frame_dir' must be the clip's name, a string, got a {type(ann['frame_dir']).__name__}")
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        fail(f"'keypoint' must be a numpy array (M, T, V, C), got {getattr(kp, 'shape', type(kp))}")
    if not np.issubdtype(kp.dtype, np.floating):
        fail(f"'keypoint' must be floating point, got {kp.dtype}")
    m, t, v, c = kp.shape
    if c not in (2, 3):
        fail(f"'keypoint' last axis must be 2 (x, y) or 3 (x, y, z), got {c}")
    if m < 1 or t < 1:
        fail(f"'keypoint' must have at least one person and one frame, got shape {kp.shape}")
    if "total_frames" in ann:
        try:
            total = int(ann["total_frames"])
        except (TypeError, ValueError, OverflowError):  # a list, NaN, ...: no frame count at all
            fail(f"'total_frames' must be a number of frames, got a {type(ann['total_frames']).__name__}")
        if total != t:
            fail(f"'total_frames' is {total} but 'keypoint' has {t} frames")
    if not np.isfinite(kp).all():
        bad = np.argwhere(~np.isfinite(kp))[0]
        fail(f"non-finite keypoint at [person, frame, joint] = {bad[:3].tolist()}")
    score = ann.get("keypoint_score")
    if score is not None:
        if not isinstance(score, np.ndarray) or score.shape != (m, t, v):
            fail(f"'keypoint_score' must have shape {(m, t, v)}, got {getattr(score, 'shape', None)}")
        if not np.isfinite(score).all():
            fail("non-finite keypoint_score")
    elif c == 2:
        fail("2D keypoints need 'keypoint_score' (M, T, V)")
    if c == 2:
        shape = ann.get("img_shape")
        try:
            valid = len(shape) == 2 and min(shape) > 0
        except TypeError:  # None, a bare int, ...: anything that is not an (h, w) pair
            valid = False
        if not valid:
            fail(f"2D keypoints need 'img_shape' (h, w) with positive sides, got {shape}")
    label = ann["label"]
    if not isinstance(label, (int, np.integer)) or label < 0:
        fail(f"'label' must be a non-negative integer, got {label!r}")
    if num_classes is not None and label >= num_classes:
        fail(f"label {label} is out of range for {num_classes} classes")
    return v, c


@dataclass
class KeypointStore:
    """All clips of an annotation file in contiguous arrays.

    keypoint: (sum_i M_i*T_i, V, C) in the file's dtype (often float16), clip i occupying rows
        offsets[i]:offsets[i+1] laid out as (M_i, T_i).
    score: (sum_i M_i*T_i, V) float, or None for 3D files without scores.
    persons, frames: (n,) M_i and T_i. labels: (n,) int64. img_shapes: (n, 2) (h, w), zeros for 3D.
    names: frame_dir per clip. splits: split name -> indices into the store.
    """

    keypoint: np.ndarray
    score: np.ndarray | None
    offsets: np.ndarray
    persons: np.ndarray
    frames: np.ndarray
    labels: np.ndarray
    img_shapes: np.ndarray
    names: list[str]
    splits: dict[str, np.ndarray]
    # The joint layout the file declares (datasets/store/layouts.declared_layout): its validated declaration, or
    # only its name; None when it declares none (datasets/store/layouts.choose_layout decides then).
    layout: Layout | str | None = None
    # The file's class names ('classes', as `datasets.convert folder` writes them): label i is classes[i];
    # None when the file names none.
    classes: tuple[str, ...] | None = None
    # The clips' own fields (scalar_fields: subject, view, ...): field -> one value per clip, None for a clip
    # without it; empty when the annotations hold none (pyskl's NTU files).
    fields: dict[str, tuple] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_joints(self) -> int:
        return self.keypoint.shape[1]

    @property
    def coord_dim(self) -> int:
        """2 for pixel keypoints with scores, 3 for 3D skeletons."""
        return self.keypoint.shape[2]

    def get(self, i: int) -> dict:
        """Clip i as read-only views: keypoint (M, T, V, C), keypoint_score (M, T, V), label, img_shape."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        m, t = int(self.persons[i]), int(self.frames[i])
        kp = self.keypoint[lo:hi].reshape(m, t, self.num_joints, self.coord_dim)  # (M, T, V, C)
        if self.score is not None:
            score = self.score[lo:hi].reshape(m, t, self.num_joints)  # (M, T, V)
        else:  # 3D: every joint that is not all-zero counts as seen
            score = (np.abs(kp).sum(-1) > 0).astype(np.float32)
        return {
            "frame_dir": self.names[i],
            "label": int(self.labels[i]),
            "img_shape": tuple(int(s) for s in self.img_shapes[i]),
            "total_frames": t,
            "keypoint": kp,
            "keypoint_score": score,
        }

    def __setstate__(self, state: dict) -> None:
        # Unpickling (DataLoader workers under spawn) makes fresh, writable arrays; keep them read-only
        # as after packing, so a transform that edits a clip in place fails the same way in every worker.
        self.__dict__.update(state)
        for arr in (self.keypoint, self.score):
            if arr is not None:
                arr.flags.writeable = False

    def split_indices(self, name: str) -> np.ndarray:
        if name not in self.splits:
            known = ", ".join(sorted(self.splits)) or "none"
            raise KeyError(f"split {name!r} is not in the annotation file; its splits: {known}")
        return self.splits[name]


def pack_annotations(data: dict, num_classes: int | None = None) -> KeypointStore:
    """Validate every annotation once and pack them into a KeypointStore.

    data: a pyskl dataset dict. num_classes: if given, labels must lie in [0, num_classes).
    Raises AnnotationError naming the first bad sample, or when joint counts or dimensions are mixed.
    """
    anns = data["annotations"]
    if len(anns) == 0:
        raise AnnotationError("the annotation file holds no samples")
    dims = [_check_sample(i, a, num_classes) for i, a in enumerate(anns)]
    v, c = dims[0]
    for i, d in enumerate(dims):
        if d != (v, c):
            raise AnnotationError(
                f"sample {anns[i]['frame_dir']!r} has (joints, dims) {d} but the first sample has {(v, c)}"
            )
    has_score = all(a.get("keypoint_score") is not None for a in anns)
    kp_dtype = np.result_type(*[a["keypoint"].dtype for a in anns])
    persons = np.array([a["keypoint"].shape[0] for a in anns], dtype=np.int64)
    frames = np.array([a["keypoint"].shape[1] for a in anns], dtype=np.int64)
    offsets = np.zeros(len(anns) + 1, dtype=np.int64)
    np.cumsum(persons * frames, out=offsets[1:])
    keypoint = np.empty((offsets[-1], v, c), dtype=kp_dtype)
    score = np.empty((offsets[-1], v), dtype=np.float32) if has_score else None
    for i, a in enumerate(anns):
        keypoint[offsets[i] : offsets[i + 1]] = a["keypoint"].reshape(-1, v, c)
        if score is not None:
            score[offsets[i] : offsets[i + 1]] = a["keypoint_score"].reshape(-1, v)
    keypoint.flags.writeable = False
    if score is not None:
        score.flags.writeable = False
    names = [str(a["frame_dir"]) for a in anns]
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):  # splits refer to clips by name, so a repeated name hides a clip
        dup = next(n for i, n in enumerate(names) if index[n] != i)
        raise AnnotationError(f"sample {dup!r} appears more than once in 'annotations'")
    splits = {}
    for split, members in data.get("split", {}).items():
        missing = [m for m in members if m not in index]
        if missing:
            raise AnnotationError(
                f"split {split!r} names {len(missing)} clip(s) absent from 'annotations', e.g. {missing[0]!r}"
            )
        splits[split] = np.array([index[m] for m in members], dtype=np.int64)
    # 2D shapes were validated above; 3D files may omit img_shape or hold None, and do not need it.
    img_shapes = np.array([tuple(a["img_shape"]) if c == 2 else (0, 0) for a in anns], dtype=np.int64)
    return KeypointStore(
        keypoint=keypoint,
        score=score,
        offsets=offsets,
        persons=persons,
        frames=frames,
        labels=np.array([int(a["label"]) for a in anns], dtype=np.int64),
        img_shapes=img_shapes,
        names=names,
        splits=splits,
        layout=_file_layout(data, anns),
        classes=_file_classes(data.get("classes"), anns),
        fields=_clip_fields(anns),
    )


def _clip_fields(anns: list[dict]) -> dict[str, tuple]:
    """{field: its value in each clip (None where a clip has none)} for every field of scalar_fields that
    some clip has, in the order they first appear."""
    fields: dict[str, list] = {}
    for i, a in enumerate(anns):
        for key, value in scalar_fields(a).items():
            fields.setdefault(key, [None] * len(anns))[i] = value
    return {key: tuple(values) for key, values in fields.items()}


def _file_classes(classes: object, anns: list[dict]) -> tuple[str, ...] | None:
    """A file's 'classes' entry (label i is named classes[i]) checked against its labels: distinct, non-empty
    strings, one for every label. None when the file has none. Raises AnnotationError (one line)."""
    if classes is None:
        return None
    if not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise AnnotationError(
            f"the file's 'classes' must be a non-empty list of class names (label i is named classes[i]), got "
            f"{classes!r:.80}; fix it or drop the entry"
        )
    if len(set(classes)) != len(classes):
        dup = next(c for i, c in enumerate(classes) if c in classes[:i])
        raise AnnotationError(f"the file's 'classes' names {dup!r} twice; each class needs a name of its own")
    outside = next((a for a in anns if int(a["label"]) >= len(classes)), None)
    if outside is not None:
        raise AnnotationError(
            f"sample {outside['frame_dir']!r} has label {outside['label']}, but the file's 'classes' names only "
            f"{len(classes)} classes (labels 0..{len(classes) - 1}); fix the labels or the 'classes' entry"
        )
    return tuple(classes)


def _file_layout(data: dict, anns: list[dict]) -> Layout | str | None:
    """The one joint layout an annotation file declares, at file level, per clip, or both: a name or a
    declaration each (datasets/store/layouts.py), which must all agree. Raises AnnotationError (one line)."""

    def name(spec: Layout | str) -> str:
        return spec if isinstance(spec, str) else spec.name

    found = declared_layout(data.get("layout"), "the annotation file's 'layout'")
    where = "the file-level 'layout'"
    seen: list = []  # the distinct raw per-clip entries, so that a million equal dicts are parsed once
    for a in anns:
        raw = a.get("layout")
        if raw is None or any(raw is s or raw == s for s in seen):
            continue
        seen.append(raw)
        spec = declared_layout(raw, f"sample {a['frame_dir']!r}: its 'layout'")
        if found is None:
            found, where = spec, f"sample {a['frame_dir']!r}"
            continue
        # Names agree by name; two declarations must be the same layout; a declaration supersedes a name.
        same = name(found) == name(spec) and (isinstance(found, str) or isinstance(spec, str) or found == spec)
        if not same:
            what = "a different definition of" if name(found) == name(spec) else "layout"
            raise AnnotationError(
                f"sample {a['frame_dir']!r} declares {what} {name(spec)!r} but {where} declares {name(found)!r}: "
                f"all clips of one file are in one joint layout; convert them to one, or split the file"
            )
        if isinstance(found, str) and isinstance(spec, Layout):
            found = spec
    return found
