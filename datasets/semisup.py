"""Labelled / unlabelled split of the training set (TCL's --percentage and --strategy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def split_labelled(
    labels: np.ndarray, unlabelled_fraction: float, strategy: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Choose which training clips keep their labels.

    labels: (n,) class of each training clip. unlabelled_fraction: TCL's --percentage, in [0, 1).
    strategy: 'classwise' (the fraction is taken within each class and every class keeps at least one
    labelled clip) or 'overall' (over the whole set, at least one labelled clip in all).
    Returns (labelled, unlabelled) positions into `labels`, each sorted.
    """
    if not 0.0 <= unlabelled_fraction < 1.0:
        raise ValueError(f"the unlabelled fraction must be in [0, 1), got {unlabelled_fraction}")
    n = len(labels)
    rng = np.random.default_rng([seed, 7919])
    if strategy == "overall":
        order = rng.permutation(n)
        n_lab = max(1, round(n * (1.0 - unlabelled_fraction)))
        lab = order[:n_lab]
    elif strategy == "classwise":
        lab = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            members = members[rng.permutation(len(members))]
            lab.append(members[: max(1, round(len(members) * (1.0 - unlabelled_fraction)))])
        lab = np.concatenate(lab)
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose classwise or overall")
    is_lab = np.zeros(n, dtype=bool)
    is_lab[lab] = True
    return np.flatnonzero(is_lab), np.flatnonzero(~is_lab)


def save_split(path: Path, labelled: np.ndarray, unlabelled: np.ndarray, names: list[str]) -> None:
    """Write the split as JSON (frame_dir names, so it survives a re-ordered annotation file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"labelled": [names[i] for i in labelled], "unlabelled": [names[i] for i in unlabelled]}))
    tmp.replace(path)


def load_split(path: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a split written by save_split; `names` are the training clips' frame_dirs in order."""
    data = json.loads(path.read_text())
    pos = {n: i for i, n in enumerate(names)}
    missing = [n for n in data["labelled"] + data["unlabelled"] if n not in pos]
    if missing:
        raise ValueError(
            f"{path} names clips that are not in the training split (e.g. {missing[0]}); "
            "it belongs to other data: remove it or choose another --name"
        )
    return (
        np.array(sorted(pos[n] for n in data["labelled"]), dtype=np.int64),
        np.array(sorted(pos[n] for n in data["unlabelled"]), dtype=np.int64),
    )
