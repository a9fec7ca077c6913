"""Time the batched renderer (datasets/batch/render.py) against the per-joint loop it replaces.

    .venv/bin/python bench/render.py                 # T=48, 2 persons, 17 joints, 56x56, batch 32
    .venv/bin/python bench/render.py --batch 8 --repeats 3

For joint and limb heatmaps, prints the time per clip of
- `loop`: bench/render_loop.py, pyskl's algorithm as per-frame, per-joint NumPy loops (one clip at a
  time, as a data worker would run it);
- `batched`: datasets.batch.render on the whole batch, into a reused output buffer (what a training loop that
  keeps its input buffer gets);
- `batched+alloc`: the same with a freshly allocated output volume per call (on a CPU, the page faults
  of a new multi-hundred-MB volume cost more than the rendering itself);
and the speed-up of each over the loop, then asserts that the outputs agree (max abs difference).
Times are the median of --repeats runs (the minimum is shown too); other processes on the machine
move them, so run it a couple of times. CUDA is timed too when it is available.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.render_loop import render_batch, render_clip  # noqa: E402
from datasets.batch.render import render_joint_heatmaps, render_limb_heatmaps  # noqa: E402
from datasets.store.layouts import COCO17  # noqa: E402
from utils.errors import OneLineParser  # noqa: E402

# A standing person in COCO-17 order, (x, y) as fractions of a square box.
_TEMPLATE = np.array(
    [
        [0.50, 0.08], [0.47, 0.06], [0.53, 0.06], [0.44, 0.08], [0.56, 0.08], [0.38, 0.24],
        [0.62, 0.24], [0.33, 0.42], [0.67, 0.42], [0.30, 0.58], [0.70, 0.58], [0.42, 0.58],
        [0.58, 0.58], [0.41, 0.78], [0.59, 0.78], [0.40, 0.97], [0.60, 0.97],
    ],
    dtype=np.float32,
)  # fmt: skip


def synthetic_clips(
    rng: np.random.Generator, n: int, m: int, t: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints like a compacted pipeline output: persons filling most of the frame, moving a little.

    Returns kp (N, M, T, 17, 2) float32 pixels and score (N, M, T, 17) float32; about 3% of the
    joints and the second person in the last quarter of the frames are missing (0 and score 0).
    """
    h, w = size
    scale = rng.uniform(0.6, 0.9, (n, m, 1, 1, 1)) * np.array([w, h])  # person box, pixels
    origin = rng.uniform(0.0, 0.4, (n, m, 1, 1, 2)) * np.array([w, h])
    phase = rng.uniform(0, 2 * np.pi, (n, m, 1, 17, 2))
    sway = 1.5 * np.sin(np.linspace(0, 2 * np.pi, t)[None, None, :, None, None] + phase)  # (N, M, T, 17, 2)
    kp = origin + _TEMPLATE * scale + sway + rng.normal(0, 0.5, (n, m, t, 17, 2))
    score = rng.uniform(0.3, 1.0, (n, m, t, 17))
    missing = rng.random((n, m, t, 17)) < 0.03
    missing[:, 1:, 3 * t // 4 :] = True
    kp[missing] = 0
    score[missing] = 0
    return kp.astype(np.float32), score.astype(np.float32)


def _time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Seconds per call of `fn`, after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32, help="clips per batched call")
    parser.add_argument("--frames", type=int, default=48, help="T, frames per clip")
    parser.add_argument("--persons", type=int, default=2, help="M, persons per clip")
    parser.add_argument("--size", type=int, default=56, help="H = W, frame side in pixels")
    parser.add_argument("--sigma", type=float, default=0.6, help="Gaussian sigma in pixels")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls of the batched renderer")
    parser.add_argument("--loop-repeats", type=int, default=2, help="timed passes of the loop over the batch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic keypoints")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    n, size = args.batch, (args.size, args.size)
    kp_np, score_np = synthetic_clips(np.random.default_rng(args.seed), n, args.persons, args.frames, size)
    print(
        f"N={n} clips, T={args.frames}, M={args.persons}, V=17, {size[0]}x{size[1]}, sigma {args.sigma}; "
        f"torch {torch.__version__}, {args.threads} CPU threads"
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for kind, limbs, atol in (("joints", None, 1e-6), ("limbs", COCO17.limbs, 5e-6)):
        # Clip by clip, as a data worker would render them (the stacking into a batch is not timed).
        loop_times = _time(
            lambda limbs=limbs: [
                render_clip(k, s, size, args.sigma, limbs=limbs) for k, s in zip(kp_np, score_np, strict=True)
            ],
            args.loop_repeats,
        )
        reference = render_batch(kp_np, score_np, size, args.sigma, limbs=limbs)  # (N, C, T, H, W)
        loop = statistics.median(loop_times) / n
        print(f"{kind}: loop (NumPy, per joint)   {loop * 1e3:8.3f} ms/clip")
        for device in devices:
            kp, score = torch.from_numpy(kp_np).to(device), torch.from_numpy(score_np).to(device)
            out = torch.empty(reference.shape, dtype=torch.float32, device=device)

            def run(out: torch.Tensor | None, limbs=limbs, kp=kp, score=score) -> torch.Tensor:
                if limbs is None:
                    return render_joint_heatmaps(kp, score, size, args.sigma, out=out)
                return render_limb_heatmaps(kp, score, size, limbs, args.sigma, out=out)

            sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
            for label, buffer in (("batched", out), ("batched+alloc", None)):
                times = _time(lambda buffer=buffer, run=run: run(buffer), args.repeats, sync)
                per_clip = statistics.median(times) / n
                print(
                    f"{kind}: {label:13s} {device.type:4s}    {per_clip * 1e3:8.3f} ms/clip "
                    f"(min {min(times) / n * 1e3:.3f})   {loop / per_clip:6.1f}x the loop"
                )
            diff = float((run(out).cpu() - torch.from_numpy(reference)).abs().max())
            print(f"{kind}: max |batched {device.type} - loop| = {diff:.2e} (allowed {atol:.0e})")
            assert diff <= atol, f"{kind} on {device}: outputs differ by {diff}"


if __name__ == "__main__":
    main()
