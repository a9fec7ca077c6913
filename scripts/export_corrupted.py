"""Export the robustness benchmark as pyskl annotation files, so any toolbox (pyskl, mmaction2, ...) scores the
project's corrupted test sets without training here.

    python scripts/export_corrupted.py data/ntu60_hrnet.pkl bench/ntu60_xsub --split xsub_val
    python scripts/export_corrupted.py ANN_FILE OUT_DIR --eval_corruptions missing_joints swap --eval_alphas 0 0.02

Writes into OUT_DIR one pyskl annotation pickle per row of the project's robustness sweep
(`engine.evaluate.sweep_points` of --eval_corruptions and --eval_alphas, the defaults of main.py): the clean
set, the jitter sweep and the suite's (family, severity) pairs, each named `SET.pkl` with SET = `clean` or
`FAMILY_SEVERITY` (`missing_joints_0.1`, `jitter_0.02`, `frame_drop_0.666667`; severity written with 6
significant digits). Each file holds only the clips of --split, in the split's order, under that split name:
{'split': {SPLIT: [frame_dir, ...]}, 'annotations': [...], 'layout': ..., 'classes': ... (when the source has
them)}; every annotation is the source's with 'keypoint', 'keypoint_score' (float32; absent for 3D files
without scores) and 'total_frames' replaced. pyskl and mmaction2 keep the file's annotation order for a split,
so a result file's clip i is the manifest's clip i.

Each clip is corrupted as the project's evaluation corrupts the whole clip: `corrupt(keypoint,
keypoint_score, family, severity, corruption_rng(family, severity, index))`, where index is the clip's
position in the SOURCE file's 'annotations' (its store index), never its position in the exported file, so
that the clips are the project's own. The temporal families change 'total_frames'.

What matches the project bit for bit (manifest: each set's `same_clips_as_project`, the project's data
paths whose sweep scores exactly these clips):
- every family but jitter, for volume models (PoseConv3D, TSM: `reads` 'volume'), which read the float32
  output of `corrupt` (--dtype float32, the default);
- every family including jitter, for joint-coordinate models (MotionBERT, the GCNs: `reads` 'joints'),
  which jitter the whole clip with `eval_noise_rng(alpha, index)` as this export does, then cast the clip
  back to the file's keypoint dtype: pass --dtype source (on a float32 source file both dtypes agree).
JITTER AND VOLUME MODELS: the project draws a volume model's jitter after frame sampling, on the sampled
frames (datasets/pipeline/clips.py), which no whole-clip file can reproduce (a frame sampled twice gets
two draws). The exported jitter sets jitter the whole clip (eval_noise_rng(alpha, index), the generator
and formula of the project's joint-coordinate path); for a volume model their rows are the toolbox's own
sampling of a jittered clip, not the project's clips, and the manifest says so.

manifest.json (version 1): format, version, source {file, sha256, clips}, split, layout, coord_dim,
num_classes (the source's 'classes', else its largest label + 1), keypoint_dtype {clean, corrupted},
revision (this project's git revision), eval_corruptions, eval_alphas, generator {rule, eval_noise_seed},
jitter (the note above), clips [{frame_dir, label, index}] in the exported order, and sets [{name, file,
family, level, severity, suite, seed_entropy, same_clips_as_project, note}]: clip i of a set was corrupted
with np.random.default_rng(np.random.SeedSequence(seed_entropy + [clips[i].index])) (None for the clean set).
scripts/score_results.py reads it with the toolbox's per-clip scores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
from pathlib import Path

import numpy as np

# Run as `python scripts/export_corrupted.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.pipeline.corruptions import corrupt, corruption_rng, parse_corruptions  # noqa: E402
from datasets.pipeline.noise import EVAL_NOISE_SEED  # noqa: E402
from datasets.store.annotations import KeypointStore, load_pickle, pack_annotations  # noqa: E402
from datasets.store.layouts import Layout, choose_layout, definition  # noqa: E402
from engine.config import EvalConfig  # noqa: E402
from engine.evaluate import sweep_points  # noqa: E402
from opts import DEFAULT_EVAL_ALPHAS, alpha_level  # noqa: E402
from utils.atomic import atomic_write, check_writable, write_text  # noqa: E402
from utils.errors import OneLineParser, UserError, exit_on_user_error  # noqa: E402
from utils.runtime import git_revision  # noqa: E402

PROG = "export_corrupted.py"
MANIFEST = "manifest.json"
FORMAT = "robust-skeleton-corrupted-sets"
VOLUME, JOINTS = "volume", "joints"  # the project's data paths (models/registry.py's `reads`)
GENERATOR_RULE = (
    "clip i of a set: keypoint, keypoint_score = datasets.pipeline.corruptions.corrupt(source clip, family, "
    "severity, rng) with rng = np.random.default_rng(np.random.SeedSequence(seed_entropy + [clips[i].index])), "
    "which is corruption_rng(family, severity, index) (jitter: eval_noise_rng(alpha, index)); index = the clip's "
    "position in the source file's 'annotations' (the project's store index)"
)
JITTER_NOTE = (
    "jitter sets jitter the whole clip before the toolbox samples frames, with eval_noise_rng(alpha, index): the "
    "project's joint-coordinate models (reads 'joints') see the same clips; its volume models (reads 'volume') "
    "draw jitter on the sampled frames, so for them these rows are the toolbox's own sampling of a jittered clip"
)


def set_name(family: str, severity: float) -> str:
    """The name of an exported set (its file is NAME.pkl): 'clean' or FAMILY_SEVERITY, 6 significant digits."""
    return "clean" if family == "clean" else f"{family}_{severity:.6g}"


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def corrupted_clip(
    store: KeypointStore, index: int, family: str, severity: float, layout: Layout, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Store clip `index` as the project's evaluation corrupts the whole clip: keypoint (M, T', V, C) in `dtype`
    and keypoint_score (M, T', V) float32. The clean set keeps the store's keypoint dtype."""
    clip = store.get(index)
    if family == "clean":
        return np.array(clip["keypoint"]), np.array(clip["keypoint_score"], dtype=np.float32)
    rng = corruption_rng(family, severity, index)
    kp, score = corrupt(clip["keypoint"], clip["keypoint_score"], family, severity, rng,
                        img_shape=clip["img_shape"], layout=layout)  # fmt: skip
    return kp.astype(dtype), score


