"""The checks of bench/gpu_check.sh: what the project does on CUDA, one check per process, one table.

    bash bench/gpu_check.sh [PYTHON] [--quick] [CHECK ...]     # the way to run it (see there)
    python bench/gpu_check.py --list [CHECK ...]               # "name limit_s" per check, in order
    python bench/gpu_check.py --check NAME --work DIR --limit S [--quick]   # run one, append its row
    python bench/gpu_check.py --table DIR                      # the table of DIR's rows; exit 1 on FAILED

Checks (CUDA ones report "skipped: <reason>" without a usable GPU, or with --quick):
- pytest_cuda: the tests of tests/ that mention "cuda", selected with `-k cuda` (their CUDA variants).
- render_cuda_vs_cpu: datasets.batch.render.render of 'Heatmap' and 'Limb' volumes for one random batch
  (N=4, M=2, T=16, V=17, 56x56) on CUDA and on the CPU; figure: max abs difference (ok up to 1e-5).
- demo_cpu_smoke: the demo (`main.py synthetic`) for 3 steps on the CPU (always runs).
- demo_bf16, demo_fp16, demo_channels_last, demo_compile (run last): the demo for 200 steps on CUDA with that
  option; ok when main.py exits 0 and no logged loss or accuracy is NaN; figure: steps/s.
- ddp_nccl: the demo under torchrun with 2 processes (NCCL); needs 2 GPUs.
- data_share_poseconv3d, data_share_motionbert: 30 steps of the pyskl-size PoseConv3D (joint heatmaps,
  batch 32, 48 frames, float32) and of MotionBERT (NTU60 size, 243 frames, batch 32 in bf16, 16 if that
  runs out of memory) on CUDA with up to 8 data workers, one view per clip (`--gamma 0`, as upstream
  trains); figure: mean data time / mean step time over the steps after the first three.
Every run of main.py writes its log and run directory under the work folder (kept by gpu_check.sh when a
check fails, or when GPU_CHECK_LOGS names it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Training runs of the demo: 24 clips per class and subject give 216 steps per epoch at batch 8, so one
# epoch holds the 200 steps; the same data (generated once, cached in data/synthetic) serves every run.
SYNTHETIC = ["synthetic", "--synthetic_clips", "24"]
QUIET_EVAL = ["--eval_corruptions", "none", "--eval_alphas", "0"]  # the final sweep: clean clips only
DEMO_STEPS = 200
SHARE_STEPS = 30
WARMUP_STEPS = 3  # steps left out of the timings (worker start-up, cuDNN autotuning, compilation)
RENDER_TOL = 1e-5
CUDA = "cuda"  # the device of the CUDA checks (tried out on "cpu" by hand when changing this file)


class Skip(Exception):
    """The check cannot run here; its message is the reason."""


def tail(text: str, n: int = 1) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-n:])


# --------------------------------------------------------------------------- helpers of the checks


def cuda_or_skip(quick: bool, need: int = 1) -> None:
    if quick:
        raise Skip("--quick")
    import torch

    if torch.version.cuda is None:
        raise Skip(f"torch {torch.__version__} is built without CUDA")
    count = torch.cuda.device_count()
    if count < need:
        raise Skip(f"needs {need} GPUs, {count} found" if need > 1 else "no CUDA device")


def run_logged(cmd: list[str], log: Path, limit: float, env: dict | None = None) -> tuple[int, str]:
    """Run cmd in the repository root in its own process group, output to `log`; kill the whole group
    when it runs past `limit` seconds. Returns (exit code, output); the exit code is -9 on timeout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=max(limit, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = -9
            f.write(f"\n[gpu_check] killed after {limit:.0f} s\n")
    return rc, log.read_text(errors="replace")


def train_rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def not_finite(rows: list[dict], output: str) -> str | None:
    """The first NaN/inf among the logged training and validation values, or a training log line with
    'nan' ('mCA nan' of a sweep without corruptions is expected and not looked at)."""
    for row in rows:
        if row.get("split") in ("train", "train_epoch", "val"):
            for key, value in row.items():
                if isinstance(value, float) and not math.isfinite(value):
                    return f"{key} {value} ({row['split']}, epoch {row.get('epoch')}, step {row.get('step')})"
    for line in output.splitlines():
        if line.startswith("epoch ") and re.search(r"\bnan\b", line, re.IGNORECASE):
            return line.strip()[:80]
    return None


def drop_checkpoints(run: Path) -> None:
    """Checkpoints are not looked at, and MotionBERT's are hundreds of MB: keep the logs small to ship."""
    for path in run.glob("*.pt"):
        path.unlink()


def timed_steps(rows: list[dict]) -> list[dict]:
    steps = [r for r in rows if r.get("split") == "train" and "step_time" in r]
    later = [r for r in steps if r.get("step", 0) >= WARMUP_STEPS]
    return later or steps


def main_py_result(rc: int, output: str, limit: float, log: Path) -> str | None:
    """FAILED: reason for a main.py (or torchrun) that did not end well, else None."""
    if rc == -9:
        return f"FAILED: timed out after {limit:.0f} s (log {log.name})"
    if rc != 0:
        return f"FAILED: exit {rc}: {tail(output)[:100]}"
    return None


# --------------------------------------------------------------------------- the checks
# Each takes (work dir, time limit in s, quick) and returns (device, result, figure), or raises Skip.


def check_pytest_cuda(work: Path, limit: float, quick: bool):
    cuda_or_skip(quick)
    me = Path(__file__).name
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("*.py")
        if "cuda" in p.read_text(errors="replace") and p.name != f"test_{me}"
    )
    if not files:
        raise Skip("no test mentions cuda")
    pytest = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-rs", "-p", "no:cacheprovider"]
    cmd = [*pytest, "-k", "cuda", *files]
    rc, output = run_logged(cmd, work / "pytest_cuda.log", limit - 5)
    summary = next((ln for ln in reversed(output.splitlines()) if re.search(r"\d+ (passed|failed|skipped)", ln)), "")
    summary = re.sub(r" in [\d.]+s\b.*$", "", summary.strip("= ").strip())
    figure = f"{summary} ({len(files)} files)" if summary else f"{len(files)} files"
    if rc == 5:  # pytest: no test was collected
        return "cuda", "skipped: no test selected by -k cuda", figure
    if rc == -9:
        return "cuda", f"FAILED: timed out after {limit - 5:.0f} s", figure
    if rc != 0:
        return "cuda", f"FAILED: pytest exit {rc}", figure
    if "passed" not in summary:
        return "cuda", "skipped: every selected test skipped itself", figure
    return "cuda", "ok", figure


