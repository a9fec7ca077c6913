"""Command-line options. TCL's vocabulary, its skeleton variant's additions, and what users need.

`build_parser()` makes the parser; `parse_args(argv)` parses and rejects combinations that cannot
work (exit code 2) before any work starts. `args` is never modified after parsing.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys

from datasets.batch.streams import STREAMS
from datasets.pipeline.augment import AugmentConfig
from datasets.pipeline.corruptions import parse_corruptions
from datasets.pipeline.noise import MAX_ALPHA
from datasets.pipeline.repair import RECOMMENDED_STEPS, REPAIRS
from datasets.sources.inputs import MEDIAPIPE, VIDEO_SUFFIXES
from datasets.store.catalog import CATALOG
from datasets.store.layouts import LAYOUTS
from engine.config import EvalConfig, OptimConfig, TrainConfig
from engine.objective import LossConfig
from engine.predict import PredictOptions
from models import model_spec
from recipes import RECIPES, lr_scale, recipe_defaults, recipe_line
from utils.argtypes import (
    float_range,
    fraction,
    int_range,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    seed_int,
)
from utils.errors import OneLineParser
from utils.threads import parse_threads

# --model_type -> registry name
MODEL_TYPES = {"poseconv": "poseconv3d", "motionbert": "motionbert", "tsm": "tsm", "stgcn": "stgcn",
               "stgcnpp": "stgcnpp", "ctrgcn": "ctrgcn", "aagcn": "aagcn"}  # fmt: skip
INPUT_FORMATS = ("Heatmap", "NCTHW_Heatmap", "Limb", "Grayscale", "Skeleton")
DEFAULT_EVAL_ALPHAS = (0.0, 0.001, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1)
# Flags that only one backbone reads (registry name -> flag destinations); those that are constructor
# arguments of that backbone are passed to it. Given for another backbone, they are reported as ignored.
BACKBONE_FLAGS = {
    "tsm": ("arch", "num_segments", "second_segments", "shift", "shift_div", "shift_place", "consensus_type",
            "partial_bn"),
}  # fmt: skip
# The flags of each optimiser family (models/registry.py ModelSpec.optimizer).
OPTIMIZER_FLAGS = {
    "sgd": ("lr", "lr_type", "lr_steps", "momentum", "nesterov", "weight_decay"),
    "adamw": ("lr_backbone1", "lr_head1", "lr_decay1", "weight_decay1"),
}


# The built-in synthetic data's defaults: with no other flag, `python main.py synthetic` is the demo, a
# small PoseConv3D on joint coordinates with the contrastive noisy view that trains and sweeps in minutes
# on a laptop CPU (README). The general defaults (the pyskl-size model NTU uses) are one flag away, and a
# flag given on the command line always wins. Per (dataset, --model_type); --model_cfg values are
# (key, value) pairs as the flag parses them.
DATASET_DEFAULTS = {
    ("synthetic", "poseconv"): {
        "input_f": "Skeleton",
        "model_cfg": [("base_channels", 16), ("stage_blocks", (2, 2, 2))],
        "clip_len": 32,
        "epochs": 20,
        "batch_size": 8,
        "lr": 0.05,
        "noise_alpha": 0.02,
        "gamma": 1.0,
    },
}


# Your own data (`custom`): the best measured on a small real set the tool was not designed on (MSR Action3D,
# 3D joints, cross-subject, three seeds; scripts/unseen_benchmark.sh, docs/robustness.md "Unseen corruptions"):
# the small PoseConv3D on the joint coordinates with a seen / missing channel per joint (0.32 M parameters,
# about a minute per run on a CPU), trained on the clean view and one drawn from four of the suite's families
# (jitter, missing joints, dropped frames, outliers): 81.2 clean, mCA 67.1 against 77.3 and 53.9 with
# cross-entropy alone, and the best on the families it never saw. ST-GCN++ and MotionBERT get their measured
# small sizes (ST-GCN++ with the repair steps, its best there). Any flag given wins.
DATASET_MODEL = {"custom": "poseconv"}  # --model_type when none is given
SEEN_FAMILIES = ["jitter", "missing_joints", "frame_drop", "outliers"]  # the benchmark's training mix
_CUSTOM_OBJECTIVE = {"gamma": 0.0, "ce_views": "both", "train_corruptions": SEEN_FAMILIES}
DATASET_DEFAULTS |= {
    ("custom", "poseconv"): {
        "input_f": "Skeleton",
        "model_cfg": [("base_channels", 16), ("stage_blocks", (2, 2, 2))],
        "clip_len": 32,
        "epochs": 40,
        "batch_size": 8,
        "lr": 0.05,
        "visibility": True,
        **_CUSTOM_OBJECTIVE,
    },
    ("custom", "stgcnpp"): {
        "model_cfg": [("base_channels", 16)],
        "clip_len": 32,
        "epochs": 40,
        "batch_size": 16,
        "lr": 0.1,
        "dropout": 0.0,
        "repair": ["swaps", "outliers", "interpolate"],
        **_CUSTOM_OBJECTIVE,
    },
    ("custom", "motionbert"): {
        "model_cfg": [("dim_feat", 32), ("dim_rep", 32), ("depth", 2), ("num_heads", 4), ("hidden_dim", 128)],
        "clip_len": 32,
        "epochs": 30,
        "batch_size": 16,
        "lr_backbone1": 1e-3,
        "lr_head1": 1e-3,
        **_CUSTOM_OBJECTIVE,
    },
}


def dataset_defaults(dataset: str, model_type: str) -> dict:
    """The defaults that `dataset` and `model_type` change (DATASET_DEFAULTS)."""
    return dict(DATASET_DEFAULTS.get((dataset, model_type), {}))


# Ranges of the flags that are not plain counts (utils/argtypes.py has those): a jitter level as a
# corruption severity (datasets/pipeline/noise.py), a rotation in degrees, a part of the clip kept.
alpha_level = float_range(0, MAX_ALPHA)
angle = float_range(0, 180)
kept_fraction = float_range(0, 1, lo_open=True)  # (0, 1]: something must be kept
shift_divisor = int_range(2)  # TSM shifts two folds of C // shift_div channels


def parse_cfg_item(text: str) -> tuple[str, object]:
    """Parse KEY=VALUE with VALUE as a Python literal (int, float, tuple, bool) or a plain string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _flag(dest: str) -> str:
    return {"batch_size": "-b", "weight_decay": "--wd"}.get(dest, f"--{dest}")


