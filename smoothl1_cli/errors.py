"""The one exception for input the user can fix, and the exit codes users script against."""

from __future__ import annotations

import enum


class InputError(ValueError):
    """Bad input or usage the user can fix: one `Error: ...` line and exit code 2 on the command line."""


class ExitCode(enum.IntEnum):
    OK = 0
    GATE_FAILED = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130
