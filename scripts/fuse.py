"""Late fusion of several runs' test probabilities: the weighted mean of their class probabilities per clip,
as the field's multi-stream results combine a joint, a bone and their motion models.

    python main.py custom --ann_file msr3d.pkl --stream joint --save_test_probs --name joint ...
    python main.py custom --ann_file msr3d.pkl --stream bone --save_test_probs --name bone ...
    python scripts/fuse.py runs/joint runs/bone --weights 1 1

Each RUN is a run directory holding the `test_probs.npz` that `main.py --save_test_probs` writes (clip names,
labels, probabilities of the clean test clips) or the path of such a file. The runs must hold the same test
clips with the same labels and classes (their order may differ). The fused probability of clip i is
p_i = sum_r w_r p_ri / sum_r w_r. Printed: top-1 and top-5 of each run and of the fusion, in %.

With --sweep each RUN holds the `sweep_probs.npz` that `--save_test_probs` also writes (the probabilities of
every row of the run's robustness sweep); the runs must have been swept on the same corruptions. Each row is
fused as above; printed: clean top-1, mCA (the mean top-1 of the suite's rows) and each family's mean, in %.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# Run as `python scripts/fuse.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.evaluate import summarize  # noqa: E402
from engine.fusion import fuse as fuse_probs  # noqa: E402
from engine.report import SWEEP_PROBS, TEST_PROBS  # noqa: E402
from utils.errors import OneLineParser, UserError, exit_on_user_error  # noqa: E402


def read_npz(path: str | Path, default_name: str, keys: tuple[str, ...]) -> tuple[Path, dict]:
    """(the file, its arrays `keys`) of a run directory (its `default_name`) or such a file; UserError otherwise."""
    path = Path(path)
    file = path / default_name if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{file} does not exist: train or --evaluate the run with --save_test_probs first")
    try:
        with np.load(file) as z:
            return file, {k: z[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError) as e:  # EOFError: an empty or truncated file
        raise UserError(f"{file} is not a {default_name} of main.py --save_test_probs ({type(e).__name__}: {e})") from e


def load_probs(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(names (N,) str, labels (N,) int64, probs (N, C) float64) of a run directory or a test_probs.npz."""
    file, z = read_npz(path, TEST_PROBS, ("names", "labels", "probs"))
    names, labels, probs = z["names"].astype(str), z["labels"].astype(np.int64), z["probs"].astype(np.float64)
    if probs.ndim != 2 or len(names) != len(probs) or len(labels) != len(probs):
        raise UserError(f"{file}: names, labels and probs (N, C) do not match in length")
    return names, labels, probs


def topk_accuracy(labels: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of the (N,) labels among the k most probable classes of (N, C) probs (ties: lower class first)."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, : min(k, probs.shape[1])]  # (N, k)
    return float((top == labels[:, None]).any(axis=1).mean())


def fuse(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], weights: list[float]) -> tuple[np.ndarray, ...]:
    """Weighted mean of the runs' probabilities, clip by clip (by name, in the first run's order).

    runs: (names (N,), labels (N,), probs (N, C)) each. weights: one per run, >= 0, not all 0.
    Returns (labels (N,), fused probs (N, C), each run's probs reordered as the first run's (R, N, C)).
    Raises UserError when the runs hold different clips, labels or class counts.
    """
    if len(weights) != len(runs):
        raise UserError(f"got {len(weights)} weights for {len(runs)} runs: give one weight per run")
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0 or not np.isfinite(w).all():
        raise UserError(f"weights must be finite, >= 0 and not all 0, got {weights}")
    names, labels, _ = runs[0]
    aligned = []
    for i, (n, y, p) in enumerate(runs):
        if set(n) != set(names) or len(n) != len(names):
            raise UserError(f"run {i + 1} holds other test clips than run 1: fuse runs of the same test split")
        if p.shape[1] != runs[0][2].shape[1]:
            raise UserError(f"run {i + 1} has {p.shape[1]} classes, run 1 {runs[0][2].shape[1]}")
        order = {name: j for j, name in enumerate(n)}
        idx = np.array([order[name] for name in names])
        if not np.array_equal(y[idx], labels):
            raise UserError(f"run {i + 1} labels its clips differently from run 1: fuse runs of the same data")
        aligned.append(p[idx])
    return labels, fuse_probs(aligned, tuple(weights)), np.stack(aligned)  # (N, C), (R, N, C)