def _setting(dest: str, value) -> str:
    """A default as a command line would give it: '--clip_len 32', '--visibility' for a switch that is on."""
    return _flag(dest) if value is True else f"{_flag(dest)} {_shown(value)}"


def _shown(value) -> str:
    if isinstance(value, list) and value and isinstance(value[0], tuple):  # --model_cfg pairs
        return " ".join(f"{k}={v}".replace(" ", "") for k, v in value)
    if isinstance(value, list):  # names: --train_corruptions, --repair
        return " ".join(map(str, value))
    return str(value)


# The flags a newcomer needs first, by destination: `main.py --help` shows these sections and points to
# `--help_all`, which lists every flag in the parser's groups.
SHORT_HELP = {
    "what to train on": ("dataset", "data_root", "ann_file"),
    "model": ("model_type", "input_f"),
    "training": ("epochs", "batch_size", "lr", "seed", "workers", "device"),
    "robustness objective": ("gamma", "noise_alpha", "ce_views", "train_corruptions"),
    "evaluation and runs": ("evaluate", "eval_corruptions", "run_dir", "name", "resume"),
}


def short_help(parser: argparse.ArgumentParser) -> str:
    """The help text of SHORT_HELP's flags, in its sections, ending with the pointer to --help_all."""
    actions = {a.dest: a for a in parser._actions}
    fmt = parser._get_formatter()
    fmt.add_usage("%(prog)s DATASET [options]", [], [])
    fmt.add_text(parser.description)
    for title, dests in SHORT_HELP.items():
        fmt.start_section(title)
        fmt.add_arguments([actions[d] for d in dests])
        fmt.end_section()
    fmt.add_text(parser.epilog)
    fmt.add_text("full list: --help_all")
    return fmt.format_help()


