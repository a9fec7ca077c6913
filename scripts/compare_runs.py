"""Compare the robustness of several runs on every corruption family: a summary, one table, plots.

    python scripts/compare_runs.py runs/seed_poseconv runs/seed_motionbert
    python scripts/compare_runs.py runs/sweep/sweep_* --out runs/sweep --metric top5
    python scripts/compare_runs.py runs/x/ce_s0 runs/x/ce_s1 runs/x/tcl_s0 runs/x/tcl_s1 --seeds --checkpoint last

Each RUN_DIR must hold the `robustness.csv` that main.py writes at the end of training (or after
`--evaluate`); a path to such a CSV file is accepted too, and so is the older format (alpha, top1, top5,
clips), read as checkpoint 'best' with jitter rows only (`utils.robustness.read_robustness`). Everything
is computed from the rows of one checkpoint per run (`--checkpoint`; a run holding a single checkpoint,
as an `--evaluate` CSV does, uses it whatever its name) and one accuracy (`--metric`).

Printed, then written into --out:
- the summary, one line per run: clean accuracy, mCA (the mean accuracy over the rows that count in the
  suite), relative robustness mCA / clean, and the mean over each family's suite rows (`summary.csv`);
- the table, one row per (family, level, severity) with the clean row first, one column per run,
  accuracies in %, blank where a run has no such row (`comparison.csv`);
- plots: `comparison.png` (jitter, accuracy against noise alpha, the clean row at alpha 0) and
  `comparison_FAMILY.png` for every other family present (the clean row at severity 0).

With --seeds, runs whose names differ only by a trailing `_s<digits>` (ce_s0, ce_s1, ce_s2 -> ce) form
one column: every number becomes mean ± sample standard deviation (ddof 1) over the group's runs, with
the group size n (a number that fewer runs of the group hold is marked with its own n).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

# Run as `python scripts/compare_runs.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.pipeline.corruptions import FAMILIES  # noqa: E402
from utils.atomic import atomic_write, check_writable  # noqa: E402
from utils.errors import OneLineParser, UserError  # noqa: E402
from utils.robustness import plot_curves, read_robustness  # noqa: E402

METRICS = ("top1", "top5")
CHECKPOINTS = ("best", "last")
SEED_SUFFIX = re.compile(r"(.+)_s\d+")
STATS = ("clean", "mCA", "relative")  # the summary's numbers before the per-family means
# With --seen: the mCA over the suite rows of the seen families and of the others, and unseen mCA / clean.
SPLIT_STATS = ("mCA_seen", "mCA_unseen", "unseen_relative")


def stat_names(seen: list[str] | None) -> tuple[str, ...]:
    return STATS + SPLIT_STATS if seen else STATS


Key = tuple[str, float]  # (family, severity): one row of the table


@dataclass
class Run:
    label: str  # its column without --seeds
    path: Path  # the robustness.csv
    checkpoint: str  # the checkpoint whose rows are compared
    epoch: int
    acc: dict[Key, float]  # (family, severity) -> accuracy in %
    levels: dict[Key, str]  # (family, severity) -> level name ('' for none)
    suite: list[Key]  # the rows that count in the mCA


def csv_path(run: Path) -> Path:
    """RUN_DIR -> RUN_DIR/robustness.csv; a path to a .csv file is returned as is."""
    return run if run.suffix == ".csv" else run / "robustness.csv"


def run_dir(run: Path) -> Path:
    """The run directory of RUN_DIR or of RUN_DIR/robustness.csv."""
    return run.parent if run.suffix == ".csv" else run


def run_label(run: Path, taken: set[str]) -> str:
    """Column name of a run: its directory name, or the path as given when that name is already taken."""
    run = run_dir(run)
    for label in (run.name, str(run)):
        if label not in taken:
            return label
    return next(f"{run} ({k})" for k in range(2, len(taken) + 3) if f"{run} ({k})" not in taken)


def read_rows(path: Path) -> list[dict]:
    """The rows of a robustness.csv; ValueError naming the file when it cannot be read as one."""
    try:
        rows = read_robustness(path)
    except KeyError as e:
        raise ValueError(f"{path} has no {e.args[0]!r} column") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text CSV file") from None
    except csv.Error as e:
        raise ValueError(f"{path} is not a valid CSV file ({e})") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path} holds a value that is not a number ({e})") from None
    if not rows:
        raise ValueError(f"{path} holds no rows")
    return rows


def pick_checkpoint(rows: list[dict], wanted: str, path: Path) -> str:
    """`wanted` when the file holds it, else its only checkpoint; ValueError when it holds several others."""
    held = list(dict.fromkeys(r["checkpoint"] for r in rows))
    if wanted in held:
        return wanted
    if len(held) == 1:
        return held[0]
    raise ValueError(f"{path} has no checkpoint {wanted!r} (it holds {', '.join(map(repr, held))})")


def load_run(run: Path, label: str, metric: str, checkpoint: str) -> Run:
    path = csv_path(run)
    rows = read_rows(path)
    ckpt = pick_checkpoint(rows, checkpoint, path)
    out = Run(label, path, ckpt, -1, {}, {}, [])
    for r in rows:
        if r["checkpoint"] != ckpt:
            continue
        key = (r["family"], 0.0 if r["family"] == "clean" else r["severity"])
        if key in out.acc:
            raise ValueError(f"{path} holds two rows for {key[0]} at severity {key[1]:g} of checkpoint {ckpt!r}")
        if not math.isfinite(r[metric]):
            raise ValueError(f"{path} holds a {metric} that is not a finite number ({r[metric]})")
        out.epoch = r["epoch"]
        out.acc[key] = 100.0 * r[metric]
        out.levels[key] = r["level"] or ""
        if r["suite"]:
            out.suite.append(key)
    return out


def load_runs(runs: list[Path], metric: str, checkpoint: str) -> list[Run]:
    """The runs, in the order given. FileNotFoundError naming every run without a robustness.csv,
    ValueError for a file that is not a robustness.csv or lacks the checkpoint."""
    missing = [str(r) for r in runs if not csv_path(r).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no robustness.csv in {', '.join(missing)}: main.py writes it when training ends; for an "
            "unfinished run, evaluate a checkpoint with `python main.py DATASET --evaluate RUN_DIR/best.pt`"
        )
    loaded: list[Run] = []
    for run in runs:
        loaded.append(load_run(run, run_label(run, {r.label for r in loaded}), metric, checkpoint))
    return loaded


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarize(run: Run, seen: list[str] | None = None) -> dict:
    """clean, mCA (mean over the suite rows), relative (mCA / clean) and {family: mean of its suite rows};
    with `seen` (family names), also mCA_seen and mCA_unseen (the mean over the suite rows of those
    families and of the others, whatever the run trained on: a fixed split) and unseen_relative
    (mCA_unseen / clean). None where a run has no such number (no clean row, no suite rows)."""
    clean = run.acc.get(("clean", 0.0))
    mca = _mean([run.acc[k] for k in run.suite])
    families: dict[str, list[float]] = {}
    for k in run.suite:
        families.setdefault(k[0], []).append(run.acc[k])
    out = {
        "clean": clean,
        "mCA": mca,
        "relative": mca / clean if mca is not None and clean else None,
        "families": {f: statistics.fmean(v) for f, v in families.items()},
    }
    if seen:
        unseen = _mean([run.acc[k] for k in run.suite if k[0] not in seen])
        out |= {
            "mCA_seen": _mean([run.acc[k] for k in run.suite if k[0] in seen]),
            "mCA_unseen": unseen,
            "unseen_relative": unseen / clean if unseen is not None and clean else None,
        }
    return out


def group_runs(runs: list[Run], seeds: bool) -> dict[str, list[Run]]:
    """{column: its runs}: one column per run, or with `seeds` one per group of runs in the same folder
    whose names differ only by a trailing `_s<digits>`; columns in the order of their first run."""
    if not seeds:
        return {r.label: [r] for r in runs}
    keyed: dict[tuple, list[Run]] = {}
    names: dict[tuple, Path] = {}
    for i, r in enumerate(runs):
        d = run_dir(r.path)
        m = SEED_SUFFIX.fullmatch(d.name)
        key = (str(d.parent.resolve()), m[1]) if m else ("run", i)
        keyed.setdefault(key, []).append(r)
        names.setdefault(key, d.parent / m[1] if m else d)
    groups: dict[str, list[Run]] = {}
    for key, members in keyed.items():
        groups[run_label(names[key], set(groups))] = members
    return groups


@dataclass
class Stat:
    """A number over the runs of a column: mean, sample std (None for a single value), count."""

    mean: float
    std: float | None
    n: int


def stat(values: list[float | None]) -> Stat | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals))


def fmt(s: Stat | None, size: int, digits: int = 2) -> str:
    """'81.25', '81.25 ± 1.50', with ' (n=2)' when fewer runs than the column's `size` hold it."""
    if s is None:
        return ""
    text = f"{s.mean:.{digits}f}" + ("" if s.std is None else f" ± {s.std:.{digits}f}")
    return text + (f" (n={s.n})" if s.n < size else "")