def check_render_cuda_vs_cpu(work: Path, limit: float, quick: bool):
    cuda_or_skip(quick)
    import torch

    sys.path.insert(0, str(ROOT))
    from datasets.batch.render import render
    from datasets.store.layouts import COCO17

    g = torch.Generator().manual_seed(0)
    n, m, t, v, (h, w) = 4, 2, 16, 17, (56, 56)
    kp = torch.rand(n, m, t, v, 2, generator=g) * torch.tensor([w + 4.0, h + 4.0]) - 2  # some out of frame
    score = torch.rand(n, m, t, v, generator=g)
    missing = torch.rand(n, m, t, v, generator=g) < 0.1
    kp[missing], score[missing] = 0, 0
    diffs = {}
    for fmt in ("Heatmap", "Limb"):
        cpu = render(fmt, kp, score, (h, w), layout=COCO17)
        gpu = render(fmt, kp.to(CUDA), score.to(CUDA), (h, w), layout=COCO17)
        if gpu.device.type == "cuda":
            torch.cuda.synchronize()
        if gpu.device != torch.device(CUDA) or gpu.shape != cpu.shape:
            return "cuda", f"FAILED: {fmt} on {gpu.device} {tuple(gpu.shape)} vs {tuple(cpu.shape)}", ""
        diffs[fmt] = (gpu.cpu() - cpu).abs().max().item()
    figure = "max abs diff " + ", ".join(f"{k} {d:.1e}" for k, d in diffs.items())
    bad = [k for k, d in diffs.items() if not d <= RENDER_TOL]
    return "cuda", (f"FAILED: {', '.join(bad)} above {RENDER_TOL:g}" if bad else "ok"), figure


def demo_run(work: Path, name: str, limit: float, device: str, extra: list[str], steps: int, launcher=None):
    """Train the demo for `steps` steps of one epoch; returns (result, figure). Fewer than 70 steps take
    the demo's own data (8 clips per class and subject, 72 steps per epoch), more take SYNTHETIC's."""
    run = work / "runs" / name
    data = SYNTHETIC if steps >= 70 else ["synthetic"]
    cmd = [*(launcher or [sys.executable]), "main.py", *data, "--device", device, "--epochs", "1"]
    cmd += ["--max_steps", str(steps), "--print-freq", "1", *QUIET_EVAL, "--run_dir", str(work / "runs"), "--name"]
    cmd += [name, *extra]
    rc, output = run_logged(cmd, work / f"{name}.log", limit - 5)
    failed = main_py_result(rc, output, limit - 5, work / f"{name}.log")
    rows = train_rows(run)
    steps_done = timed_steps(rows)
    ok_csv = (run / "robustness.csv").exists()
    drop_checkpoints(run)
    figure = ""
    if steps_done:
        mean = sum(r["step_time"] for r in steps_done) / len(steps_done)
        figure = f"{1 / mean:.1f} steps/s, loss {steps_done[-1]['loss']:.3f}"
    if failed:
        return failed, figure
    if not steps_done:
        return "FAILED: no training step in metrics.jsonl", figure
    bad = not_finite(rows, output)
    if bad:
        return f"FAILED: not finite: {bad}", figure
    if not ok_csv:
        return "FAILED: no robustness.csv (the final evaluation)", figure
    return "ok", figure


