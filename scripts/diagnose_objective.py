"""What each term of the objective does to training: loss, gradient magnitude and direction, entropy.

    python scripts/diagnose_objective.py --out runs/diag/g5.json -- synthetic --gamma 5 --epochs 8 ...

Everything after `--` is a `main.py` command line, run unchanged. Every `--every` steps of training, the
gradient of each term of the loss (as weighted in the total: `ce`, `gamma x instance`, ...) with respect to
all model parameters is computed separately (extra backward passes on those steps only), and recorded with:

    grad_<term>     L2 norm of that term's gradient over all parameters
    cos_ce_<term>   cosine between the CE gradient and that term's gradient (< 0: the term fights CE)
    entropy_clean   mean entropy (nats) of the clean view's predicted class distribution
    entropy_noisy   the same for the corrupted view
    maxprob_clean   mean top probability of the clean view
    acc_clean       top-1 of the labelled clean view against its labels, on the training batch
    classes_clean   distinct classes predicted in the labelled clean view

Prints one row per epoch (means) and writes every record to --out as JSON. The training itself is untouched:
the recorded gradients are computed and discarded before the step's own backward pass.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine.train  # noqa: E402
import main as main_module  # noqa: E402
from engine.objective import term_weights  # noqa: E402
from utils.argtypes import positive_int  # noqa: E402
from utils.atomic import check_writable, write_text  # noqa: E402
from utils.errors import OneLineParser, UserError  # noqa: E402


def _entropy(logits: torch.Tensor) -> float:
    p = logits.detach().float().softmax(dim=1)
    return float(-(p * p.clamp_min(1e-12).log()).sum(dim=1).mean())


def instrument(every: int) -> tuple[list[dict], dict]:
    """Wrap engine.train's step (to see the model being trained) and its objective (to see each step).
    Returns the list the records go to and the state holding the model."""
    records: list[dict] = []
    state = {"model": None, "calls": 0}
    step = engine.train.train_step
    objective = engine.train.objective

    def step_and_keep(tr, *a, **k):
        state["model"] = tr.model
        return step(tr, *a, **k)

    def observed(logits: dict, labels: torch.Tensor, stage: str, cfg, ramp: float = 1.0) -> tuple:
        loss, terms = objective(logits, labels, stage, cfg, ramp)
        state["calls"] += 1
        if (state["calls"] - 1) % every:
            return loss, terms
        params = [p for p in state["model"].parameters() if p.requires_grad]
        grads = {}
        for name, value in terms.items():
            weight = term_weights(cfg, ramp)[name]
            if weight == 0 or not value.requires_grad:
                continue
            g = torch.autograd.grad(weight * value, params, retain_graph=True, allow_unused=True)
            flat = [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params, strict=True)]
            grads[name] = torch.cat(flat)
        row = {
            "step": state["calls"] - 1,
            "stage": stage,
            "ramp": ramp,
            **{k: float(v.detach()) for k, v in terms.items()},
        }
        for name, g in grads.items():
            row[f"grad_{name}"] = float(g.norm())
            if name != "ce" and "ce" in grads:
                row[f"cos_ce_{name}"] = float(torch.nn.functional.cosine_similarity(grads["ce"], g, dim=0))
        clean = logits["labelled"]
        row["entropy_clean"] = _entropy(clean)
        noisy = logits.get("labelled_noisy", logits.get("unlabelled_noisy"))
        if noisy is not None:
            row["entropy_noisy"] = _entropy(noisy)
        row["maxprob_clean"] = float(clean.detach().softmax(dim=1).max(dim=1).values.mean())
        pred = clean.detach().argmax(dim=1)
        row["acc_clean"] = float((pred == labels).float().mean())
        row["classes_clean"] = int(pred.unique().numel())
        records.append(row)
        return loss, terms

    engine.train.train_step = step_and_keep
    engine.train.objective = observed
    return records, state


def per_epoch(records: list[dict], steps_per_epoch: int) -> list[dict]:
    """Mean of every numeric field over the records of each epoch."""
    epochs: dict[int, list[dict]] = {}
    for r in records:
        epochs.setdefault(r["step"] // steps_per_epoch, []).append(r)
    rows = []
    for epoch, rs in sorted(epochs.items()):
        keys = [k for k in rs[0] if k not in ("step", "stage")]
        rows.append({"epoch": epoch, **{k: sum(r.get(k, 0.0) for r in rs) / len(rs) for k in keys}})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = OneLineParser(
        description=__doc__.split("\n\n")[0], usage="%(prog)s [--every N] [--out FILE] -- MAIN.PY ARGUMENTS"
    )
    if "--" not in argv:
        p.error("give main.py's arguments after --")
    cut = argv.index("--")
    p.add_argument("--every", type=positive_int, default=5, help="record every N training steps")
    p.add_argument("--out", default=None, help="JSON file for every record")
    args = p.parse_args(argv[:cut])
    try:
        if args.out:
            check_writable(args.out, "the records file", "--out")  # before the training run, not after it
    except UserError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    records, _ = instrument(args.every)
    result = main_module.main(argv[cut + 1 :])
    metrics = Path(result["run_dir"]) / "metrics.jsonl"
    steps = next(json.loads(line)["step"] for line in reversed(metrics.read_text().splitlines())
                 if '"split": "train"' in line and json.loads(line)["epoch"] == 0) + 1  # fmt: skip
    rows = per_epoch(records, steps)
    keys = [k for k in rows[0] if k != "epoch"] if rows else []
    print("epoch " + " ".join(f"{k:>14}" for k in keys))
    for r in rows:
        print(f"{r['epoch']:5d} " + " ".join(f"{r[k]:14.4f}" for k in keys))
    if args.out:
        try:
            write_text(args.out, json.dumps({"argv": argv[cut + 1 :], "records": records, "epochs": rows}), "--out")
        except UserError as e:
            p.exit(2, f"{p.prog}: error: {e}\n")
    return rows


if __name__ == "__main__":
    main()
