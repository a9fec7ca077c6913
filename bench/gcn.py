"""Graph networks on a CPU: the training step of ST-GCN++ and CTR-GCN, and the data path of a GCN's clips.

    OMP_NUM_THREADS=1 .venv/bin/python bench/gcn.py                 # both tables, about a minute on 2 cores
    .venv/bin/python bench/gcn.py --iters 3 --warmup 1 --items 16   # quicker, noisier
    .venv/bin/python bench/gcn.py --parts data --num_clips 10       # pyskl's 10 test clips per GCN item

Everything runs on one torch thread (torch.set_num_threads(1)): a DataLoader worker computes on one, and
one thread makes the figures comparable between machines and busy hours. Two Markdown tables:
1. step: what one training step costs a model, per clip: forward in train mode, cross-entropy against
   random labels, backward; no optimiser step, no data. Random input (N, M, T, V, 3) for the GCNs:
   ST-GCN++ and CTR-GCN at upstream's width (base_channels 64, NTU: 2 persons x 100 frames x 25 joints,
   'ntu25') and at a CPU size (base_channels 16, 1 person x 32 frames x 20 joints, 'kinect20', as the MSR
   Action3D runs use), beside the demo's PoseConv3D (base_channels 16, stage_blocks (2, 2, 2)) on its
   Skeleton volume (N, M*V*2, T, 1, 1) = (N, 68, 32, 1, 1). Median of --iters steps after --warmup.
2. data: SkeletonClips.__getitem__ per clip, what a loader worker does for each item (rendering the
   volumes happens later, on the training device: bench/render.py), in training mode (a clean and a
   jittered view) and in test mode (--num_clips clips, clean), for three preparations: the GCN's
   (reads='joints', joints_prep='gcn': pyskl's PreNormalize, features, UniformSample, 100 frames),
   MotionBERT's (reads='joints', joints_prep='motionbert', 243 frames) and PoseConv3D's (reads='volume':
   sampling, compaction, resize and crop of the keypoints, 32 frames as the demo). On two synthetic sets:
   2D COCO-17 clips of make_synthetic (pixels with scores, 30-300 frames) and 3D NTU-25 clips made here
   as pyskl's 3D pickles hold them (float16 metres, no scores, 1-2 persons, 60-150 frames). The mean over
   --items clips of process CPU time (what a worker with a core of its own spends) and of wall time.
Each row carries the 1-minute load average when it was measured: on a busy machine the wall times (and
the CPU times, a little, through shared caches) are slower; rerun when it is above the cores in use.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Run as `python bench/gcn.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.batch.streams import parents  # noqa: E402
from datasets.pipeline.clips import SkeletonClips  # noqa: E402
from datasets.sources.synthetic import make_synthetic  # noqa: E402
from datasets.store.annotations import KeypointStore, pack_annotations  # noqa: E402
from datasets.store.layouts import get_layout  # noqa: E402
from models import create_model  # noqa: E402
from utils.errors import OneLineParser  # noqa: E402

FULL = {"base_channels": 64, "num_person": 2, "num_joints": 25, "layout": "ntu25"}  # pyskl's NTU configs
CPU_SIZE = {"base_channels": 16, "num_person": 1, "num_joints": 20, "layout": "kinect20"}  # MSR Action3D runs
DEMO_POSECONV = {"in_channels": 68, "base_channels": 16, "stage_blocks": (2, 2, 2)}  # `main.py synthetic`


@dataclass(frozen=True)
class StepCase:
    """One row of the step table: a registered model, its constructor arguments and one clip's input shape."""

    size: str  # what the configuration stands for
    model: str
    cfg: dict
    clip_shape: tuple[int, ...]  # (M, T, V, C) for a GCN, (C, T, H, W) for PoseConv3D
    num_classes: int


STEP_CASES = (
    StepCase("upstream (NTU)", "stgcnpp", FULL, (2, 100, 25, 3), 60),
    StepCase("upstream (NTU)", "ctrgcn", FULL, (2, 100, 25, 3), 60),
    StepCase("CPU (MSR Action3D)", "stgcnpp", CPU_SIZE, (1, 32, 20, 3), 20),
    StepCase("CPU (MSR Action3D)", "ctrgcn", CPU_SIZE, (1, 32, 20, 3), 20),
    # The demo's Skeleton input: 2 persons x 17 COCO joints x (x, y) as channels, 32 frames, 12 classes.
    StepCase("demo (synthetic)", "poseconv3d", DEMO_POSECONV, (68, 32, 1, 1), 12),
)


@dataclass(frozen=True)
class DataPath:
    """One preparation of the data table: SkeletonClips' reads and joints_prep, at its model's clip length."""

    name: str
    reads: str
    clip_len: int
    kwargs: dict = field(default_factory=dict)


