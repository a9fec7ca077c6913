"""Fuzzing what a user hands the CLI (hypothesis). Whatever is typed for a numeric flag (negative, zero,
huge, NaN, infinite, no number at all), main.py and predict either parse it into a value inside the flag's
range or stop with exit code 2 and one line; whatever an annotation file holds (a pyskl file with fields
replaced by other values, or any other structure, or bytes that are no pickle), the loader either packs it
or raises a one-line UserError. In this process, a few milliseconds an example."""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest

from datasets.store.annotations import load_pickle, pack_annotations
from opts import build_parser, build_predict_parser, parse_args, parse_predict_args
from utils.errors import UserError

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

FLAGS = ["--workers", "--epochs", "-b", "--max_steps", "--lr", "--gamma", "--consistency_weight", "--noise_alpha",
         "--eval_alphas", "--val_fraction", "--momentum", "--temperature", "--seed", "--print-freq", "--ckpt_every",
         "--clip_len", "--dropout", "--threshold"]  # fmt: skip
PREDICT_FLAGS = ["--num_clips", "-b", "-j"]

# What a user may type: numbers of every size and sign as Python writes them, the spellings of the
# special floats, text that is no number (with line breaks, signs and underscores), and nothing.
ODD = ["nan", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e-400", "1e300", "2**32", "4294967296", "0x10",
       "1_000", " 3 ", "", "-", "--", "1\n2", "0.5\n", "1e", "\u0663"]  # fmt: skip
VALUES = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(ODD),
    st.text(max_size=8),
)


def outcome(parse, argv: list[str]):
    """(the parsed result, None), or (None, the exit code and stderr's lines) when `parse` stops."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse(argv), None
    except SystemExit as e:
        return None, (e.code, err.getvalue().strip().splitlines())


def check_range(parser, flag: str, value) -> None:
    """A parsed value is finite and accepted by its flag's range converter again (it lies in the range)."""
    action = next(a for a in parser._actions if flag in a.option_strings)
    assert hasattr(action.type, "accepts"), f"{flag} has no range converter (utils/argtypes.py)"
    for v in value if isinstance(value, list) else [value]:
        assert math.isfinite(v), (flag, v)
        assert action.type(repr(v)) == v, (flag, v)


# The same examples on every run (derandomize, no example database written to the checkout): a CI check.
FUZZ = {"deadline": None, "derandomize": True, "database": None}


@hypothesis.settings(max_examples=200, **FUZZ)
@hypothesis.given(pairs=st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), min_size=1, max_size=3))
def test_numeric_flags_parse_into_their_range_or_stop_with_one_line(pairs):
    argv = ["synthetic", *[f"{flag}={value}" for flag, value in pairs]]  # '=': a value may start with '-'
    args, stopped = outcome(parse_args, argv)
    if stopped:
        code, lines = stopped
        assert code == 2 and len(lines) == 1 and lines[0].startswith("main.py: error: "), (argv, code, lines)
        return
    parser = build_parser()
    for flag, _ in pairs:
        dest = next(a.dest for a in parser._actions if flag in a.option_strings)
        check_range(parser, flag, getattr(args, dest))


@hypothesis.settings(max_examples=100, **FUZZ)
@hypothesis.given(flag=st.sampled_from(PREDICT_FLAGS), value=VALUES)
def test_predict_flags_parse_into_their_range_or_stop_with_one_line(flag, value):
    argv = ["--checkpoint", "c.pt", "--input", "x.pkl", f"{flag}={value}"]
    opts, stopped = outcome(parse_predict_args, argv)
    if stopped:
        code, lines = stopped
        assert code == 2 and len(lines) == 1 and lines[0].startswith("main.py predict: error: "), (argv, lines)
        return
    dest = next(a.dest for a in build_predict_parser()._actions if flag in a.option_strings)
    check_range(build_predict_parser(), flag, getattr(opts, dest))


# -- annotation files

KEYS = ["frame_dir", "label", "keypoint", "keypoint_score", "img_shape", "total_frames", "layout"]
DELETE = object()  # a field left out
SHAPES = st.lists(st.integers(0, 3), max_size=5).map(tuple)
ARRAYS = st.builds(
    np.full, SHAPES, st.sampled_from([0.0, 1.0, -2.5, math.nan, math.inf]), st.sampled_from([np.float32, np.float16])
) | st.builds(np.zeros, SHAPES, st.sampled_from([np.int64, np.bool_]))
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4), st.binary(max_size=4),
                   ARRAYS)  # fmt: skip
ANYTHING = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner, inner), st.dictionaries(st.sampled_from([*KEYS, "x"]), inner)
    ),
    max_leaves=6,
)


def clip(name: str) -> dict:
    """A valid 2D clip of 3 joints and 4 frames, as pyskl writes one."""
    return {"frame_dir": name, "label": 0, "keypoint": np.ones((1, 4, 3, 2), np.float32),
            "keypoint_score": np.ones((1, 4, 3), np.float32), "img_shape": (8, 8), "total_frames": 4}  # fmt: skip


def changed(base: dict, changes: dict) -> dict:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not DELETE}


CLIPS = st.lists(
    st.builds(
        changed,
        st.builds(clip, st.sampled_from(["a", "b"])),
        st.dictionaries(st.sampled_from(KEYS), ANYTHING | st.just(DELETE), max_size=2),
    ),
    max_size=3,
)
FILES = st.one_of(
    st.builds(
        changed,
        st.fixed_dictionaries({"split": st.just({"xsub_train": ["a"]}), "annotations": CLIPS}),
        st.dictionaries(
            st.sampled_from(["split", "annotations", "classes", "layout"]), ANYTHING | st.just(DELETE), max_size=2
        ),
    ),
    ANYTHING,
)


@hypothesis.settings(max_examples=200, **FUZZ)
@hypothesis.given(content=FILES | st.binary(max_size=64))
def test_an_annotation_file_loads_or_is_one_line(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ann.pkl"
        path.write_bytes(content if isinstance(content, bytes) else pickle.dumps(content))
        try:
            pack_annotations(load_pickle(path))
        except UserError as e:
            assert "\n" not in str(e) and str(e), repr(str(e))
