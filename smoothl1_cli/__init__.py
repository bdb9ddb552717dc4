"""smoothl1: evaluate model outputs with the Smooth L1 (and Huber) loss.

`from smoothl1_cli import smooth_l1, huber, evaluate`; the heavy modules load on first use,
so the command's `--help` and `--version` stay instant.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate", "huber", "smooth_l1", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("smooth_l1", "huber", "evaluate"):
        from smoothl1_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'smoothl1_cli' has no attribute {name!r}")
