"""CLI smoke tests: main([...]) trains, checkpoints, resumes and evaluates on a tiny synthetic set."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.objective
import engine.train
import main as cli
import opts
from datasets.sources.synthetic import make_synthetic
from engine.config import RunConfig
from engine.data import model_input, step_input
from tests.conftest import error_line
from utils.runtime import Runtime

TINY_POSE = ["--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)"]
TINY_MB = ["--model_cfg", "dim_feat=16", "dim_rep=16", "depth=1", "num_heads=2", "hidden_dim=32"]


@pytest.fixture(scope="module")
def ann_file(tmp_path_factory):
    """A small synthetic annotation file: 12 classes, 10 subjects, one short clip each."""
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path


def base(tmp_path, ann_file, name, *extra):
    return [
        "synthetic",
        "--ann_file", str(ann_file),
        "--run_dir", str(tmp_path),
        "--name", name,
        "--epochs", "2",
        "--max_steps", "2",
        "-b", "4",
        "--valbatchsize", "8",
        "-j", "0",
        "--clip_len", "8",
        "--input_size", "32",
        "--eval_alphas", "0", "0.1", "--eval_corruptions", "none",
        "--device", "cpu",
        *extra,
    ]  # fmt: skip


def rows(run_dir, split):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


@pytest.mark.parametrize("fmt", ["Heatmap", "Limb", "Grayscale", "Skeleton"])
def test_poseconv_formats_train_and_write_robustness(tmp_path, ann_file, fmt):
    out = cli.main(base(tmp_path, ann_file, fmt, "--input_f", fmt, "--gamma", "1", *TINY_POSE))
    run = tmp_path / fmt
    for f in ("last.pt", "best.pt", "robustness.csv", "robustness.png", "split.json", "metrics.jsonl"):
        assert (run / f).exists(), f
    assert [(r["checkpoint"], r["family"], r["severity"]) for r in out["robustness"]] == [
        ("best", "clean", 0.0),
        ("best", "jitter", 0.1),
        ("last", "clean", 0.0),
        ("last", "jitter", 0.1),
    ]
    train = rows(run, "train")
    assert {"ce", "instance"} <= set(train[0]) and all(np.isfinite(r["loss"]) for r in train)
    assert len(rows(run, "val")) == 2


def test_motionbert_trains(tmp_path, ann_file):
    args = base(tmp_path, ann_file, "mb", "--model_type", "motionbert", "--input_f", "Skeleton", *TINY_MB)
    args += ["--use_group_contrastive", "--gamma2", "1"]
    out = cli.main(args)
    assert out["robustness"][0]["clips"] > 0
    assert "group" in rows(tmp_path / "mb", "train")[0]


def test_tsm_trains(tmp_path, ann_file):
    args = base(tmp_path, ann_file, "tsm", "--model_type", "tsm", "--num_segments", "4", "--shift", "--npb")
    i = args.index("--clip_len")
    del args[i : i + 2]  # TSM reads --num_segments frames
    cli.main(args)
    assert (tmp_path / "tsm" / "robustness.csv").exists()


def test_semi_supervised_split_and_finetune_stage(tmp_path, ann_file):
    args = base(tmp_path, ann_file, "semi", "--percentage", "0.5", "--use_finetuning", "--finetune_start_epoch",
                "1", "--threshold", "0.0001", *TINY_POSE)  # fmt: skip
    cli.main(args)
    split = json.loads((tmp_path / "semi" / "split.json").read_text())
    assert len(split["labelled"]) > 0 and len(split["unlabelled"]) > 0
    stages = [r["stage"] for r in rows(tmp_path / "semi", "train")]
    assert stages[0] == "contrastive" and stages[-1] == "finetune"
    assert "pseudo" in rows(tmp_path / "semi", "train")[-1]


def test_resume_matches_uninterrupted_run(tmp_path, ann_file, monkeypatch):
    args = lambda name: base(tmp_path, ann_file, name, "--epochs", "3", *TINY_POSE)  # noqa: E731
    straight = cli.main(args("straight"))

    real = engine.train.train_one_epoch

    def crash_at_epoch_2(tr, plan, loaders, pos, *rest):
        if pos.epoch == 2:
            raise KeyboardInterrupt
        return real(tr, plan, loaders, pos, *rest)

    monkeypatch.setattr(engine.train, "train_one_epoch", crash_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        cli.main(args("resumed"))
    monkeypatch.setattr(engine.train, "train_one_epoch", real)
    resumed = cli.main(args("resumed"))  # finds last.pt and goes on
    assert resumed["robustness"] == straight["robustness"]
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_checkpoint(tmp_path, ann_file):
    cli.main(base(tmp_path, ann_file, "ev", *TINY_POSE))
    ckpt = tmp_path / "ev" / "best.pt"
    out = cli.main(
        base(
            tmp_path,
            ann_file,
            "ev2",
            "--evaluate",
            str(ckpt),
            "--eval_alphas",
            "0",
            "0.05",
            "0.2",
            "--eval_corruptions",
            "none",
        )
    )
    assert [(r["checkpoint"], r["severity"]) for r in out["robustness"]] == [
        ("best", 0.0),
        ("best", 0.05),
        ("best", 0.2),
    ]
    assert (tmp_path / "ev2" / "robustness.csv").exists()


@pytest.mark.parametrize(
    "extra",
    [
        ["--percentage", "1.0"],
        ["--model_type", "motionbert", "--input_f", "Heatmap"],
        ["--model_type", "tsm", "--input_f", "Skeleton"],
        ["--noise_alpha", "-1"],
        ["--model_cfg", "nonsense=3"],
        ["--use_finetuning"],
        ["--input_f", "Heatmap", "--in_channels", "68"],  # Heatmap needs 17
        ["--noise_alpha", "nan"],
        ["--lr", "inf"],
        ["--no_such_flag"],
    ],
)
def test_bad_flags_exit_2(tmp_path, ann_file, extra, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(base(tmp_path, ann_file, "bad", *extra))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: " in err[0]  # one line, no usage block


def test_missing_annotation_file_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["ntu60", "--data_root", str(tmp_path), "--device", "cpu"])
    msg = error_line(capsys, e)
    assert "ntu60_hrnet.pkl" in msg and "synthetic" in msg and "\n" not in msg


def test_corrupt_checkpoint_is_one_line(tmp_path, ann_file, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as e:
        cli.main(base(tmp_path, ann_file, "c", "--evaluate", str(bad)))
    msg = error_line(capsys, e)
    assert "bad.pt" in msg


def test_cross_entropy_only_baseline(tmp_path, ann_file):
    cli.main(base(tmp_path, ann_file, "ce", "--gamma", "0", "--gamma2", "0", "--input_f", "Skeleton", *TINY_POSE))
    train = rows(tmp_path / "ce", "train")
    assert all(r["stage"] == "supervised" and "instance" not in r for r in train)


SEED_FLAGS = (
    "RGB --seed 123 --input_f Skeleton --in_channels 68 --strategy classwise --arch resnet18 --num_segments 8 "
    "--second_segments 8 --threshold 0.8 --gd 20  --epochs 1000 --percentage 0.95 -j 2 --dropout 0.5 "
    "--consensus_type=avg --eval-freq=1 --print-freq 50 --shift --shift_div=8 --shift_place=blockres --npb "
    "--gpus 0  --mu 1 --gamma 5 --gamma2 0 --use_group_contrastive --sup_thresh 0 --batch-size 32 "
    "--valbatchsize 32  --lr_backbone1 0.001 --lr_decay1 0.9  --noise_alpha 0.1"
).split()


@pytest.mark.parametrize("model", ["poseconv", "motionbert"])
def test_seed_command_lines_run(tmp_path, ann_file, model, capsys):
    """The seed project's command lines, unchanged, with only run length and model size appended."""
    extra = ["--model_type", model] if model == "motionbert" else []
    small = TINY_MB + ["--clip_len", "16"] if model == "motionbert" else TINY_POSE
    argv = ["synthetic", *SEED_FLAGS, *extra, "--ann_file", str(ann_file), "--run_dir", str(tmp_path),
            "--name", model, "--epochs", "1", "--max_steps", "1", "-j", "0", "--eval_alphas", "0",
            "--eval_corruptions", "none", *small]  # fmt: skip
    out = cli.main(argv)
    assert out["robustness"][0]["clips"] > 0
    log = capsys.readouterr().out
    assert "ignored for --model_type" in log and "--shift" in log  # reported once
    assert log.count("ignored for --model_type") == 1


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, ann_file, monkeypatch, capsys):
    args = base(tmp_path, ann_file, "nan", "--input_f", "Skeleton", "--epochs", "3", *TINY_POSE)
    real = engine.train.objective
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        loss, terms = real(*a, **k)
        return (loss * float("nan") if calls["n"] > 2 else loss), terms  # the first epoch (2 steps) is fine

    monkeypatch.setattr(engine.train, "objective", poisoned)
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    msg = error_line(capsys, e)
    assert "nan" in msg and "epoch 1" in msg
    assert torch.load(tmp_path / "nan" / "last.pt", weights_only=True)["epoch"] == 1


