"""Training-step throughput of the backbones: forward + backward clips per second on one device.

    python bench/models.py                                   # cuda if available, else cpu; full size
    python bench/models.py --amp bf16 --channels_last --compile
    python bench/models.py --device cpu --iters 3 --warmup 1 --motionbert_clip_lens 24

Cases (batch 8 by default, the pyskl / MotionBERT NTU60 configurations):
- PoseConv3D (pyskl NTU60 joint: 17 heatmaps, SlowOnly (4, 6, 3), 32 base channels) on heatmap volumes
  (N, 17, T, 56, 56), T = 48 (pyskl's clip) and 24 (ours by default);
- MotionBERT (NTU60 action: DSTformer dim 512, depth 5) on skeleton clips (N, 2, T, 17, 3), T = 243
  (its clip) and 24.
A step is what one training step costs the model: forward in train mode, cross-entropy against random
labels, backward; no optimiser step and no data loading or rendering (see bench/render.py for those).
`--poseconv_cfg` / `--motionbert_cfg KEY=VALUE ...` override constructor arguments (a smaller model for
a CPU); the overrides are printed with the figures so they are never mistaken for the full models'.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

# Run as `python bench/models.py`, the script's own folder is on sys.path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import create_model  # noqa: E402
from opts import parse_cfg_item  # noqa: E402
from utils.errors import OneLineParser  # noqa: E402

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Case:
    """One benchmark row: a registered model, its constructor overrides, and the clip length T."""

    model: str  # 'poseconv3d' | 'motionbert'
    cfg: dict
    clip_len: int
    input_size: int = 56  # PoseConv3D frames are input_size x input_size


def make_input(
    model: torch.nn.Module, case: Case, batch: int, device: torch.device, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs of the model's training shape, and random labels.

    PoseConv3D: heatmap volume (batch, in_channels, T, H, W) in [0, 1). MotionBERT: (batch, 2, T, J, 3),
    normalised x, y in [-1, 1) and a confidence score in [0, 1). Labels: (batch,) int64.
    """
    if case.model == "poseconv3d":
        c = model.backbone.conv1.conv.in_channels
        shape = (batch, c, case.clip_len, case.input_size, case.input_size)
        x = torch.rand(shape, generator=gen, device=device)
    else:
        x = torch.rand(batch, 2, case.clip_len, model.num_joints, 3, generator=gen, device=device)
        x[..., :2] = 2 * x[..., :2] - 1
    y = torch.randint(0, model.num_classes, (batch,), generator=gen, device=device)
    return x, y


def input_label(model: torch.nn.Module, case: Case) -> str:
    """Per-clip input shape as in the docs: 17x48x56x56 (C x T x H x W) or (2, 243, 17, 3)."""
    if case.model == "poseconv3d":
        c = model.backbone.conv1.conv.in_channels
        return f"{c}x{case.clip_len}x{case.input_size}x{case.input_size}"
    return f"(2, {case.clip_len}, {model.num_joints}, 3)"


def time_steps(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    iters: int,
    warmup: int,
    amp_dtype: torch.dtype | None,
) -> float:
    """Mean seconds per forward + backward step over `iters` steps, after `warmup` untimed ones."""
    device = x.device

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        # fp16 training scales the loss (GradScaler); a multiply by a constant, left out of the timing.
        loss.backward()
        model.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()  # CUDA runs asynchronously: wait for the last step before reading the clock
    return (time.perf_counter() - t0) / iters


def run_case(case: Case, args: argparse.Namespace, device: torch.device) -> dict:
    """Build the model, time it, and return one table row (peak memory in GiB on CUDA, else None)."""
    gen = torch.Generator(device=device).manual_seed(args.seed)
    model = create_model(case.model, **case.cfg).to(device).train()
    x, y = make_input(model, case, args.batch, device, gen)
    if args.channels_last and case.model == "poseconv3d":
        # NDHWC: what cuDNN's fastest 3D convolutions want; MotionBERT has no convolutions.
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    label = input_label(model, case)
    if args.compile:
        model = torch.compile(model)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sec = time_steps(model, x, y, args.iters, args.warmup, AMP_DTYPES[args.amp])
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "model": case.model,
        "input": label,
        "batch": args.batch,
        "device": str(device),
        "options": options_label(case, args),
        "clips/s": args.batch / sec,
        "ms/step": 1000 * sec,
        "peak GiB": peak,
    }


