"""Convert raw skeleton data (NTU RGB+D `.skeleton` files, MSR Action3D text files) to a pyskl annotation file.

    python -m datasets.convert ntu SRC_DIR OUT.pkl [--benchmark ntu60|ntu120] [--2d] [--strict] [--missing_list F]
    python -m datasets.convert msr SRC_DIR OUT.pkl [--2d] [--strict]

The output is the pyskl dict (datasets/annotations.py) plus a top-level 'layout' key naming the joint
layout (datasets/layouts.py: 'ntu25', 'kinect20'). A malformed input file is reported as one line
`path:line: problem` and skipped, unless --strict stops the run at the first one (exit code 1).
The file is written once the whole conversion has finished, through a temporary file and a rename,
so an interrupted run never leaves a partial OUT.pkl.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.msr_action3d import DEPTH_SHAPE, broken_reason, msr_clip, parse_msr_name, read_msr_skeleton
from datasets.ntu_skeleton import (
    BENCHMARKS,
    COLOR_SHAPE,
    SkeletonFormatError,
    actor_arrays,
    ntu_splits,
    parse_ntu_name,
    read_ntu_skeleton,
)

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
# folder Matlab; datasets/ntu_missing/README.md), skipped by `convert ntu` unless --keep_missing.
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
        metres (datasets/ntu_skeleton.actor_arrays). missing: clip names to skip unread (the official
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
    max_setup, max_action = BENCHMARKS[benchmark]
    log = _Log(strict, report)
    splits: dict[str, list[str]] = {f"{p}_{s}": [] for p in NTU_PROTOCOLS[benchmark] for s in ("train", "val")}
    annotations, seen = [], set()
    for path in tqdm(files, desc="ntu", unit="file", disable=not progress):
        stem = path.name.removesuffix(".skeleton")
        try:
            name = parse_ntu_name(stem)
        except ValueError as e:
            log.problem(f"{path}:0: {e}")
            continue
        if stem in seen:
            log.problem(f"{path}:0: a second file for clip {stem}; only the first is kept")
            continue
        seen.add(stem)
        if name.setup > max_setup or name.action > max_action:
            log.skip(stem, f"not in {benchmark}", f"setup {name.setup}, action {name.action}")
            continue
        if stem in missing:
            log.skip(stem, "in the missing-skeleton list")
            continue
        try:
            skeleton = read_ntu_skeleton(path)
        except SkeletonFormatError as e:
            log.problem(str(e))
            continue
        keypoint, score = actor_arrays(skeleton, max_actors=2, two_d=two_d)
        if keypoint.shape[1] == 0:
            log.skip(stem, "no body in any frame", f"{skeleton.num_frames} frames")
            continue
        ann = {"frame_dir": stem, "label": name.label, "total_frames": keypoint.shape[1], "keypoint": keypoint}
        if two_d:
            ann.update(keypoint_score=score, img_shape=COLOR_SHAPE, original_shape=COLOR_SHAPE)
        annotations.append(ann)
        for protocol, side in ntu_splits(name, benchmark).items():
            splits[f"{protocol}_{side}"].append(stem)
    data = {"split": splits, "annotations": annotations, "layout": "ntu25"}
    return Conversion(data, log.skipped, log.problems)


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

    Broken sequences (datasets/msr_action3d.broken_reason: no skeleton in >= 40% of the frames, or a
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
    others = {}
    for path in src.rglob(other_pattern):
        try:
            others[parse_msr_name(path.name).stem] = path
        except ValueError:
            continue  # reported only for the files being converted
    log = _Log(strict, report)
    splits: dict[str, list[str]] = {"xsub_train": [], "xsub_val": []}
    annotations, seen = [], set()
    for path in tqdm(files, desc="msr", unit="file", disable=not progress):
        try:
            name = parse_msr_name(path.name)
        except ValueError as e:
            log.problem(f"{path}:0: {e}")
            continue
        if name.stem in seen:
            log.problem(f"{path}:0: a second file for sequence {name.stem}; only the first is kept")
            continue
        seen.add(name.stem)
        try:
            joints = read_msr_skeleton(path)  # (T, 20, 4)
        except SkeletonFormatError as e:
            log.problem(str(e))
            continue
        other_frames = None
        if name.stem in others:
            rows = _count_rows(others[name.stem])
            other_frames = rows // 20 if rows % 20 == 0 else None  # a broken partner is not our problem here
        reason = broken_reason(joints, other_frames)
        if reason is not None:
            log.skip(name.stem, "broken sequence", reason)
            continue
        keypoint, score = msr_clip(joints, two_d)
        ann = {"frame_dir": name.stem, "label": name.label, "total_frames": keypoint.shape[1], "keypoint": keypoint}
        if two_d:
            ann.update(keypoint_score=score, img_shape=DEPTH_SHAPE, original_shape=DEPTH_SHAPE)
        annotations.append(ann)
        splits[f"xsub_{name.split}"].append(name.stem)
    data = {"split": splits, "annotations": annotations, "layout": "kinect20"}
    return Conversion(data, log.skipped, log.problems)


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
    lines = [f"clips: {len(anns)} converted (layout {conv.data['layout']})"]
    if anns:
        kp = anns[0]["keypoint"]
        frames = np.array([a["total_frames"] for a in anns])
        two = Counter(a["keypoint"].shape[0] for a in anns)
        lines.append(
            f"  keypoint (M, T, {kp.shape[2]}, {kp.shape[3]}) {kp.dtype}; frames min {frames.min()} median "
            f"{int(np.median(frames))} max {frames.max()}; persons " + ", ".join(f"{m}: {two[m]}" for m in sorted(two))
        )
    by_reason = Counter(reason for _, reason, _ in conv.skipped)
    lines.append(f"skipped: {len(conv.skipped)}")
    for reason, n in by_reason.most_common():
        examples = [name for name, r, _ in conv.skipped if r == reason][:3]
        lines.append(f"  {n} {reason} (e.g. {', '.join(examples)})")
    lines.append(f"malformed files: {len(conv.problems)}" + (" (listed above)" if conv.problems else ""))
    lines.append("splits: " + ", ".join(f"{s} {len(m)}" for s, m in conv.data["split"].items()))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.convert",
        description="Convert raw skeleton data to a pyskl annotation file (.pkl) with a 'layout' key.",
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
        "for --benchmark (datasets/ntu_missing/). Files with no body in any frame are always skipped",
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
    for p, two_d_help in (
        (ntu, "write colour-image pixels (colorX, colorY) with tracking-state scores instead of 3D metres"),
        (msr, "write depth-image pixels (u, v) of the 20joints files instead of the Real3D metres"),
    ):
        p.add_argument("src_dir", type=Path, help="folder with the raw files (searched recursively)")
        p.add_argument("out", type=Path, help="output .pkl (written atomically at the end)")
        p.add_argument("--2d", dest="two_d", action="store_true", help=two_d_help)
        p.add_argument("--strict", action="store_true", help="stop at the first malformed file (exit code 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 written, 1 strict stop or nothing to write)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.src_dir.is_dir():
        parser.error(f"{args.src_dir} is not a folder")

    def report(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    progress = sys.stderr.isatty()
    try:
        if args.source == "ntu":
            listed = args.missing_list or MISSING_LISTS[args.benchmark]
            missing = set() if args.keep_missing else read_name_list(listed)
            conv = convert_ntu(args.src_dir, args.benchmark, args.two_d, args.strict, missing, report, progress)
        else:
            conv = convert_msr(args.src_dir, args.two_d, args.strict, report, progress)
    except ConversionError:
        print("stopped at the first malformed file (--strict); nothing written", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary(conv))
    if not conv.data["annotations"]:
        print("error: no clip could be converted; nothing written", file=sys.stderr)
        return 1
    write_pickle_atomic(conv.data, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