def custom_file(tmp_path, coord_dim=2, layout="kinect20", joints=20):
    """A tiny pyskl-format file of another joint layout, as datasets/sources/convert.py writes them."""
    rng = np.random.default_rng(0)
    anns, split = [], {"xsub_train": [], "xsub_val": []}
    for i in range(24):
        t = int(rng.integers(12, 30))
        kp = (rng.random((1, t, joints, coord_dim)) * 200 + 20).astype(np.float32)
        ann = {"frame_dir": f"clip{i}", "label": i % 3, "total_frames": t, "keypoint": kp}
        if coord_dim == 2:
            ann.update(keypoint_score=np.ones((1, t, joints), np.float32), img_shape=(240, 320))
        anns.append(ann)
        split["xsub_train" if i < 16 else "xsub_val"].append(f"clip{i}")
    path = tmp_path / "custom.pkl"
    with open(path, "wb") as f:
        pickle.dump({"split": split, "annotations": anns, "layout": layout}, f)
    return path


@pytest.mark.parametrize("fmt", ["Heatmap", "Limb"])
def test_custom_dataset_with_its_own_layout(tmp_path, fmt, capsys):
    path = custom_file(tmp_path)
    args = base(tmp_path, path, fmt, "--input_f", fmt, "--max_persons", "1", "--model_type", "poseconv", *TINY_POSE)
    args[0] = "custom"
    cli.main(args)
    ckpt = torch.load(tmp_path / fmt / "best.pt", weights_only=True)
    assert ckpt["config"]["layout"] == "kinect20" and ckpt["config"]["num_classes"] == 3
    assert ckpt["config"]["model_cfg"]["in_channels"] == (20 if fmt == "Heatmap" else 19)