DATA_PATHS = (
    DataPath("GCN (joints, gcn)", "joints", 100, {"joints_prep": "gcn", "stream": "joint"}),
    DataPath("MotionBERT (joints, motionbert)", "joints", 243, {"joints_prep": "motionbert"}),
    DataPath("PoseConv3D (volume)", "volume", 32, {"input_size": 56}),
)


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, iters: int, warmup: int) -> float:
    """Median seconds of a forward (train mode) + cross-entropy + backward step over `iters` steps, after
    `warmup` untimed ones (the allocator and oneDNN settle in those)."""
    times = []
    for k in range(warmup + iters):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if k >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_row(case: StepCase, args: argparse.Namespace) -> dict:
    """Build the case's model, time its step on a random batch of args.batch clips; one table row."""
    gen = torch.Generator().manual_seed(0)
    model = create_model(case.model, num_classes=case.num_classes, **case.cfg).train()
    x = torch.rand(args.batch, *case.clip_shape, generator=gen)  # (N, M, T, V, C) or (N, C, T, H, W)
    y = torch.randint(0, case.num_classes, (args.batch,), generator=gen)
    sec = step_time(model, x, y, args.iters, args.warmup)
    width = case.cfg["base_channels"]
    return {
        "model": case.model,
        "size": case.size,
        "input per clip": str(case.clip_shape).replace(" ", ""),
        "base ch.": width,
        "params (M)": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}",
        "batch": args.batch,
        "ms/step": f"{1000 * sec:.1f}",
        "ms/clip": f"{1000 * sec / args.batch:.2f}",
        "clips/s": f"{args.batch / sec:.1f}",
        "load": load_average(),
    }


def make_3d_annotations(num_clips: int, seed: int = 0) -> dict:
    """Small 3D NTU-25 annotations as pyskl's 3D pickles hold them: per clip frame_dir, label (0-59),
    total_frames T (60-150) and keypoint float16 (M, T, 25, 3) in metres, M 1 or 2, no keypoint_score or
    img_shape. Each person is a random tree of 0.1-0.3 m bones (NTU's joint tree) 3 m from the camera whose
    joints sway by a few centimetres and whose body drifts; the second person stands a metre to the side."""
    rng = np.random.default_rng(seed)
    tree = parents(get_layout("ntu25"))
    annotations = []
    for i in range(num_clips):
        m, t = int(rng.integers(1, 3)), int(rng.integers(60, 151))
        time_s = np.arange(t) / 30.0  # NTU's 30 fps
        kp = np.empty((m, t, 25, 3), dtype=np.float32)
        for p in range(m):
            bones = rng.normal(size=(25, 3))
            bones *= rng.uniform(0.1, 0.3, (25, 1)) / np.linalg.norm(bones, axis=1, keepdims=True)
            rest = np.zeros((25, 3))
            for v in _tree_order(tree):
                rest[v] = rest[tree[v]] + bones[v] if tree[v] != v else (p - 0.5 * (m - 1), 0.0, 3.0)
            sway = 0.05 * np.sin(2 * np.pi * time_s[:, None, None] * rng.uniform(0.2, 1.5, (25, 3)))  # (T, 25, 3)
            drift = np.outer(time_s, rng.normal(0, 0.1, 3))[:, None]  # (T, 1, 3), metres
            kp[p] = rest[None] + sway + drift
        annotations.append({"frame_dir": f"S001C001P001R001A{i % 60 + 1:03d}_{i}", "label": i % 60,
                            "total_frames": t, "keypoint": kp.astype(np.float16)})  # fmt: skip
    return {"split": {"all": [a["frame_dir"] for a in annotations]}, "annotations": annotations, "layout": "ntu25"}


def _tree_order(tree: tuple[int, ...]) -> list[int]:
    """The joints of a parent table in an order where every parent comes before its children."""
    order, placed = [], set()
    while len(order) < len(tree):
        for v, p in enumerate(tree):
            if v not in placed and (p == v or p in placed):
                order.append(v)
                placed.add(v)
    return order


def time_items(ds: SkeletonClips, order: np.ndarray) -> tuple[float, float]:
    """Mean (CPU, wall) milliseconds of ds[i] over the positions `order`, after two untimed items."""
    for i in order[:2]:
        ds[int(i)]
    cpu, wall = 0.0, 0.0
    for i in order:
        c0, w0 = time.process_time(), time.perf_counter()
        ds[int(i)]
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
    return 1000 * cpu / len(order), 1000 * wall / len(order)


