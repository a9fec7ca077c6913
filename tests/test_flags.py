"""Every numeric flag of main.py and predict is checked as it is parsed, by a range converter
(utils/argtypes.py): a value outside its range stops the parser with exit code 2 and one line that names
the flag and the range; --model_cfg values are checked by building the backbone on the meta device as the
run is resolved. Parsing runs in this process (opts.parse_args), so these tests take seconds."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from datasets.store.layouts import COCO17
from engine.config import resolve_run_config
from models import check_kwargs, list_models
from opts import SHORT_HELP, build_parser, build_predict_parser, parse_args, parse_cfg_item, parse_predict_args
from utils.argtypes import finite_float, float_range, fraction, int_range, positive_int, probability, seed_int
from utils.errors import UserError
from utils.threads import parse_threads


def parse_error(parse, argv: list[str]) -> str:
    """The one line `parse(argv)` stops with (exit code 2); fails when it parses or says more."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        parse(argv)
    lines = err.getvalue().strip().splitlines()
    assert e.value.code == 2 and len(lines) == 1 and "Traceback" not in err.getvalue(), err.getvalue()
    return lines[0]


# -- the converters


def test_int_range_takes_whole_numbers_in_range_and_says_what_it_accepts():
    workers = int_range(0)
    assert workers("0") == 0 and workers(" 12 ") == 12 and workers.accepts == "an integer >= 0"
    for text, shown in [("-1", "got -1"), ("1.0", "got '1.0'"), ("two", "got 'two'"), ("", "got ''")]:
        with pytest.raises(argparse.ArgumentTypeError, match="must be an integer >= 0, " + shown):
            workers(text)
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \[0, 4294967295\], got 4294967296"):
        seed_int(str(2**32))
    with pytest.raises(argparse.ArgumentTypeError, match=r"got '9{40}\.\.\.'$"):  # 5000 digits, cut short
        positive_int("9" * 5000)


