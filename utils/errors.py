"""One rule for the errors a user can fix: a `UserError` carries one line that says what is wrong and
how to fix it; every entry point prints it as `PROG: error: LINE` on stderr and exits with code 2, the
code argparse uses for bad flags. Anything else is a bug and keeps its traceback.

A run stopped by a signal (`Preempted`) is not an error: it prints `PROG: LINE` and exits with 128 + the
signal's number (143 for SIGTERM, 130 for SIGINT, 138 for SIGUSR1), the code a shell reports for a
process killed by that signal, so job scripts see an interrupted run that the same command resumes."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

USER_ERROR_EXIT = 2  # argparse's code for bad flags, used for every user error


class UserError(Exception):
    """A problem with the user's flags, data or checkpoint; the message is one line and says what to do."""

    exit_code = USER_ERROR_EXIT
    label = "error: "


class MissingFileError(UserError, FileNotFoundError):
    """A file the command needs does not exist; the message names it and where it comes from."""


class Preempted(UserError):
    """The run was asked to stop by a signal and saved where it was; exit code 128 + signal number."""

    label = ""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and a pointer to --help), exit code 2, instead of the
    usage block before the line that matters. Its subparsers (add_subparsers) are of the same class.
    Flags are never abbreviated: argparse would read `--weight_decay 5e-4` as the one flag it prefixes
    (`--weight_decay1`), silently setting another value than the one meant."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        message = "\\n".join(message.splitlines())  # a value holding a line break stays on the one line
        self.exit(USER_ERROR_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def exit_on_user_error(prog: str, fn: Callable[..., T], *args, **kwargs) -> T:
    """Call fn; a UserError becomes one line on stderr and its exit code (2; 128 + signal for Preempted)."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        print(f"{prog}: {e.label}{e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