class ShortHelp(argparse.Action):
    """-h/--help: print `short_help` and exit, as argparse's own help action does with the full text."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser._print_message(short_help(parser), sys.stdout)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="main.py",
        description="Train and evaluate noise-robust skeleton action recognisers (PoseConv3D, MotionBERT, TSM).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="defaults shown are the general ones (NTU's pyskl-size PoseConv3D); on the built-in data, "
        "`main.py synthetic` (PoseConv3D) uses instead: "
        + ", ".join(_setting(k, v) for k, v in DATASET_DEFAULTS[("synthetic", "poseconv")].items())
        + " (a demo that runs in minutes on a CPU); on your own data, `main.py custom` trains "
        + ", ".join(_setting(k, v) for k, v in DATASET_DEFAULTS[("custom", "poseconv")].items())
        + " (the best measured on MSR Action3D, clean and corrupted; --model_type stgcnpp or motionbert get their "
        "own measured small sizes)",
        add_help=False,  # -h/--help is the short help (SHORT_HELP), --help_all argparse's full one
    )
    p.add_argument("-h", "--help", action=ShortHelp, help="show the flags that matter first and exit")
    p.add_argument("--help_all", action="help", help="show every flag and exit")
    p.add_argument("dataset", choices=sorted(CATALOG), help="dataset; 'synthetic' is built in and needs no download")
    p.add_argument(
        "modality",
        nargs="?",
        default=None,
        help="accepted for compatibility with TCL command lines; not used",
    )
    p.add_argument(
        "--recipe",
        default=None,
        metavar="NAME",
        help="a published upstream configuration as a preset (recipes/, README 'Published recipes'): it sets every "
        "training and test setting; flags given on the command line override it. Learning rates are scaled to the "
        "run's total batch (--lr_batch). One of: " + ", ".join(RECIPES),
    )

    g = p.add_argument_group("data")
    g.add_argument("--data_root", default="data", help="folder holding the annotation files (and the synthetic cache)")
    g.add_argument("--ann_file", default=None, help="annotation .pkl to use instead of the dataset's default path")
    g.add_argument(
        "--trust_data",
        action="store_true",
        help="unpickle the annotation file whatever it holds (trusted files only): without it, a file may hold "
        "only what pyskl's files do (dicts, lists, tuples, strings, numbers, None, NumPy arrays and scalars), and "
        "any other object is refused before it runs, as --trust_checkpoint guards checkpoints",
    )
    g.add_argument(
        "--split",
        default=None,
        help="split protocol, the file's splits PROTOCOL_train / PROTOCOL_val: xsub, xview (ntu60) or xset (ntu120); "
        "a custom file's own (python main.py convert folder writes xFIELD such as xsubject, csv or random); "
        "None: xsub, or a custom file's first pair",
    )
    g.add_argument(
        "--layout",
        default=None,
        metavar="NAME|FILE.json",
        help="joint layout of the keypoints: a built-in name (" + ", ".join(LAYOUTS) + ") or a JSON file declaring "
        "one (README: Your own dataset); default: the annotation file's 'layout' entries, else the dataset's, else "
        "inferred from the joint count when only one built-in layout fits",
    )
    g.add_argument(
        "--input_f",
        default="Heatmap",
        choices=INPUT_FORMATS,
        help="input format: joint heatmap volumes (Heatmap = NCTHW_Heatmap), limb volumes, one grayscale "
        "volume, or raw Skeleton coordinates (the default, and the only input, of MotionBERT and the graph networks)",
    )
    g.add_argument(
        "--in_channels",
        type=positive_int,
        default=None,
        help="model input channels; checked against --input_f (17 joint, 17 limb, 1 gray, persons*joints*2 = 68 "
        "skeleton); None derives it",
    )
    g.add_argument(
        "--clip_len",
        type=positive_int,
        default=None,
        help="frames per clip; None means 24 for PoseConv3D, 243 for MotionBERT, --num_segments for TSM",
    )
    g.add_argument(
        "--input_size", type=positive_int, default=56, help="side of the rendered frames in pixels (train and test)"
    )
    g.add_argument(
        "--test_input_size",
        type=positive_int,
        default=None,
        help="side of the frames rendered for evaluation (validation, test, predict) when it differs from "
        "--input_size: pyskl trains PoseConv3D at 56 and tests at 64 (the network pools globally); None: --input_size",
    )
    g.add_argument(
        "--num_clips", type=positive_int, default=1, help="clips per test video, probabilities averaged (pyskl)"
    )
    g.add_argument("--test_flip", action="store_true", help="also test on the horizontally flipped clip (pyskl double)")
    g.add_argument(
        "--max_persons", type=positive_int, default=2, help="persons kept per clip (most confident), zero-padded"
    )
    g.add_argument("--workers", "-j", type=nonnegative_int, default=2, help="data loading worker processes")
    g.add_argument(
        "--val_fraction",
        type=fraction,
        default=0.1,
        help="part of the training clips held out (whole groups, --val_group_field) to choose the best epoch; the "
        "test split is scored only at the end, with the chosen and the last checkpoint",
    )
    g.add_argument(
        "--val_group_field",
        default=None,
        metavar="FIELD",
        help="the clips' field (a key of the annotations, e.g. subject, view) whose values --val_fraction holds out "
        "whole; 'none' for none. None: subject when every training clip has a 'subject' field, else none: whole "
        "subjects where the clip names carry them (NTU, MSR), else per class. split.json records which",
    )
    g.add_argument(
        "--stream",
        default="joint",
        choices=STREAMS,
        help="coordinate inputs (--input_f Skeleton, MotionBERT): the joints, the bones (joint minus its parent in "
        "the layout's tree, 0 at the root) or the frame differences of either (0 in the last frame); computed after "
        "the corruption and saved with the run, so --evaluate and predict use it too",
    )
    g.add_argument(
        "--visibility",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="coordinate inputs (--input_f Skeleton, the graph networks) carry one more channel per joint: 1 where "
        "it is seen, 0 where it is missing, so that a missing joint is not read as a joint at the origin",
    )
    g.add_argument(
        "--keypoints",
        choices=("2d", "3d"),
        default="2d",
        help="ntu60 / ntu120 without --ann_file: pyskl's HRNet 2D file (nturgbd/NAME_hrnet.pkl, COCO-17) or its "
        "Kinect 3D file (nturgbd/NAME_3danno.pkl, NTU-25 joints in metres), under --data_root",
    )
    g.add_argument(
        "--streams",
        nargs="+",
        choices=STREAMS,
        default=None,
        metavar="STREAM",
        help="train one model per stream (joint, bone, joint_motion, bone_motion; each run in RUN_DIR/NAME/STREAM, one "
        "after another, the same command resuming where it stopped), then score their late fusion on the clean test "
        "clips and the whole corruption suite (RUN_DIR/NAME/robustness.csv) with --fusion_weights",
    )
    g.add_argument(
        "--fusion_weights",
        nargs="+",
        default=["auto"],
        metavar="W",
        help="--streams: 'auto' (the weighting of 1s and 2s, pyskl's 2:2:1:1 included, with the best top-1 on the "
        "validation clips; equal weights on a tie or without validation clips), 'equal', 'pyskl' (joint 2, bone 2, "
        "motions 1) or one number per stream",
    )
    g.add_argument(
        "--save_test_probs",
        action="store_true",
        help="write test_probs.npz (clip names, labels, class probabilities) of the clean test clips with the first "
        "checkpoint of --sweep_checkpoints (or the --evaluate one) to the run directory, and sweep_probs.npz (those of "
        "every row of its robustness sweep), for scripts/fuse.py (--sweep)",
    )
    g.add_argument(
        "--synthetic_clips", type=positive_int, default=8, help="synthetic data: clips per class and per subject"
    )
    g.add_argument("--synthetic_seed", type=seed_int, default=0, help="synthetic data: generator seed")

    g = p.add_argument_group(
        "augmentation",
        "random skeleton transforms of the training clips (datasets/pipeline/augment.py), the same for both "
        "views of a clip and applied before its corruption; never at evaluation. All off by default",
    )
    g.add_argument(
        "--aug_rotate",
        type=angle,
        default=0.0,
        metavar="DEG",
        help="rotate each clip about its centre by U(-DEG, DEG) degrees about each axis (3D) or in the image plane "
        "(2D)",
    )
    g.add_argument(
        "--aug_scale",
        type=fraction,
        default=0.0,
        metavar="S",
        help="scale each axis by 1 + U(-S, S) (pyskl's RandomScale), about the clip's centre",
    )
    g.add_argument(
        "--aug_shear",
        type=fraction,
        default=0.0,
        metavar="S",
        help="shear: each off-diagonal entry of the shear matrix U(-S, S) (CTR-GCN's shear)",
    )
    g.add_argument(
        "--aug_temporal_crop",
        type=kept_fraction,
        default=1.0,
        metavar="MIN_FRACTION",
        help="keep a random contiguous crop of U(MIN_FRACTION, 1) of the frames, resampled to --clip_len (1: off)",
    )

    g = p.add_argument_group("model")
    g.add_argument(
        "--model_type",
        default=None,
        choices=sorted(MODEL_TYPES),
        help="backbone (default: poseconv, small on custom data: see the end of --help_all)",
    )
    g.add_argument(
        "--model_cfg",
        nargs="+",
        default=[],
        type=parse_cfg_item,
        metavar="KEY=VALUE",
        help="override backbone constructor arguments, e.g. --model_cfg depth=2 dim_feat=64",
    )
    g.add_argument("--dropout", type=fraction, default=0.5, help="dropout before the classifier")
    g.add_argument("--pretrained", default=None, help="backbone weights to fine-tune from (pyskl, MotionBERT, ours)")
    g.add_argument("--tune_from", default=None, help="whole-model weights; a new head if the class count differs")
    g.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="allow --pretrained/--tune_from/--resume/--evaluate files that need full unpickling (trusted files only)",
    )
    g.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet50"], help="TSM: 2D ResNet depth")
    g.add_argument("--num_segments", type=positive_int, default=8, help="TSM: frames per clip")
    g.add_argument(
        "--second_segments", type=positive_int, default=None, help="TSM: frames of the second view (= num_segments)"
    )
    g.add_argument("--shift", action="store_true", help="TSM: temporal shift")
    g.add_argument("--shift_div", type=shift_divisor, default=8, help="TSM: 1/shift_div of the channels shift each way")
    g.add_argument("--shift_place", default="blockres", choices=["block", "blockres"], help="TSM: where to shift")
    g.add_argument("--consensus_type", default="avg", choices=["avg"], help="TSM: how frame logits are combined")
    g.add_argument("--npb", "--no_partialbn", dest="partial_bn", action="store_false", help="TSM: no partial BatchNorm")

    g = p.add_argument_group("noise")
    g.add_argument(
        "--noise_alpha",
        type=alpha_level,
        default=0.1,
        help="std of the Gaussian joint noise of the second view, as a fraction of the frame's mean side",
    )
    g.add_argument(
        "--train_corruptions",
        nargs="+",
        default=None,
        metavar="SPEC",
        help="draw each clip's corrupted training view from these (datasets/pipeline/corruptions.py): FAMILY, "
        "FAMILY:LEVEL, FAMILY:SEVERITY or all; default: jitter at --noise_alpha",
    )
    g.add_argument(
        "--repair",
        nargs="+",
        default=[],
        choices=REPAIRS,
        metavar="STEP",
        help="repair every clip after its corruption, training and test clips alike, in the order given "
        f"(datasets/pipeline/repair.py: {', '.join(REPAIRS)}; recommended order {' '.join(RECOMMENDED_STEPS)}); "
        "with --evaluate, on any checkpoint at test time only; off by default",
    )
    g.add_argument(
        "--eval_corruptions",
        nargs="+",
        default=["all"],
        metavar="SPEC",
        help="the corruption suite of the final evaluation, whose mean is the mCA: all (every family at its "
        "light, moderate and severe levels), FAMILY, FAMILY:LEVEL, FAMILY:SEVERITY, or none",
    )
    g.add_argument(
        "--sweep_checkpoints",
        nargs="+",
        choices=["best", "last"],
        default=["best", "last"],
        help="checkpoints scored on the test split at the end of training: the one chosen on the validation part, "
        "the last one, or both",
    )
    g.add_argument(
        "--eval_alphas",
        type=alpha_level,
        nargs="+",
        default=list(DEFAULT_EVAL_ALPHAS),
        help="jitter levels (Gaussian noise alpha) of the robustness evaluation, besides the suite",
    )

    g = p.add_argument_group("loss")
    g.add_argument("--gamma", type=nonnegative_float, default=5.0, help="weight of the instance contrastive loss")
    g.add_argument("--gamma2", type=nonnegative_float, default=0.0, help="weight of the group contrastive loss")
    g.add_argument("--use_group_contrastive", action="store_true", help="compute the group contrastive loss")
    g.add_argument(
        "--gamma_ramp",
        type=nonnegative_int,
        default=0,
        metavar="EPOCHS",
        help="raise gamma, gamma2 and consistency_weight linearly over the first EPOCHS epochs that compare views "
        "(0: full weight at once, TCL's loss)",
    )
    g.add_argument(
        "--loss_weighting",
        default="mean",
        choices=["sum", "mean"],
        help="mean: CE + gamma x instance + ... divided by the sum of the weights (1 + gamma + ...), so that gamma "
        "sets the terms' shares without also scaling the step size; sum: TCL's loss as it is (README, Results)",
    )
    g.add_argument(
        "--temperature",
        "--Temperature",
        dest="temperature",
        type=positive_float,
        default=0.5,
        help="contrastive temperature",
    )
    g.add_argument(
        "--negatives",
        default="all",
        choices=["all", "other_class"],
        help="negatives of the instance contrastive term: every other clip (TCL's loss) or only clips of another "
        "class (their label; for unlabelled clips the clean view's predicted class)",
    )
    g.add_argument(
        "--ce_views",
        default="clean",
        choices=["clean", "noisy", "both"],
        help="views that get cross-entropy: clean (plain training), noisy (noise augmentation), both (their mean)",
    )
    g.add_argument(
        "--consistency",
        default="none",
        choices=["none", "js", "kl"],
        help="consistency between the two views' class distributions: Jensen-Shannon (AugMix) or KL to the clean view",
    )
    g.add_argument("--consistency_weight", type=nonnegative_float, default=1.0, help="weight of the consistency term")
    g.add_argument(
        "--no_detach_clean",
        action="store_true",
        help="let contrastive gradients flow into the clean view too",
    )

    g = p.add_argument_group("semi-supervised")
    g.add_argument(
        "--percentage",
        type=fraction,
        default=0.0,
        help="UNLABELLED fraction of the training set (TCL's meaning): 0.95 keeps labels for 5%% of the clips",
    )
    g.add_argument("--strategy", default="classwise", choices=["classwise", "overall"], help="how labels are kept")
    g.add_argument("--mu", type=positive_int, default=1, help="unlabelled batch = mu x labelled batch")
    g.add_argument("--sup_thresh", type=nonnegative_int, default=0, help="first epochs trained with cross-entropy only")
    g.add_argument("--use_finetuning", action="store_true", help="TCL's pseudo-label fine-tuning stage")
    g.add_argument(
        "--finetune_start_epoch", type=nonnegative_int, default=400, help="first epoch of the fine-tuning stage"
    )
    g.add_argument("--gamma_finetune", type=nonnegative_float, default=1.0, help="weight of the pseudo-label loss")
    g.add_argument("--threshold", type=kept_fraction, default=0.8, help="pseudo-label confidence threshold")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=positive_int, default=20, help="training epochs")
    g.add_argument(
        "--batch-size", "-b", dest="batch_size", type=positive_int, default=16, help="labelled clips per step"
    )
    g.add_argument("--valbatchsize", type=positive_int, default=16, help="clips per evaluation step")
    g.add_argument(
        "--lr",
        type=positive_float,
        default=0.1,
        help="PoseConv3D, TSM: SGD learning rate, decayed per step by --lr_type",
    )
    g.add_argument(
        "--lr_batch",
        type=nonnegative_int,
        default=0,
        help="the total batch the learning rates (--lr, --lr_backbone1, --lr_head1) are given for: they are scaled "
        "linearly to the run's total batch, lr x (-b x world size) / lr_batch (e.g. 0.4 for 256 is 0.05 at -b 32 "
        "on one GPU); 0: used as given. Recipes set it to upstream's total batch",
    )
    g.add_argument("--lr_type", default="cos", choices=["cos", "step"], help="SGD schedule: cosine or step")
    g.add_argument(
        "--warmup_epochs",
        type=nonnegative_float,
        default=0.0,
        help="learning rates rise linearly over the first EPOCHS epochs (per step; SGD and AdamW; 0: off)",
    )
    g.add_argument(
        "--label_smoothing",
        type=fraction,
        default=0.0,
        help="label smoothing of the cross-entropy on labelled clips (0: off)",
    )
    g.add_argument("--lr_steps", type=positive_int, nargs="+", default=[50, 100], help="step schedule: epochs x0.1")
    g.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True, help="SGD with Nesterov momentum")
    g.add_argument(
        "--wd", "--weight-decay", dest="weight_decay", type=nonnegative_float, default=3e-4, help="SGD weight decay"
    )
    g.add_argument(
        "--lr_backbone1", type=positive_float, default=1e-4, help="MotionBERT: AdamW learning rate of the backbone"
    )
    g.add_argument("--lr_head1", type=positive_float, default=1e-3, help="MotionBERT: AdamW learning rate of the head")
    g.add_argument(
        "--lr_decay1", type=kept_fraction, default=0.99, help="MotionBERT: learning rates x this every epoch"
    )
    g.add_argument("--weight_decay1", type=nonnegative_float, default=0.01, help="MotionBERT: AdamW weight decay")
    g.add_argument(
        "--gd", "--clip-gradient", dest="gd", type=nonnegative_float, default=20.0, help="max gradient norm (0: off)"
    )

    g = p.add_argument_group("runtime")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of everything random")
    g.add_argument("--run_dir", default="runs", help="parent folder of run directories")
    g.add_argument("--name", default=None, help="run directory name (default: derived from the flags)")
    g.add_argument("--resume", default=None, help="checkpoint to resume; a run directory's last.pt resumes by itself")
    g.add_argument("--evaluate", "-e", default=None, metavar="CKPT", help="only run the robustness evaluation")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    g.add_argument(
        "--gpus", type=nonnegative_int, nargs="+", default=None, help="GPU ids (TCL); one process uses the first"
    )
    g.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"], help="mixed precision (CUDA)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--channels_last", action="store_true", help="channels-last 3D memory format (CUDA)")
    g.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    g.add_argument(
        "--threads", type=parse_threads, default=None, metavar="N|auto",
        help="torch threads of the training process; auto: the cores this process may use minus data workers and "
        "other jobs' load, at most 8 (utils/threads.py); default: auto",
    )  # fmt: skip
    g.add_argument("--print-freq", "-p", dest="print_freq", type=positive_int, default=20, help="log every N steps")
    g.add_argument("--eval-freq", "-ef", dest="eval_freq", type=positive_int, default=1, help="evaluate every N epochs")
    g.add_argument(
        "--max_steps",
        type=nonnegative_int,
        default=0,
        help="stop each epoch after N steps (0: full epochs; smoke tests)",
    )
    g.add_argument(
        "--ckpt_every",
        type=nonnegative_float,
        default=0.0,
        metavar="MINUTES",
        help="also write last.pt inside an epoch every MINUTES (fractions allowed), with the position, so that a "
        "killed run loses at most that much; 0: at the end of each epoch only",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse argv and reject flag combinations that cannot work (parser.error, exit code 2)."""
    parser = build_parser()
    err = parser.error
    first, _ = parser.parse_known_args(argv)  # the dataset, recipe and backbone, whose defaults may differ
    preset = {}
    if first.recipe:
        try:
            preset = recipe_defaults(first.recipe, first.dataset)
        except ValueError as e:
            err(f"--recipe: {e}")
        parser.set_defaults(**preset)
        first, _ = parser.parse_known_args(argv)  # the recipe may choose the backbone
    if first.model_type is None:
        parser.set_defaults(model_type=DATASET_MODEL.get(first.dataset, "poseconv"))
        first, _ = parser.parse_known_args(argv)
    # Precedence: command line > recipe > dataset defaults > parser defaults; a model of joint coordinates
    # reads them (--input_f Skeleton) unless told otherwise.
    joints = {"input_f": "Skeleton"} if model_spec(MODEL_TYPES[first.model_type]).reads == "joints" else {}
    parser.set_defaults(**{**joints, **dataset_defaults(first.dataset, first.model_type), **preset})
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    if args.visibility and args.input_f != "Skeleton" and not {"--visibility", "--no-visibility"} & set(given):
        args.visibility = False  # a default (custom's) that only coordinate inputs have: not for rendered volumes
    check_args(args, err)
    return args


