"""Splits of the training set: the validation part that chooses the checkpoint (whole groups of a field of
the clips, e.g. subjects, or subjects where the clip names carry them), and TCL's labelled / unlabelled split
(--percentage, --strategy)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from utils.atomic import write_text


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


def save_split(path: Path, names: list[str], validation_by: str | None = None, **parts: np.ndarray) -> None:
    """Write the split as JSON (atomically), each part ('labelled', 'unlabelled', 'validation') as frame_dir names of
    the training clips (so it survives a re-ordered annotation file); `parts` are positions into `names`.
    validation_by: how the validation part was drawn (hold_out's `by`), written as 'validation_by'."""
    out: dict = {part: [names[i] for i in pos] for part, pos in parts.items()}
    if validation_by is not None:
        out["validation_by"] = validation_by
    write_text(path, json.dumps(out))


def load_split(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Read a split written by save_split: {part: sorted positions into `names`}, the training clips'
    frame_dirs in order. A clip it names that is not among them is an error (the file is another run's)."""
    data = {part: clips for part, clips in json.loads(path.read_text()).items() if isinstance(clips, list)}
    pos = {n: i for i, n in enumerate(names)}
    missing = [n for part in data.values() for n in part if n not in pos]
    if missing:
        raise ValueError(
            f"{path} names clips that are not in the training split (e.g. {missing[0]}); "
            "it belongs to other data: remove it or choose another --name"
        )
    return {part: np.array(sorted(pos[n] for n in clips), dtype=np.int64) for part, clips in data.items()}


# Subject ids in clip names: NTU RGB+D (SsssCcccPpppRrrrAaaa, and the synthetic set that mimics it) and
# MSR Action3D (aAA_sSS_eEE).
_SUBJECT = (re.compile(r"S\d{3}C\d{3}P(\d{3})R\d{3}A\d{3}"), re.compile(r"a\d{2}_s(\d{2})_e\d{2}"))


def subject_of(name: str) -> str | None:
    """The performer of a clip, from its NTU- or MSR-style name; None when the name carries none."""
    for pattern in _SUBJECT:
        found = pattern.search(name)
        if found:
            return found.group(1)
    return None


def hold_out(
    names: list[str], labels: np.ndarray, fraction: float, seed: int, groups: list | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Split training clips into the part that trains and a validation part that chooses the checkpoint.

    By group: whole groups, drawn in a seeded order until the validation part holds at least `fraction` of
    the clips (at least one group, never all). The groups are `groups` (one value per clip, e.g. each
    clip's subject field) when given, else the subjects of the clip names when every name carries one;
    it takes two groups or more. Otherwise per class: round(n_c * fraction) clips of each class that has
    two or more. Returns (training positions, validation positions, by), each sorted; by is 'groups',
    'subject' (of the names) or 'class'. Fraction 0 holds out nothing.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the validation fraction must be in [0, 1), got {fraction}")
    n = len(names)
    rng = np.random.default_rng([seed, 104729])
    val = np.zeros(n, dtype=bool)
    by = "subject" if groups is None else "groups"
    group = [subject_of(name) for name in names] if groups is None else [str(g) for g in groups]
    distinct = sorted(set(group)) if None not in group else []
    if fraction > 0 and len(distinct) >= 2:
        for s in rng.permutation(distinct)[:-1]:  # never every group
            val |= np.array([x == s for x in group])
            if val.sum() >= fraction * n:
                break
    else:
        by = "class"
        for c in np.unique(labels) if fraction > 0 else []:
            members = np.flatnonzero(labels == c)
            if len(members) >= 2:
                k = min(len(members) - 1, max(1, round(len(members) * fraction)))
                val[rng.permutation(members)[:k]] = True
    return np.flatnonzero(~val), np.flatnonzero(val), by