def export_set(
    data: dict, store: KeypointStore, order: np.ndarray, split: str, point: tuple[str, float], layout: Layout,
    dtype: np.dtype,
) -> dict:  # fmt: skip
    """The pyskl dict of one set: the clips `order` (store indices, in the split's order) under one (family,
    severity) point ('clean', 0 for none), the source's other top-level entries kept, its layout declared."""
    family, severity = point
    anns = []
    for index in order.tolist():
        ann = dict(data["annotations"][index])
        try:
            kp, score = corrupted_clip(store, index, family, severity, layout, dtype)
        except ValueError as e:  # a layout without the parts or pairs a family needs
            raise UserError(f"{set_name(family, severity)}: {e}; drop it from --eval_corruptions") from e
        ann.update(keypoint=kp, total_frames=kp.shape[1])
        if store.score is not None:
            ann["keypoint_score"] = score
        else:  # 3D without scores: the reader derives them from the coordinates, as from the source
            ann.pop("keypoint_score", None)
        anns.append(ann)
    out = {k: v for k, v in data.items() if k not in ("split", "annotations")}
    out.setdefault("layout", definition(layout) or layout.name)
    return {**out, "split": {split: [store.names[i] for i in order.tolist()]}, "annotations": anns}


def same_clips_as_project(family: str, written: np.dtype, stored: np.dtype) -> list[str]:
    """The project's data paths whose sweep scores exactly the exported clips of `family` (see the module doc).
    written: the keypoint dtype of the exported corrupted clips; stored: the source store's keypoint dtype."""
    if family == "clean":
        return [VOLUME, JOINTS]
    paths = [VOLUME] if family != "jitter" and written == np.float32 else []
    return paths + ([JOINTS] if written == stored else [])


def seed_entropy(family: str, severity: float) -> list[int] | None:
    """The entropy of a set's clip generators without the clip index (read from `corruption_rng` itself, and
    checked to end with the index), or None for the clean set."""
    if family == "clean":
        return None
    entropy = list(corruption_rng(family, severity, 7).bit_generator.seed_seq.entropy)
    assert entropy[-1] == 7, "corruption_rng's seed no longer ends with the clip index"
    return [int(e) for e in entropy[:-1]]


def set_entry(point: tuple[str, str, float, bool], written: np.dtype, stored: np.dtype) -> dict:
    """The manifest's entry of one sweep point (family, level, severity, suite)."""
    family, level, severity, suite = point
    name = set_name(family, severity)
    same = same_clips_as_project(family, written, stored)
    note = ""
    if family == "jitter":
        note = JITTER_NOTE
    elif family != "clean" and VOLUME not in same:
        note = f"written as {written}: the project's volume models read the float32 clips (--dtype float32)"
    if family != "clean" and JOINTS not in same:
        note += ("; " if note else "") + (
            f"written as {written}: the project's joint-coordinate models read them cast to {stored} (--dtype source)"
        )
    return {"name": name, "file": f"{name}.pkl", "family": family, "level": level, "severity": severity,
            "suite": suite, "seed_entropy": seed_entropy(family, severity), "same_clips_as_project": same,
            "note": note}  # fmt: skip


