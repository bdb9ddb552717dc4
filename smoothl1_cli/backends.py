"""Array namespaces: NumPy, or CuPy when asked for. The only module that imports CuPy."""

from __future__ import annotations

from typing import Any

import numpy as np

from smoothl1_cli.errors import InputError


def namespace(name: str) -> Any:
    """The array module for a backend name; 'auto' is CuPy when it imports and sees a GPU, else NumPy."""
    if name == "numpy":
        return np
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no GPU found")
    except Exception as exc:  # ImportError, or CUDA's own errors when there is no driver or device
        if name == "auto":
            return np
        raise InputError(
            f"--backend cupy needs CuPy and a GPU ({type(exc).__name__}: {exc}); "
            "install the gpu extra (pip install 'smoothl1[gpu]') or use --backend numpy"
        ) from exc
    return cupy


def namespace_of(array: Any) -> Any:
    """The namespace an array belongs to: CuPy arrays stay on the GPU, anything else is NumPy."""
    module = type(array).__module__
    if module.startswith("cupy"):
        import cupy

        return cupy
    return np


def to_numpy(array: Any) -> np.ndarray[Any, Any]:
    """A NumPy array (copied from the GPU where needed)."""
    if isinstance(array, np.ndarray):
        return array
    return np.asarray(array.get() if hasattr(array, "get") else array)