def check_demo_cpu_smoke(work: Path, limit: float, quick: bool):
    result, figure = demo_run(work, "demo_cpu_smoke", limit, "cpu", ["-j", "0"], 3)
    return "cpu", result, figure


def demo_variant(*flags: str):
    def check(work: Path, limit: float, quick: bool):
        cuda_or_skip(quick)
        name = "demo_" + flags[-1].lstrip("-")
        return ("cuda", *demo_run(work, name, limit, CUDA, list(flags), DEMO_STEPS))

    return check


def check_ddp_nccl(work: Path, limit: float, quick: bool):
    cuda_or_skip(quick, need=2)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result, figure = demo_run(work, "ddp_nccl", limit, CUDA, [], DEMO_STEPS // 2, launcher)
    return "cuda x2", result, figure


def data_share(work: Path, name: str, limit: float, attempts: list[list[str]]):
    """~SHARE_STEPS steps on CUDA; each attempt after the first is tried only when the one before ran out
    of memory (it is named in the figure). Returns (device, result, figure)."""
    workers = min(8, os.cpu_count() or 1)
    deadline = time.monotonic() + limit - 5
    for i, extra in enumerate(attempts):
        run_name = f"{name}_{i}"
        run = work / "runs" / run_name
        cmd = [sys.executable, "main.py", *SYNTHETIC, "--device", CUDA, "--epochs", "1", "--max_steps"]
        cmd += [str(SHARE_STEPS), "--print-freq", "1", "-j", str(workers), *QUIET_EVAL]
        cmd += ["--run_dir", str(work / "runs"), "--name", run_name, *extra]
        left = deadline - time.monotonic()
        log = work / f"{run_name}.log"
        rc, output = run_logged(cmd, log, left)
        oom = rc != 0 and "out of memory" in output.lower()
        if oom and i + 1 < len(attempts):
            drop_checkpoints(run)
            continue
        setting = f"-b {extra[extra.index('-b') + 1]}, -j {workers}" + (" after OOM at a larger batch" if i else "")
        rows = timed_steps(train_rows(run))
        drop_checkpoints(run)
        figure = setting
        if rows:
            data = sum(r["data_time"] for r in rows) / len(rows)
            step = sum(r["step_time"] for r in rows) / len(rows)
            figure = f"data {100 * data / step:.1f}% of {step:.3f} s/step ({setting})"
        failed = main_py_result(rc, output, left, log)
        if failed:
            return "cuda", failed, figure
        if not rows:
            return "cuda", "FAILED: no training step in metrics.jsonl", figure
        return "cuda", "ok", figure
    raise AssertionError("unreachable")


def check_data_share_poseconv3d(work: Path, limit: float, quick: bool):
    cuda_or_skip(quick)
    # pyskl's NTU60 joint PoseConv3D (SlowOnly, 32 base channels, stages (4, 6, 3), 56x56, 48 frames),
    # trained as upstream: one (clean) view, cross-entropy only.
    cfg = ["--input_f", "Heatmap", "--model_cfg", "base_channels=32", "stage_blocks=(4,6,3)", "--clip_len", "48"]
    cfg += ["--gamma", "0", "--valbatchsize", "32"]
    return data_share(work, "data_share_poseconv3d", limit, [["-b", "32", *cfg]])


def check_data_share_motionbert(work: Path, limit: float, quick: bool):
    cuda_or_skip(quick)
    # MotionBERT NTU60 size (dim 512, depth 5) on 243-frame clips, one view: batch 32 of 2 persons does
    # not fit 141 GB in float32 (about 1.3 GB of activations per sequence), so bf16; batch 16 if even that
    # runs out of memory.
    cfg = ["--model_type", "motionbert", "--input_f", "Skeleton", "--clip_len", "243", "--gamma", "0"]
    cfg += ["--amp", "bf16", "--valbatchsize", "32"]
    return data_share(work, "data_share_motionbert", limit, [["-b", "32", *cfg], ["-b", "16", *cfg]])


# name: (time limit in s, check). The order is the order of the table. The limits sum past the budget of
# gpu_check.sh (450 s), which shortens or skips the last checks when the first take their whole limit;
# on one H200 the checks should take about 400 s (an estimate: this has not run on a GPU yet).
CHECKS = {
    "pytest_cuda": (90, check_pytest_cuda),
    "render_cuda_vs_cpu": (60, check_render_cuda_vs_cpu),
    "demo_cpu_smoke": (60, check_demo_cpu_smoke),
    "demo_bf16": (60, demo_variant("--amp", "bf16")),
    "demo_fp16": (60, demo_variant("--amp", "fp16")),
    "demo_channels_last": (60, demo_variant("--channels_last")),
    "ddp_nccl": (90, check_ddp_nccl),
    "data_share_poseconv3d": (90, check_data_share_poseconv3d),
    "data_share_motionbert": (150, check_data_share_motionbert),
    "demo_compile": (150, demo_variant("--compile")),  # last: compilation time is the least predictable
}


# --------------------------------------------------------------------------- table


def environment() -> str:
    try:
        import torch
    except Exception as e:  # reported, not raised
        return f"torch cannot be imported ({type(e).__name__}: {e})"
    line = f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none (CPU build)'}, {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        line += f", {len(names)} GPU(s): {', '.join(sorted(set(names)))}"
    else:
        line += ", no CUDA device"
    return line


def table(work: Path) -> int:
    """Print the table of work/results.jsonl and work/status ("name rc seconds" or "name budget S" per
    check the shell ran); a check without a row failed (crash or timeout). Returns the exit code."""
    rows = {}
    if (work / "results.jsonl").exists():
        for line in (work / "results.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["check"]] = row
    status = []
    if (work / "status").exists():
        status = [line.split() for line in (work / "status").read_text().splitlines() if line.strip()]
    out = []
    for name, code, seconds in status:
        row = rows.get(name)
        if code == "budget":
            row = {"device": "-", "result": f"skipped: time budget of {seconds} s spent", "figure": ""}
            seconds = "0"
        elif row is None:
            why = "timed out" if code in ("124", "137") else f"exit {code}"
            row = {"device": "-", "result": f"FAILED: no result ({why}, see {name}.log)", "figure": ""}
        out.append((name, row["device"], row["result"], row["figure"] or "-", seconds))
    print(f"gpu_check: {environment()}")
    print()
    print("| check | device | result | figure | seconds |")
    print("|---|---|---|---|---|")
    for cells in out:
        print("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    failed = sum(r[2].startswith("FAILED") for r in out)
    total = sum(int(r[4]) for r in out)
    print()
    print(
        f"{len(out)} checks: {sum(r[2] == 'ok' for r in out)} ok, {failed} failed, "
        f"{sum(r[2].startswith('skipped') for r in out)} skipped; {total} s"
    )
    return 1 if failed or not out else 0


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", nargs="*", metavar="CHECK", help="print 'name limit' of the checks (default all)")
    mode.add_argument("--check", metavar="NAME", choices=sorted(CHECKS), help="run one check, append its row")
    mode.add_argument("--table", metavar="DIR", type=Path, help="print the table of a work folder")
    p.add_argument("--work", type=Path, help="work folder: results.jsonl, logs, run directories")
    p.add_argument("--limit", type=float, help="seconds this check may take (default: its own limit)")
    p.add_argument("--quick", action="store_true", help="report every CUDA check as skipped (CPU smoke only)")
    args = p.parse_args(argv)

    if args.table is not None:
        return table(args.table)
    if args.list is not None:
        unknown = [c for c in args.list if c not in CHECKS]
        if unknown:
            p.error(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
        for name, (limit, _) in CHECKS.items():
            if not args.list or name in args.list:
                print(name, limit)
        return 0
    if args.work is None:
        p.error("--check needs --work")
    limit, check = CHECKS[args.check]
    limit = min(limit, args.limit) if args.limit else limit
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        device, result, figure = check(args.work, limit, args.quick)
    except Skip as e:
        device = {"demo_cpu_smoke": "cpu", "ddp_nccl": "cuda x2"}.get(args.check, "cuda")
        result, figure = f"skipped: {e}", ""
    except Exception as e:  # a check that raises has failed; the others go on
        first = (str(e).splitlines() or [""])[0][:100]
        device, result, figure = "-", f"FAILED: {type(e).__name__}: {first}", ""
        import traceback

        traceback.print_exc()
    row = {"check": args.check, "device": device, "result": result, "figure": figure}
    with open(args.work / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
