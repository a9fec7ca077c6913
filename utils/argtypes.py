"""Typed argparse converters: a flag's value is checked where it is parsed, and a bad one stops the parser
with one line that names the flag and what it accepts, e.g.

    main.py: error: argument --workers/-j: must be an integer >= 0, got -1 (see main.py --help)

`int_range(lo, hi)` and `float_range(lo, hi, lo_open=, hi_open=)` make a converter for a range (None: no
bound on that side); the common ones have names. Every float converter refuses NaN and the infinities,
so a flag never holds a value that compares False with everything. The converter's `accepts` attribute
is the range in words ("an integer >= 0"), for help texts and tests.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_SHOWN = 40  # characters of a refused value shown in the message (a pasted file stays one short line)

# numpy's legacy seeding (np.random.seed, which seed_everything calls) takes 0 <= seed < 2 ** 32.
MAX_SEED = 2**32 - 1


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def _shown(text: str) -> str:
    """A value that is no number, quoted (escapes keep a line break on the one line)."""
    return repr(_cut(text))


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _describe(kind: str, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    """The range in words: 'an integer >= 1', 'a finite number in [0, 1)', 'a finite number > 0'."""
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {_num(hi)}"
    return kind


def _inside(value: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    above = lo is None or (value > lo if lo_open else value >= lo)
    below = hi is None or (value < hi if hi_open else value <= hi)
    return above and below


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number (written as one: '3', not '3.0') in [lo, hi]."""
    accepts = _describe("an integer", lo, hi, False, False)

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a whole number, or more digits than Python converts
            raise argparse.ArgumentTypeError(f"must be {accepts}, got {_shown(text)}") from None
        if not _inside(value, lo, hi, False, False):
            raise argparse.ArgumentTypeError(f"must be {accepts}, got {_cut(text.strip())}")
        return value

    convert.accepts = accepts
    convert.__name__ = "integer"  # argparse's name for the type in its own messages
    return convert


def float_range(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """argparse type: a finite float in the range from lo to hi, each end open or closed."""
    accepts = _describe("a finite number", lo, hi, lo_open, hi_open)

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {accepts}, got {_shown(text)}") from None
        if not math.isfinite(value):  # 'nan', 'inf', or a literal too large for a float ('1e400')
            raise argparse.ArgumentTypeError(f"must be {accepts}, got {_shown(text)}")
        if not _inside(value, lo, hi, lo_open, hi_open):
            raise argparse.ArgumentTypeError(f"must be {accepts}, got {_cut(text.strip())}")
        return value

    convert.accepts = accepts
    convert.__name__ = "number"
    return convert


finite_float = float_range()  # any finite number
positive_int = int_range(1)  # counts of things: epochs, clips, frames, steps between logs
nonnegative_int = int_range(0)  # counts where 0 means none (workers, warm-up epochs) or off
seed_int = int_range(0, MAX_SEED)
positive_float = float_range(0, lo_open=True)  # learning rates, temperatures
nonnegative_float = float_range(0)  # weights of loss terms, weight decay, minutes
fraction = float_range(0, 1, hi_open=True)  # a part of something that must leave some: [0, 1)
probability = float_range(0, 1)  # [0, 1]