def load_sweep(path: str | Path) -> dict:
    """A run's sweep_probs.npz (main.py --save_test_probs): names, labels, probs (P, N, C) and the P rows'
    family, severity and suite flags."""
    file, out = read_npz(path, SWEEP_PROBS, ("names", "labels", "probs", "family", "severity", "suite"))
    out["names"], out["family"] = out["names"].astype(str), out["family"].astype(str)
    if out["probs"].ndim != 3 or out["probs"].shape[:2] != (len(out["family"]), len(out["names"])):
        raise UserError(f"{file}: probs is not (rows, clips, classes) of its rows and clips")
    return out


def fuse_sweep(sweeps: list[dict], weights: list[float]) -> dict:
    """Fuse the runs' probabilities row by row of their (identical) sweeps; each run's and the fusion's clean
    top-1, mCA (mean top-1 of the suite's rows) and per-family means of the suite's rows, as fractions."""
    rows = [(f, float(v)) for f, v in zip(sweeps[0]["family"], sweeps[0]["severity"], strict=True)]
    for i, s in enumerate(sweeps[1:], 2):
        if [(f, float(v)) for f, v in zip(s["family"], s["severity"], strict=True)] != rows:
            raise UserError(f"run {i} was scored on other corruptions than run 1: sweep them with the same flags")
    per_row = [
        fuse([(s["names"], s["labels"], s["probs"][r]) for s in sweeps], weights) for r in range(len(rows))
    ]  # (labels, fused, each) per row
    suite = sweeps[0]["suite"]

    def scores(top1: np.ndarray) -> dict:  # top1 (P,) of one model, summarised as main.py summarises its sweep
        table = [{"epoch": 0, "family": f, "suite": bool(s), "top1": float(a)}
                 for (f, _), s, a in zip(rows, suite, top1, strict=True)]  # fmt: skip
        summary = summarize(table)
        return {key: summary[key] for key in ("clean", "mCA", "families")}

    fused = np.array([topk_accuracy(y, p, 1) for y, p, _ in per_row])
    each = np.array([[topk_accuracy(y, e[k], 1) for y, _, e in per_row] for k in range(len(sweeps))])
    return {"fused": scores(fused), "runs": [scores(t) for t in each]}


def print_sweep(names: list[str], weights: list[float], result: dict) -> None:
    families = list(result["fused"]["families"])
    width = max(len(n) for n in [*names, "fused"])
    print(f"{'run':<{width}}  weight  clean    mCA  " + "  ".join(f"{f:>14}" for f in families))
    for name, w, r in [*zip(names, weights, result["runs"], strict=True), ("fused", "", result["fused"])]:
        fams = "  ".join(f"{100 * r['families'][f]:14.2f}" for f in families)
        print(f"{name:<{width}}  {w:6}  {100 * r['clean']:5.2f}  {100 * r['mCA']:5.2f}  {fams}")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="fuse.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help=f"run directory with {TEST_PROBS}, or such a file")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one weight per run (default: all 1)")
    p.add_argument(
        "--sweep",
        action="store_true",
        help=f"fuse every row of the runs' robustness sweeps ({SWEEP_PROBS}): clean top-1, mCA and each family",
    )
    return p


def run(args: argparse.Namespace) -> dict:
    if args.sweep:
        sweeps = [load_sweep(r) for r in args.runs]
        weights = args.weights if args.weights is not None else [1.0] * len(sweeps)
        result = fuse_sweep(sweeps, weights)
        print_sweep(args.runs, [f"{w:g}" for w in weights], result)
        return result
    runs = [load_probs(r) for r in args.runs]
    weights = args.weights if args.weights is not None else [1.0] * len(runs)
    labels, fused, each = fuse(runs, weights)
    width = max(len(r) for r in args.runs)
    print(f"{'run':<{width}}  weight   top1   top5   ({len(labels)} clips)")
    for r, w, p in zip(args.runs, weights, each, strict=True):
        acc1, acc5 = topk_accuracy(labels, p, 1), topk_accuracy(labels, p, 5)
        print(f"{r:<{width}}  {w:6g}  {100 * acc1:5.2f}  {100 * acc5:5.2f}")
    top1, top5 = topk_accuracy(labels, fused, 1), topk_accuracy(labels, fused, 5)
    print(f"{'fused':<{width}}  {'':6}  {100 * top1:5.2f}  {100 * top5:5.2f}")
    return {"top1": top1, "top5": top5, "clips": len(labels)}


def main(argv: list[str] | None = None) -> dict:
    return exit_on_user_error("fuse.py", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
