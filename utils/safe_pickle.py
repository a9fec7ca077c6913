"""Restricted unpickling of data files: annotation files, prediction inputs, result files.

`pickle.load` calls whatever a file names: an object whose `__reduce__` returns `(os.system, ("CMD",))`
runs CMD while the file loads. pyskl's files (and those `datasets.convert` and the scripts write) hold only
dicts, lists, tuples, strings, numbers, None, and NumPy arrays and scalars, so `load` resolves only the
globals those need (ALLOWED) and refuses any other when the file names it, before anything of it is
called: `UnsafePickleError`, one line naming the file and the type. `trusted=True` (--trust_data) is
plain `pickle.load`, for a file the user trusts.

ALLOWED, as (module, name) in the file:
- builtins dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, bool, complex (protocols
  0-2 write some of these by name; `__builtin__` and other Python 2 names map as `pickle` maps them);
- `_codecs.encode`, as protocols 0-2 rebuild bytes (NumPy's raw data among them): latin-1 text only;
- collections.OrderedDict;
- numpy.ndarray, numpy.dtype, and the functions that rebuild arrays and scalars, under NumPy 1's
  (`numpy.core.*`) and NumPy 2's (`numpy._core.*`) module names: multiarray._reconstruct (protocols 0-4),
  numeric._frombuffer (protocol 5), multiarray.scalar (numpy scalars).
A caller may allow more (`extra`): scripts/score_results.py allows torch tensors.
"""

from __future__ import annotations

import _compat_pickle  # the Python 2 -> 3 names that pickle's own find_class maps
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from utils.errors import UserError

Globals = Mapping[tuple[str, str], object]  # (module, name) as the pickle names it -> the object it gets


class UnsafePickleError(UserError, pickle.UnpicklingError):
    """A data file names a type or function that its kind of file never holds; nothing of it was called."""


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as pickle's protocols 0-2 rebuild bytes: `encode(str(b, 'latin1'), 'latin1')`."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode of a {type(text).__name__} as {encoding!r}: not pickled bytes")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], object]:
    """NumPy's array and scalar rebuilders under NumPy 1's and 2's module names. They are taken from NumPy's
    own reductions, so they are the functions this NumPy pickles with, wherever it keeps them."""
    reconstruct = np.zeros(1).__reduce__()[0]  # _reconstruct(ndarray, (0,), b'b'), then __setstate__
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5: _frombuffer(buffer, dtype, shape, order)
    scalar = np.float64(0).__reduce__()[0]  # scalar(dtype, raw bytes)
    out: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        out[(f"{core}.multiarray", "scalar")] = scalar
        out[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return out


_PLAIN = (dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, bool, complex)
ALLOWED: Globals = {
    **{("builtins", t.__name__): t for t in _PLAIN},
    ("_codecs", "encode"): _latin1_bytes,
    ("collections", "OrderedDict"): OrderedDict,
    **_numpy_globals(),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only `allowed` globals; any other is refused when the file names it."""

    def __init__(self, file: BinaryIO, source: str, what: str, allowed: Globals) -> None:
        super().__init__(file)
        self.source, self.what, self.allowed = source, what, allowed

    def find_class(self, module: str, name: str) -> object:
        # Python 2's names (`__builtin__.set` in protocols 0-2) map to Python 3's, as pickle's own find_class
        # maps them; the allowlist and the refusal's line use the Python 3 name.
        key = _compat_pickle.NAME_MAPPING.get((module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        if key in self.allowed:
            return self.allowed[key]
        article = "an" if self.what[:1].lower() in "aeiou" else "a"
        raise UnsafePickleError(
            f"{self.source} holds a {key[0]}.{key[1]} object, which {article} {self.what} never does: refused "
            "(nothing of it ran); pass --trust_data if you trust the file"
        )


def load(
    file: str | Path | BinaryIO, trusted: bool = False, what: str = "annotation file", extra: Globals | None = None
) -> object:
    """Unpickle a data file (a path or a binary file object) with only ALLOWED globals, and `extra`.

    trusted: plain `pickle.load` (--trust_data). what: the kind of file, for the refusal's line.
    Raises UnsafePickleError (one line, naming the file and the type) for any other global, before
    anything is called; a damaged file raises what `pickle` raises.
    """
    if isinstance(file, (str, Path)):
        with open(file, "rb") as f:
            return load(f, trusted, what, extra)
    if trusted:
        return pickle.load(file)
    source = str(getattr(file, "name", "the pickle"))
    return _RestrictedUnpickler(file, source, what, {**ALLOWED, **(extra or {})}).load()
