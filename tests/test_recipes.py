"""--recipe: every preset against the upstream values (written out here from ../shared/recipes/README.md, not
read from recipes/), the precedence of command line, recipe and defaults, the linear learning-rate rule,
the one-line errors, and a smoke run that trains with a recipe on synthetic data."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine.evaluate
import engine.train
import main as cli
from datasets.batch.render import limb_flip_order
from datasets.sources.synthetic import make_synthetic
from datasets.store.catalog import CATALOG
from datasets.store.layouts import get_layout, read_layout_file
from engine.config import OptimConfig
from engine.optim import build_optimizer
from models import model_spec
from opts import build_parser, parse_args, settings
from recipes import RECIPES, lr_scale
from tests.conftest import error_line

# pyskl 3f6795f configs/posec3d/slowonly_r50_ntu*/{joint,limb}.py, the values every one of them shares.
PYSKL = {
    "backbone": {
        "base_channels": 32, "num_stages": 3, "out_indices": (2,), "stage_blocks": (4, 6, 3), "conv1_stride": (1, 1),
        "pool1_stride": (1, 1), "inflate": (0, 1, 1), "spatial_strides": (2, 2, 2), "temporal_strides": (1, 1, 2),
    },
    "dropout": 0.5,
    "clip_len": 48,
    "train_size": 56,  # Resize (56, 56) after the crop
    "test_size": 64,  # val and test pipelines: Resize (64, 64)
    "test_clips": 10,
    "test_double": True,
    "videos_per_gpu": 32,
    "gpus": 8,
    "lr": 0.4,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0003,
    "grad_clip": 40,
    "schedule": "cos",  # CosineAnnealing by iteration, min_lr 0
    "total_epochs": 24,
    "repeat": 10,
}  # fmt: skip
# limb.py's `skeletons` and its flip pairing of them (left_limb[i] <-> right_limb[i]); the flip's joints.
PYSKL_LIMB_SKELETONS = [[0, 5], [0, 6], [5, 7], [7, 9], [6, 8], [8, 10], [5, 11], [11, 13], [13, 15], [6, 12],
                        [12, 14], [14, 16], [0, 1], [0, 2], [1, 3], [2, 4], [11, 12]]  # fmt: skip
PYSKL_LEFT_LIMB, PYSKL_RIGHT_LIMB = [0, 2, 3, 6, 7, 8, 12, 14], [1, 4, 5, 9, 10, 11, 13, 15]
PYSKL_LEFT_KP, PYSKL_RIGHT_KP = [1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]
# GeneratePoseTarget's default `skeletons` (NTU120's joint.py renders limbs with them).
PYSKL_DEFAULT_SKELETONS = [[0, 1], [0, 2], [1, 3], [2, 4], [0, 5], [5, 7], [7, 9], [0, 6], [6, 8], [8, 10], [5, 11],
                           [11, 13], [13, 15], [6, 12], [12, 14], [14, 16], [11, 12]]  # fmt: skip
# (dataset, split, config) -> (input volumes, published top-1 %, 10 clips x flip).
PYSKL_CONFIGS = {
    ("ntu60", "xsub", "joint"): ("Heatmap", 93.7),
    ("ntu60", "xsub", "limb"): ("Limb", 93.4),
    ("ntu60", "xview", "joint"): ("Heatmap", 96.5),
    ("ntu60", "xview", "limb"): ("Limb", 96.0),
    ("ntu120", "xsub", "joint"): ("Limb", 85.9),  # NTU120's joint.py renders limbs (with_limb)
    ("ntu120", "xsub", "limb"): ("Limb", 85.9),
    ("ntu120", "xset", "joint"): ("Limb", 89.7),
    ("ntu120", "xset", "limb"): ("Limb", 89.7),
}
# MotionBERT dccfe7b configs/action/MB_ft_NTU60_{xsub,xview}.yaml.
MB_FT = {
    "backbone": {"dim_feat": 512, "dim_rep": 512, "depth": 5, "num_heads": 8, "mlp_ratio": 2, "maxlen": 243},
    "hidden_dim": 2048,
    "dropout_ratio": 0.5,
    "clip_len": 243,
    "epochs": 300,
    "batch_size": 32,
    "lr_backbone": 0.0001,
    "lr_head": 0.001,
    "weight_decay": 0.01,
    "lr_decay": 0.99,
}
MB_PUBLISHED = {"xsub": 93.0, "xview": 97.2}


# pyskl's GCN configs (../shared/recipes/README.md, "pyskl graph convolution networks"), written out again.
PYSKL_GCN = {"videos_per_gpu": 16, "gpus": 8, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0005, "nesterov": True,
             "total_epochs": 16, "repeat": 5, "clip_len": 100, "num_clips_test": 10, "num_person": 2,
             "head_in_channels": 256}  # fmt: skip
GCN_PUBLISHED = {  # (model, dataset, split, keypoints): j, b, jm, bm
    ("stgcnpp", "ntu60", "xsub", "3dkp"): [89.3, 90.1, 87.5, 87.3],
    ("stgcnpp", "ntu60", "xsub", "hrnet"): [89.3, 92.3, 84.0, 88.8],
    ("stgcnpp", "ntu60", "xview", "3dkp"): [95.6, 95.5, 94.3, 93.8],
    ("stgcnpp", "ntu60", "xview", "hrnet"): [97.4, 97.2, 93.4, 95.4],
    ("stgcnpp", "ntu120", "xsub", "3dkp"): [83.2, 85.6, 80.4, 81.5],
    ("stgcnpp", "ntu120", "xset", "3dkp"): [85.6, 87.5, 84.3, 83.0],
    ("ctrgcn", "ntu60", "xsub", "3dkp"): [89.6, 90.0, 88.0, 87.5],
    ("ctrgcn", "ntu60", "xsub", "hrnet"): [90.6, 92.7, 89.4, 90.3],
    ("ctrgcn", "ntu60", "xview", "3dkp"): [95.6, 95.4, 94.4, 93.6],
    ("ctrgcn", "ntu120", "xsub", "3dkp"): [84.0, 85.9, 81.1, 82.2],
    ("ctrgcn", "ntu120", "xset", "3dkp"): [85.9, 87.4, 84.1, 83.9],
}
GCN_SPLITS = [("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset")]
GCN_NAMES = {f"{m}_{d}_{s}_{k}_{f}" for m in ("stgcnpp", "ctrgcn") for d, s in GCN_SPLITS for k in ("3dkp", "hrnet")
             for f in ("j", "b", "jm", "bm")}  # fmt: skip


@pytest.mark.parametrize("model", ["stgcnpp", "ctrgcn"])
@pytest.mark.parametrize("dataset,split", GCN_SPLITS)
@pytest.mark.parametrize("kind", ["3dkp", "hrnet"])
def test_gcn_presets_match_the_upstream_configs(model, dataset, split, kind):
    for k, (feat, stream) in enumerate([("j", "joint"), ("b", "bone"), ("jm", "joint_motion"), ("bm", "bone_motion")]):
        name = f"{model}_{dataset}_{split}_{kind}_{feat}"
        args = parse_args([dataset, "--recipe", name])
        assert (args.model_type, args.split, args.stream, args.input_f) == (model, split, stream, "Skeleton")
        assert args.keypoints == {"3dkp": "3d", "hrnet": "2d"}[kind]
        assert (args.lr, args.lr_batch, args.batch_size) == (
            PYSKL_GCN["lr"], PYSKL_GCN["videos_per_gpu"] * PYSKL_GCN["gpus"], PYSKL_GCN["videos_per_gpu"])  # fmt: skip
        assert (args.momentum, args.nesterov, args.weight_decay, args.gd, args.lr_type) == (
            PYSKL_GCN["momentum"], PYSKL_GCN["nesterov"], PYSKL_GCN["weight_decay"], 0.0, "cos")  # fmt: skip
        assert args.epochs == PYSKL_GCN["total_epochs"] * PYSKL_GCN["repeat"]
        assert (args.clip_len, args.num_clips, args.max_persons, args.test_flip) == (
            PYSKL_GCN["clip_len"], PYSKL_GCN["num_clips_test"], PYSKL_GCN["num_person"], False)  # fmt: skip
        assert 4 * dict(args.model_cfg)["base_channels"] == PYSKL_GCN["head_in_channels"] and args.dropout == 0.0
        assert (args.gamma, args.val_fraction, args.percentage) == (0.0, 0.0, 0.0)
        published = GCN_PUBLISHED.get((model, dataset, split, kind))
        assert RECIPES[name].published == (published[k] if published else None)
        folder = {"stgcnpp": "stgcn++/stgcn++", "ctrgcn": "ctrgcn/ctrgcn_pyskl"}[model]
        assert RECIPES[name].upstream.endswith(f"configs/{folder}_{dataset}_{split}_{kind}/{feat}.py")


def test_the_3d_keypoints_are_ntus_own_file(tmp_path, capsys):
    """--keypoints 3d reads pyskl's 3D file under --data_root, a missing one named in one line with its source."""
    with pytest.raises(SystemExit) as e:
        cli.main(["ntu60", "--recipe", "ctrgcn_ntu60_xsub_3dkp_j", "--data_root", str(tmp_path)])
    line = error_line(capsys, e)
    assert str(tmp_path / "nturgbd" / "ntu60_3danno.pkl") in line
    assert "download it from https://download.openmmlab.com/mmaction/pyskl/data/nturgbd/ntu60_3danno.pkl" in line
    with pytest.raises(SystemExit) as e:
        cli.main(["synthetic", "--keypoints", "3d"])
    assert "--keypoints 3d" in error_line(capsys, e)


