"""One rule for the errors a user can fix: a `UserError` carries one line that says what is wrong and
how to fix it; every entry point prints it as `PROG: error: LINE` on stderr and exits with code 2, the
code argparse uses for bad flags. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A problem with the user's flags, data or checkpoint; the message is one line and says what to do."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the command needs does not exist; the message names it and where it comes from."""


def exit_on_user_error(prog: str, fn: Callable[..., T], *args, **kwargs) -> T:
    """Call fn; a UserError becomes one line on stderr and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