def test_float_range_refuses_nan_inf_and_each_end_as_asked():
    assert fraction("0") == 0.0 and fraction.accepts == "a finite number in [0, 1)"
    assert probability("1") == 1.0 and float_range(0, lo_open=True).accepts == "a finite number > 0"
    assert float_range(hi=5, hi_open=True).accepts == "a finite number < 5" and finite_float("-3.5") == -3.5
    for text in ("nan", "inf", "-inf", "1e400", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number"):
            finite_float(text)
    with pytest.raises(argparse.ArgumentTypeError, match=r"in \[0, 1\), got 1$"):
        fraction("1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"> 0, got 0.0$"):
        float_range(0, lo_open=True)("0.0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"got 'a\\nb'"):  # the line break stays escaped
        fraction("a\nb")


# -- the flags


def test_every_numeric_flag_has_a_range_converter():
    """No flag of main.py or predict takes a bare int or float: each says which values it accepts."""
    for parser in (build_parser(), build_predict_parser()):
        for action in parser._actions:
            if action.type is None or action.type in (parse_threads, parse_cfg_item):
                continue
            assert hasattr(action.type, "accepts"), f"{action.option_strings} has type {action.type}"


# (argv, a fragment of the one line)
# fmt: off
OUT_OF_RANGE = [
    (["--workers", "-1"], "argument --workers/-j: must be an integer >= 0, got -1"),
    (["--print-freq", "0"], "argument --print-freq/-p: must be an integer >= 1, got 0"),
    (["-ef", "0"], "argument --eval-freq/-ef: must be an integer >= 1, got 0"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1"),
    (["-b", "0"], "argument --batch-size/-b: must be an integer >= 1"),
    (["--valbatchsize", "0"], "argument --valbatchsize: must be an integer >= 1"),
    (["--max_steps", "-5"], "argument --max_steps: must be an integer >= 0"),  # 0: full epochs
    (["--lr", "0"], "argument --lr: must be a finite number > 0"),
    (["--lr_backbone1", "-0.0001"], "argument --lr_backbone1: must be a finite number > 0"),
    (["--lr_head1", "0"], "argument --lr_head1: must be a finite number > 0"),
    (["--lr_decay1", "1.5"], "argument --lr_decay1: must be a finite number in (0, 1]"),
    (["--lr_batch", "-1"], "argument --lr_batch: must be an integer >= 0"),
    (["--lr_steps", "10", "0"], "argument --lr_steps: must be an integer >= 1"),
    (["--momentum", "1"], "argument --momentum: must be a finite number in [0, 1)"),
    (["--wd", "-0.1"], "argument --wd/--weight-decay: must be a finite number >= 0"),
    (["--weight_decay1", "-0.1"], "argument --weight_decay1: must be a finite number >= 0"),
    (["--gd", "-1"], "argument --gd/--clip-gradient: must be a finite number >= 0"),  # 0: off
    (["--warmup_epochs", "-1"], "argument --warmup_epochs: must be a finite number >= 0"),
    (["--label_smoothing", "1"], "argument --label_smoothing: must be a finite number in [0, 1)"),
    (["--gamma", "-1"], "argument --gamma: must be a finite number >= 0"),
    (["--gamma2", "-0.1"], "argument --gamma2: must be a finite number >= 0"),
    (["--consistency_weight", "-1"], "argument --consistency_weight: must be a finite number >= 0"),
    (["--gamma_finetune", "-1"], "argument --gamma_finetune: must be a finite number >= 0"),
    (["--gamma_ramp", "-1"], "argument --gamma_ramp: must be an integer >= 0"),
    (["--temperature", "0"], "argument --temperature/--Temperature: must be a finite number > 0"),
    (["--threshold", "0"], "argument --threshold: must be a finite number in (0, 1]"),
    (["--percentage", "1"], "argument --percentage: must be a finite number in [0, 1)"),
    (["--mu", "0"], "argument --mu: must be an integer >= 1"),
    (["--sup_thresh", "-1"], "argument --sup_thresh: must be an integer >= 0"),
    (["--finetune_start_epoch", "-1"], "argument --finetune_start_epoch: must be an integer >= 0"),
    (["--noise_alpha", "-0.1"], "argument --noise_alpha: must be a finite number in [0, 10]"),
    (["--noise_alpha", "11"], "argument --noise_alpha: must be a finite number in [0, 10]"),
    (["--eval_alphas", "0", "1e300"], "argument --eval_alphas: must be a finite number in [0, 10]"),
    (["--val_fraction", "1"], "argument --val_fraction: must be a finite number in [0, 1)"),
    (["--dropout", "1"], "argument --dropout: must be a finite number in [0, 1)"),
    (["--aug_rotate", "181"], "argument --aug_rotate: must be a finite number in [0, 180]"),
    (["--aug_scale", "1"], "argument --aug_scale: must be a finite number in [0, 1)"),
    (["--aug_shear", "-0.1"], "argument --aug_shear: must be a finite number in [0, 1)"),
    (["--aug_temporal_crop", "0"], "argument --aug_temporal_crop: must be a finite number in (0, 1]"),
    (["--clip_len", "0"], "argument --clip_len: must be an integer >= 1"),
    (["--input_size", "0"], "argument --input_size: must be an integer >= 1"),
    (["--test_input_size", "0"], "argument --test_input_size: must be an integer >= 1"),
    (["--in_channels", "0"], "argument --in_channels: must be an integer >= 1"),
    (["--num_clips", "0"], "argument --num_clips: must be an integer >= 1"),
    (["--max_persons", "0"], "argument --max_persons: must be an integer >= 1"),
    (["--synthetic_clips", "0"], "argument --synthetic_clips: must be an integer >= 1"),
    (["--synthetic_seed", "-1"], "argument --synthetic_seed: must be an integer in [0, 4294967295]"),
    (["--seed", str(2**32)], "argument --seed: must be an integer in [0, 4294967295]"),
    (["--num_segments", "0"], "argument --num_segments: must be an integer >= 1"),
    (["--second_segments", "0"], "argument --second_segments: must be an integer >= 1"),
    (["--shift_div", "1"], "argument --shift_div: must be an integer >= 2"),
    (["--gpus", "0", "-1"], "argument --gpus: must be an integer >= 0"),
    (["--ckpt_every", "-1"], "argument --ckpt_every: must be a finite number >= 0"),
    (["--eval_corruptions", "jitter:1e300"], "jitter severity must be at most 10"),
    (["--train_corruptions", "frame_rate:1e300"], "frame_rate severity must be at most 1000"),
    (["--momentum", "0"], "Nesterov momentum needs --momentum > 0: pass --no-nesterov"),
]
# fmt: on


@pytest.mark.parametrize(("argv", "fragment"), OUT_OF_RANGE, ids=[" ".join(a) for a, _ in OUT_OF_RANGE])
def test_a_value_out_of_range_is_one_line_naming_the_flag_and_its_range(argv, fragment):
    line = parse_error(parse_args, ["synthetic", *argv])
    assert fragment in line and line.startswith("main.py: error: "), line


def test_every_numeric_flag_is_in_the_table():
    numeric = {a.dest for a in build_parser()._actions if hasattr(a.type, "accepts")}
    tested = {a.dest for argv, _ in OUT_OF_RANGE for a in build_parser()._actions if argv[0] in a.option_strings}
    assert numeric <= tested, sorted(numeric - tested)


def test_the_edges_of_the_ranges_parse():
    args = parse_args(["synthetic", "--workers", "0", "--max_steps", "0", "--gamma", "0", "--threshold", "1",
                       "--lr_decay1", "1", "--aug_rotate", "180", "--noise_alpha", "10", "--seed", str(2**32 - 1),
                       "--momentum", "0", "--no-nesterov", "--shift_div", "2", "--gd", "0"])  # fmt: skip
    assert (args.workers, args.max_steps, args.threshold, args.noise_alpha, args.seed) == (0, 0, 1.0, 10.0, 2**32 - 1)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["-j", "-1"], "argument --workers/-j: must be an integer >= 0, got -1"),
        (["-b", "0"], "argument --batch_size/-b: must be an integer >= 1, got 0"),
        (["--num_clips", "0"], "argument --num_clips: must be an integer >= 1, got 0"),
    ],
)
def test_predict_flags_are_checked_as_they_are_parsed(argv, fragment):
    line = parse_error(parse_predict_args, ["--checkpoint", "c.pt", "--input", "x.pkl", *argv])
    assert fragment in line and line.startswith("main.py predict: error: "), line


# -- --model_cfg: its values checked against the backbone's constructor as the run is resolved


def test_every_backbone_builds_on_the_meta_device_with_its_defaults():
    for name in list_models():
        check_kwargs(name)


@pytest.mark.parametrize(
    ("name", "kwargs", "fragment"),
    [
        ("poseconv3d", {"base_channels": -1}, "poseconv3d cannot be built: Trying to create tensor with negative"),
        ("poseconv3d", {"base_channels": 0}, "poseconv3d would have a layer without weights (backbone.conv1"),
        ("poseconv3d", {"stage_blocks": (1,)}, "stage_blocks (1,) has fewer than 3 entries"),
        ("motionbert", {"num_heads": 3}, "dim_feat=512 must be divisible by num_heads=3"),
        ("stgcn", {"base_channels": 0}, "stgcn would have a layer without weights"),
        ("tsm", {"shift_div": 1}, "shift_div must be >= 2"),
    ],
)
def test_a_value_the_constructor_refuses_is_one_line(name, kwargs, fragment):
    with pytest.raises(ValueError) as e:
        check_kwargs(name, **kwargs)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_resolving_the_run_names_model_cfg():
    kw = {"input_format": "Skeleton", "layout": COCO17, "num_joints": 17, "coord_dim": 2, "num_classes": 5,
          "dropout": 0.5, "clip_len": 8, "input_size": 32, "max_persons": 2}  # fmt: skip
    with pytest.raises(UserError, match=r"^--model_cfg base_channels=0 stage_blocks=\(1,1,1\): poseconv3d would"):
        resolve_run_config("poseconv3d", model_kwargs={"base_channels": 0, "stage_blocks": (1, 1, 1)}, **kw)
    cfg = resolve_run_config("poseconv3d", model_kwargs={"base_channels": 4, "stage_blocks": (1, 1, 1)}, **kw)
    assert cfg.model_cfg["base_channels"] == 4


# -- --help: the flags that matter first; --help_all: every flag


def help_text(capsys, flag: str) -> str:
    with pytest.raises(SystemExit) as e:
        parse_args([flag])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_help_shows_the_flags_that_matter_first_and_points_to_help_all(capsys):
    text = help_text(capsys, "--help")
    assert text.strip().endswith("full list: --help_all") and text.startswith("usage: main.py DATASET [options]")
    shown = [a for a in build_parser()._actions if a.dest in {d for ds in SHORT_HELP.values() for d in ds}]
    assert 15 <= len(shown) <= 25
    for action in shown:
        assert (action.option_strings or [action.metavar or "{"])[0] in text, action.dest
    assert "--aug_shear" not in text and "--lr_backbone1" not in text
    assert len(text.splitlines()) < len(help_text(capsys, "--help_all").splitlines()) / 4


def test_help_all_lists_every_flag(capsys):
    text = help_text(capsys, "--help_all")
    assert text == build_parser().format_help()
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in text, option
