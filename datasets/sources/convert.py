"""Convert raw skeleton data (NTU RGB+D `.skeleton` files, MSR Action3D text files, or any folder of per-clip
keypoint arrays) to a pyskl annotation file.

    python main.py convert ntu SRC_DIR OUT.pkl [--benchmark ntu60|ntu120] [--2d] [--strict] [--missing_list F]
    python main.py convert msr SRC_DIR OUT.pkl [--2d] [--strict]
    python main.py convert folder SRC_DIR OUT.pkl --layout NAME|FILE.json [--labels CSV] [--split_csv CSV |
        --group_field FIELD] [--test_fraction F] [--seed S] [--img_shape H W] [--xy_score] [--strict]

`python /path/to/main.py convert ...` runs from any folder; `python -m datasets.convert ...` is the same
command from the repository's root only.

The output is the pyskl dict (datasets/store/annotations.py) plus a top-level 'layout' entry: the joint
layout's name ('ntu25', 'kinect20') or, for `folder`, its declaration dict (datasets/store/layouts.py). A
malformed input file is reported as one line `path:line: problem` and skipped, unless --strict stops the run
at the first one (exit code 1). The file is written once the whole conversion has finished, through a
temporary file and a rename, so an interrupted run never leaves a partial OUT.pkl.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.sources.msr_action3d import (
    DEPTH_SHAPE,
    MSRName,
    broken_reason,
    msr_clip,
    parse_msr_name,
    read_msr_skeleton,
)
from datasets.sources.ntu_skeleton import (
    BENCHMARKS,
    COLOR_SHAPE,
    NTUName,
    SkeletonFormatError,
    actor_arrays,
    ntu_splits,
    parse_ntu_name,
    read_ntu_skeleton,
)
from datasets.store.annotations import scalar_fields
from datasets.store.layouts import Layout, parse_layout_arg
from utils.errors import OneLineParser, UserError

NTU_PROTOCOLS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}


class ConversionError(RuntimeError):
    """Raised in strict mode at the first malformed input; the message is `path:line: problem`."""


@dataclass
class Conversion:
    """The result of a conversion.

    data: the pyskl dict ('split', 'annotations', 'layout'), ready to pickle.
    skipped: (clip name, reason category, detail) of clips left out on purpose (no skeleton, broken
        sequence, missing list, outside the benchmark).
    problems: one `path:line: problem` line per malformed input file (each file left out).
    """

    data: dict
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Log:
    """Collects skips and problems, reports each as it happens, and enforces --strict."""

    def __init__(self, strict: bool, report: Callable[[str], None] | None) -> None:
        self.strict, self.report = strict, report or (lambda msg: None)
        self.skipped: list[tuple[str, str, str]] = []
        self.problems: list[str] = []

    def skip(self, name: str, reason: str, detail: str = "") -> None:
        self.skipped.append((name, reason, detail))
        self.report(f"skipped {name}: {reason}" + (f" ({detail})" if detail else ""))

    def problem(self, message: str) -> None:
        self.problems.append(message)
        self.report(message)
        if self.strict:
            raise ConversionError(message)


# NTU's official lists of samples with missing or incomplete skeletons (github.com/shahroudy/NTURGB-D,
# folder Matlab; datasets/sources/ntu_missing/README.md), skipped by `convert ntu` unless --keep_missing.
MISSING_LISTS = {
    "ntu60": Path(__file__).parent / "ntu_missing" / "NTU_RGBD_samples_with_missing_skeletons.txt",
    "ntu120": Path(__file__).parent / "ntu_missing" / "NTU_RGBD120_samples_with_missing_skeletons.txt",
}
_NTU_NAME = re.compile(r"^S\d{3}C\d{3}P\d{3}R\d{3}A\d{3}$")


def read_name_list(path: str | Path) -> set[str]:
    """Clip names, one per line (a `.skeleton` suffix and `#` comments are ignored). A line that is not an
    NTU name (SsssCcccPpppRrrrAaaa) is prose, as at the top of the official lists, when the others are."""
    names = set()
    for line in Path(path).read_text().splitlines():
        name = line.split("#", 1)[0].strip().removesuffix(".skeleton")
        if name:
            names.add(name)
    ntu = {n for n in names if _NTU_NAME.match(n)}
    return ntu if ntu else names


def convert_ntu(
    src_dir: str | Path,
    benchmark: str = "ntu60",
    two_d: bool = False,
    strict: bool = False,
    missing: Iterable[str] = (),
    report: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Conversion:
    """Convert a folder (searched recursively) of raw NTU `.skeleton` files.

    benchmark: 'ntu60' (setups 1-17, actions 1-60; files outside are skipped; splits xsub, xview) or
        'ntu120' (splits xsub, xset). two_d: write colour-image pixels with tracking scores instead of
        metres (datasets/sources/ntu_skeleton.actor_arrays). missing: clip names to skip unread (the official
        list of samples with missing skeletons). Files whose frames hold no body are skipped too.
    report: called with one line per skip or problem as it happens. strict: raise ConversionError at
        the first malformed file.
    Each annotation: frame_dir (clip name), label (action - 1), total_frames, keypoint (M<=2, T, 25, C)
    float32; 2D adds keypoint_score (M, T, 25), img_shape and original_shape (1080, 1920).
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown NTU benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    files = sorted(Path(src_dir).rglob("*.skeleton"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no .skeleton files under {src_dir}")
    missing = set(missing)
    log = _Log(strict, report)
    splits: dict[str, list[str]] = {f"{p}_{s}": [] for p in NTU_PROTOCOLS[benchmark] for s in ("train", "val")}
    annotations, seen = [], set()
    for path in tqdm(files, desc="ntu", unit="file", disable=not progress):
        clip = _ntu_clip(path, benchmark, two_d, missing, seen, log)
        if clip is None:
            continue
        name, ann = clip
        annotations.append(ann)
        for protocol, side in ntu_splits(name, benchmark).items():
            splits[f"{protocol}_{side}"].append(ann["frame_dir"])
    data = {"split": splits, "annotations": annotations, "layout": "ntu25"}
    return Conversion(data, log.skipped, log.problems)


def _ntu_clip(
    path: Path, benchmark: str, two_d: bool, missing: set[str], seen: set[str], log: _Log
) -> tuple[NTUName, dict] | None:
    """One raw `.skeleton` file -> (its parsed name, its annotation), or None when the file is left out.

    Left out as a problem (log.problem): a file name that is not an NTU clip name, a second file for a clip
    already in `seen`, a malformed file. Left out on purpose (log.skip): a clip outside `benchmark`, one in
    `missing`, one with no body in any frame. The clip's name is added to `seen` once its name is read.
    The annotation is convert_ntu's: frame_dir, label, total_frames, keypoint (M<=2, T, 25, C) float32;
    two_d adds keypoint_score (M, T, 25), img_shape and original_shape.
    """
    stem = path.name.removesuffix(".skeleton")
    try:
        name = parse_ntu_name(stem)
    except ValueError as e:
        log.problem(f"{path}:0: {e}")
        return None
    if stem in seen:
        log.problem(f"{path}:0: a second file for clip {stem}; only the first is kept")
        return None
    seen.add(stem)
    max_setup, max_action = BENCHMARKS[benchmark]
    if name.setup > max_setup or name.action > max_action:
        log.skip(stem, f"not in {benchmark}", f"setup {name.setup}, action {name.action}")
        return None
    if stem in missing:
        log.skip(stem, "in the missing-skeleton list")
        return None
    try:
        skeleton = read_ntu_skeleton(path)
    except SkeletonFormatError as e:
        log.problem(str(e))
        return None
    keypoint, score = actor_arrays(skeleton, max_actors=2, two_d=two_d)
    if keypoint.shape[1] == 0:
        log.skip(stem, "no body in any frame", f"{skeleton.num_frames} frames")
        return None
    ann = {"frame_dir": stem, "label": name.label, "total_frames": keypoint.shape[1], "keypoint": keypoint}
    if two_d:
        ann.update(keypoint_score=score, img_shape=COLOR_SHAPE, original_shape=COLOR_SHAPE)
    return name, ann


def _count_rows(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def convert_msr(
    src_dir: str | Path,
    two_d: bool = False,
    strict: bool = False,
    report: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Conversion:
    """Convert MSR Action3D: the `*_skeleton3D.txt` files (metres) or, with two_d, the `*_skeleton.txt`
    files (depth-image pixels), searched recursively under src_dir.

    Broken sequences (datasets/sources/msr_action3d.broken_reason: no skeleton in >= 40% of the frames, or a
    frame count that differs from the same sequence's file in the other folder, when that folder is
    present) are skipped with a message. Frames without a skeleton are dropped from the others.
    Splits: xsub_train (odd subjects), xsub_val (even subjects). Labels: action - 1 (20 classes).
    Each annotation: frame_dir (`aAA_sSS_eEE`), label, total_frames, keypoint (1, T, 20, C) float32;
    2D adds keypoint_score (1, T, 20), img_shape and original_shape (240, 320).
    report, strict: as in convert_ntu.
    """
    pixels, metres = "*_skeleton.txt", "*_skeleton3D.txt"
    main_pattern, other_pattern = (pixels, metres) if two_d else (metres, pixels)
    src = Path(src_dir)
    files = sorted(src.rglob(main_pattern), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no {main_pattern} files under {src_dir}")
    others = _msr_partners(src, other_pattern)
    log = _Log(strict, report)
    splits: dict[str, list[str]] = {"xsub_train": [], "xsub_val": []}
    annotations, seen = [], set()
    for path in tqdm(files, desc="msr", unit="file", disable=not progress):
        clip = _msr_clip(path, two_d, others, seen, log)
        if clip is None:
            continue
        name, ann = clip
        annotations.append(ann)
        splits[f"xsub_{name.split}"].append(name.stem)
    data = {"split": splits, "annotations": annotations, "layout": "kinect20"}
    return Conversion(data, log.skipped, log.problems)


def _msr_partners(src: Path, pattern: str) -> dict[str, Path]:
    """The files of the other folder (`pattern`, searched recursively under src) by sequence (`aAA_sSS_eEE`);
    files with another name are ignored here."""
    others = {}
    for path in src.rglob(pattern):
        try:
            others[parse_msr_name(path.name).stem] = path
        except ValueError:
            continue  # reported only for the files being converted
    return others


def _msr_clip(
    path: Path, two_d: bool, others: dict[str, Path], seen: set[str], log: _Log
) -> tuple[MSRName, dict] | None:
    """One MSR skeleton file -> (its parsed name, its annotation), or None when the file is left out.

    Left out as a problem (log.problem): a file name that is not `aAA_sSS_eEE_skeleton*.txt`, a second file
    for a sequence already in `seen`, a malformed file. Left out on purpose (log.skip): a broken sequence,
    judged with the frame count of its file in `others` (the other folder) when there is one. The sequence's
    name is added to `seen` once its name is read. The annotation is convert_msr's: frame_dir, label,
    total_frames, keypoint (1, T, 20, C) float32; two_d adds keypoint_score (1, T, 20), img_shape and
    original_shape.
    """
    try:
        name = parse_msr_name(path.name)
    except ValueError as e:
        log.problem(f"{path}:0: {e}")
        return None
    if name.stem in seen:
        log.problem(f"{path}:0: a second file for sequence {name.stem}; only the first is kept")
        return None
    seen.add(name.stem)
    try:
        joints = read_msr_skeleton(path)  # (T, 20, 4)
    except SkeletonFormatError as e:
        log.problem(str(e))
        return None
    other_frames = None
    if name.stem in others:
        rows = _count_rows(others[name.stem])
        other_frames = rows // 20 if rows % 20 == 0 else None  # a broken partner is not our problem here
    reason = broken_reason(joints, other_frames)
    if reason is not None:
        log.skip(name.stem, "broken sequence", reason)
        return None
    keypoint, score = msr_clip(joints, two_d)
    ann = {"frame_dir": name.stem, "label": name.label, "total_frames": keypoint.shape[1], "keypoint": keypoint}
    if two_d:
        ann.update(keypoint_score=score, img_shape=DEPTH_SHAPE, original_shape=DEPTH_SHAPE)
    return name, ann


# ---------------------------------------------------------------- any folder of per-clip keypoint files

CLIP_SUFFIXES = (".npy", ".npz", ".json")


def clip_files(folder: Path) -> list[Path]:
    """The per-clip files (CLIP_SUFFIXES) under `folder`, searched recursively, in path order."""
    return sorted((p for p in folder.rglob("*") if p.suffix in CLIP_SUFFIXES and p.is_file()), key=str)


class FolderError(UserError):
    """A problem with the whole folder conversion (its CSV files, its labels), not with one clip file."""


KEYPOINT_KEYS, _SCORE_KEYS = ("keypoint", "keypoints"), ("keypoint_score", "score", "scores")


def read_csv_pairs(path: str | Path, what: str) -> dict[str, str]:
    """A two-column CSV (`name,value` per row; a first row `name,...` is a header) -> {name: value}.
    Names are clip file names without their suffix. Raises FolderError (one line) for a malformed row."""
    rows: dict[str, str] = {}
    if not Path(path).is_file():
        raise FolderError(f"{what} file {path} does not exist")
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or (line == 1 and row[0].strip().lower() in ("name", "clip", "frame_dir")):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise FolderError(f"{path}:{line}: expected 'name,{what}', got {','.join(row)!r}")
            name = Path(row[0].strip()).name
            for suffix in CLIP_SUFFIXES:
                name = name.removesuffix(suffix)
            if name in rows:
                raise FolderError(f"{path}:{line}: clip {name!r} is listed twice")
            rows[name] = row[1].strip()
    return rows


def read_clip_file(path: Path) -> dict:
    """One clip file -> its fields: 'keypoint' array, optionally 'score', 'label', 'img_shape' and any
    other field (a subject, ...). .npy: the keypoint array alone. .npz / .json: keys 'keypoint' (or
    'keypoints'), optional 'score' ('scores', 'keypoint_score'), 'label', 'img_shape', others kept."""
    if path.suffix in (".npy", ".npz"):
        try:  # never unpickle: a clip file holds plain arrays
            if path.suffix == ".npy":
                return {"keypoint": np.load(path, allow_pickle=False)}
            with np.load(path, allow_pickle=False) as z:
                fields = {k: z[k] for k in z.files}
        except (ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"not a readable {path.suffix} file of plain arrays ({e})") from e
        for k, v in fields.items():
            if k not in KEYPOINT_KEYS + _SCORE_KEYS and v.ndim == 0:
                fields[k] = v.item()  # label, subject: plain values
        return fields
    fields = json.loads(path.read_text())
    if not isinstance(fields, dict):
        raise ValueError(f"expected a JSON object with 'keypoint' and 'label', got {type(fields).__name__}")
    return fields


def _clip_arrays(fields: dict, v: int, xy_score: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """A clip's keypoint (M, T, V, C) float32 and score (M, T, V) or None; raises ValueError (one line)."""
    key = next((k for k in KEYPOINT_KEYS if k in fields), None)
    if key is None:
        raise ValueError(f"no keypoints: expected a 'keypoint' array, found {', '.join(map(str, fields)) or 'nothing'}")
    try:
        kp = np.asarray(fields[key], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"'{key}' is not a numeric array ({e})") from e
    if kp.ndim == 3:
        kp = kp[None]  # one person: (T, V, C) -> (1, T, V, C)
    if kp.ndim != 4:
        raise ValueError(f"keypoints must be (T, V, C) or (M, T, V, C), got shape {kp.shape}")
    m, t, vv, c = kp.shape
    if t < 1 or m < 1:
        raise ValueError(f"keypoints must have at least one frame and person, got shape {kp.shape}")
    if vv != v:
        raise ValueError(f"{vv} joints per frame, but the layout has {v}; is --layout the right one?")
    if c not in (2, 3):
        raise ValueError(f"the last axis must be 2 (x, y) or 3 (x, y, z, or x, y, score with --xy_score), got {c}")
    if xy_score and c != 3:
        raise ValueError(f"--xy_score reads (x, y, score) triples, but the last axis is {c}")
    bad = ~np.isfinite(kp)
    if bad.any():
        where = np.argwhere(bad)[0][:3].tolist()
        raise ValueError(f"non-finite keypoint at [person, frame, joint] = {where}; mark a missing joint with zeros")
    score = None
    if xy_score:
        kp, score = np.ascontiguousarray(kp[..., :2]), np.ascontiguousarray(kp[..., 2])
    skey = next((k for k in _SCORE_KEYS if k in fields), None)
    if skey is not None:
        if xy_score:
            raise ValueError(f"scores twice: in '{skey}' and as the third coordinate (--xy_score)")
        score = np.asarray(fields[skey], dtype=np.float32)
        score = score[None] if score.ndim == 2 else score  # one person: (T, V) -> (1, T, V)
        if score.shape != (m, t, v):
            raise ValueError(f"'{skey}' must have shape {(m, t, v)} or {(t, v)}, got {np.shape(fields[skey])}")
        if not np.isfinite(score).all():
            raise ValueError(f"non-finite '{skey}'")
    if kp.shape[-1] == 3:
        if score is not None:
            raise ValueError("3D keypoints take no scores (a missing joint is all zeros)")
        return kp, None
    if score is None:  # no detector confidence: a joint is seen unless it is all zeros
        score = (np.abs(kp).sum(-1) > 0).astype(np.float32)
    return kp, score


def _img_shape(fields: dict, default: tuple[int, int] | None) -> tuple[int, int]:
    """The (h, w) frame of 2D pixel keypoints: the file's 'img_shape', else --img_shape."""
    shape = fields.get("img_shape", default)
    if shape is None:
        raise ValueError("2D keypoints need the frame size: an 'img_shape' [h, w] field, or --img_shape H W")
    try:
        h, w = (int(s) for s in np.asarray(shape).tolist())
    except (TypeError, ValueError) as e:
        raise ValueError(f"'img_shape' must be [h, w], got {shape!r}") from e
    if h <= 0 or w <= 0:
        raise ValueError(f"'img_shape' must be positive, got {(h, w)}")
    return h, w


def _split_clips(
    names: list[str], labels: list[int], groups: list[str] | None, test_fraction: float, seed: int
) -> set[str]:
    """The test clips of a seeded random split: whole groups (e.g. subjects) when `groups` is given,
    else test_fraction of each class's clips (at least one when the class has two or more)."""
    rng = np.random.default_rng(seed)
    if groups is not None:
        distinct = sorted(set(groups))
        k = min(max(1, round(test_fraction * len(distinct))), len(distinct) - 1)
        test_groups = {distinct[i] for i in rng.permutation(len(distinct))[:k]}
        return {n for n, g in zip(names, groups, strict=True) if g in test_groups}
    test = set()
    for label in sorted(set(labels)):
        members = [n for n, lab in zip(names, labels, strict=True) if lab == label]
        k = min(max(1, round(test_fraction * len(members))), len(members) - 1) if len(members) > 1 else 0
        test.update(members[i] for i in rng.permutation(len(members))[:k])
    return test


def convert_folder(
    src_dir: str | Path,
    layout: Layout,
    labels_csv: str | Path | None = None,
    split_csv: str | Path | None = None,
    group_field: str | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    protocol: str | None = None,
    img_shape: tuple[int, int] | None = None,
    xy_score: bool = False,
    strict: bool = False,
    report: Callable[[str], None] | None = None,
    progress: bool = False,
) -> Conversion:
    """Convert a folder (searched recursively) of per-clip keypoint files: .npy (the array alone), .npz or
    .json (fields: 'keypoint' (T, V, C) or (M, T, V, C), optional 'score' (T, V) or (M, T, V), 'label',
    'img_shape' [h, w] and any other, e.g. a subject). C = 2: x, y pixels with optional scores (all-zero
    joints count as missing); C = 3: x, y, z (metres), or x, y, score with xy_score.

    layout: the joints' layout (built-in or declared); every clip must have its V joints.
    labels_csv: `name,label` rows (name = file name without suffix); else each file's 'label'. Labels are
        non-negative ints, or class names numbered in sorted order (written as the file's 'classes').
    split_csv: `name,train|test` rows; else a seeded random split (`seed`): whole groups of the field
        `group_field` (e.g. 'subject') or, without one, test_fraction of each class's clips go to test.
        Written as splits PROTOCOL_train and PROTOCOL_val (main.py's --split PROTOCOL, its default for the
        file); protocol None names the split for how it is made (split_protocol): csv, xFIELD, random.
    img_shape: (h, w) of 2D keypoints for files without an 'img_shape' field.
    A malformed file is one `path:0: problem` line and is left out (strict: ConversionError).
    Each annotation: frame_dir (file name without suffix), label, total_frames, keypoint (M, T, V, C)
    float32; 2D adds keypoint_score (M, T, V), img_shape and original_shape; every other field of the file
    that holds one str, int, float or bool (subject, view, setup, ...) is kept. The output's 'layout' is the
    layout's declaration dict (datasets/store/layouts.py), so the file is self-describing.
    """
    src = Path(src_dir)
    files = clip_files(src)
    if not files:
        raise FileNotFoundError(f"no {', '.join(CLIP_SUFFIXES)} clip files under {src_dir}")
    csv_labels = read_csv_pairs(labels_csv, "label") if labels_csv else None
    csv_split = read_csv_pairs(split_csv, "train|test") if split_csv else None
    log = _Log(strict, report)
    annotations, raw_labels, groups = _read_folder_clips(
        files, layout, xy_score, img_shape, csv_labels, labels_csv, csv_split, split_csv, group_field, log, progress
    )
    classes = _number_labels(annotations, raw_labels)
    protocol = protocol or split_protocol(split_csv, group_field)
    splits = _folder_splits(annotations, csv_split, groups if group_field else None, test_fraction, seed, protocol)
    data = {"split": splits, "annotations": annotations, "layout": layout.to_dict()}
    if classes is not None:
        data["classes"] = classes
    return Conversion(data, log.skipped, log.problems)


def _read_folder_clips(
    files: list[Path],
    layout: Layout,
    xy_score: bool,
    img_shape: tuple[int, int] | None,
    csv_labels: dict[str, str] | None,
    labels_csv: str | Path | None,
    csv_split: dict[str, str] | None,
    split_csv: str | Path | None,
    group_field: str | None,
    log: _Log,
    progress: bool,
) -> tuple[list[dict], list, list[str]]:
    """Read every clip file of convert_folder, in order; a malformed one is logged (log.problem) and left out.

    csv_labels, csv_split: the rows of labels_csv and split_csv (read_csv_pairs), or None without the file;
    the file names appear in the messages. A clip is malformed when its file is unreadable or its arrays are
    (folder_annotation), when it has no label, when split_csv does not place it in train or test, or when it
    lacks the group_field field; a second file with the same clip name is left out too.
    Returns (annotations, raw labels, groups), one entry per clip kept: its annotation (frame_dir, label,
    total_frames, keypoint (M, T, V, C) float32; 2D adds keypoint_score (M, T, V), img_shape,
    original_shape; and the file's other fields that hold one str, int, float or bool, e.g. subject, view:
    datasets/store/annotations.scalar_fields) with the raw label (an int or a class name, numbered later by
    _number_labels), the same raw label, and its group_field value as a string ('' without group_field).
    """
    annotations, raw_labels, groups, seen = [], [], [], {}
    for path in tqdm(files, desc="folder", unit="file", disable=not progress):
        name = path.stem
        if name in seen:
            log.problem(f"{path}:0: clip name {name!r} is also {seen[name]}; only the first is kept")
            continue
        seen[name] = path
        try:
            fields = read_clip_file(path)
            ann = folder_annotation(name, fields, layout, xy_score, img_shape)
            label = csv_labels.get(name) if csv_labels is not None else fields.get("label")
            if label is None:
                where = f"in {labels_csv}" if csv_labels is not None else "in the file (or give --labels CSV)"
                raise ValueError(f"no label {where}")
            if csv_split is not None and csv_split.get(name) not in ("train", "test", "val"):
                side = csv_split.get(name)
                raise ValueError(
                    f"{split_csv} lists it as {side!r}, not train or test" if side else f"not in {split_csv}"
                )
            if group_field is not None and group_field not in fields:
                raise ValueError(f"no {group_field!r} field (--group_field)")
        except (OSError, ValueError) as e:  # unreadable, truncated or malformed (JSON errors are ValueErrors)
            log.problem(f"{path}:0: {e}")
            continue
        annotations.append({**ann, "label": label, **scalar_fields(fields)})  # subject, view, ...: kept as they are
        raw_labels.append(label)
        groups.append(str(fields.get(group_field)) if group_field else "")
    return annotations, raw_labels, groups


def split_protocol(split_csv: str | Path | None, group_field: str | None) -> str:
    """The name of a folder's split, for how it is made: 'csv' (from split_csv), 'x' + group_field (whole
    groups: xsubject, xview), or 'random' (each class's clips at random)."""
    return "csv" if split_csv else f"x{group_field}" if group_field else "random"


def _folder_splits(
    annotations: list[dict],
    csv_split: dict[str, str] | None,
    groups: list[str] | None,
    test_fraction: float,
    seed: int,
    protocol: str,
) -> dict[str, list[str]]:
    """The splits PROTOCOL_train and PROTOCOL_val of the clips (their frame_dir, in the order of annotations):
    as csv_split places them ('test' and 'val' both mean PROTOCOL_val), else a seeded random split
    (_split_clips) of whole groups, one per clip, or without groups of each class (the numbered labels)."""
    names = [a["frame_dir"] for a in annotations]
    if csv_split is not None:
        test = {n for n in names if csv_split[n] in ("test", "val")}
    else:
        labels = [a["label"] for a in annotations]
        test = _split_clips(names, labels, groups, test_fraction, seed)
    train = [n for n in names if n not in test]
    return {f"{protocol}_train": train, f"{protocol}_val": [n for n in names if n in test]}


def folder_annotation(
    name: str, fields: dict, layout: Layout, xy_score: bool, img_shape: tuple[int, int] | None
) -> dict:
    """The annotation of one clip file's fields, without its label: frame_dir, total_frames, keypoint
    (M, T, V, C); 2D adds keypoint_score (M, T, V), img_shape and original_shape. ValueError if malformed."""
    kp, score = _clip_arrays(fields, layout.num_joints, xy_score)
    ann = {"frame_dir": name, "total_frames": kp.shape[1], "keypoint": kp}
    if score is not None:
        shape = _img_shape(fields, img_shape)
        ann.update(keypoint_score=score, img_shape=shape, original_shape=shape)
    return ann


def _number_labels(annotations: list[dict], raw: list) -> list[str] | None:
    """Labels in place as ints: non-negative integers stay; class names become their index in sorted
    order (returned, to be written as 'classes'); a mix is a problem. None when the labels were ints."""

    def as_int(x: object) -> int | None:
        if isinstance(x, (bool, np.bool_)):
            return None
        if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer()):
            return int(x)
        if isinstance(x, str) and x.strip().isdigit():
            return int(x)
        return None

    ints = [as_int(x) for x in raw]
    if all(i is not None and i >= 0 for i in ints):
        for a, i in zip(annotations, ints, strict=True):
            a["label"] = i
        return None
    if any(i is not None for i in ints) or not all(isinstance(x, str) for x in raw):
        example = next(x for x, i in zip(raw, ints, strict=True) if i is None or i < 0)
        raise FolderError(f"labels must be all non-negative integers or all class names; got {example!r} beside others")
    classes = sorted(set(raw))
    index = {c: i for i, c in enumerate(classes)}
    for a, x in zip(annotations, raw, strict=True):
        a["label"] = index[x]
    return classes


def write_pickle_atomic(obj: object, path: str | Path) -> None:
    """Pickle obj to path through a temporary file in the same folder and a rename, so readers never
    see a partial file and an interrupted write leaves the old file (if any) in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def summary(conv: Conversion) -> str:
    """Multi-line summary: clips, keypoint shape, skips by reason, problems, per-split counts."""
    anns = conv.data["annotations"]
    layout = conv.data["layout"]
    lines = [f"clips: {len(anns)} converted (layout {layout if isinstance(layout, str) else layout['name']})"]
    if anns:
        kp = anns[0]["keypoint"]
        frames = np.array([a["total_frames"] for a in anns])
        two = Counter(a["keypoint"].shape[0] for a in anns)
        lines.append(
            f"  keypoint (M, T, {kp.shape[2]}, {kp.shape[3]}) {kp.dtype}; frames min {frames.min()} median "
            f"{int(np.median(frames))} max {frames.max()}; persons " + ", ".join(f"{m}: {two[m]}" for m in sorted(two))
        )
    values: dict[str, set] = {}  # the clips' own fields (subject, view, ...): main.py --val_group_field
    for a in anns:
        for key, value in scalar_fields(a).items():
            values.setdefault(key, set()).add(value)
    if values:
        lines.append("  fields: " + ", ".join(f"{key} ({len(v)} values)" for key, v in values.items()))
    by_reason = Counter(reason for _, reason, _ in conv.skipped)
    lines.append(f"skipped: {len(conv.skipped)}")
    for reason, n in by_reason.most_common():
        examples = [name for name, r, _ in conv.skipped if r == reason][:3]
        lines.append(f"  {n} {reason} (e.g. {', '.join(examples)})")
    listed = " (each in OUT.log beside the output)" if conv.problems else ""
    lines.append(f"malformed files: {len(conv.problems)}{listed}")
    lines.append("splits: " + ", ".join(f"{s} {len(m)}" for s, m in conv.data["split"].items()))
    return "\n".join(lines)


def build_parser(prog: str = "python -m datasets.convert") -> argparse.ArgumentParser:
    parser = OneLineParser(  # its errors, and its subcommands', are one line (exit code 2)
        prog=prog,
        description="Convert raw skeleton data to a pyskl annotation file (.pkl) with a 'layout' key. "
        "`python /path/to/main.py convert ...` runs from any folder; `python -m datasets.convert ...` is the same "
        "command, from the repository's root only.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="source", required=True)
    ntu = sub.add_parser(
        "ntu",
        help="folder of raw NTU RGB+D .skeleton files",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ntu.add_argument("--benchmark", choices=sorted(BENCHMARKS), default="ntu60", help="label set and split protocols")
    ntu.add_argument(
        "--missing_list",
        metavar="FILE",
        help="clip names (one per line) to skip; default: NTU's official list of samples with missing skeletons "
        "for --benchmark (datasets/sources/ntu_missing/). Files with no body in any frame are always skipped",
    )
    ntu.add_argument(
        "--keep_missing",
        action="store_true",
        help="do not skip the samples of the official list (files with no body at all are still skipped)",
    )
    msr = sub.add_parser(
        "msr",
        help="MSR Action3D folder (MSRAction3DSkeletonReal3D and/or MSRAction3DSkeleton(20joints))",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    folder = sub.add_parser(
        "folder",
        help="folder of per-clip keypoint files: .npy (T, V, C) arrays, or .npz / .json with 'keypoint' and 'label'",
        description="Any folder (searched recursively) of per-clip files: .npy (the keypoint array alone), .npz or "
        ".json with fields 'keypoint' (T, V, C) or (M, T, V, C), optional 'score' (T, V) or (M, T, V), 'label', "
        "'img_shape' [h, w] and others (e.g. 'subject', 'view'): those holding one string, number or bool are kept in "
        "each clip's annotation (main.py --val_group_field; training holds out whole subjects by default). C = 2: "
        "x, y pixels (all-zero joints are missing); C = 3: x, y, z metres (or x, y, score with --xy_score). The "
        "clip's name is its file name without the suffix. `python /path/to/main.py convert folder ...` runs from "
        "any folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    folder.add_argument(
        "--layout",
        required=True,
        metavar="NAME|FILE.json",
        help="joint layout of the keypoints: a built-in name or a JSON declaration (README: Your own dataset); "
        "written into OUT.pkl",
    )
    folder.add_argument(
        "--labels", metavar="CSV", help="name,label rows (ints, or class names numbered in sorted order); "
        "without it, each file's 'label'",
    )  # fmt: skip
    how = folder.add_mutually_exclusive_group()
    how.add_argument("--split_csv", metavar="CSV", help="name,train|test rows; without it, a seeded random split")
    how.add_argument(
        "--group_field",
        metavar="FIELD",
        help="split whole groups of this field of the files (e.g. subject) at random; without it, each class's clips",
    )
    folder.add_argument("--test_fraction", type=float, default=0.3, help="share of clips (or groups) for test")
    folder.add_argument("--seed", type=int, default=0, help="seed of the random split")
    folder.add_argument(
        "--protocol",
        help="split names written: PROTOCOL_train, PROTOCOL_val (main.py --split; the file's default); None: named "
        "for how the split is made: csv (--split_csv), xFIELD (--group_field: xsubject, xview), random",
    )
    folder.add_argument(
        "--img_shape", type=int, nargs=2, metavar=("H", "W"), help="frame size of 2D files without 'img_shape'"
    )
    folder.add_argument("--xy_score", action="store_true", help="read C = 3 as x, y, score (2D) instead of x, y, z")
    for p, two_d_help in (
        (ntu, "write colour-image pixels (colorX, colorY) with tracking-state scores instead of 3D metres"),
        (msr, "write depth-image pixels (u, v) of the 20joints files instead of the Real3D metres"),
    ):
        p.add_argument("src_dir", type=Path, help="folder with the raw files (searched recursively)")
        p.add_argument("out", type=Path, help="output .pkl (written atomically at the end)")
        p.add_argument("--2d", dest="two_d", action="store_true", help=two_d_help)
    for p in (ntu, msr, folder):
        p.add_argument("--strict", action="store_true", help="stop at the first malformed file (exit code 1)")
    folder.add_argument("src_dir", type=Path, help="folder with the clip files (searched recursively)")
    folder.add_argument("out", type=Path, help="output .pkl (written atomically at the end)")
    return parser


def _convert(args: argparse.Namespace, report: Callable[[str], None]) -> Conversion:
    """The conversion main() was asked for, each skip and malformed file passed to `report`."""
    progress = sys.stderr.isatty()
    if args.source == "ntu":
        listed = args.missing_list or MISSING_LISTS[args.benchmark]
        missing = set() if args.keep_missing else read_name_list(listed)
        return convert_ntu(args.src_dir, args.benchmark, args.two_d, args.strict, missing, report, progress)
    if args.source == "msr":
        return convert_msr(args.src_dir, args.two_d, args.strict, report, progress)
    return convert_folder(
        args.src_dir, parse_layout_arg(args.layout), args.labels, args.split_csv, args.group_field,
        args.test_fraction, args.seed, args.protocol, tuple(args.img_shape) if args.img_shape else None,
        args.xy_score, args.strict, report, progress,
    )  # fmt: skip


def report_path(out: Path) -> Path:
    """Where the converter writes its report of every skipped and malformed clip: OUT's name + .log."""
    return out.with_name(out.name + ".log")


def write_report(lines: list[str], out: Path) -> Path | None:
    """Write the report lines beside OUT (report_path); None when it cannot be written (the summary stands)."""
    path = report_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines))
    except OSError:
        return None
    return path


def main(argv: list[str] | None = None, prog: str = "python -m datasets.convert") -> int:
    """CLI entry point; returns the exit code (0 written, 2 a user error in one line: flags, missing files,
    nothing to write, a layout, CSV file or label set that makes the conversion impossible, a malformed file
    with --strict). Skipped and malformed clips are one line each in OUT.log (report_path), summed up in one
    line on stderr.
    prog: the command's name in its messages (`main.py convert` when main.py runs it)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not args.src_dir.is_dir():
        parser.error(f"{args.src_dir} is not a folder")
    if args.out.is_dir():
        parser.error(f"{args.out} is a folder; give the .pkl file to write")
    folder = args.out.parent  # made if missing: its nearest existing ancestor must be a writable folder
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        parser.error(f"{args.out} cannot be written: {folder} is not a writable folder; give OUT elsewhere")
    if getattr(args, "missing_list", None) and not Path(args.missing_list).is_file():
        parser.error(f"--missing_list {args.missing_list} does not exist; give a file of clip names, one a line")

    if args.source == "folder" and not 0 < args.test_fraction < 1:
        parser.error(f"--test_fraction must be in (0, 1), got {args.test_fraction}")
    reported: list[str] = []  # every skip and malformed file, one line each: written to the log, summed up here
    try:
        conv = _convert(args, reported.append)
    except UserError as e:  # a bad layout, CSV file or label set: nothing can be written
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except ConversionError as e:
        print(f"{parser.prog}: error: {e} (--strict stops at the first malformed file; nothing written)",
              file=sys.stderr)  # fmt: skip
        return 2
    except FileNotFoundError as e:
        print(f"{parser.prog}: error: {e}; check SRC_DIR (and --missing_list)", file=sys.stderr)
        return 2
    print(summary(conv))
    left_out = f"{len(conv.problems)} malformed clip file(s) left out, {len(conv.skipped)} skipped"
    if not conv.data["annotations"]:  # nothing written, not even the report: the first reason says it
        first = f"; the first: {reported[0]}" if reported else ""
        print(f"{parser.prog}: error: no clip of {args.src_dir} could be converted ({left_out}{first}); nothing "
              "written", file=sys.stderr)  # fmt: skip
        return 2
    log = write_report(reported, args.out) if reported else None
    if conv.problems:
        print(f"{parser.prog}: note: {left_out}; each, with its reason, in {log}", file=sys.stderr)
    try:
        write_pickle_atomic(conv.data, args.out)
    except OSError as e:
        print(f"{parser.prog}: error: cannot write {args.out} ({e.strerror}); nothing written", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
