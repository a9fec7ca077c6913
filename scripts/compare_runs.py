"""Compare the robustness curves of several runs: one table, one CSV, one plot.

    python scripts/compare_runs.py runs/seed_poseconv runs/seed_motionbert
    python scripts/compare_runs.py runs/sweep/sweep_* --out runs/sweep --metric top5

Each RUN_DIR must hold the `robustness.csv` that main.py writes at the end of training (or after
`--evaluate`); a path to such a CSV file is accepted too. The table has one row per noise alpha and
one column per run, accuracies in %. Runs evaluated at different alphas are aligned on the union of
their alphas, blank where a run has no value. Output, into --out: `comparison.csv` (the same table)
and `comparison.png` (one curve per run).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

# Run as `python scripts/compare_runs.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.robustness import plot_curves, read_robustness  # noqa: E402

METRICS = ("top1", "top5")


def csv_path(run: Path) -> Path:
    """RUN_DIR -> RUN_DIR/robustness.csv; a path to a .csv file is returned as is."""
    return run if run.suffix == ".csv" else run / "robustness.csv"


def run_label(run: Path, taken: set[str]) -> str:
    """Column name of a run: its directory name, or the path as given when that name is already taken."""
    run = run.parent if run.suffix == ".csv" else run
    for label in (run.name, str(run)):
        if label not in taken:
            return label
    return next(f"{run} ({k})" for k in range(2, len(taken) + 3) if f"{run} ({k})" not in taken)


def load_curves(runs: list[Path], metric: str) -> dict[str, dict[float, float]]:
    """Run paths -> {column name: {alpha: accuracy in %}}, in the order given.

    Raises FileNotFoundError naming every run without a robustness.csv, and ValueError for a CSV that
    lacks the `alpha` or `metric` column or holds a value that is not a number.
    """
    missing = [str(r) for r in runs if not csv_path(r).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no robustness.csv in {', '.join(missing)}: main.py writes it when training ends; for an "
            "unfinished run, evaluate a checkpoint with `python main.py DATASET --evaluate RUN_DIR/best.pt`"
        )
    curves: dict[str, dict[float, float]] = {}
    for run in runs:
        path = csv_path(run)
        try:
            curve = {r["alpha"]: 100.0 * r[metric] for r in read_robustness(path)}
        except KeyError as e:
            raise ValueError(f"{path} has no {e.args[0]!r} column") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path} holds a value that is not a number ({e})") from None
        curves[run_label(run, set(curves))] = curve
    return curves


def align(curves: dict[str, dict[float, float]]) -> tuple[list[float], dict[str, list[float | None]]]:
    """Align the curves on the sorted union of their alphas: (alphas, {name: [accuracy or None]})."""
    alphas = sorted(set().union(*curves.values()))
    return alphas, {name: [c.get(a) for a in alphas] for name, c in curves.items()}


def format_table(alphas: list[float], columns: dict[str, list[float | None]], metric: str) -> str:
    """A plain-text table, one row per alpha, one column per run; blank where a run has no value."""
    rows = [[f"alpha \\ {metric} %", *columns]]
    for i, a in enumerate(alphas):
        rows.append([f"{a:g}", *("" if col[i] is None else f"{col[i]:.2f}" for col in columns.values())])
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    # alpha left-aligned, accuracies right-aligned so their decimal points line up
    return "\n".join(
        "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    )


def write_csv(alphas: list[float], columns: dict[str, list[float | None]], path: Path) -> None:
    """alpha, then one column of accuracies (%) per run; an empty cell where a run has no value."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["alpha", *columns])
        for i, a in enumerate(alphas):
            w.writerow([repr(a), *("" if col[i] is None else f"{col[i]:.4f}" for col in columns.values())])


def main(argv: list[str] | None = None) -> dict[str, dict[float, float]]:
    p = argparse.ArgumentParser(
        description="Compare the robustness curves (accuracy against noise alpha) of several runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (or robustness.csv files)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for comparison.csv and comparison.png")
    p.add_argument("--metric", default="top1", choices=METRICS, help="accuracy to compare")
    args = p.parse_args(argv)

    try:
        curves = load_curves(args.runs, args.metric)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    alphas, columns = align(curves)
    print(format_table(alphas, columns, args.metric))
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(alphas, columns, args.out / "comparison.csv")
    plot_curves(curves, args.out / "comparison.png", args.metric)
    print(f"wrote {args.out / 'comparison.csv'} and {args.out / 'comparison.png'}")
    return curves


if __name__ == "__main__":
    main()