def format_rows(rows: list[list[str]], left: int) -> str:
    """Aligned columns: the first `left` left-aligned, the numbers right-aligned; [] is a blank line."""
    widths = [max(len(row[j]) for row in rows if row) for j in range(len(next(r for r in rows if r)))]
    return "\n".join(
        "  ".join([c.ljust(w) for c, w in zip(row[:left], widths, strict=False)]
                  + [c.rjust(w) for c, w in zip(row[left:], widths[left:], strict=True)]).rstrip()
        if row else ""
        for row in rows
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        description="Compare the robustness of several runs on every corruption family: summary (clean, mCA, "
        "relative robustness, per-family means), per-severity table and plots.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories (or robustness.csv files)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for summary.csv, comparison.csv and the plots")
    p.add_argument("--metric", default="top1", choices=METRICS, help="accuracy to compare")
    p.add_argument(
        "--checkpoint",
        default="best",
        choices=CHECKPOINTS,
        help="checkpoint whose rows are compared (a run holding a single checkpoint uses that one)",
    )
    p.add_argument(
        "--seeds",
        action="store_true",
        help="one column per group of runs named NAME_s<digits>: mean ± std (ddof 1) over the seeds",
    )
    p.add_argument(
        "--seen",
        nargs="+",
        choices=list(FAMILIES),
        metavar="FAMILY",
        help="a fixed split of the suite: the summary adds the mCA over these families (mCA_seen), over the "
        "others (mCA_unseen) and mCA_unseen / clean (unseen_relative), for every run whatever it trained on",
    )
    return p