def data_rows(set_name: str, store: KeypointStore, layout: str, args: argparse.Namespace) -> list[dict]:
    """Rows of the data table for one store: every DATA_PATHS preparation in training mode (clean + jittered
    view) and test mode (args.num_clips clips; MotionBERT's test clip is the whole sequence, always one),
    timed over the same args.items clips."""
    idx = np.arange(len(store))
    order = np.resize(np.random.default_rng(0).permutation(len(store)), args.items)  # a store smaller: repeated
    rows = []
    for path in DATA_PATHS:
        for train in (True, False):
            clips = 1 if train or path.kwargs.get("joints_prep") == "motionbert" else args.num_clips
            ds = SkeletonClips(store, idx, reads=path.reads, train=train, clip_len=path.clip_len,
                               layout=get_layout(layout), num_clips=clips, noise_alpha=args.noise_alpha,
                               noisy_view=train, max_persons=2, **path.kwargs)  # fmt: skip
            ds.set_epoch(0)
            cpu_ms, wall_ms = time_items(ds, order)
            shape = ds[int(order[0])]["keypoint"].shape
            rows.append({
                "data": set_name,
                "preparation": path.name,
                "mode": "train (clean + jittered)" if train else f"test ({clips} clip{'s' * (clips > 1)})",
                "keypoint per view": str(shape).replace(" ", ""),
                "ms CPU/clip": f"{cpu_ms:.2f}",
                "ms wall/clip": f"{wall_ms:.2f}",
                "clips/s (CPU)": f"{1000 / cpu_ms:.0f}",
                "load": load_average(),
            })  # fmt: skip
    return rows


def load_average() -> str:
    """The 1-minute load average now, beside the cores this process may use."""
    return f"{os.getloadavg()[0]:.2f} / {len(os.sched_getaffinity(0))}"


def markdown_table(rows: list[dict]) -> str:
    """Rows of equal keys as a Markdown table; columns of numbers right-aligned."""
    cols = list(rows[0])
    numeric = [all(_is_number(str(r[c]).split(" / ")[0]) for r in rows) for c in cols]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]

    def line(cells: list[str]) -> str:
        padded = [s.rjust(w) if n else s.ljust(w) for s, w, n in zip(cells, widths, numeric, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric, strict=True))
    return "\n".join([line(cols), rule + "|", *(line([str(r[c]) for c in cols]) for r in rows)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["step", "data"], choices=["step", "data"], help="tables to make")
    p.add_argument("--batch", type=int, default=8, help="clips per training step (default: 8)")
    p.add_argument("--iters", type=int, default=5, help="timed training steps per model (default: 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps first (default: 2)")
    p.add_argument("--items", type=int, default=240, help="clips timed per data row (default: 240)")
    p.add_argument("--num_clips", type=int, default=1, help="test clips per item, GCN and volume (default: 1)")
    p.add_argument("--noise_alpha", type=float, default=0.1, help="jitter of the training view (default: 0.1)")
    return p


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    """Print the setting, then the step and data tables of args.parts; returns their rows by part."""
    p = build_parser()
    args = p.parse_args(argv)
    if min(args.batch, args.iters, args.items, args.num_clips) < 1 or args.warmup < 0 or args.noise_alpha < 0:
        p.error("--batch, --iters, --items and --num_clips must be >= 1; --warmup and --noise_alpha >= 0")
    torch.set_num_threads(1)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS",) if k in os.environ)
    print(f"command: {' '.join(filter(None, [env, shlex.join(sys.orig_argv)]))}")
    print(f"torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores; torch threads: {torch.get_num_threads()} "
          f"(torch.set_num_threads(1)); load = 1-minute load average / cores when the row was measured\n")  # fmt: skip
    out = {}
    if "step" in args.parts:
        out["step"] = [step_row(case, args) for case in STEP_CASES]
        print(f"Training step (forward + cross-entropy + backward, no optimiser step; median of {args.iters} "
              f"after {args.warmup} warm-up; random input, CPU, 1 thread):\n")  # fmt: skip
        print(markdown_table(out["step"]) + "\n", flush=True)
    if "data" in args.parts:
        sets = [
            ("2D coco17 (make_synthetic)", pack_annotations(make_synthetic()), "coco17"),
            ("3D ntu25 (float16)", pack_annotations(make_3d_annotations(120)), "ntu25"),
        ]
        out["data"] = [row for name, store, layout in sets for row in data_rows(name, store, layout, args)]
        print(f"Data path per clip (SkeletonClips.__getitem__ in this process, as in a loader worker; mean over "
              f"{args.items} clips; jitter alpha {args.noise_alpha}; 1 thread):\n")  # fmt: skip
        print(markdown_table(out["data"]), flush=True)
    return out


if __name__ == "__main__":
    main()