def test_custom_dataset_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["custom", "--device", "cpu"])
    assert e.value.code == 2
    path2d = custom_file(tmp_path)  # 2D Kinect-20: MotionBERT's 2D path is COCO-17 only
    args = ["custom", "--ann_file", str(path2d), "--run_dir", str(tmp_path), "--device", "cpu", "--model_type"]
    with pytest.raises(SystemExit) as e:
        cli.main([*args, "motionbert", "--input_f", "Skeleton"])
    assert e.value.code == 2 and "kinect20" in capsys.readouterr().err
    args = ["custom", "--ann_file", str(custom_file(tmp_path)), "--split", "xview", "--device", "cpu"]
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2 and "xview_train" in capsys.readouterr().err


def test_custom_data_defaults_to_the_setting_measured_best():
    args = opts.parse_args(["custom", "--ann_file", "x.pkl"])
    assert (args.model_type, args.input_f, args.epochs) == ("poseconv", "Skeleton", 40)
    assert (args.batch_size, args.lr) == (8, 0.05)
    assert args.model_cfg == [("base_channels", 16), ("stage_blocks", (2, 2, 2))]
    assert (args.gamma, args.ce_views, args.train_corruptions) == (0.0, "both", opts.SEEN_FAMILIES)
    assert args.visibility and not opts.parse_args(["custom", "--ann_file", "x.pkl", "--no-visibility"]).visibility
    assert not opts.parse_args(["custom", "--ann_file", "x.pkl", "--input_f", "Heatmap"]).visibility  # volumes: none
    gcn = opts.parse_args(["custom", "--ann_file", "x.pkl", "--model_type", "stgcnpp", "--epochs", "3"])
    assert gcn.model_cfg == [("base_channels", 16)] and gcn.epochs == 3 and not gcn.visibility
    assert gcn.repair == ["swaps", "outliers", "interpolate"]
    ntu = opts.parse_args(["ntu60"])  # NTU keeps pyskl's PoseConv3D and the general defaults
    assert (ntu.model_type, ntu.model_cfg, ntu.train_corruptions) == ("poseconv", [], None)


