"""The robustness table: accuracy at every noise level, as CSV and as a plot."""

from __future__ import annotations

import csv
from pathlib import Path


def write_robustness(rows: list[dict], run_dir: Path, title: str = "") -> tuple[Path, Path]:
    """rows: [{'alpha', 'top1', 'top5', 'clips'}] in sweep order -> robustness.csv and robustness.png."""
    csv_path = run_dir / "robustness.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["alpha", "top1", "top5", "clips"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in w.fieldnames})
    png_path = run_dir / "robustness.png"
    plot_curves({title or run_dir.name: {r["alpha"]: 100 * r["top1"] for r in rows}}, png_path)
    return csv_path, png_path


def read_robustness(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def plot_curves(curves: dict[str, dict[float, float]], path: Path, metric: str = "top1") -> None:
    """Accuracy (%) against noise alpha, one line per run, each over the alphas it was evaluated at.
    curves: {run name: {alpha: accuracy %}}; metric names the y axis ('top1' or 'top5')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        alphas = sorted(curve)
        ax.plot(alphas, [curve[a] for a in alphas], marker="o", label=name)
    ax.set_xlabel("noise alpha (std / mean frame side)")
    ax.set_ylabel(f"{metric.replace('top', 'top-')} accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
