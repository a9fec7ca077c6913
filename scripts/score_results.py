"""Score another toolbox's predictions on the exported benchmark (scripts/export_corrupted.py): clean top-1, mCA,
relative robustness and each family's mean, computed as the project computes its own sweep.

    python scripts/export_corrupted.py ntu60_hrnet.pkl bench/
    # for every bench/SET.pkl, the toolbox's test run on it, its scores written to results/SET.pkl:
    #   pyskl: a copy of the config with ann_file = 'bench/SET.pkl', then
    #          bash tools/dist_test.sh CONFIG_SET CKPT 1 --out results/SET.pkl
    #   mmaction2 >= 1.0: python tools/test.py CONFIG CKPT --dump results/SET.pkl \
    #          --cfg-options test_dataloader.dataset.ann_file=bench/SET.pkl
    python scripts/score_results.py bench/manifest.json results/

The exported files keep the split's name (xsub_val by default), so the config's test split is unchanged.

Result files: one per exported set, found by name: RESULT_DIR/SET.pkl for the set SET.pkl (`clean.pkl`,
`missing_joints_0.1.pkl`, ...; the manifest's `sets[].file`), or files given one by one whose names are set
names. Each is the pickle a toolbox writes for a test run, with one entry per clip in the exported file's order
(pyskl and mmaction2 keep the annotation order of the split):
- pyskl and mmaction2 < 1.0 (`tools/test.py --out result.pkl`): a list of 1D arrays of class scores;
- mmaction2 >= 1.0 (`tools/test.py --dump result.pkl`): a list of dicts with 'pred_score' (a tensor or array
  of class scores) and 'gt_label'; the 1.0 release candidates' 'pred_scores' / 'gt_labels' {'item': ...} too.
When the entries carry their label, it must be the manifest's label of that clip (a check of the order).
Scores may be probabilities or logits: only their order counts (top-1, top-5).

Result files are unpickled with utils/safe_pickle.py: what an annotation file may hold, and torch tensors as
pickle writes them (`torch._utils._rebuild_tensor_v2` over a storage whose bytes `torch.load(weights_only=True)`
reads, on the CPU, where `pickle.load` would run `torch.load(weights_only=False)` on them). Anything else is
refused before it runs; --trust_data unpickles the files whatever they hold.

Each set's row is `engine.evaluate.accuracy` of its scores, the summary `engine.evaluate.summarize` of the rows,
both as `main.py` computes them; written into --out_dir (default: RESULT_DIR, or the folder of the first file):
robustness.csv, summary.json and plots (utils/robustness.py), under the checkpoint name --name. The sets that the
project's volume models see otherwise (jitter, see the manifest's `same_clips_as_project`) are scored all the
same: the note printed says which rows are the toolbox's own sampling of a jittered clip.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

# Run as `python scripts/score_results.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.evaluate import accuracy, summarize  # noqa: E402
from utils import safe_pickle  # noqa: E402
from utils.atomic import check_writable  # noqa: E402
from utils.errors import OneLineParser, UserError, exit_on_user_error  # noqa: E402
from utils.robustness import write_robustness  # noqa: E402
from utils.runtime import Runtime  # noqa: E402

PROG = "score_results.py"
FORMAT = "robust-skeleton-corrupted-sets"  # scripts/export_corrupted.py's manifest


def storage_from_bytes(data: bytes) -> object:
    """`torch.storage._load_from_bytes`, which a pickled tensor's storage calls, with torch's weights-only loader
    (the storage's own small torch file holds its data and nothing else) and on the CPU."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# The globals of a pickled CPU tensor (mmaction2 >= 1.0's 'pred_score' and 'gt_label'), beside what
# utils/safe_pickle.py allows any data file.
TENSOR_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): storage_from_bytes,
}