def check_args(args: argparse.Namespace, err) -> None:
    """Reject flag combinations that cannot work (each value's range is its converter's, checked as it is
    parsed): err(message) stops with one line (exit 2)."""
    spec = model_spec(MODEL_TYPES[args.model_type])
    if args.keypoints == "3d" and not args.ann_file and CATALOG[args.dataset].ann_file_3d is None:
        err(f"--keypoints 3d reads NTU's 3D file; {args.dataset} has none: pass --ann_file")
    if args.dataset == "custom" and not args.ann_file:
        err("the custom dataset reads a pyskl-format file: pass --ann_file FILE")
    if spec.reads == "joints" and args.input_f != "Skeleton":
        err(f"{args.model_type} takes joint coordinates: use --input_f Skeleton, not {args.input_f}")
    if spec.reads == "joints" and args.test_flip:
        err(f"--test_flip is for rendered volumes (PoseConv3D, TSM), not {args.model_type}")
    if spec.reads == "joints" and spec.joints_prep == "motionbert" and args.num_clips > 1:
        err(f"--num_clips is for rendered volumes: {args.model_type}'s test clip is the whole sequence resampled")
    if args.model_type == "tsm" and args.input_f == "Skeleton":
        err("TSM is a 2D CNN over rendered frames: use --input_f Heatmap, Limb or Grayscale")
    if args.model_type == "tsm" and args.second_segments not in (None, args.num_segments):
        err("the noisy view shares the clean view's frames: --second_segments must equal --num_segments")
    if args.model_type == "tsm" and args.clip_len not in (None, args.num_segments):
        err("TSM reads --num_segments frames per clip: leave --clip_len unset or equal to it")
    if args.use_finetuning and args.percentage == 0:
        err("--use_finetuning pseudo-labels the unlabelled clips: set --percentage > 0")
    starts_from = args.pretrained or args.tune_from or args.evaluate  # fine-tuning's starting point, or none needed
    if args.recipe and RECIPES[args.recipe].needs_pretrained and args.dataset != "synthetic" and not starts_from:
        err(f"recipe {args.recipe} fine-tunes a pretrained backbone: pass --pretrained FILE (MotionBERT's checkpoint)")
    if args.evaluate and args.resume:
        err("--evaluate and --resume exclude each other")
    check_streams(args, err)
    if spec.optimizer == "sgd" and args.nesterov and args.momentum == 0:
        err("Nesterov momentum needs --momentum > 0: pass --no-nesterov for plain SGD")
    if args.amp == "fp16" and args.device == "cpu":
        err("--amp fp16 needs CUDA; use --amp bf16 or none on the CPU")
    if args.stream != "joint" and spec.reads != "joints" and args.input_f != "Skeleton":
        err(f"--stream {args.stream} is for coordinate inputs: use --input_f Skeleton (or MotionBERT)")
    for flag in ("train_corruptions", "eval_corruptions"):
        specs = getattr(args, flag)
        if specs is not None and specs != ["none"]:
            try:
                parse_corruptions(specs)
            except ValueError as e:
                err(f"--{flag}: {e}")
    keys = [k for k, _ in args.model_cfg]
    if len(set(keys)) != len(keys):
        err("--model_cfg names a key twice")
    bad = [k for k in keys if k not in spec.kwargs()]
    if bad:
        err(f"--model_cfg {bad[0]} is not an argument of {args.model_type}; valid: {', '.join(spec.kwargs())}")


