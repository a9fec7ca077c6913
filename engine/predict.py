"""Class probabilities for new clips from a trained checkpoint (the `predict` command).

Every clip takes the test-time path of training evaluation: `engine.data.eval_dataset` (the checkpoint's
clip length, input size and persons; `num_clips` views), `engine.evaluate.predict_probs` (rendered
volumes, with the flipped view under `test_flip`, softmax averaged over the views), so a clip of an
annotation file gets here the probabilities that `main.py --evaluate` scored it with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.pipeline.clips import JOINTS
from datasets.sources.inputs import InputError, pack_unlabelled, read_input
from datasets.store.label_maps import class_names
from engine.checkpoint import check_fits, check_layout, load_run_model
from engine.data import eval_dataset, make_loader
from engine.evaluate import accuracy, predict_probs
from utils.atomic import check_writable, write_text
from utils.runtime import Runtime, setup_runtime

TOP_K = 5


@dataclass(frozen=True)
class PredictOptions:
    """checkpoint: a main.py checkpoint; input: .pkl, .skeleton, a per-clip file (.npy, .npz, .json) or a
    folder of them, or a video. num_clips, test_flip: None keeps the training run's test settings.
    save_probs: JSON file for every clip's probabilities, or None. trust_checkpoint, trust_data: unpickle
    the checkpoint, the .pkl input, whatever it holds. img_shape: (h, w) of 2D per-clip files that lack one."""

    checkpoint: str
    input: str
    num_clips: int | None = None
    test_flip: bool | None = None
    save_probs: str | None = None
    device: str | None = None
    batch_size: int = 16
    workers: int = 0
    trust_checkpoint: bool = False
    trust_data: bool = False
    img_shape: tuple[int, int] | None = None


def top_classes(probs: np.ndarray, names: list[str], k: int = TOP_K) -> list[list]:
    """[[class_id, name, probability], ...] of the k most probable classes, most probable first."""
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [[int(c), names[c], float(probs[c])] for c in order]


def confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    out = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(out, (labels, predicted), 1)
    return out


def accuracy_lines(
    labels: np.ndarray, probs: np.ndarray, names: list[str], rt: Runtime, full_up_to: int = 20
) -> list[str]:
    """What predict prints for the clips whose label is known (labels >= 0; none: nothing): top-1 and top-5
    accuracy, then the confusion matrix (rows true, columns predicted) of the classes that occur, in full
    up to `full_up_to` of them, else its five largest off-diagonal cells. labels: (N,); probs: (N, K)."""
    known = labels >= 0
    if not known.any():
        return []
    y, p = labels[known], probs[known]
    acc = accuracy(y, p, rt)  # its top-5 is a top-k of k = min(5, classes)
    k = min(TOP_K, p.shape[1])
    lines = [f"accuracy on the {acc['clips']} labelled clip(s): top-1 {100 * acc['top1']:.2f}%, "
             f"top-{k} {100 * acc['top5']:.2f}%"]  # fmt: skip
    cm = confusion(y, p.argmax(1), p.shape[1])
    used = np.flatnonzero(cm.sum(0) + cm.sum(1))
    if len(used) <= full_up_to:
        lines.append("confusion matrix (rows: true class, columns: predicted; " + ", ".join(
            f"{c} {names[c]}" for c in used) + ")")  # fmt: skip
        width = max(3, len(str(cm.max())) + 1)
        lines.append(" " * 4 + "".join(f"{c:>{width}d}" for c in used))
        lines += [f"{r:>4d}" + "".join(f"{cm[r, c]:>{width}d}" for c in used) for r in used]
        return lines
    off = cm - np.diag(np.diag(cm))
    worst = [divmod(int(i), cm.shape[1]) for i in np.argsort(-off, axis=None, kind="stable")[:5] if off.flat[i] > 0]
    lines.append("most confused (true -> predicted: clips): " + "; ".join(
        f"{names[t]} -> {names[q]}: {cm[t, q]}" for t, q in worst) if worst else "no clip confused")  # fmt: skip
    return lines


def run_predict(opts: PredictOptions) -> dict:
    """Print the top-5 classes of every clip of opts.input; returns {frame_dir: {'probs', 'top5', 'label'}}
    (label -1: unknown). Raises UserError subclasses (one line) for inputs that cannot be predicted on."""
    if opts.save_probs:  # before any work
        check_writable(opts.save_probs, "the probabilities file", "--save_probs")
    try:
        rt, _ = setup_runtime(opts.device, None, "none")
    except RuntimeError as e:
        raise InputError(str(e)) from e
    model, cfg, ckpt = load_run_model(opts.checkpoint, rt.device, opts.trust_checkpoint)
    trained = dict(ckpt.get("args") or {})
    num_clips = opts.num_clips if opts.num_clips is not None else int(trained.get("num_clips", 1))
    test_flip = opts.test_flip if opts.test_flip is not None else bool(trained.get("test_flip", False))
    if test_flip and cfg.reads == JOINTS:
        raise InputError(
            f"--test_flip is for rendered volumes, not {cfg.model_name}'s joint coordinates: use --no-test_flip"
        )
    if (
        num_clips > 1 and cfg.reads == JOINTS and cfg.joints_prep == "motionbert"
    ):  # its test view is the whole clip, resampled (main.py too)
        raise InputError(f"--num_clips is for rendered volumes: {cfg.model_name} tests the whole clip, resampled once")

    source = Path(opts.input).name
    # The run's label map: the training file's own 'classes', or NTU's names for a custom file of NTU clips;
    # other runs: the dataset's names.
    names = class_names(cfg.label_map or trained.get("dataset"), cfg.num_classes)
    # A .skeleton file is read as the model's training data was converted: 2D pixels or 3D metres; per-clip
    # files in the model's joint layout.
    annotations, declared = read_input(
        opts.input, skeleton_2d=cfg.coord_dim == 2, trusted=opts.trust_data, layout=cfg.joint_layout,
        img_shape=opts.img_shape,
    )  # fmt: skip
    store, labels = pack_unlabelled(annotations, source, declared, names)
    check_fits(store, cfg, source)
    check_layout(store.layout, cfg, source)  # of equal joint counts, a declared other layout is another order
    # The training run's seed, so that the clips are sampled exactly as its evaluation sampled them.
    seed = int(trained.get("seed", 0))
    dataset = eval_dataset(store, np.arange(len(store)), cfg, num_clips, seed)
    loader = make_loader(dataset, opts.batch_size, rt, seed, False, opts.workers)
    indices, _, probs = predict_probs(model, loader, cfg, rt, test_flip)

    views = f"{num_clips} sampled clip(s) each" + (", flipped too" if test_flip else "")
    print(
        f"{opts.checkpoint} ({cfg.model_name}, {cfg.num_classes} classes): {len(store)} video(s) in {source}, {views}"
    )
    results = {}
    for i, p in zip(indices.tolist(), probs, strict=True):
        name, label = store.names[i], labels[i]
        top = top_classes(p, names)
        truth = f"  (label {label}: {names[label]})" if 0 <= label < len(names) else ""
        print(f"{name}{truth}")
        for cid, cname, prob in top:
            print(f"  {100 * prob:5.1f}%  {cid:>3d}  {cname}")
        results[name] = {"probs": p.tolist(), "top5": top, "label": label}
    for line in accuracy_lines(np.asarray(labels, dtype=np.int64)[indices], probs, names, rt):
        print(line)
    if opts.save_probs:
        write_text(opts.save_probs, json.dumps(results, indent=1), "--save_probs")
        print(f"probabilities written to {opts.save_probs}")
    return results