def check_pyskl_schedule(args):
    """The settings every pyskl NTU config shares, as the parsed flags of a run."""
    assert dict(args.model_cfg) == PYSKL["backbone"]
    assert (args.model_type, args.dropout, args.clip_len, args.input_size) == (
        "poseconv", PYSKL["dropout"], PYSKL["clip_len"], PYSKL["train_size"])  # fmt: skip
    assert (args.num_clips, args.test_flip) == (PYSKL["test_clips"], PYSKL["test_double"])
    assert args.test_input_size == PYSKL["test_size"]
    assert (args.batch_size, args.lr_batch) == (PYSKL["videos_per_gpu"], PYSKL["videos_per_gpu"] * PYSKL["gpus"])
    assert (args.lr, args.momentum, args.nesterov, args.weight_decay, args.gd, args.lr_type) == (
        PYSKL["lr"], PYSKL["momentum"], PYSKL["nesterov"], PYSKL["weight_decay"], PYSKL["grad_clip"],
        PYSKL["schedule"])  # fmt: skip
    assert args.epochs == PYSKL["total_epochs"] * PYSKL["repeat"]
    # Upstream: cross-entropy alone, trained on the whole training split, the last checkpoint reported.
    assert (args.gamma, args.use_group_contrastive, args.consistency, args.ce_views) == (0.0, False, "none", "clean")
    assert args.val_fraction == 0.0 and args.percentage == 0.0


