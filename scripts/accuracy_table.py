"""One row of an accuracy table over seeds: each seed's clean top-1, their mean and sample std, the run times.

    python scripts/accuracy_table.py --row "PoseConv3D joints" runs/acc/pose_s0 runs/acc/pose_s1 runs/acc/pose_s2
    python scripts/accuracy_table.py --row "joint + bone" runs/acc/joint_s0,runs/acc/bone_s0 \
        runs/acc/joint_s1,runs/acc/bone_s1 runs/acc/joint_s2,runs/acc/bone_s2

Each SEED argument is one seed's run directory (holding the `test_probs.npz` of `main.py --save_test_probs`
and the run's log beside it as RUN.log), or several joined by commas: their probabilities are fused with equal
weights (scripts/fuse.py) and the fusion is that seed's result. Printed: one Markdown table row,
`| row | s0 / s1 / s2 | mean ± std | time |`, top-1 in %, std with ddof 1; time is the range of the runs'
`done in N s wall time` lines (for a fused seed, the sum over its runs: what the fused result costs).
`--header` prints the table's header first.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

# Run as `python scripts/accuracy_table.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.fuse import fuse, load_probs, topk_accuracy  # noqa: E402
from utils.errors import OneLineParser, UserError, exit_on_user_error  # noqa: E402

HEADER = "| configuration | clean top-1, per seed | mean ± std | wall time per seed |\n|---|---|---|---|"
_DONE = re.compile(r"done in (\d+) s wall time")


def run_seconds(run: Path) -> int | None:
    """The wall time main.py printed at the end of RUN.log (None when there is no such log or line)."""
    log = run.parent / f"{run.name}.log"
    if not log.is_file():
        return None
    found = _DONE.findall(log.read_text(errors="replace"))
    return int(found[-1]) if found else None


def seed_result(spec: str) -> tuple[float, int | None]:
    """(top-1 in %, wall seconds or None) of one seed: a run, or runs joined by commas fused with weight 1."""
    runs = [Path(r) for r in spec.split(",") if r]
    if not runs:
        raise UserError(f"empty seed argument {spec!r}: give a run directory, or several joined by commas")
    labels, fused, _ = fuse([load_probs(r) for r in runs], [1.0] * len(runs))
    times = [run_seconds(r) for r in runs]
    seconds = None if None in times else sum(times)
    return 100 * topk_accuracy(labels, fused, 1), seconds


def format_row(name: str, results: list[tuple[float, int | None]]) -> str:
    """The Markdown row of one configuration from its seeds' (top-1 %, seconds) results."""
    accs = [a for a, _ in results]
    mean = statistics.fmean(accs)
    spread = f"{mean:.1f} ± {statistics.stdev(accs):.1f}" if len(accs) > 1 else f"{mean:.1f}"
    secs = [s for _, s in results if s is not None]
    time = "-" if not secs else f"{min(secs)} s" if min(secs) == max(secs) else f"{min(secs)}-{max(secs)} s"
    return f"| {name} | {' / '.join(f'{a:.2f}' for a in accs)} | {spread} | {time} |"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="accuracy_table.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--row", required=True, help="the configuration's name, the row's first cell")
    p.add_argument("seeds", nargs="+", metavar="SEED", help="one seed's run directory, or runs joined by commas")
    p.add_argument("--header", action="store_true", help="print the table's header first")
    return p


def run(args: argparse.Namespace) -> str:
    row = format_row(args.row, [seed_result(s) for s in args.seeds])
    if args.header:
        print(HEADER)
    print(row)
    return row


def main(argv: list[str] | None = None) -> str:
    return exit_on_user_error("accuracy_table.py", run, build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