def options_label(case: Case, args: argparse.Namespace) -> str:
    opts = [f"amp={args.amp}"] if args.amp != "none" else []
    if args.channels_last and case.model == "poseconv3d":
        opts.append("channels_last")
    if args.compile:
        opts.append("compile")
    if args.cudnn_benchmark:
        opts.append("cudnn_benchmark")
    opts += [f"{k}={v}".replace(" ", "") for k, v in case.cfg.items()]
    return " ".join(opts) or "-"


def format_table(rows: list[dict]) -> str:
    """Plain-text table; numbers right-aligned."""
    cols = list(rows[0])

    def cell(v) -> str:
        if v is None:
            return "-"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [cols] + [[cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[j]) for row in cells) for j in range(len(cols))]
    right = [c in {"batch", "clips/s", "ms/step", "peak GiB"} for c in cols]
    return "\n".join(
        "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(row, widths, right, strict=True)) for row in cells
    )


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        description="Forward + backward throughput of PoseConv3D and MotionBERT.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    names = ["poseconv3d", "motionbert"]
    g = p.add_argument_group("cases")
    g.add_argument("--models", nargs="+", default=names, choices=names, help="models to time")
    g.add_argument("--batch", type=int, default=8, help="clips per step")
    per_model = {
        "poseconv": ([48, 24], "base_channels=8 stage_blocks=(1,1,1)"),
        "motionbert": ([243, 24], "dim_feat=64 depth=1"),
    }
    for name, (lens, example) in per_model.items():
        g.add_argument(f"--{name}_clip_lens", type=int, nargs="+", default=lens, metavar="T", help="frames T")
        g.add_argument(
            f"--{name}_cfg",
            nargs="+",
            type=parse_cfg_item,
            default=[],
            metavar="KEY=VALUE",
            help=f"constructor overrides, e.g. {example}",
        )
    g = p.add_argument_group("device and precision")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    g.add_argument("--amp", default="none", choices=list(AMP_DTYPES), help="autocast dtype (fp16: CUDA only)")
    g.add_argument("--channels_last", action="store_true", help="channels-last 3D memory format (PoseConv3D)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (give it --warmup >= 2)")
    g.add_argument("--cudnn_benchmark", action="store_true", help="let cuDNN pick the fastest convolutions")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, one per core)")
    g = p.add_argument_group("timing")
    g.add_argument("--iters", type=int, default=20, help="timed steps per case")
    g.add_argument("--warmup", type=int, default=5, help="untimed steps first (allocator, cuDNN, compile)")
    g.add_argument("--seed", type=int, default=0, help="seed of the weights and the random inputs")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    p = build_parser()
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch sees no CUDA device")
    if args.amp == "fp16" and device.type != "cuda":
        p.error("--amp fp16 needs CUDA; use --amp bf16 or none on the CPU")
    if min(args.batch, args.iters) < 1 or args.warmup < 0:
        p.error("--batch and --iters must be >= 1, --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.manual_seed(args.seed)  # weight initialisation draws from the global generator

    cases = []
    if "poseconv3d" in args.models:
        cases += [Case("poseconv3d", dict(args.poseconv_cfg), t) for t in args.poseconv_clip_lens]
    if "motionbert" in args.models:
        cases += [Case("motionbert", dict(args.motionbert_cfg), t) for t in args.motionbert_clip_lens]

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} CPU threads", flush=True)
    rows = []
    for case in cases:
        rows.append(run_case(case, args, device))
        r = rows[-1]
        print(f"  {r['model']} {r['input']}: {r['ms/step']:.1f} ms/step", flush=True)  # progress
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