@pytest.mark.parametrize("key", sorted(PYSKL_CONFIGS))
def test_pyskl_presets_match_the_upstream_configs(key):
    dataset, split, config = key
    name = f"posec3d_{dataset}_{split}_{config}"
    args = parse_args([dataset, "--recipe", name])
    check_pyskl_schedule(args)
    input_f, published = PYSKL_CONFIGS[key]
    assert (args.split, args.input_f) == (split, input_f)
    assert RECIPES[name].published == published
    assert RECIPES[name].upstream.endswith(f"slowonly_r50_{dataset}_{split}/{config}.py")
    # The settings the project cannot reproduce are said, not dropped silently.
    said = " ".join(RECIPES[name].not_reproduced)
    assert "persons" in said
    if config == "limb":  # limb.py's own limb order, as a declared layout
        layout = read_layout_file(args.layout)
        assert [list(limb) for limb in layout.limbs] == PYSKL_LIMB_SKELETONS
        flip = limb_flip_order(layout)
        assert [flip[i] for i in PYSKL_LEFT_LIMB] == PYSKL_RIGHT_LIMB and sorted(flip) == list(range(17))
    else:  # the dataset's layout, coco17, whose limbs are GeneratePoseTarget's default order
        assert args.layout is None and CATALOG[dataset].layout == "coco17"
        layout = get_layout("coco17")
        assert [list(limb) for limb in layout.limbs] == PYSKL_DEFAULT_SKELETONS
    assert (list(layout.left), list(layout.right)) == (PYSKL_LEFT_KP, PYSKL_RIGHT_KP)
    assert ("class_prob" in said) == ((dataset, split) == ("ntu120", "xsub"))


