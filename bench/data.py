"""The data path at NTU60 scale, measured: load + validation, memory with data workers, clips/s.

    .venv/bin/python bench/make_ntu_scale.py                  # once: /tmp/ntu60_scale.pkl (56,880 clips)
    OMP_NUM_THREADS=1 .venv/bin/python bench/data.py          # -j 0 4 8, batch 32, 17x48x56x56 volumes
    .venv/bin/python bench/data.py --ann_file /tmp/tiny.pkl -j 0 --batches 2 --items 8 --render_batches 1

It goes through the project's own code and prints, for the train split of `xsub` (PoseConv3D input as
pyskl trains it on NTU60, a clean and a jittered view per clip, as with --gamma > 0):
1. load: seconds to unpickle the file and to validate and pack it (engine.data.load_run_data; target
   under 30 s), and the size of the packed keypoint store;
2. memory: the proportional set size (PSS) of the whole process tree, this process and its DataLoader
   workers, read from /proc/PID/smaps_rollup, at its highest while iterating the train loader with each
   -j (target: PSS with 8 workers at most 1.3x that with 0). PSS splits each shared page among the
   processes that map it, so unlike resident memory its sum over the tree counts shared pages once;
3. speed: clips/s of one worker's work (sampling, transforms and collation of a batch, measured in this
   process on one thread: a worker does exactly this), and of rendering a batch's heatmap volumes
   (engine.data.step_input into a reused buffer, on --device), against what 8 workers need to feed a
   GPU at 2,000 clips/s (250 clips/s each). Both per second of CPU time (what a worker with a core of its
   own gets, and what the target is about) and of wall time (lower on a busy machine).
The loader passes also print their clips/s with every worker running; on a machine with fewer cores
than workers that figure is bound by the cores, not the workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets.store.catalog as catalog  # noqa: E402
from datasets.store.annotations import KeypointStore  # noqa: E402
from engine.config import RunConfig, TrainConfig, resolve_run_config  # noqa: E402
from engine.data import RunData, load_run_data, step_input, train_loaders  # noqa: E402
from utils.errors import OneLineParser  # noqa: E402
from utils.runtime import Runtime  # noqa: E402

GPU_CLIPS_PER_S = 2000  # the rate a GPU trains the pyskl-size PoseConv3D at, which the workers must feed
TARGET_WORKERS = 8
LOAD_TARGET_S = 30.0
PSS_TARGET_RATIO = 1.3


def pss_kib(pid: int) -> int:
    """PSS of one process in KiB (/proc/PID/smaps_rollup), 0 when it has exited meanwhile."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Child process ids of `pid`, from every one of its threads' /proc children lists."""
    out = []
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        for task in tasks:
            text = (task / "children").read_text()
            out += [int(c) for c in text.split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def tree_pss(root: int) -> tuple[int, int, int]:
    """(PSS of the whole tree, PSS of `root`, number of descendants), in KiB."""
    total, own, stack, count = 0, pss_kib(root), children(root), 0
    total += own
    while stack:
        pid = stack.pop()
        total += pss_kib(pid)
        count += 1
        stack += children(pid)
    return total, own, count


def timed_load(ann_file: str, protocol: str):
    """engine.data.load_run_data on the file as NTU60 (60 classes), with the time of its two parts:
    unpickling (datasets.store.annotations.load_pickle) and validation + packing (pack_annotations), and the
    CPU time of the whole (what it takes with a core of its own)."""
    parts = {}

    def timing(name, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            parts[name] = time.perf_counter() - start
            return out

        return wrapper

    real = catalog.load_pickle, catalog.pack_annotations
    catalog.load_pickle = timing("unpickle", real[0])  # load_store calls them by these names
    catalog.pack_annotations = timing("validate+pack", real[1])
    try:
        start, cpu = time.perf_counter(), time.process_time()
        data = load_run_data("ntu60", ".", ann_file, protocol)
        parts["total"], parts["cpu"] = time.perf_counter() - start, time.process_time() - cpu
    finally:
        catalog.load_pickle, catalog.pack_annotations = real
    return data, parts


def loader_pass(loader, batches: int, every_s: float = 1.0) -> dict:
    """Iterate `batches` batches of `loader`, sampling the process tree's PSS at most every `every_s`
    seconds (a sample reads every page table of the tree: milliseconds per GB, taken from the consumer);
    returns the highest sample (KiB), its split, and the clips/s of the pass."""
    best, k = (0, 0, 0), -1
    clips, start, last = 0, time.perf_counter(), 0.0
    for k, batch in enumerate(loader):
        clips += len(batch["label"])
        now = time.perf_counter()
        if now - last >= every_s or k + 1 == batches:
            sample = tree_pss_now()
            best = max(best, sample)
            last = now
        if k + 1 == batches:
            break
    elapsed = time.perf_counter() - start
    return {"pss": best[0], "main": best[1], "workers": best[2], "clips_per_s": clips / elapsed, "batches": k + 1}


def load_note() -> str:
    """The 1-minute load average beside the cores this process may use: figures of a busy machine are slower."""
    return f"load average {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores"


def tree_pss_now() -> tuple[int, int, int]:
    return tree_pss(os.getpid())


def worker_rate(ds, batch_size: int, items: int) -> tuple[float, float]:
    """Clips/s of what one worker does: __getitem__ of `items` clips and their collation, in batches.
    Returns (per second of wall time, per second of this process's CPU time): on a busy machine the first
    is what this process got, the second what a worker with a core of its own gets."""
    n = len(ds)
    idx = np.random.default_rng(0).permutation(n)[:items]
    start, cpu = time.perf_counter(), time.process_time()
    for lo in range(0, len(idx), batch_size):
        default_collate([ds[int(i)] for i in idx[lo : lo + batch_size]])
    return len(idx) / (time.perf_counter() - start), len(idx) / (time.process_time() - cpu)


def render_rate(ds, cfg, rt: Runtime, batch_size: int, repeats: int, views: int) -> tuple[float, float, tuple]:
    """Clips/s of rendering a training step's input (each clip's `views` volumes) with step_input into a
    reused buffer (as the training loop does), median of `repeats` after one warm-up; the same per second
    of this process's CPU time (all its threads; on CUDA, the launching thread's); and the volume's shape
    (N, C, T, H, W)."""
    batch = default_collate([ds[i] for i in range(min(batch_size, len(ds)))])
    prefixes = ["", "noisy_"][:views]
    buffers: dict = {}
    x = step_input([(batch, p) for p in prefixes], cfg, rt, buffers)  # warm-up; allocates the buffer
    times, cpu = [], time.process_time()
    for _ in range(repeats):
        if rt.device.type == "cuda":
            torch.cuda.synchronize(rt.device)
        start = time.perf_counter()
        step_input([(batch, p) for p in prefixes], cfg, rt, buffers)
        if rt.device.type == "cuda":
            torch.cuda.synchronize(rt.device)
        times.append(time.perf_counter() - start)
    clips = len(batch["label"])
    return clips / statistics.median(times), clips * repeats / (time.process_time() - cpu), tuple(x.shape)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ann_file", default="/tmp/ntu60_scale.pkl", help="pyskl 2D file (bench/make_ntu_scale.py)")
    p.add_argument("--split", default="xsub", help="split protocol; its train part is iterated")
    p.add_argument("-j", "--workers", type=int, nargs="+", default=[0, 4, 8], help="worker counts to measure")
    p.add_argument("--batches", type=int, default=0, help="batches per loader pass (0: 2 + 4 x workers, at least 12)")
    p.add_argument("-b", "--batch_size", type=int, default=32, help="clips per batch (pyskl's NTU60 per GPU)")
    p.add_argument("--clip_len", type=int, default=48, help="frames per clip (pyskl's PoseConv3D on NTU60)")
    p.add_argument("--input_size", type=int, default=56, help="side of the heatmap volumes")
    p.add_argument("--noise_alpha", type=float, default=0.1, help="jitter of the second view")
    p.add_argument("--items", type=int, default=256, help="clips timed for one worker's rate")
    p.add_argument("--render_batches", type=int, default=5, help="timed renderings of one batch")
    p.add_argument("--device", default="cpu", help="where batches are rendered (the training device)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process (1: as one worker)")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Run the three measurements and print a line for each; returns the figures: 'load' (timed_load's
    seconds), 'store_mib', 'passes' (loader_pass's result per worker count), 'worker' and 'worker_cpu',
    'render' and 'render_cpu' (clips/s per second of wall and CPU time)."""
    p = build_parser()
    args = p.parse_args(argv)
    if not Path(args.ann_file).is_file():
        p.error(f"--ann_file {args.ann_file} does not exist: write it with python bench/make_ntu_scale.py")
    if min(args.workers) < 0 or args.batch_size < 1 or args.items < 1 or args.render_batches < 1:
        p.error("--workers must be >= 0; --batch_size, --items and --render_batches >= 1")
    torch.set_num_threads(args.threads)
    # More workers than cores is the point of the memory passes on a small machine; torch warns about it.
    warnings.filterwarnings("ignore", message="This DataLoader will create")

    # 1. load and validate
    data, t = timed_load(args.ann_file, args.split)
    if len(data.train_idx) == 0:
        p.error(f"{args.ann_file} has no clips in {args.split}_train: write a larger file (--clips)")
    nbytes = report_load(data.store, t)

    # 2. memory while iterating the train loader, per worker count
    rt = Runtime(torch.device(args.device))
    cfg = resolve_run_config(
        "poseconv3d", input_format="Heatmap", layout=data.layout, num_joints=data.store.num_joints,
        coord_dim=data.store.coord_dim, num_classes=data.num_classes, dropout=0.5, clip_len=args.clip_len,
        input_size=args.input_size, max_persons=2,
    )  # fmt: skip
    passes = memory_passes(args, data, cfg, rt)

    # 3. speed of one worker and of rendering
    speed = speed_rates(args, data, cfg, rt)
    return {"load": t, "store_mib": nbytes / 2**20, "passes": passes, **speed}


def report_load(store: KeypointStore, t: dict[str, float]) -> int:
    """Print the load line: timed_load's seconds `t` against LOAD_TARGET_S, the size of the packed store
    and this process's PSS after loading. Returns the packed store's size in bytes (keypoints and scores)."""
    nbytes = store.keypoint.nbytes + (store.score.nbytes if store.score is not None else 0)
    _, base_main, _ = tree_pss_now()
    verdict = "met" if t["total"] < LOAD_TARGET_S else "MISSED"
    print(
        f"load: {len(store)} clips in {t['total']:.1f} s ({t['cpu']:.1f} s of CPU time; unpickle "
        f"{t['unpickle']:.1f} s, validate+pack "
        f"{t['validate+pack']:.1f} s; target < {LOAD_TARGET_S:.0f} s: {verdict}); "
        f"packed store {nbytes / 2**20:.0f} MiB; PSS after load {base_main / 2**10:.0f} MiB; {load_note()}",
        flush=True,
    )
    return nbytes


def memory_passes(args: argparse.Namespace, data: RunData, cfg: RunConfig, rt: Runtime) -> dict[int, dict]:
    """One pass of the train loader per worker count of args.workers (args.batches batches, by default
    2 + 4 x workers and at least 12), each printed as it ends, then the PSS ratio of TARGET_WORKERS workers
    to none against PSS_TARGET_RATIO when both were measured. Returns loader_pass's result per worker count."""
    empty = np.zeros(0, dtype=np.int64)
    passes = {}
    for j in args.workers:
        train = TrainConfig(epochs=1, batch_size=args.batch_size, workers=j, noise_alpha=args.noise_alpha)
        loader, _ = train_loaders(data.store, data.train_idx, empty, cfg, train, True, rt)
        batches = args.batches or max(12, 2 + 4 * j)
        passes[j] = r = loader_pass(loader, batches)
        print(
            f"memory -j {j}: PSS {r['pss'] / 2**10:.0f} MiB (main {r['main'] / 2**10:.0f} MiB, {r['workers']} "
            f"workers {(r['pss'] - r['main']) / 2**10:.0f} MiB); {r['clips_per_s']:.0f} clips/s over "
            f"{r['batches']} batches of {args.batch_size}; {load_note()}",
            flush=True,
        )
        del loader
    if 0 in passes and TARGET_WORKERS in passes:
        ratio = passes[TARGET_WORKERS]["pss"] / passes[0]["pss"]
        verdict = "met" if ratio <= PSS_TARGET_RATIO else "MISSED"
        print(f"memory: PSS -j {TARGET_WORKERS} / -j 0 = {ratio:.2f} (target <= {PSS_TARGET_RATIO}: {verdict})")
    return passes


def speed_rates(args: argparse.Namespace, data: RunData, cfg: RunConfig, rt: Runtime) -> dict[str, float]:
    """Clips/s of one worker (worker_rate, against GPU_CLIPS_PER_S / TARGET_WORKERS) and of rendering a
    batch's two views (render_rate), each printed. Returns 'worker', 'worker_cpu', 'render' and
    'render_cpu': clips/s per second of wall time and of CPU time."""
    empty = np.zeros(0, dtype=np.int64)
    ds, _ = train_loaders(
        data.store, data.train_idx, empty, cfg,
        TrainConfig(epochs=1, batch_size=args.batch_size, noise_alpha=args.noise_alpha), True, rt,
    )  # fmt: skip
    ds = ds.dataset
    per_worker, per_worker_cpu = worker_rate(ds, args.batch_size, args.items)
    need = GPU_CLIPS_PER_S / TARGET_WORKERS
    print(
        f"one worker: {per_worker_cpu:.0f} clips/s of CPU time ({per_worker:.0f} of wall time; clean + jittered "
        f"view, {args.clip_len} frames); {TARGET_WORKERS} workers with a core each feed "
        f"{TARGET_WORKERS * per_worker_cpu:.0f} clips/s, a GPU at {GPU_CLIPS_PER_S} clips/s needs {need:.0f} per "
        f"worker: {'met' if per_worker_cpu >= need else 'MISSED'}; {load_note()}",
        flush=True,
    )
    rendered, rendered_cpu, shape = render_rate(ds, cfg, rt, args.batch_size, args.render_batches, 2)
    print(
        f"render: {rendered_cpu:.0f} clips/s of CPU time ({rendered:.0f} of wall time) on {rt.device} with "
        f"{torch.get_num_threads()} thread(s) (2 views per clip, volume {shape} (N, C, T, H, W) per batch); "
        f"{load_note()}",
        flush=True,
    )
    return {"worker": per_worker, "worker_cpu": per_worker_cpu, "render": rendered, "render_cpu": rendered_cpu}


if __name__ == "__main__":
    main()
