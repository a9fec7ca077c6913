"""Fuzzing the command line (hypothesis): whatever a user types for a numeric flag (negative, zero,
huge, NaN, infinite, no number at all), main.py and predict either parse it into a value inside the flag's
range or stop with exit code 2 and one line. Parsing runs in this process, a few milliseconds an example."""

from __future__ import annotations

import contextlib
import io
import math

import pytest

from opts import build_parser, build_predict_parser, parse_args, parse_predict_args

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