def load_manifest(path: str | Path) -> dict:
    """The manifest.json of an export; UserError (one line) for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: pass the manifest.json that scripts/export_corrupted.py wrote")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not JSON ({e}); pass the manifest.json of scripts/export_corrupted.py") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != 1:
        raise UserError(f"{path} is not a manifest of scripts/export_corrupted.py (format {FORMAT}, version 1)")
    return manifest


def result_files(manifest: dict, results: list[str]) -> dict[str, Path]:
    """The result file of every set, by set name: RESULT_DIR/SET.pkl for a folder, a file by its name.
    UserError for a set without one, or a file named after no set."""
    names = [s["name"] for s in manifest["sets"]]
    found: dict[str, Path] = {}
    for item in map(Path, results):
        if item.is_dir():
            found.update({n: item / f"{n}.pkl" for n in names if n not in found and (item / f"{n}.pkl").is_file()})
        elif item.is_file():
            if item.stem not in names:
                raise UserError(f"{item} is named after no exported set; name each result file SET.pkl, e.g. "
                                f"{names[-1]}.pkl for {names[-1]}.pkl")  # fmt: skip
            found[item.stem] = item
        else:
            raise UserError(f"{item} does not exist: pass the folder of the result files, or the files")
    missing = [n for n in names if n not in found]
    if missing:
        raise UserError(f"no result for {len(missing)} exported set(s), e.g. {missing[0]!r}: expected "
                        f"{missing[0]}.pkl in {', '.join(results)} (score every SET.pkl of the export)")  # fmt: skip
    return found


def as_array(value: object) -> np.ndarray:
    """A tensor, array, list or number as a numpy array (a tensor moved to the CPU, its dtype kept)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def entry_scores(entry: object) -> tuple[np.ndarray, int | None]:
    """(class scores (C,), label or None) of one result entry: an array / tensor / list of scores (pyskl,
    mmaction2 < 1.0) or a dict with 'pred_score' and 'gt_label' (mmaction2 >= 1.0; 'pred_scores' and
    'gt_labels' {'item': ...} in its release candidates)."""
    label = None
    if isinstance(entry, dict):
        if "pred_score" in entry:
            scores = entry["pred_score"]
        elif isinstance(entry.get("pred_scores"), dict) and "item" in entry["pred_scores"]:
            scores = entry["pred_scores"]["item"]
        else:
            raise ValueError(f"a dict without 'pred_score' (keys: {', '.join(map(str, list(entry)[:6]))})")
        raw = entry.get("gt_label", entry.get("gt_labels"))
        raw = raw.get("item") if isinstance(raw, dict) else raw
        if raw is not None:
            label = int(as_array(raw).reshape(-1)[0])
    else:
        scores = entry
    return as_array(scores).squeeze(), label


def read_scores(path: Path, labels: np.ndarray, num_classes: int, trusted: bool = False) -> np.ndarray:
    """The (N, C) class scores of a result file, N = len(labels) clips of its set, C = num_classes, in the
    entries' own dtype (float32 stays float32, as the project's probabilities are). UserError (one line)
    for an unreadable file, one that holds objects other than plain values, arrays and tensors (unless
    `trusted`: --trust_data), a wrong clip or class count, or labels other than the set's."""
    try:
        entries = safe_pickle.load(path, trusted=trusted, what="result file", extra=TENSOR_GLOBALS)
    except safe_pickle.UnsafePickleError:  # a UserError already: its line names the file and the type
        raise
    except Exception as e:  # truncated or foreign files raise many different types
        raise UserError(f"{path}: cannot unpickle ({type(e).__name__}: {e}); is it a result.pkl of a test run?") from e
    if not isinstance(entries, (list, tuple)):
        raise UserError(f"{path} holds a {type(entries).__name__}, not a list of per-clip class scores")
    if len(entries) != len(labels):
        raise UserError(f"{path} holds the scores of {len(entries)} clips, but its set has {len(labels)}: test the "
                        f"exported file whole, one entry per clip in the file's order")  # fmt: skip
    rows = []
    for i, entry in enumerate(entries):
        try:
            scores, label = entry_scores(entry)
        except ValueError as e:
            raise UserError(f"{path}: clip {i} is not a score entry: {e}") from e
        if scores.ndim != 1 or scores.shape[0] != num_classes:
            raise UserError(f"{path}: clip {i} has {scores.size} class scores (shape {scores.shape}), but the "
                            f"sets have {num_classes} classes: was the model trained on their labels?")  # fmt: skip
        if label is not None and label != labels[i]:
            raise UserError(f"{path}: clip {i} is labelled {label}, the exported set's clip {i} {labels[i]}: the "
                            f"results are of another file, or in another order than the file's")  # fmt: skip
        rows.append(scores)
    probs = np.stack(rows)  # (N, C)
    return probs if np.issubdtype(probs.dtype, np.floating) else probs.astype(np.float64)


