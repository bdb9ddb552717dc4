"""The one exception for input the user can fix, and the exit codes users script against."""

from __future__ import annotations

import re
import signal


class InputError(ValueError):
    """Bad input or usage the user can fix: one `Error: ...` line and exit code 2 on the command line."""


class ExitCode:
    """The exit statuses (plain ints: the enum module would cost `smoothl1 --help` its import)."""

    OK = 0
    GATE_FAILED = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    SIGNALLED = 128  # plus the signal's number (SIGTERM: 143), as a shell reports a process a signal ended


TERMINATING = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)  # end a run as Ctrl-C


class Terminated(BaseException):
    """Raised by the handler of SIGTERM, SIGHUP and the like, so that cleanup (temporary files) runs as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def printable(text: str) -> str:
    """Control characters from the data (newlines, NUL, ESC and the other C0 and C1 controls) shown
    escaped, as Python writes them: on one line, never a terminal command, and valid in XML (JUnit, SVG).

    Here, not in render.py, so that an error line needs no NumPy."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")  # and what XML 1.0 forbids
