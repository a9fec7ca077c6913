"""Leave one family out: how a model does on the one corruption family it never trained on.

    python scripts/lofo_table.py runs/unseen_benchmark/gcn --seed 0

FOLDER holds, as scripts/unseen_benchmark.sh writes them, `lofo_FAMILY_sSEED` runs (trained on the suite's
mix without FAMILY), `mix_all_sSEED` (the mix of every family) and, when present, `ce_sSEED` (no corrupted
view). One row per FAMILY with a lofo run: its clean top-1, its accuracy on FAMILY (the mean of the suite rows
of that family, the last checkpoint), and FAMILY's accuracy under mix_all (trained on it) and ce (trained on
nothing): held out - mix_all is what seeing the family in training is worth, held out - ce what the other
families carry over to it. A last line gives the means over the rows. Top-1 %. Writes FOLDER/lofo.csv.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.pipeline.corruptions import FAMILIES  # noqa: E402
from scripts.compare_runs import format_rows, load_run, summarize  # noqa: E402
from utils.atomic import atomic_write, check_writable  # noqa: E402
from utils.errors import OneLineParser, UserError  # noqa: E402

COLUMNS = ("family", "clean", "held_out", "mix_all", "ce", "held_out_minus_mix_all", "held_out_minus_ce")


def family_scores(run: Path) -> tuple[float | None, dict[str, float]] | None:
    """(clean top-1, {family: mean of its suite rows}) of a run's last checkpoint; None without robustness.csv."""
    if not (run / "robustness.csv").is_file():
        return None
    s = summarize(load_run(run, run.name, "top1", "last"))
    return s["clean"], s["families"]


def lofo_rows(folder: Path, seed: int) -> list[dict]:
    """One dict per family that has a lofo run (in the suite's order), with COLUMNS' values (None where missing)."""
    ref = {name: family_scores(folder / f"{name}_s{seed}") for name in ("mix_all", "ce")}
    rows = []
    for family in FAMILIES:
        got = family_scores(folder / f"lofo_{family}_s{seed}")
        if got is None:
            continue
        clean, fams = got
        row = {"family": family, "clean": clean, "held_out": fams.get(family)}
        for name, scores in ref.items():
            row[name] = scores[1].get(family) if scores else None
            diff = None if row[name] is None or row["held_out"] is None else row["held_out"] - row[name]
            row[f"held_out_minus_{name}"] = diff
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = OneLineParser(description="Leave-one-family-out table of scripts/unseen_benchmark.sh's runs.")
    p.add_argument("folder", type=Path, help="the folder of the lofo_FAMILY_sSEED, mix_all_sSEED and ce_sSEED runs")
    p.add_argument("--seed", type=int, default=0, help="the seed of the runs to read")
    args = p.parse_args(argv)
    try:
        check_writable(args.folder / "lofo.csv", "the table", "FOLDER")
        rows = lofo_rows(args.folder, args.seed)
    except (OSError, ValueError, UserError) as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    if not rows:
        p.exit(2, f"{p.prog}: error: no lofo_FAMILY_s{args.seed} run with a robustness.csv in {args.folder}\n")
    mean = {c: statistics.fmean(v) if (v := [r[c] for r in rows if r[c] is not None]) else None for c in COLUMNS[1:]}
    cells = [[r["family"], *("" if r[c] is None else f"{r[c]:.2f}" for c in COLUMNS[1:])] for r in rows]
    cells.append(["mean", *("" if mean[c] is None else f"{mean[c]:.2f}" for c in COLUMNS[1:])])
    print(format_rows([list(COLUMNS), *cells], 1))
    try:
        with atomic_write(args.folder / "lofo.csv", "w", "FOLDER", newline="") as f:
            csv.writer(f).writerows([COLUMNS, *cells])
    except UserError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    return rows


if __name__ == "__main__":
    main()
