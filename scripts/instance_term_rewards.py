"""What TCL's instance contrastive term rewards: its value for a perfect classifier against a wrong one.

    python scripts/instance_term_rewards.py [--batch 8] [--batches 2000] [--ann_file FILE]

Batches of training labels are drawn from the synthetic data (or --ann_file's xsub_train split). For each
batch the instance term (engine/objective.py, both views equal) is computed for
- 'correct': every clip confidently given its own label (logits 10 x one-hot);
- 'spread': every clip confidently given a class of its own (clip i -> class i), so clips that share a
  label are put into different classes: wrong for all but one clip of each label;
with TCL's negatives (every other clip) and without same-class negatives (--negatives other_class).
Prints the mean (and std) of each, and the mean number of same-label pairs per batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.sources.synthetic import load_or_create_synthetic  # noqa: E402
from datasets.store.annotations import load_pickle  # noqa: E402
from losses import instance_contrastive_loss  # noqa: E402
from utils.errors import OneLineParser  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="clips per batch (the demo's -b)")
    p.add_argument("--batches", type=int, default=2000, help="batches drawn")
    p.add_argument("--ann_file", default=None, help="pyskl file (default: the synthetic data of the demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trust_data", action="store_true", help="unpickle --ann_file whatever it holds (trusted only)")
    args = p.parse_args(argv)
    synthetic = Path("data") / "synthetic"  # the demo's data: main.py's default --synthetic_clips 8
    path = Path(args.ann_file) if args.ann_file else load_or_create_synthetic(synthetic, clips_per_class_per_subject=8)
    data = load_pickle(path, trusted=args.trust_data)
    train = set(data["split"]["xsub_train"])
    labels = np.array([a["label"] for a in data["annotations"] if a["frame_dir"] in train])
    num_classes = int(labels.max()) + 1
    if args.batch > num_classes:
        p.error(f"--batch {args.batch} exceeds the {num_classes} classes: 'spread' needs a class per clip")
    rng = np.random.default_rng(args.seed)
    values: dict[str, list[float]] = {k: [] for k in ("correct", "spread", "correct_masked", "spread_masked")}
    pairs = []
    spread = 10 * F.one_hot(torch.arange(args.batch), num_classes).float()
    for _ in range(args.batches):
        y = torch.as_tensor(rng.choice(labels, args.batch, replace=False))
        correct = 10 * F.one_hot(y, num_classes).float()
        values["correct"].append(instance_contrastive_loss(correct, correct).item())
        values["spread"].append(instance_contrastive_loss(spread, spread).item())
        values["correct_masked"].append(instance_contrastive_loss(correct, correct, groups=y).item())
        values["spread_masked"].append(instance_contrastive_loss(spread, spread, groups=y).item())
        pairs.append((int((y[:, None] == y[None]).sum()) - args.batch) // 2)
    out = {k: (float(np.mean(v)), float(np.std(v))) for k, v in values.items()}
    print(f"{path}: batches of {args.batch} training clips, {np.mean(pairs):.2f} same-label pairs per batch")
    for k, (mean, std) in out.items():
        print(f"  {k:<15} instance term {mean:.4f} +- {std:.4f}")
    return out


if __name__ == "__main__":
    main()