@pytest.mark.parametrize(
    "dataset,split", [("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset")]
)
@pytest.mark.parametrize(
    "variant,input_f", [("heatmap", "Heatmap"), ("grayscale", "Grayscale"), ("skeleton", "Skeleton")]
)
def test_seed_input_variants_use_the_pyskl_schedule(dataset, split, variant, input_f):
    name = f"posec3d_{dataset}_{split}_{variant}"
    args = parse_args([dataset, "--recipe", name])
    check_pyskl_schedule(args)
    assert (args.split, args.input_f, RECIPES[name].published) == (split, input_f, None)


@pytest.mark.parametrize("split", ["xsub", "xview"])
def test_motionbert_presets_match_the_upstream_finetuning(split):
    name = f"motionbert_ntu60_{split}_ft"
    args = parse_args(["ntu60", "--recipe", name, "--pretrained", "mb.bin"])
    assert (args.model_type, args.input_f, args.split) == ("motionbert", "Skeleton", split)
    assert dict(args.model_cfg) == {**MB_FT["backbone"], "hidden_dim": MB_FT["hidden_dim"]}
    assert (args.dropout, args.clip_len, args.epochs, args.batch_size) == (
        MB_FT["dropout_ratio"], MB_FT["clip_len"], MB_FT["epochs"], MB_FT["batch_size"])  # fmt: skip
    assert (args.lr_backbone1, args.lr_head1, args.weight_decay1, args.lr_decay1) == (
        MB_FT["lr_backbone"], MB_FT["lr_head"], MB_FT["weight_decay"], MB_FT["lr_decay"])  # fmt: skip
    assert args.lr_batch == MB_FT["batch_size"]  # one process (DataParallel): batch_size is the total batch
    assert (args.num_clips, args.test_flip, args.gamma, args.val_fraction) == (1, False, 0.0, 0.0)
    assert RECIPES[name].published == MB_PUBLISHED[split] and RECIPES[name].needs_pretrained
    for start in (["--tune_from", "run.pt"], ["--evaluate", "run.pt"]):  # no --pretrained needed
        assert parse_args(["ntu60", "--recipe", name, *start]).pretrained is None


def test_every_recipe_is_tested_and_its_model_settings_are_the_constructor_defaults():
    """Every preset is one of the tables above; a recipe's --model_cfg keys are the constructor's defaults, so
    replacing the list on the command line (--model_cfg base_channels=8) keeps upstream's other values."""
    tested = {f"posec3d_{d}_{s}_{c}" for d, s, c in PYSKL_CONFIGS}
    tested |= {f"posec3d_{d}_{s}_{v}" for d, s, _ in PYSKL_CONFIGS for v in ("heatmap", "grayscale", "skeleton")}
    tested |= {f"motionbert_ntu60_{s}_ft" for s in MB_PUBLISHED}
    tested |= GCN_NAMES
    assert set(RECIPES) == tested
    for recipe in RECIPES.values():
        spec = model_spec({"poseconv": "poseconv3d"}.get(recipe.settings["model_type"], recipe.settings["model_type"]))
        for key, value in recipe.settings["model_cfg"]:
            assert spec.default(key) == value, (recipe.name, key)


def test_precedence_command_line_recipe_dataset_defaults_parser_defaults():
    name = "posec3d_ntu60_xsub_joint"
    args = parse_args(["synthetic", "--recipe", name])
    assert args.clip_len == 48 and args.input_f == "Heatmap"  # recipe over the synthetic defaults (32, Skeleton)
    assert args.noise_alpha == 0.02  # a synthetic default the recipe does not set
    assert args.eval_freq == 1 and args.split is None  # parser defaults (xsub); on synthetic the recipe sets no split
    args = parse_args(["synthetic", "--recipe", name, "--clip_len", "8", "--lr", "0.1", "--nesterov", "--epochs", "3"])
    assert (args.clip_len, args.lr, args.nesterov, args.epochs) == (8, 0.1, True, 3)  # command line over recipe
    args = parse_args(["synthetic", "--recipe", name, "--model_cfg", "base_channels=4"])
    assert args.model_cfg == [("base_channels", 4)]
    # The recipe chooses the backbone, and with it which dataset defaults apply (none for MotionBERT).
    args = parse_args(["synthetic", "--recipe", "motionbert_ntu60_xsub_ft"])
    assert (args.model_type, args.noise_alpha, args.clip_len) == ("motionbert", 0.1, 243)
    # Without a recipe nothing changes: no scaling, Nesterov SGD.
    args = parse_args(["ntu60"])
    assert (args.recipe, args.lr_batch, args.nesterov, args.epochs) == (None, 0, True, 20)
    assert settings(args, world_size=8)[1].lr == args.lr