def check_streams(args: argparse.Namespace, err) -> None:
    """--streams and --fusion_weights: distinct streams of a coordinate input, weights that fit them."""
    if args.streams is None:
        if args.fusion_weights != ["auto"]:
            err("--fusion_weights weighs the models of --streams: give --streams too")
        return
    if len(set(args.streams)) != len(args.streams):
        err("--streams names a stream twice")
    if args.evaluate or args.resume:
        err("--streams trains and resumes its runs itself: --evaluate or --resume each stream's RUN_DIR/NAME/STREAM")
    if model_spec(MODEL_TYPES[args.model_type]).reads != "joints" and args.input_f != "Skeleton":
        err("--streams are streams of joint coordinates: use --input_f Skeleton, or a model of joints")
    if args.fusion_weights in (["auto"], ["equal"], ["pyskl"]):
        return
    try:
        weights = [float(w) for w in args.fusion_weights]
    except ValueError:
        err(f"--fusion_weights is auto, equal, pyskl or numbers, got {' '.join(args.fusion_weights)}")
    if (
        len(weights) != len(args.streams)
        or not all(map(math.isfinite, weights))
        or min(weights) < 0
        or sum(weights) <= 0
    ):
        err(f"--fusion_weights needs one finite weight >= 0 per stream ({len(args.streams)}), not all 0")


