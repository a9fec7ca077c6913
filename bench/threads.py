"""Training steps/s of the demo with --threads auto and with every core, alone and beside a busy job.

    .venv/bin/python bench/threads.py                      # 40 steps per run, auto vs all cores, 0 and 1 busy job
    .venv/bin/python bench/threads.py --steps 20 --threads auto 1 2 --busy 0 1 2

Each run is `python main.py synthetic` (the demo's defaults: PoseConv3D on Skeleton input, base_channels
16, batch 8, -j 2) cut to --steps training steps (`--epochs 1 --max_steps`, no validation part, a
clean-only final evaluation), in a fresh process with OMP_NUM_THREADS unset so that `auto` applies its
rule (utils/threads.py). Steps/s is read from the run's metrics.jsonl: the step times of every step but
the first --skip (warm-up). A busy job is a process spinning on the CPU (pure Python, one core each),
started --settle seconds before the run; it stands for another experiment on the same machine.

Every row shows the 1-minute load average before and after the run and the thread count the run chose
(its start-up note). The machine may be shared: figures taken with other jobs running are lower; rerun
when the load average before a run is above the busy jobs it was meant to have.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spin() -> None:
    """Hold one core until killed."""
    x = 0
    while True:
        x += 1


def start_busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                              "from bench.threads import spin; spin()"]) for _ in range(n)]  # fmt: skip


def run_demo(threads: str, steps: int, skip: int, run_dir: Path, extra: list[str]) -> dict:
    """One demo run of `steps` steps with --threads `threads`; its steps/s, chosen threads and load."""
    name = f"t{threads}_{time.monotonic_ns()}"
    cmd = [sys.executable, str(ROOT / "main.py"), "synthetic", "--epochs", "1", "--max_steps", str(steps),
           "--val_fraction", "0", "--eval_corruptions", "none", "--eval_alphas", "0", "--print-freq", "1",
           "--run_dir", str(run_dir), "--name", name, "--threads", threads, *extra]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    load_before = os.getloadavg()[0]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench/threads.py: error: the demo run failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    rows = [json.loads(line) for line in (run_dir / name / "metrics.jsonl").read_text().splitlines()]
    times = [r["step_time"] for r in rows if r.get("split") == "train"][skip:]
    if not times:
        raise SystemExit(f"bench/threads.py: error: no step times after skipping {skip}; raise --steps")
    chosen = re.search(r"torch computes with (\d+) thread", out.stdout)
    return {
        "threads": threads,
        "chosen": int(chosen.group(1)) if chosen else None,
        "steps_per_s": len(times) / sum(times),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    cores = len(os.sched_getaffinity(0))
    p.add_argument(
        "--threads", nargs="+", default=["auto", str(cores)], help="--threads values (default: auto, all cores)"
    )
    p.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy jobs beside the run (default: 0 and 1)")
    p.add_argument("--steps", type=int, default=40, help="training steps per run (the issue's 40)")
    p.add_argument("--skip", type=int, default=2, help="first steps left out of the timing (warm-up)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between starting the busy jobs and the run")
    p.add_argument("--repeats", type=int, default=1, help="runs per setting")
    p.add_argument("extra", nargs="*", help="more main.py flags after --, e.g. -- -j 0 --model_type motionbert")
    args = p.parse_args(argv)
    if args.steps <= args.skip or min(args.busy) < 0:
        p.error("--steps must exceed --skip, and --busy counts jobs (>= 0)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as tmp:
        for busy in args.busy:
            jobs = start_busy(busy)
            try:
                time.sleep(args.settle if busy else 0)
                for threads in args.threads:
                    for _ in range(args.repeats):
                        r = run_demo(threads, args.steps, args.skip, Path(tmp), args.extra)
                        r["busy"] = busy
                        rows.append(r)
                        print(
                            f"busy jobs {busy}  --threads {threads:>4} ({r['chosen']} chosen): {r['steps_per_s']:.2f} "
                            f"steps/s  (load average {r['load_before']:.1f} before, {r['load_after']:.1f} after, "
                            f"{cores} cores)",
                            flush=True,
                        )
            finally:
                for job in jobs:
                    job.kill()
                    job.wait()
    return rows


if __name__ == "__main__":
    main()
