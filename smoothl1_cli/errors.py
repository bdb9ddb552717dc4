"""The one exception for input the user can fix, and the exit codes users script against."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input or usage the user can fix: one `Error: ...` line and exit code 2 on the command line."""


class ExitCode:
    """The exit statuses (plain ints: the enum module would cost `smoothl1 --help` its import)."""

    OK = 0
    GATE_FAILED = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM: 128 + 15, as a shell reports a process the signal ended


class Terminated(BaseException):
    """Raised by the SIGTERM handler, so that cleanup (temporary files) runs as on Ctrl-C."""