def test_learning_rates_scale_linearly_to_the_total_batch():
    assert lr_scale(256, 32, 1) == 1 / 8 and lr_scale(256, 32, 8) == 1.0 and lr_scale(256, 16, 4) == 1 / 4
    assert lr_scale(0, 32, 4) == 1.0
    base = ["ntu60", "--recipe", "posec3d_ntu60_xsub_joint"]
    assert settings(parse_args(base))[1].lr == pytest.approx(0.05)  # 0.4 x 32 / 256
    assert settings(parse_args(base), world_size=8)[1].lr == pytest.approx(0.4)  # upstream's 8 x 32
    assert settings(parse_args([*base, "-b", "8"]), world_size=2)[1].lr == pytest.approx(0.025)
    assert settings(parse_args([*base, "--lr", "0.2"]))[1].lr == pytest.approx(0.025)  # --lr is for --lr_batch
    assert settings(parse_args([*base, "--lr_batch", "0"]))[1].lr == pytest.approx(0.4)  # used as given
    mb = settings(parse_args(["ntu60", "--recipe", "motionbert_ntu60_xview_ft", "--pretrained", "x", "-b", "16"]))[1]
    assert (mb.lr_backbone, mb.lr_head) == (pytest.approx(5e-5), pytest.approx(5e-4))
    assert "scaled linearly" in " ".join(build_parser().format_help().split())


def test_nesterov_flag_reaches_the_optimiser():
    model = torch.nn.Linear(3, 2)
    for nesterov in (True, False):
        opt = build_optimizer(model, "sgd", OptimConfig(epochs=1, nesterov=nesterov))
        assert opt.param_groups[0]["nesterov"] is nesterov


@pytest.mark.parametrize(
    "argv,message",
    [
        (["ntu60", "--recipe", "posec3d_ntu60_xsub"], "unknown recipe 'posec3d_ntu60_xsub'; known recipes: posec3d_"),
        (
            ["ntu60", "--recipe", "posec3d_ntu120_xsub_joint"],
            "recipe posec3d_ntu120_xsub_joint is for ntu120, not ntu60",
        ),
        (["ntu120", "--recipe", "motionbert_ntu60_xsub_ft"], "is for ntu60, not ntu120"),
        (["ntu60", "--recipe", "motionbert_ntu60_xsub_ft"], "pass --pretrained FILE"),
        (["ntu60", "--lr_batch", "-1"], "argument --lr_batch: must be an integer >= 0, got -1"),
    ],
)
def test_recipe_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    line = error_line(capsys, e)
    assert message in line
    if "unknown recipe" in message:
        assert all(name in line for name in RECIPES)


@pytest.fixture(scope="module")
def ann_file(tmp_path_factory):
    """A small synthetic annotation file: 12 classes, 10 subjects, one short clip each."""
    data = make_synthetic(clips_per_class_per_subject=1, seed=3, min_frames=20, max_frames=40)
    path = tmp_path_factory.mktemp("data") / "tiny.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