def given_flags(argv: list[str] | None) -> set[str]:
    """Destinations of the options written on the command line (not left at their defaults)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    for action in parser._actions:
        if not action.option_strings:  # positionals keep their values; only options are of interest
            action.default = None
    ns, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return {k for k in vars(ns) if k not in ("dataset", "modality")}


def ignored_flags(args: argparse.Namespace, argv: list[str] | None) -> list[str]:
    """Flags written on the command line that the chosen backbone does not read: other backbones' own
    flags, the other optimiser family's, and --in_channels for a model of joint coordinates."""
    name = MODEL_TYPES[args.model_type]
    spec = model_spec(name)
    unread = {f for other, flags in BACKBONE_FLAGS.items() if other != name for f in flags}
    unread |= {f for family, flags in OPTIMIZER_FLAGS.items() if family != spec.optimizer for f in flags}
    if spec.reads == "joints":
        unread.add("in_channels")  # its input is (x, y, score) per joint
    names = {a.dest: a.option_strings[0] for a in build_parser()._actions if a.option_strings}
    return sorted(names[dest] for dest in unread & given_flags(argv))  # as the user can type them


def backbone_kwargs(args: argparse.Namespace) -> dict:
    """Constructor arguments of the chosen backbone: its own flags, then --model_cfg."""
    name = MODEL_TYPES[args.model_type]
    accepted = model_spec(name).kwargs()
    own = {flag: getattr(args, flag) for flag in BACKBONE_FLAGS.get(name, ()) if flag in accepted}
    return {**own, **dict(args.model_cfg)}


