"""The robustness table of a run: accuracy on the clean test clips and under every corruption, as CSV,
a summary (JSON) and one plot per corruption family.

robustness.csv, one row per (checkpoint, family, severity):
    checkpoint  'best' (chosen on the validation part) or 'last', or the evaluated file's name
    epoch       the epoch the checkpoint was written after
    family      'clean', or a family of datasets/pipeline/corruptions.py ('jitter' holds the alpha sweep)
    level       the family's named level ('light', 'moderate', 'severe') or '' for other severities
    severity    the family's parameter (jitter: alpha)
    suite       1 when the row counts in the mean corruption accuracy (mCA), else 0
    top1, top5  accuracy in [0, 1]; clips: test clips scored
summary.json: {checkpoint: {'epoch', 'clean', 'mCA', 'relative', 'families': {family: mean top-1}}}.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from utils.atomic import atomic_write, write_text

FIELDS = ("checkpoint", "epoch", "family", "level", "severity", "suite", "top1", "top5", "clips")


def write_robustness(
    rows: list[dict],
    summaries: dict[str, dict],
    run_dir: Path,
    title: str = "",
    jitter_scale: str = "mean frame side",
    flag: str = "--run_dir",
) -> list[Path]:
    """robustness.csv, summary.json, robustness.png (jitter: accuracy against alpha, whose scale is
    `jitter_scale`) and robustness_FAMILY.png for every other family, each written atomically (`flag`: the
    option that chose run_dir, for the advice of a failed write); returns the paths written."""
    paths = [run_dir / "robustness.csv", run_dir / "summary.json"]
    with atomic_write(paths[0], "w", flag, newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: int(r[k]) if k == "suite" else r[k] for k in FIELDS})
    write_text(paths[1], json.dumps(summaries, indent=1), flag)
    name = title or run_dir.name
    for family in dict.fromkeys(r["family"] for r in rows if r["family"] != "clean"):
        curves = {}
        for ckpt in dict.fromkeys(r["checkpoint"] for r in rows):
            clean = [r for r in rows if r["checkpoint"] == ckpt and r["family"] == "clean"]
            points = clean + [r for r in rows if r["checkpoint"] == ckpt and r["family"] == family]
            curves[f"{name} ({ckpt})"] = {r["severity"]: 100 * r["top1"] for r in points}
        path = run_dir / ("robustness.png" if family == "jitter" else f"robustness_{family}.png")
        xlabel = f"noise alpha (std / {jitter_scale})" if family == "jitter" else f"{family} severity"
        plot_curves(curves, path, xlabel=xlabel, flag=flag)
        paths.append(path)
    return paths


def read_robustness(path: Path) -> list[dict]:
    """The rows of a robustness.csv as written by `write_robustness`. A file of the older format (alpha,
    top1, top5, clips) reads as checkpoint 'best': alpha 0 as the clean row, the others as jitter."""
    with open(path) as f:
        raw = list(csv.DictReader(f))
    rows = []
    for r in raw:
        if "alpha" in r and "family" not in r:
            alpha = float(r["alpha"])
            r = {"checkpoint": "best", "epoch": -1, "family": "jitter" if alpha > 0 else "clean", "level": "",
                 "severity": alpha, "suite": 0, "top1": r["top1"], "top5": r["top5"], "clips": r["clips"]}  # fmt: skip
        rows.append({
            **r,
            "epoch": int(r["epoch"]), "severity": float(r["severity"]), "suite": bool(int(r["suite"])),
            "top1": float(r["top1"]), "top5": float(r["top5"]), "clips": int(float(r["clips"])),
        })  # fmt: skip
    return rows


def plot_curves(
    curves: dict[str, dict[float, float]], path: Path, metric: str = "top1", xlabel: str = "", flag: str = "--run_dir"
) -> None:
    """Accuracy (%) against severity, one line per curve, each over the severities it was evaluated at,
    written atomically to `path` (its suffix gives the format). curves: {name: {severity: accuracy %}};
    metric names the y axis ('top1' or 'top5'); flag: the option that chose the folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        xs = sorted(curve)
        ax.plot(xs, [curve[x] for x in xs], marker="o", label=name)
    ax.set_xlabel(xlabel or "noise alpha (std / mean frame side)")
    ax.set_ylabel(f"{metric.replace('top', 'top-')} accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_write(path, "wb", flag) as f:
            fig.savefig(f, format=Path(path).suffix[1:] or "png", dpi=120)
    finally:
        plt.close(fig)