def table_keys(runs: list) -> tuple[list, list[str]]:
    """The (family, severity) rows of the table, the clean row first, then the families in
    datasets/pipeline/corruptions.py's order (any other after them, in the order the runs hold them)."""
    keys = list(dict.fromkeys(k for r in runs for k in r.acc))
    held = dict.fromkeys(f for f, _ in keys if f != "clean")
    families = [f for f in FAMILIES if f in held] + [f for f in held if f not in FAMILIES]
    keys = [("clean", 0.0)] * (("clean", 0.0) in keys) + sorted(
        (k for k in keys if k[0] != "clean"), key=lambda k: (families.index(k[0]), k[1])
    )
    return keys, families


def summarize_groups(
    groups: dict, sums: dict, suite_families: list[str], seeds: bool, names: tuple[str, ...] = STATS
) -> dict[str, dict]:
    """One summary entry per column: n, runs, the means of `names` (STATS, and SPLIT_STATS with --seen) and
    of each family, their std and stats."""
    summary: dict[str, dict] = {}
    for col, members in groups.items():
        ms = [sums[r.label] for r in members]
        entry: dict = {"n": len(members), "runs": [r.label for r in members]}
        if not seeds:
            entry |= {"checkpoint": members[0].checkpoint, "epoch": members[0].epoch}
        stats = {name: stat([m[name] for m in ms]) for name in names}
        fam_stats = {f: stat([m["families"].get(f) for m in ms]) for f in suite_families}
        entry |= {name: s and s.mean for name, s in stats.items()}
        entry["families"] = {f: s.mean for f, s in fam_stats.items() if s}
        entry["std"] = {name: s and s.std for name, s in stats.items()}
        entry["std"]["families"] = {f: s.std for f, s in fam_stats.items() if s}
        entry["stats"] = {**stats, **fam_stats}
        summary[col] = entry
    return summary


def print_tables(args, summary, suite_families, groups, keys, levels, cells) -> None:
    """The summary, then the table: one block per family, the clean row first."""
    metric = args.metric.replace("top", "top-")
    print(f"summary: checkpoint {args.checkpoint}, {metric} accuracy (%), mCA over the suite, relative = mCA / clean")
    head = ["group", "n"] if args.seeds else ["run", "checkpoint", "epoch"]
    names = stat_names(args.seen)
    rows = [[*head, *names, *suite_families]]
    for col, e in summary.items():
        first = [col, str(e["n"])] if args.seeds else [col, e["checkpoint"], str(e["epoch"]) if e["epoch"] >= 0 else ""]
        nums = [fmt(e["stats"][name], e["n"], 3 if name.endswith("relative") else 2) for name in names]
        rows.append([*first, *nums, *(fmt(e["stats"][f], e["n"]) for f in suite_families)])
    print(format_rows(rows, len(head)))
    print(f"\n{metric} accuracy (%) by family, level and severity")
    rows = [["family", "level", "severity", *groups]]
    for i, k in enumerate(keys):
        if i and k[0] != keys[i - 1][0]:
            rows.append([])
        rows.append([k[0], levels[k] or "-", f"{k[1]:g}", *(fmt(cells[k][c], len(groups[c])) for c in groups)])
    print(format_rows(rows, 3))