def score(manifest: dict, files: dict[str, Path], name: str, trusted: bool = False) -> list[dict]:
    """The robustness rows of every exported set (robustness.csv's fields), as the project's sweep makes them.
    trusted: unpickle the result files whatever they hold (--trust_data)."""
    labels = np.array([c["label"] for c in manifest["clips"]], dtype=np.int64)
    rt = Runtime(torch.device("cpu"))
    rows = []
    for s in manifest["sets"]:
        res = accuracy(labels, read_scores(files[s["name"]], labels, int(manifest["num_classes"]), trusted), rt)
        rows.append({"checkpoint": name, "epoch": -1, "family": s["family"], "level": s["level"],
                     "severity": s["severity"], "suite": s["suite"], **res})  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> dict:
    """Score, print and write the report. Returns {'rows', 'summary', 'out_dir'}."""
    manifest = load_manifest(args.manifest)
    files = result_files(manifest, args.results)
    first = Path(args.results[0])
    out = Path(args.out_dir) if args.out_dir else (first if first.is_dir() else first.parent)
    check_writable(out, "the report's folder", "--out_dir", folder=True)
    name = args.name or out.resolve().name
    rows = score(manifest, files, name, args.trust_data)
    own = {s["name"] for s in manifest["sets"] if "volume" not in s["same_clips_as_project"]}
    for s, r in zip(manifest["sets"], rows, strict=True):
        mark = "  *" if s["name"] in own else ""
        print(f"{s['name']:<24} {r['level'] or '-':<9} top1 {100 * r['top1']:6.2f}  top5 {100 * r['top5']:6.2f}"
              f"  ({r['clips']} clips){mark}")  # fmt: skip
    summary = summarize(rows)
    families = "  ".join(f"{f} {100 * v:.2f}" for f, v in summary["families"].items())
    print(f"summary ({name}): clean top1 {100 * summary['clean']:.2f}, mCA {100 * summary['mCA']:.2f}, "
          f"relative robustness {summary['relative']:.3f}; families: {families or 'none'}")  # fmt: skip
    for note in dict.fromkeys(s["note"] for s in manifest["sets"] if s["name"] in own):
        print(f"* not the clips of the project's volume models: {note}")
    out.mkdir(parents=True, exist_ok=True)
    scale = "skeleton bounding-box diagonal" if manifest["coord_dim"] == 3 else "mean frame side"
    write_robustness(rows, {name: summary}, out, title=name, jitter_scale=scale, flag="--out_dir")
    print(f"robustness.csv and summary.json written to {out}")
    return {"rows": rows, "summary": summary, "out_dir": str(out)}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("manifest", metavar="MANIFEST", help="the manifest.json of scripts/export_corrupted.py")
    p.add_argument(
        "results", nargs="+", metavar="RESULT", help="a folder holding SET.pkl for every exported set, or the files"
    )
    p.add_argument("--out_dir", default=None, help="where to write the report (default: RESULT_DIR)")
    p.add_argument("--name", default=None, help="the checkpoint column of the report (default: its folder's name)")
    p.add_argument(
        "--trust_data",
        action="store_true",
        help="unpickle the result files whatever they hold (trusted files only): without it, they may hold only "
        "plain values, NumPy arrays and torch tensors, and any other object is refused before it runs",
    )
    return p


def main(argv: list[str] | None = None) -> dict:
    return exit_on_user_error(PROG, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
