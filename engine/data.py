"""The data path of a run: loaders over the keypoint store, and the model input of a step.

Workers produce keypoint clips (datasets/pipeline/clips.py); the input volumes are rendered for the whole batch
on the training device (datasets/batch/render.py), here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from datasets.batch.render import input_channels, render
from datasets.batch.streams import joints_input_stream
from datasets.pipeline.clips import JOINTS, VOLUME, SkeletonClips
from datasets.store.annotations import KeypointStore, release_freed_memory
from datasets.store.catalog import choose_protocol, dataset_spec, load_store, split_names
from datasets.store.label_maps import LABEL_MAPS, ntu_label_map
from datasets.store.layouts import Layout, choose_layout
from datasets.store.splits import hold_out, load_split, split_labelled
from engine.config import EvalConfig, RunConfig, TrainConfig
from utils.errors import UserError
from utils.logger import echo
from utils.runtime import Runtime, ignore_stop_signals


@dataclass(frozen=True)
class RunData:
    """A dataset as a run sees it: the packed clips, their classes and layout, the two splits' clips and the
    protocol that names them (splits PROTOCOL_train and PROTOCOL_val of the file)."""

    store: KeypointStore
    path: Path  # the annotation file
    num_classes: int
    label_map: str | list[str] | None  # the file's own class names, or NTU's for a custom file of NTU clips, else None
    layout: Layout
    train_idx: np.ndarray
    test_idx: np.ndarray
    protocol: str = "xsub"
    notes: tuple[str, ...] = ()


def load_run_data(
    dataset: str,
    data_root: str,
    ann_file: str | None,
    protocol: str | None,
    synthetic_options: dict | None = None,
    layout: str | None = None,
    keypoints: str = "2d",
    trust_data: bool = False,
) -> RunData:
    """Load, validate and split a dataset of the catalog (datasets/store/catalog.py). NTU60/120 have their fixed
    classes; the synthetic and custom ones count the labels they hold, and a custom file of NTU-named
    clips keeps NTU's label set, whichever of its classes it holds. A file that names its classes
    ('classes', as `datasets.convert folder` writes them) has that many, and the run keeps the names
    as its label map (predict prints them). The joint layout: `layout` (--layout,
    a built-in name or FILE.json), else the file's declaration, else the dataset's or one inferred from
    the joint count (datasets/store/layouts.choose_layout). protocol: --split, the splits PROTOCOL_train and
    PROTOCOL_val; None: the dataset's first, or a custom file's first pair (catalog.choose_protocol).
    keypoints: '2d' or '3d', the dataset's file to read
    without ann_file (NTU's HRNet 2D or Kinect 3D file). trust_data: unpickle the file whatever it holds
    (--trust_data), not only what an annotation file holds. Raises UserError (one line)."""
    spec = dataset_spec(dataset)
    counted = dataset in ("synthetic", "custom")
    store, path = load_store(dataset, data_root, ann_file, synthetic_options=synthetic_options,
                             num_classes=10**9 if counted else spec.num_classes, keypoints=keypoints,
                             trust_data=trust_data)  # fmt: skip
    release_freed_memory()  # the unpickled file is gone; its heap would stay resident, and shared by workers
    num_classes = int(store.labels.max()) + 1 if counted else spec.num_classes
    label_map, notes = (ntu_label_map(store.names, store.labels) if dataset == "custom" else None), []
    if store.classes is not None:  # named by the file itself: its names win over any guess from clip names
        if not counted and len(store.classes) != spec.num_classes:
            raise UserError(f"{Path(path).name} names {len(store.classes)} classes in its 'classes', but {dataset} "
                            f"has {spec.num_classes}; use `custom` for another label set")  # fmt: skip
        label_map, num_classes = list(store.classes), len(store.classes)
    elif label_map is not None:
        num_classes = len(LABEL_MAPS[label_map])
        notes.append(f"the clips are named and labelled as NTU RGB+D: {num_classes} classes, {label_map} names")
    try:
        layout, inferred = choose_layout(store.num_joints, store.coord_dim, given=layout, declared=store.layout,
                                         default=spec.default_file(keypoints)[2], source=Path(path).name)  # fmt: skip
        notes += [inferred] if inferred else []
        protocol = choose_protocol(spec, protocol, store.splits, Path(path).name)
        train_split, test_split = split_names(spec, protocol)
        train_idx, test_idx = store.split_indices(train_split), store.split_indices(test_split)
    except (ValueError, KeyError) as e:
        raise UserError(str(e.args[0])) from e
    if not len(test_idx):  # it would be scored as 0.00 on 0 clips
        raise UserError(f"{Path(path).name} has no clip in its test split {test_split}: give the file test clips "
                        f"(main.py convert puts some there), or choose another --split")  # fmt: skip
    return RunData(store, Path(path), num_classes, label_map, layout, train_idx, test_idx, protocol, tuple(notes))


def training_split(
    path: Path, data: RunData, train: TrainConfig, rt: Runtime
) -> tuple[dict[str, np.ndarray], dict | None]:
    """The training clips by part (store indices): 'validation' (held out to choose the best epoch: whole
    values of the clips' train.val_group_field, e.g. subjects (validation_groups), else whole subjects where
    the names carry them, else per class), 'labelled' and 'unlabelled' (TCL's split of the rest). Saved with
    the run as split.json (`path`, with 'validation_by') and reused on resume (a file of an older run without
    a validation part holds out nothing). Writes nothing: returns (parts, the save_split arguments of a new
    split or None)."""
    names = [data.store.names[i] for i in data.train_idx]
    if not names:
        raise UserError(f"{data.path} has no clip in its training split; check --split, or the file's 'split' key")
    new = None
    if path.is_file():
        try:
            parts = load_split(path, names)
        except (ValueError, OSError) as e:
            raise UserError(f"{path} cannot be used: {e}") from e
        parts.setdefault("validation", np.zeros(0, dtype=np.int64))
    else:
        labels = data.store.labels[data.train_idx]
        field, groups = validation_groups(data, train.val_group_field)
        keep, val, by = hold_out(names, labels, train.val_fraction, train.seed, groups)
        lab, ul = split_labelled(labels[keep], train.unlabelled_fraction, train.label_strategy, train.seed)
        parts = {"labelled": keep[lab], "unlabelled": keep[ul], "validation": val}
        by = {"groups": f"{field} (the clips' {field!r} field)", "subject": "subject (from the clip names)"}.get(by, by)
        new = {"names": names, "validation_by": by if len(val) else "nothing", **parts}
        if len(val):
            echo(f"validation: {len(val)} training clips held out by {by}", rt.is_main)
    if not len(parts["labelled"]):
        raise UserError(f"no labelled training clip is left in {data.path} after holding out validation clips; "
                        "lower --val_fraction or --percentage")  # fmt: skip
    return {part: data.train_idx[pos] for part, pos in parts.items()}, new


def validation_groups(data: RunData, field: str | None) -> tuple[str | None, list | None]:
    """(field, its value for each training clip) whose values the validation part holds out whole: `field`
    (--val_group_field), which every training clip must have, with two values or more; by default (None)
    'subject' when every training clip has a subject field; (None, None) for 'none' or no such field.
    Raises UserError (one line) for a field that a clip lacks, or that has one value only."""
    if field == "none":
        return None, None
    values = data.store.fields.get(field or "subject")
    clips = None if values is None else [values[i] for i in data.train_idx]
    if field is None:
        return ("subject", clips) if clips is not None and None not in clips else (None, None)
    if clips is None or None in clips:
        who = "the clips" if clips is None else f"clip {data.store.names[data.train_idx[clips.index(None)]]!r}"
        known = ", ".join(data.store.fields) or "none"
        raise UserError(f"--val_group_field {field}: {who} of {data.path.name} {'have' if clips is None else 'has'} "
                        f"no {field!r} field (the clips' fields: {known}); choose one of them, or none")  # fmt: skip
    if len(set(map(str, clips))) < 2:
        raise UserError(f"--val_group_field {field}: every training clip has the same {field} ({clips[0]!r}), so "
                        "none can be held out whole; choose another field, or none")  # fmt: skip
    return field, clips


class ShardedSampler(Sampler):
    """Indices of one epoch for this rank: shuffled from (seed, epoch) when `shuffle`, sharded rank::world.

    Training pads to equal shards so every rank takes the same number of steps (DDP needs it);
    evaluation does not pad, so each clip is counted exactly once across ranks.
    """

    def __init__(self, n: int, rt: Runtime, seed: int, shuffle: bool) -> None:
        self.n, self.rt, self.seed, self.shuffle, self.epoch = n, rt, seed, shuffle, 0
        self.skip = 0  # indices of this rank's shard to leave out of the next pass only (a mid-epoch resume)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip_next(self, count: int) -> None:
        """Leave the first `count` indices out of the next pass: the rest of the pass is exactly what an
        uninterrupted one gives (the order depends only on seed and epoch; each clip's randomness on
        seed, epoch and clip, datasets/pipeline/clips.py)."""
        self.skip = count

    def _indices(self) -> np.ndarray:
        idx = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        if self.shuffle and self.rt.world_size > 1:
            idx = np.resize(idx, math.ceil(self.n / self.rt.world_size) * self.rt.world_size)
        return idx[self.rt.rank :: self.rt.world_size]

    def __iter__(self):
        idx, self.skip = self._indices()[self.skip :], 0
        return iter(idx.tolist())

    def __len__(self) -> int:
        return len(self._indices())


def make_loader(ds: SkeletonClips, batch_size: int, rt: Runtime, seed: int, train: bool, workers: int) -> DataLoader:
    sampler = ShardedSampler(len(ds), rt, seed, shuffle=train)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=train and len(sampler) >= batch_size,  # no batch of 1 for BatchNorm
        pin_memory=rt.device.type == "cuda",
        persistent_workers=False,  # workers must see set_epoch: they copy the dataset per epoch
        worker_init_fn=ignore_stop_signals if workers else None,  # a stop signal is for the main process alone
    )


def set_loader_epoch(loader: DataLoader, epoch: int, start: int = 0) -> None:
    """Shuffle the next pass by `epoch`; it leaves out its first `start` batches (a mid-epoch resume)."""
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    loader.sampler.skip_next(start * loader.batch_size)


def cycle(loader: DataLoader, epoch: int, start: int = 0) -> Iterator[dict]:
    """Endless batches: each pass over the loader is reshuffled from its own seed. start: batches to
    leave out, as if they had been drawn (a mid-epoch resume); batches before the last of a pass are full."""
    k, skip = divmod(start, len(loader))
    while True:
        set_loader_epoch(loader, epoch * 10_000 + k, skip)
        yield from loader
        k, skip = k + 1, 0


def epoch_batches(
    loaders: dict[str, DataLoader | None], uses_unlabelled: bool, epoch: int, first: int = 0
) -> Iterator[dict[str, dict]]:
    """The batches of `epoch`'s steps from step `first` on (a mid-epoch resume), each step's as {'labelled':
    batch, 'unlabelled': batch (when `uses_unlabelled`)}: the labelled loader cycles, the unlabelled one
    paces the epoch (`first` < one pass of it). The batches are those an uninterrupted epoch draws."""
    rng = torch.get_rng_state()
    iters = {"labelled": cycle(loaders["labelled"], epoch, first)}
    if uses_unlabelled:
        set_loader_epoch(loaders["unlabelled"], epoch, first)
        iters["unlabelled"] = iter(loaders["unlabelled"])
    ready = {}
    if first:
        # Making a DataLoader iterator draws a seed from torch's global RNG. An uninterrupted run made the
        # iterators of passes that began before `first` before the checkpoint saved that RNG (which is
        # restored now), so they are made here and the RNG put back: dropout then draws what it drew.
        if first % len(loaders["labelled"]):
            ready["labelled"] = next(iters["labelled"])
        torch.set_rng_state(rng)
    while True:
        yield {name: ready.pop(name) if name in ready else next(it) for name, it in iters.items()}


def train_loaders(
    store: KeypointStore,
    labelled_idx: np.ndarray,
    unlabelled_idx: np.ndarray,
    cfg: RunConfig,
    train: TrainConfig,
    compares_views: bool,
    rt: Runtime,
    ce_noisy: bool = False,
) -> tuple[DataLoader, DataLoader | None]:
    """The labelled loader and, when the objective compares views of unlabelled clips, the unlabelled one
    (mu x the batch). Clips carry a corrupted view wherever the objective may compare one, and labelled
    clips whenever `ce_noisy` (cross-entropy on the corrupted view)."""

    def clips(idx: np.ndarray, noisy: bool) -> SkeletonClips:
        return SkeletonClips(
            store, idx, reads=cfg.reads, train=True, clip_len=cfg.clip_len, layout=cfg.joint_layout,
            input_size=cfg.input_size, noise_alpha=train.noise_alpha, noisy_view=noisy, seed=train.seed,
            max_persons=cfg.max_persons, corruptions=train.corruptions or None, augment=train.augment,
            joints_prep=cfg.joints_prep, stream=cfg.stream, depth=cfg.skeleton_depth, repair=train.repair,
            visibility=cfg.visibility,
        )  # fmt: skip

    has_ul = compares_views and len(unlabelled_idx) > 0
    labelled = make_loader(
        clips(labelled_idx, ce_noisy or (compares_views and not has_ul)),
        train.batch_size,
        rt,
        train.seed,
        True,
        train.workers,
    )
    if not has_ul:
        return labelled, None
    unlabelled = make_loader(
        clips(unlabelled_idx, True), train.batch_size * train.mu, rt, train.seed + 1, True, train.workers
    )
    return labelled, unlabelled


def trained_families(train: TrainConfig, noisy: bool) -> tuple[str, ...]:
    """The corruption families the training views are drawn from: none without a corrupted view (`noisy`),
    else those of train.corruptions, or jitter at train.noise_alpha (nothing at 0)."""
    if not noisy:
        return ()
    if train.corruptions:
        return tuple(dict.fromkeys(family for family, _ in train.corruptions))
    return ("jitter",) if train.noise_alpha > 0 else ()


def eval_dataset(
    store: KeypointStore,
    idx: np.ndarray,
    cfg: RunConfig,
    num_clips: int,
    seed: int,
    corruption: tuple[str, float] = ("jitter", 0.0),
    repair: tuple[str, ...] = (),
) -> SkeletonClips:
    """Test clips of `idx` as the run's evaluation sees them, under one (family, severity) corruption of
    datasets/pipeline/corruptions.py, fixed per clip (the default: clean)."""
    return SkeletonClips(
        store, idx, reads=cfg.reads, train=False, clip_len=cfg.clip_len, layout=cfg.joint_layout,
        num_clips=num_clips, input_size=cfg.test_size, seed=seed, max_persons=cfg.max_persons,
        corruptions=(corruption,), joints_prep=cfg.joints_prep, stream=cfg.stream, depth=cfg.skeleton_depth,
        repair=repair, visibility=cfg.visibility,
    )  # fmt: skip


def eval_loader(
    store: KeypointStore,
    idx: np.ndarray,
    cfg: RunConfig,
    ev: EvalConfig,
    rt: Runtime,
    corruption: tuple[str, float] = ("jitter", 0.0),
) -> DataLoader:
    ds = eval_dataset(store, idx, cfg, ev.num_clips, ev.seed, corruption, ev.repair)
    return make_loader(ds, ev.batch_size, rt, ev.seed, False, ev.workers)


def model_input(
    kp: torch.Tensor,
    score: torch.Tensor | None,
    cfg: RunConfig,
    double: bool = False,
    out: torch.Tensor | None = None,
    test: bool = False,
) -> torch.Tensor:
    """Keypoint batch on the device -> model input. Pose: (B, M, T, V, 2) -> rendered (B, C, T, H, W),
    H = W = cfg.input_size, or cfg.test_size for evaluation clips (`test`), which were resized to it
    (2B with `double`; into `out` when given, Heatmap and Limb only); joint coordinates (B, M, T, V, 3)
    are already the input. Coordinate inputs take the run's stream (bones, motions) here, after the view's
    corruption, which the clips carry already; a GCN's clips carry pyskl's features of the stream already."""
    if cfg.reads == JOINTS and cfg.joints_prep == "gcn":  # pyskl's features, computed per clip in the workers
        return kp
    if cfg.reads == JOINTS:
        return joints_input_stream(kp, cfg.stream, cfg.joint_layout, cfg.coord_dim)
    side = cfg.test_size if test else cfg.input_size
    size = (side, side)
    return render(cfg.input_format, kp, score, size, layout=cfg.joint_layout, double=double, out=out, stream=cfg.stream,
                  visibility=cfg.visibility)  # fmt: skip


def step_input(views: list[tuple[dict, str]], cfg: RunConfig, rt: Runtime, buffers: dict):
    """The model input of one training step: the views (collated batch, key prefix of the view), one
    after another along the batch dimension.

    Heatmap and limb volumes are rendered straight into their slice of one volume that `buffers` keeps
    from step to step (by shape), which saves a fresh allocation and a concatenation per step (on a CPU
    the allocation alone costs more than the rendering, bench/render.py). The previous step's backward
    pass is over before the volume is reused.
    """
    kps = []
    for batch, prefix in views:  # collated (B, 1, M, T, V, C): one clip per item
        kp = batch[prefix + "keypoint"][:, 0].to(rt.device, non_blocking=True)  # (B, M, T, V, C)
        score = batch.get(prefix + "keypoint_score")
        kps.append((kp, None if score is None else score[:, 0].to(rt.device, non_blocking=True)))
    if cfg.reads != VOLUME or cfg.input_format not in ("Heatmap", "Limb"):
        return torch.cat([model_input(kp, score, cfg) for kp, score in kps])
    n, t = sum(len(kp) for kp, _ in kps), kps[0][0].shape[2]
    c = input_channels(cfg.input_format, kps[0][0].shape[1], cfg.joint_layout, cfg.skeleton_depth)
    shape = (n, c, t, cfg.input_size, cfg.input_size)  # (N, C, T, H, W)
    if shape not in buffers:
        buffers.clear()  # one shape at a time (the last, smaller batch of an epoch changes it)
        buffers[shape] = torch.empty(shape, dtype=torch.float32, device=rt.device)
    x, start = buffers[shape], 0
    for kp, score in kps:
        model_input(kp, score, cfg, out=x[start : start + len(kp)])
        start += len(kp)
    return x