def _num(x: float | None, digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def write_outputs(args, summary, suite_families, groups, keys, levels, cells, families) -> list[Path]:
    """summary.csv, comparison.csv and one plot per family in args.out, each written atomically; returns the
    paths. Raises UserError (one line) when the disk is full."""
    args.out.mkdir(parents=True, exist_ok=True)
    written = [args.out / "summary.csv", args.out / "comparison.csv"]
    with atomic_write(written[0], "w", "--out", newline="") as f:
        w = csv.writer(f)
        names = [*stat_names(args.seen), *suite_families]
        if args.seeds:
            w.writerow(["group", "n", "runs", *(c for name in names for c in (name, f"{name}_std"))])
        else:
            w.writerow(["run", "checkpoint", "epoch", *names])
        for col, e in summary.items():
            vals = [e["stats"][name] for name in names]
            if args.seeds:
                pairs = [c for s in vals for c in (_num(s and s.mean, 6), _num(s and s.std, 6))]
                w.writerow([col, e["n"], " ".join(e["runs"]), *pairs])
            else:
                w.writerow([col, e["checkpoint"], e["epoch"], *(_num(s and s.mean, 6) for s in vals)])
    with atomic_write(written[1], "w", "--out", newline="") as f:
        # family, level, severity, one column per run or group (the mean); with --seeds then `GROUP std`.
        w = csv.writer(f)
        w.writerow(["family", "level", "severity", *groups, *((f"{c} std" for c in groups) if args.seeds else ())])
        for k in keys:
            means = [_num(s and s.mean) for s in cells[k].values()]
            stds = [_num(s and s.std) for s in cells[k].values()] if args.seeds else []
            w.writerow([k[0], levels[k], repr(k[1]), *means, *stds])
    for family in families:
        curves = {}
        for col in groups:
            points = {k[1]: s.mean for k in keys if (s := cells[k][col]) and k[0] in ("clean", family)}
            if any(cells[k][col] for k in keys if k[0] == family):
                curves[col] = points
        path = args.out / ("comparison.png" if family == "jitter" else f"comparison_{family}.png")
        xlabel = "noise alpha (clean at 0)" if family == "jitter" else f"{family} severity (clean at 0)"
        plot_curves(curves, path, args.metric, xlabel=xlabel, flag="--out")
        written.append(path)
    return written


def fail(e: Exception) -> NoReturn:
    """The one line of an error, exit code 2."""
    print("compare_runs.py: error: " + str(e).replace("\n", " "), file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    try:
        check_writable(args.out, "the output folder", "--out", folder=True)
        runs = load_runs(args.runs, args.metric, args.checkpoint)
    except (FileNotFoundError, ValueError, UserError) as e:
        fail(e)
    groups = group_runs(runs, args.seeds)
    sums = {r.label: summarize(r, args.seen) for r in runs}
    keys, families = table_keys(runs)
    levels = {k: next((r.levels[k] for r in runs if r.levels.get(k)), "") for k in keys}
    suite_families = [f for f in families if any(f in s["families"] for s in sums.values())]
    summary = summarize_groups(groups, sums, suite_families, args.seeds, stat_names(args.seen))
    cells = {
        k: {col: stat([r.acc.get(k) for r in members]) for col, members in groups.items()} for k in keys
    }  # fmt: skip
    print_tables(args, summary, suite_families, groups, keys, levels, cells)
    try:
        written = write_outputs(args, summary, suite_families, groups, keys, levels, cells, families)
    except UserError as e:
        fail(e)
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return {
        "checkpoint": args.checkpoint,
        "metric": args.metric,
        "groups": {col: [r.label for r in members] for col, members in groups.items()},
        "summary": summary,
        # (family, level, severity) -> {column: mean accuracy %}, only where the column has the row
        "table": {(k[0], levels[k], k[1]): {c: s.mean for c, s in cells[k].items() if s} for k in keys},
        "table_std": {(k[0], levels[k], k[1]): {c: s.std for c, s in cells[k].items() if s} for k in keys},
        "written": written,
    }


if __name__ == "__main__":
    main()