def test_3d_clips_train_poseconv_through_the_projection(tmp_path):
    path = custom_file(tmp_path, coord_dim=3, layout="ntu25", joints=25)
    args = base(tmp_path, path, "3d", "--input_f", "Limb", "--max_persons", "1", "--model_type", "poseconv", *TINY_POSE)
    args[0] = "custom"
    out = cli.main(args)
    assert out["robustness"][0]["clips"] == 8
    ckpt = torch.load(tmp_path / "3d" / "best.pt", weights_only=True)
    assert ckpt["config"]["layout"] == "ntu25" and ckpt["config"]["model_cfg"]["in_channels"] == 24  # bones


def test_projection_of_3d_clips():
    from datasets.pipeline.clips import project_3d

    kp = np.zeros((1, 2, 3, 3), np.float32)
    kp[0, :, 0] = [0.0, 1.0, 2.0]  # head, 1 m up
    kp[0, :, 1] = [0.5, 0.0, 2.0]  # hand, 0.5 m right
    score = np.ones((1, 2, 3), np.float32)
    score[0, :, 2] = 0  # a missing joint
    xy, shape = project_3d(kp, score)
    assert shape == (1000, 1000)
    np.testing.assert_allclose(xy[0, 0, 0], [300, 100])  # extent 1 m -> 800 px, centred at (0.25, -0.5)
    np.testing.assert_allclose(xy[0, 0, 1], [700, 900])  # image y points down
    assert (xy[0, :, 2] == 0).all()


def test_3d_clips_train_motionbert(tmp_path):
    path = custom_file(tmp_path, coord_dim=3, layout="ntu25", joints=25)
    args = base(tmp_path, path, "mb3d", "--model_type", "motionbert", "--input_f", "Skeleton", *TINY_MB)
    args[0] = "custom"
    out = cli.main(args)
    assert out["robustness"][1]["severity"] == 0.1 and out["robustness"][1]["clips"] == 8
    assert torch.load(tmp_path / "mb3d" / "best.pt", weights_only=True)["config"]["model_cfg"]["num_joints"] == 25