def test_recipe_trains_on_synthetic_data_with_the_run_length_overridden(tmp_path, ann_file, capsys, monkeypatch):
    """The CI smoke run: a pyskl recipe on a tiny synthetic file, two steps, a tiny model and input; the
    recipe's test protocol (10 clips x flip, frames of the test size) scores the last checkpoint."""
    shapes = {"train": set(), "test": set()}  # (T, H, W) of the model inputs

    def spy(kind, fn):
        def wrapped(*a, **k):
            x = fn(*a, **k)
            shapes[kind].add(tuple(x.shape[2:]))
            return x

        return wrapped

    monkeypatch.setattr(engine.train, "step_input", spy("train", engine.train.step_input))
    monkeypatch.setattr(engine.evaluate, "model_input", spy("test", engine.evaluate.model_input))
    out = cli.main([
        "synthetic", "--recipe", "posec3d_ntu60_xsub_limb", "--ann_file", str(ann_file), "--run_dir", str(tmp_path),
        "--name", "r", "--epochs", "1", "--max_steps", "2", "-b", "4", "-j", "0", "--clip_len", "8",
        "--input_size", "24", "--test_input_size", "32", "--model_cfg", "base_channels=4", "stage_blocks=(1,1,1)",
        "--eval_corruptions", "none", "--eval_alphas", "0", "--device", "cpu",
    ])  # fmt: skip
    assert shapes == {"train": {(8, 24, 24)}, "test": {(8, 32, 32)}}
    lines = capsys.readouterr().out.splitlines()
    recipe = [line for line in lines if line.startswith("recipe: ")]
    assert len(recipe) == 1 and "posec3d_ntu60_xsub_limb" in recipe[0] and "input_f=Limb" in recipe[0]
    assert "effective lr 0.00625" in recipe[0]  # 0.4 x 4 / 256
    assert "overrides model_cfg, clip_len, input_size, test_input_size, batch_size, epochs" in recipe[0]
    assert {r["checkpoint"] for r in out["robustness"]} == {"last"}  # no validation part, as upstream
    resolved = json.loads((tmp_path / "r" / "args.json").read_text())
    assert resolved["config"]["layout"] == "coco17_pyskl_limb"  # limb.py's limb order, carried by the run
    saved = resolved["args"]
    assert (saved["num_clips"], saved["test_flip"], saved["nesterov"], saved["gd"]) == (10, True, False, 40.0)
    train = [json.loads(r) for r in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["split"] == "train" and r["lr"] == pytest.approx(0.00625) for r in train)


def reproduce(tmp_path, *argv, **env):
    """Run scripts/reproduce_ntu.sh with this interpreter; (exit code, stdout, stderr)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "reproduce_ntu.sh"
    env = {**os.environ, "PYTHON": sys.executable, "DATA_ROOT": str(tmp_path), **env}
    done = subprocess.run([str(script), *argv], capture_output=True, text=True, env=env, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_reproduce_script_checks_the_recipe_and_the_annotation_file(tmp_path):
    code, _, err = reproduce(tmp_path, "posec3d_ntu60_xsub")
    assert code == 2 and err.count("\n") == 1 and "unknown recipe 'posec3d_ntu60_xsub'; known recipes:" in err
    code, _, err = reproduce(tmp_path, "posec3d_ntu120_xset_limb")
    expected = tmp_path / "nturgbd" / "ntu120_hrnet.pkl"
    assert code == 2 and err.count("\n") == 1 and f"annotation file not found at {expected}" in err
    assert "download.openmmlab.com" in err
    expected.parent.mkdir()
    expected.write_bytes(b"")
    code, out, _ = reproduce(tmp_path, "posec3d_ntu120_xset_limb", "--amp", "bf16", DRY_RUN="1")
    assert code == 0 and out.split()[1:5] == ["main.py", "ntu120", "--recipe", "posec3d_ntu120_xset_limb"]
    assert out.split()[-2:] == ["--amp", "bf16"]  # the extra flags come last and override the recipe
    code, out, _ = reproduce(tmp_path, "posec3d_ntu120_xset_limb", DRY_RUN="1", NPROC="8")
    assert code == 0 and "scripts/dist_train.sh ntu120 --recipe" in out and "NPROC=8" in out


def test_motionbert_recipe_trains_on_synthetic_data_with_its_scaled_learning_rates(tmp_path, ann_file, capsys):
    out = cli.main([
        "synthetic", "--recipe", "motionbert_ntu60_xview_ft", "--ann_file", str(ann_file), "--run_dir", str(tmp_path),
        "--name", "mb", "--epochs", "1", "--max_steps", "2", "-b", "4", "-j", "0", "--clip_len", "16",
        "--model_cfg", "dim_feat=16", "dim_rep=16", "depth=1", "num_heads=2", "hidden_dim=32",
        "--eval_corruptions", "none", "--eval_alphas", "0", "--device", "cpu",
    ])  # fmt: skip
    recipe = [line for line in capsys.readouterr().out.splitlines() if line.startswith("recipe: ")]
    assert len(recipe) == 1 and "MB_ft_NTU60_xview.yaml" in recipe[0]
    assert "effective lr_backbone1 1.25e-05, lr_head1 0.000125" in recipe[0]  # 1e-4 and 1e-3 x 4 / 32
    assert {r["checkpoint"] for r in out["robustness"]} == {"last"}