def settings(args: argparse.Namespace, world_size: int = 1) -> tuple[TrainConfig, OptimConfig, LossConfig, EvalConfig]:
    """The typed configuration of the run the flags ask for, with `world_size` processes (the learning
    rates scaled to the total batch when --lr_batch is set)."""
    scale = lr_scale(args.lr_batch, args.batch_size, world_size)
    train = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, workers=args.workers, mu=args.mu,
        unlabelled_fraction=args.percentage, label_strategy=args.strategy, noise_alpha=args.noise_alpha,
        val_fraction=args.val_fraction, val_group_field=args.val_group_field,
        corruptions=tuple(parse_corruptions(args.train_corruptions or [])),
        max_steps=args.max_steps, eval_every=args.eval_freq, log_every=args.print_freq,
        channels_last=args.channels_last, compile=args.compile, ckpt_every=60 * args.ckpt_every,
        augment=AugmentConfig(rotate=args.aug_rotate, scale=args.aug_scale, shear=args.aug_shear,
                              temporal_crop=args.aug_temporal_crop), repair=tuple(args.repair),
    )  # fmt: skip
    optim = OptimConfig(
        epochs=args.epochs, lr=args.lr * scale, lr_type=args.lr_type, lr_steps=tuple(args.lr_steps),
        momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay,
        lr_backbone=args.lr_backbone1 * scale, lr_head=args.lr_head1 * scale, lr_decay=args.lr_decay1,
        weight_decay_adamw=args.weight_decay1, clip_grad=args.gd, warmup_epochs=args.warmup_epochs,
    )  # fmt: skip
    loss = LossConfig(
        gamma=args.gamma, gamma2=args.gamma2, group=args.use_group_contrastive, temperature=args.temperature,
        detach_clean=not args.no_detach_clean, sup_epochs=args.sup_thresh, ramp_epochs=args.gamma_ramp,
        finetune_from=args.finetune_start_epoch if args.use_finetuning else None, threshold=args.threshold,
        gamma_finetune=args.gamma_finetune, ce_views=args.ce_views, negatives=args.negatives,
        consistency=args.consistency,
        consistency_weight=args.consistency_weight, weighting=args.loss_weighting,
        label_smoothing=args.label_smoothing,
    )  # fmt: skip
    suite = [] if args.eval_corruptions == ["none"] else args.eval_corruptions
    ev = EvalConfig(
        alphas=tuple(args.eval_alphas), num_clips=args.num_clips, corruptions=tuple(parse_corruptions(suite)),
        test_flip=args.test_flip, checkpoints=tuple(dict.fromkeys(args.sweep_checkpoints)),
        batch_size=args.valbatchsize, workers=args.workers, seed=args.seed, repair=tuple(args.repair),
    )  # fmt: skip
    return train, optim, loss, ev