@pytest.mark.parametrize("fmt", ["Heatmap", "Limb", "Skeleton"])
def test_step_input_renders_views_into_one_reused_volume(fmt):
    """The training input of a step is its views rendered one after another, as concatenating each
    view's `model_input`; heatmap and limb volumes go into one buffer that the next step reuses."""
    cfg = RunConfig(
        model_name="poseconv3d", model_cfg={}, reads="volume", input_format=fmt, input_size=16, clip_len=4,
        max_persons=2, layout="coco17", num_classes=3,
    )  # fmt: skip
    rt = Runtime(device=torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)

    def batch(n):  # collated: (B, 1, M, T, V, 2) pixels of a 64 x 64 frame, scores (B, 1, M, T, V)
        kp = lambda: torch.rand(n, 1, 2, 4, 17, 2, generator=gen) * 16  # noqa: E731
        score = lambda: torch.rand(n, 1, 2, 4, 17, generator=gen)  # noqa: E731
        return {"keypoint": kp(), "keypoint_score": score(), "noisy_keypoint": kp(), "noisy_keypoint_score": score()}

    buffers, ptrs = {}, []
    for n in (3, 3, 2):  # a full batch, the next one, the last and smaller one
        lab = batch(n)
        views = [(lab, ""), (lab, "noisy_")]
        x = step_input(views, cfg, rt, buffers)
        ref = torch.cat([model_input(b[p + "keypoint"][:, 0], b[p + "keypoint_score"][:, 0], cfg)
                         for b, p in views])  # fmt: skip
        assert torch.equal(x, ref) and x.shape[0] == 2 * n
        ptrs.append(x.data_ptr())
    if fmt == "Skeleton":
        assert not buffers
    else:  # the second step reuses the first one's volume; the smaller last batch replaced it
        assert ptrs[0] == ptrs[1] and list(buffers) == [tuple(x.shape)]


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to allocate"
        ),
    ],
)
def test_out_of_memory_is_one_line_and_the_run_resumes(tmp_path, ann_file, monkeypatch, capsys, error):
    """Running out of memory in the second epoch names the settings that drive memory, in one line, and
    the run directory keeps the first epoch's checkpoint, from which the same command resumes."""
    args = base(tmp_path, ann_file, "oom", "--input_f", "Skeleton", *TINY_POSE)
    real = engine.train.train_one_epoch

    def run_out_at_epoch_1(tr, plan, loaders, pos, *rest):
        if pos.epoch == 1:
            raise error
        return real(tr, plan, loaders, pos, *rest)

    monkeypatch.setattr(engine.train, "train_one_epoch", run_out_at_epoch_1)
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    msg = error_line(capsys, e)
    assert "out of memory" in msg and "-b (now 4" in msg and "--clip_len (now 8)" in msg and "--input_size" in msg
    assert torch.load(tmp_path / "oom" / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(engine.train, "train_one_epoch", real)
    cli.main(args)
    assert "resumed from" in capsys.readouterr().out


def test_other_runtime_errors_keep_their_traceback(tmp_path, ann_file, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(engine.train, "train_one_epoch", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(base(tmp_path, ann_file, "bug", "--input_f", "Skeleton", *TINY_POSE))


def test_run_says_what_it_costs(tmp_path, ann_file, capsys):
    """A plan line before training, a time estimate once the first steps are timed, and the wall time and
    peak memory at the end."""
    cli.main(base(tmp_path, ann_file, "cost", "--input_f", "Skeleton", "--max_steps", "7", "--epochs", "1", *TINY_POSE))
    out = capsys.readouterr().out.splitlines()
    plan = [line for line in out if line.startswith("plan:")]
    assert len(plan) == 1 and "steps per epoch x 1 epoch(s)" in plan[0] and "M parameters" in plan[0]
    estimate = [line for line in out if line.startswith("estimate:")]
    assert len(estimate) == 1 and "s per step" in estimate[0] and "per epoch of 7 steps" in estimate[0]
    assert out.index(plan[0]) < out.index(estimate[0])
    assert out[-1].startswith("done in ") and "peak resident memory" in out[-1] and " GB" in out[-1]


def test_synthetic_defaults_are_the_demo_and_flags_win():
    from opts import parse_args

    args = parse_args(["synthetic"])
    assert (args.input_f, args.clip_len, args.gamma, args.noise_alpha) == ("Skeleton", 32, 1.0, 0.02)
    assert dict(args.model_cfg) == {"base_channels": 16, "stage_blocks": (2, 2, 2)}
    args = parse_args(["synthetic", "--gamma", "5", "--input_f", "Heatmap", "--model_cfg", "base_channels=8"])
    assert (args.gamma, args.input_f, dict(args.model_cfg), args.clip_len) == (5.0, "Heatmap", {"base_channels": 8}, 32)
    assert parse_args(["ntu60"]).input_f == "Heatmap" and parse_args(["ntu60"]).model_cfg == []
    mb = parse_args(["synthetic", "--model_type", "motionbert", "--input_f", "Skeleton"])
    assert mb.model_cfg == [] and mb.gamma == 5.0  # the demo's model settings are PoseConv3D's


def test_corruption_suite_summary_and_identical_corrupted_clips(tmp_path, ann_file, capsys):
    """The final sweep scores the suite on the clean model; --evaluate of the same checkpoint with another
    worker count and batch size scores exactly the same corrupted clips."""
    suite = ["--eval_corruptions", "missing_joints:light", "swap", "frame_rate:2", "--eval_alphas", "0", "0.02"]
    out = cli.main(base(tmp_path, ann_file, "suite", "--input_f", "Skeleton", *TINY_POSE, *suite))
    run = tmp_path / "suite"
    best = [r for r in out["robustness"] if r["checkpoint"] == "best"]
    assert [(r["family"], r["level"], r["severity"], r["suite"]) for r in best] == [
        ("clean", "", 0.0, False), ("jitter", "moderate", 0.02, False), ("missing_joints", "light", 0.1, True),
        ("swap", "light", 0.1, True), ("swap", "moderate", 0.25, True), ("swap", "severe", 0.5, True),
        ("frame_rate", "light", 2.0, True),
    ]  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    mca = np.mean([r["top1"] for r in best if r["suite"]])
    assert summary["best"]["mCA"] == pytest.approx(mca) and summary["best"]["clean"] == best[0]["top1"]
    assert summary["best"]["relative"] == pytest.approx(mca / best[0]["top1"] if best[0]["top1"] else float("nan"),
                                                        nan_ok=True)  # fmt: skip
    for f in ("robustness.png", "robustness_missing_joints.png", "robustness_swap.png", "robustness_frame_rate.png"):
        assert (run / f).exists(), f
    assert "mCA" in capsys.readouterr().out
    again = cli.main(base(tmp_path, ann_file, "again", "--evaluate", str(run / "best.pt"), "-j", "2",
                          "--valbatchsize", "3", *suite))  # fmt: skip
    assert [(r["family"], r["severity"], r["top1"], r["top5"]) for r in again["robustness"]] == [
        (r["family"], r["severity"], r["top1"], r["top5"]) for r in best
    ]


def test_validation_part_chooses_the_epoch_and_the_test_split_is_scored_at_the_end(tmp_path, ann_file):
    out = cli.main(base(tmp_path, ann_file, "val", "--input_f", "Skeleton", "--epochs", "3", *TINY_POSE))
    run = tmp_path / "val"
    split = json.loads((run / "split.json").read_text())
    held = set(split["validation"])
    assert held and not held & set(split["labelled"])
    assert len({n[8:12] for n in held}) == 1  # one whole subject (P...) of the training subjects
    val_rows = rows(run, "val")
    assert len(val_rows) == 3 and all(r["clips"] == len(held) for r in val_rows)
    best_epoch = max(range(3), key=lambda e: (val_rows[e]["top1"], -e))
    assert out["best"]["epoch"] == best_epoch
    by_ckpt = {r["checkpoint"]: r for r in out["robustness"] if r["family"] == "clean"}
    assert by_ckpt["best"]["epoch"] == best_epoch and by_ckpt["last"]["epoch"] == 2
    assert by_ckpt["best"]["clips"] == by_ckpt["last"]["clips"] == 36  # the test split


@pytest.mark.parametrize(
    "objective",
    [
        ["--gamma", "0", "--ce_views", "noisy"],
        ["--gamma", "0", "--ce_views", "both"],
        ["--gamma", "0", "--consistency", "js"],
        ["--gamma", "1", "--train_corruptions", "occlusion", "frame_rate:2", "missing_joints:0.3"],
    ],
)
def test_baseline_objectives_and_training_corruptions_train(tmp_path, ann_file, objective):
    out = cli.main(base(tmp_path, ann_file, "obj", "--input_f", "Skeleton", *TINY_POSE, *objective))
    train = rows(tmp_path / "obj", "train")
    assert all(np.isfinite(r["loss"]) for r in train) and out["robustness"][0]["clips"] > 0
    if "--consistency" in objective:
        assert "consistency" in train[0] and "instance" not in train[0]


def test_no_validation_part_scores_the_last_checkpoint_only(tmp_path, ann_file):
    out = cli.main(base(tmp_path, ann_file, "noval", "--input_f", "Skeleton", "--val_fraction", "0",
                        "--sweep_checkpoints", "best", *TINY_POSE))  # fmt: skip
    assert {r["checkpoint"] for r in out["robustness"]} == {"last"} and not (tmp_path / "noval" / "best.pt").exists()
    assert not rows(tmp_path / "noval", "val")


def test_mca_on_the_families_seen_in_training_and_on_the_others(tmp_path, ann_file, capsys):
    """A run trained on jittered and occluded views reports the suite's mCA on those families and, apart, on
    the families its training never saw; the checkpoint keeps them, so --evaluate splits its sweep alike."""
    from engine.evaluate import summarize

    out = cli.main(base(tmp_path, ann_file, "seen", "--input_f", "Skeleton", "--epochs", "1", "--gamma", "1",
                        "--train_corruptions", "jitter:0.02", "occlusion", "--eval_corruptions", "jitter", "occlusion",
                        "swap", *TINY_POSE))  # fmt: skip
    last = [r for r in out["robustness"] if r["checkpoint"] == "last"]
    s = summarize(last, ("jitter", "occlusion"))
    suite = [r["top1"] for r in last if r["suite"]]
    seen = [r["top1"] for r in last if r["suite"] and r["family"] != "swap"]
    assert s["mCA_seen"] == pytest.approx(np.mean(seen)) and s["mCA_unseen"] == pytest.approx(s["families"]["swap"])
    assert s["mCA"] == pytest.approx(np.mean(suite))
    assert "on the families seen in training (jitter, occlusion)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "seen" / "summary.json").read_text())["last"]
    assert saved["seen"] == ["jitter", "occlusion"] and saved["mCA_unseen"] == pytest.approx(s["mCA_unseen"])
    assert torch.load(tmp_path / "seen" / "last.pt", weights_only=True)["seen_families"] == ["jitter", "occlusion"]
    cli.main(base(tmp_path, ann_file, "again", "--evaluate", str(tmp_path / "seen" / "last.pt"), "--eval_corruptions",
                  "jitter", "occlusion", "swap"))  # fmt: skip
    assert "mCA on the families seen in training (jitter, occlusion)" in capsys.readouterr().out
    plain = summarize(last)  # unknown training corruptions: no split
    assert "mCA_seen" not in plain


def test_evaluate_never_replaces_the_training_runs_results(tmp_path, ann_file):
    """--evaluate RUN/best.pt reports into its own folder, named for the checkpoint and the data; the run's
    robustness.csv and summary.json stay byte for byte."""
    cli.main(base(tmp_path, ann_file, "run", "--input_f", "Skeleton", "--epochs", "1", *TINY_POSE))
    run = tmp_path / "run"
    before = {f: (run / f).read_bytes() for f in ("robustness.csv", "summary.json")}
    argv = ["synthetic", "--ann_file", str(ann_file), "--evaluate", str(run / "best.pt"), "--eval_alphas", "0",
            "--eval_corruptions", "none", "-j", "0"]  # fmt: skip
    out = cli.main(argv)
    assert out["run_dir"] == str(run.resolve() / f"evaluate_best_on_{ann_file.stem}")
    assert (Path(out["run_dir"]) / "robustness.csv").is_file()
    assert {f: (run / f).read_bytes() for f in before} == before


def test_a_model_of_joints_reads_coordinates_unless_told_otherwise():
    from opts import parse_args

    for model in ("motionbert", "stgcnpp", "ctrgcn"):
        assert parse_args(["synthetic", "--model_type", model]).input_f == "Skeleton"
    assert parse_args(["ntu60"]).input_f == "Heatmap"


def test_every_run_keeps_what_it_printed(tmp_path, ann_file, capsys):
    """log.txt in the run directory: the lines the run printed, those before the directory opened included."""
    cli.main(base(tmp_path, ann_file, "logged", "--input_f", "Skeleton", "--epochs", "1", *TINY_POSE))
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("done in")]
    log = (tmp_path / "logged" / "log.txt").read_text().splitlines()
    assert log == printed and any(line.startswith("data: ") for line in log) and log[-1].startswith("summary (")


def test_a_loss_that_is_not_finite_names_the_flag_to_lower(tmp_path, ann_file, capsys):
    args = base(tmp_path, ann_file, "nan", "--input_f", "Skeleton", "--lr", "1e30", "--gd", "0", *TINY_POSE)
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    msg = error_line(capsys, e)
    assert msg.startswith("error: the loss became ") and "lower --lr (now 1e+30)" in msg
