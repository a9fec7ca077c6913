"""bench/gpu_check.sh on the CPU with --quick: the 3-step CPU run of the demo, every other check skipped,
one table, exit code 0; and a check that fails makes the table say so and the exit code 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def table_rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and cells[0] not in ("check", "---"):
            rows[cells[0]] = cells[1:]
    return rows


def run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPU_CHECK_LOGS": str(tmp_path / "logs")}
    return subprocess.run(
        ["bash", str(SCRIPT), sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_quick_run_on_cpu(tmp_path):
    listed = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    proc = run_script(tmp_path, "--quick")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    assert "| check | device | result | figure | seconds |" in proc.stdout
    rows = table_rows(proc.stdout)
    assert list(rows) == names  # one table, every check in order
    device, result, figure, seconds = rows.pop("demo_cpu_smoke")
    assert (device, result) == ("cpu", "ok") and "steps/s" in figure and int(seconds) >= 0
    assert all(result == "skipped: --quick" for _, result, _, _ in rows.values()), rows
    assert "cuda x2" in rows["ddp_nccl"][0]
    # The smoke run's own metrics were read: three logged training steps, finite losses.
    metrics = (tmp_path / "logs" / "runs" / "demo_cpu_smoke" / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["split"] == "train" for line in metrics) == 3


def test_failed_check_sets_exit_code(tmp_path):
    # A check whose process dies without writing its row is reported as FAILED; skipped ones are not.
    work = tmp_path / "work"
    work.mkdir()
    (work / "results.jsonl").write_text(
        json.dumps({"check": "render_cuda_vs_cpu", "device": "cuda", "result": "skipped: no CUDA device", "figure": ""})
        + "\n"
    )
    (work / "status").write_text("render_cuda_vs_cpu 0 1\ndemo_bf16 124 60\ndata_share_motionbert budget 450\n")
    proc = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--table", str(work)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = table_rows(proc.stdout)
    assert rows["render_cuda_vs_cpu"][1] == "skipped: no CUDA device"
    assert rows["demo_bf16"][1].startswith("FAILED: no result (timed out")
    assert rows["data_share_motionbert"][1].startswith("skipped: time budget")