def flag_notes(args: argparse.Namespace, argv: list[str] | None) -> list[str]:
    """Notes for the user about flags that are accepted but not used, or that measured badly in this setting."""
    notes = []
    if args.modality is not None:
        notes.append(f"modality {args.modality!r} is accepted for compatibility and not used (see --input_f)")
    skipped = ignored_flags(args, argv)
    if skipped:
        notes.append(f"ignored for --model_type {args.model_type}: {', '.join(skipped)}")
    drops = {"missing_joints", "occlusion", "all"}
    if args.visibility and not args.evaluate and not drops & {s.split(":")[0] for s in args.train_corruptions or []}:
        notes.append("--visibility without training views that drop joints (--train_corruptions missing_joints "
                     "occlusion) made missing joints far worse on MSR Action3D (README)")  # fmt: skip
    return notes


def recipe_summary(args: argparse.Namespace, argv: list[str] | None, optim: OptimConfig, world_size: int) -> str:
    """One line: what the --recipe preset set, what the command line overrode, and the learning rates it
    trains with at this run's total batch (`optim`, scaled by opts.settings)."""
    sgd = model_spec(MODEL_TYPES[args.model_type]).optimizer == "sgd"
    lrs = {"lr": optim.lr} if sgd else {"lr_backbone1": optim.lr_backbone, "lr_head1": optim.lr_head}
    return recipe_line(args.recipe, recipe_defaults(args.recipe, args.dataset), given_flags(argv), lrs,
                       args.lr_batch, args.batch_size * world_size)  # fmt: skip


def checkpoint_args(args: argparse.Namespace) -> dict:
    """The parsed flags as plain values (--model_cfg pairs become a dict), as checkpoints store them."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
    out["model_cfg"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.model_cfg}
    return out


def run_name(args: argparse.Namespace, protocol: str) -> str:
    """--name, or one derived from the dataset, split protocol (`protocol`, --split's or the one chosen without
    it), backbone, input and the loss flags."""
    if args.name:
        return args.name
    flags = f"g{args.gamma:g}_a{args.noise_alpha:g}_s{args.seed}" + ("_streams" if args.streams else "")
    return f"{args.dataset}_{protocol}_{args.model_type}_{args.input_f}_{flags}"


# ----------------------------------------------------------------------------------------------------
# predict (python main.py predict ... = python predict.py ...)


def build_predict_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="main.py predict",
        description="Top-5 action classes of each clip of a pyskl pickle, an NTU .skeleton file, per-clip files or "
        "a video; with labels, the accuracy and a confusion matrix.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint written by main.py (e.g. runs/NAME/best.pt)")
    p.add_argument(
        "--input",
        required=True,
        help="pyskl .pkl (whole file, list of annotations or one annotation), NTU .skeleton, a per-clip file "
        "(.npy, .npz, .json, as main.py convert folder reads them) or a folder of them, or a video "
        f"({', '.join(VIDEO_SUFFIXES)}; needs {MEDIAPIPE})",
    )
    p.add_argument(
        "--num_clips",
        type=positive_int,
        default=None,
        help="clips sampled per video, probabilities averaged (default: as in training)",
    )
    p.add_argument(
        "--test_flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also test on the horizontally flipped clip (default: as in training)",
    )
    p.add_argument("--save_probs", default=None, metavar="FILE", help="write every clip's probabilities as JSON")
    p.add_argument(
        "--img_shape",
        nargs=2,
        type=positive_int,
        default=None,
        metavar=("H", "W"),
        help="frame size of 2D per-clip files without an 'img_shape' field (as main.py convert folder --img_shape)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    p.add_argument(
        "--batch_size", "-b", type=positive_int, default=16, help="clips per forward pass (default: %(default)s)"
    )
    p.add_argument(
        "--workers", "-j", type=nonnegative_int, default=0, help="data loading worker processes (default: %(default)s)"
    )
    p.add_argument(
        "--trust_checkpoint",
        action="store_true",
        help="allow a checkpoint that needs full unpickling (trusted files only)",
    )
    p.add_argument(
        "--trust_data",
        action="store_true",
        help="unpickle a .pkl --input whatever it holds (trusted files only): without it, it may hold only what "
        "pyskl's files do (dicts, lists, tuples, strings, numbers, None, NumPy arrays and scalars)",
    )
    return p


def parse_predict_args(argv: list[str] | None) -> PredictOptions:
    """Parse predict's flags (each checked by its converter as it is parsed; exit code 2 and one line)."""
    return PredictOptions(**vars(build_predict_parser().parse_args(argv)))