def open_source(args: argparse.Namespace) -> tuple[dict, KeypointStore, Layout, np.ndarray]:
    """The source file's dict and store, the joint layout its clips are corrupted in, and the split's store
    indices; UserError (one line) for a missing split or an unusable file."""
    data = load_pickle(args.ann_file, trusted=args.trust_data)
    store = pack_annotations(data)
    layout, note = choose_layout(store.num_joints, store.coord_dim, given=args.layout, declared=store.layout,
                                 source=Path(args.ann_file).name)  # fmt: skip
    if note:
        print(f"note: {note}")
    if args.split not in store.splits:
        known = ", ".join(sorted(store.splits)) or "none"
        raise UserError(f"{args.ann_file} has no split {args.split!r}; its splits: {known}; pass --split NAME")
    order = store.split_indices(args.split)
    if not len(order):
        raise UserError(f"split {args.split!r} of {args.ann_file} holds no clip")
    return data, store, layout, order


def sweep_of(args: argparse.Namespace) -> list[tuple[str, str, float, bool]]:
    """The sweep points of --eval_corruptions and --eval_alphas, as main.py's evaluation defines them."""
    suite = [] if args.eval_corruptions == ["none"] else args.eval_corruptions
    try:
        corruptions = tuple(parse_corruptions(suite))
    except ValueError as e:
        raise UserError(f"--eval_corruptions: {e}") from e
    points = sweep_points(EvalConfig(alphas=tuple(args.eval_alphas), corruptions=corruptions))
    names = [set_name(f, s) for f, _, s, _ in points]
    clash = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if clash:
        raise UserError(f"two severities are both named {clash!r} at 6 significant digits: drop one")
    return points


def run(args: argparse.Namespace) -> dict:
    """Export every set of the sweep into args.out_dir, then its manifest (written last), each file atomically.
    Returns the manifest."""
    check_writable(args.out_dir, "the output folder", "OUT_DIR", folder=True)
    points = sweep_of(args)
    data, store, layout, order = open_source(args)
    stored = store.keypoint.dtype
    written = np.dtype(np.float32) if args.dtype == "float32" else stored
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sets = []
    for point in points:
        entry = set_entry(point, written, stored)
        payload = export_set(data, store, order, args.split, (point[0], point[2]), layout, written)
        with atomic_write(out / entry["file"], "wb", "OUT_DIR") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        print(f"{entry['file']:<28} {len(order)} clips  same clips as the project for: "
              f"{', '.join(entry['same_clips_as_project']) or 'no data path (see the note)'}")  # fmt: skip
        sets.append(entry)
    source = Path(args.ann_file).resolve()
    num_classes = len(store.classes) if store.classes else int(store.labels.max()) + 1
    manifest = {
        "format": FORMAT, "version": 1,
        "source": {"file": str(source), "sha256": file_sha256(source), "clips": len(store)},
        "split": args.split, "layout": layout.name, "coord_dim": store.coord_dim, "num_classes": num_classes,
        "keypoint_dtype": {"clean": str(stored), "corrupted": str(written)}, "revision": git_revision(),
        "eval_corruptions": list(args.eval_corruptions), "eval_alphas": list(args.eval_alphas),
        "generator": {"rule": GENERATOR_RULE, "eval_noise_seed": EVAL_NOISE_SEED}, "jitter": JITTER_NOTE,
        "clips": [{"frame_dir": store.names[i], "label": int(store.labels[i]), "index": i} for i in order.tolist()],
        "sets": sets,
    }  # fmt: skip
    write_text(out / MANIFEST, json.dumps(manifest, indent=1), "OUT_DIR")
    print(f"{len(sets)} sets of {len(order)} clips and {out / MANIFEST} written")
    return manifest


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("ann_file", metavar="ANN_FILE", help="the pyskl annotation file the project evaluates on")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder for SET.pkl and manifest.json (made if missing)")
    p.add_argument("--split", default="xsub_val", help="the test split (a key of the file's 'split')")
    p.add_argument(
        "--eval_corruptions",
        nargs="+",
        default=["all"],
        metavar="SPEC",
        help="the suite, as main.py's flag: all, FAMILY, FAMILY:LEVEL, FAMILY:SEVERITY, or none",
    )
    p.add_argument(
        "--eval_alphas",
        type=alpha_level,
        nargs="+",
        default=list(DEFAULT_EVAL_ALPHAS),
        help="the jitter sweep, as main.py's flag (0 adds nothing: the clean set is always written)",
    )
    p.add_argument(
        "--layout",
        default=None,
        help="joint layout of the keypoints (a built-in name or FILE.json), as main.py's --layout; "
        "default: the file's declaration, else inferred from the joint count",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "source"],
        default="float32",
        help="keypoint dtype of the corrupted clips: float32 (what corrupt returns; the project's volume "
        "models read it) or the source file's (its joint-coordinate models cast to it)",
    )
    p.add_argument(
        "--trust_data",
        action="store_true",
        help="unpickle ANN_FILE whatever it holds (trusted files only), as main.py's --trust_data",
    )
    return p


def main(argv: list[str] | None = None) -> dict:
    return exit_on_user_error(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
