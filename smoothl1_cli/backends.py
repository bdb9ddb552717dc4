"""Array namespaces: NumPy, or CuPy when asked for. The only module that imports CuPy.

On CuPy, a chunk's columns go to the device once and every per-row step (the loss, |d|, the sums,
moments, min and max, the worst rows' selection, the sketch's bucket counts, the bootstrap) runs
there; only each accumulator's few numbers come back (`to_numpy`). The accumulators call NumPy's
functions, which hand a CuPy array to CuPy's own (NumPy's `__array_ufunc__` and `__array_function__`
protocols, NEP 13 and 18): one implementation serves both backends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from smoothl1_cli.errors import InputError

INSTALL = (
    "pip install 'smoothl1[gpu-cuda12]' (CUDA 12) or 'smoothl1[gpu-cuda13]' (CUDA 13), never both; "
    "if `import cupy` already works, CuPy needs no extra"
)
AUTO_MIN_ROWS = 10_000_000  # --backend auto: rows from which a GPU repays its start (seconds, the first time)
AUTO_MIN_BYTES = 512 << 20  # ... or bytes of input, where no footer counts the rows (delimited text, JSON Lines)
_INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver
_NO_DEVICE = 100  # cudaErrorNoDevice


def namespace(name: str) -> Any:
    """The array module for a backend name, 'numpy' or 'cupy' ('auto' is resolved first, by `choose`)."""
    if name == "numpy":
        return np
    return _cupy()


def choose(name: str, rows: int | None, size: int | None) -> str:
    """The backend 'auto' stands for: 'cupy' where CuPy imports, sees a GPU and the work is large enough
    (AUTO_MIN_ROWS by the footers' counts, else AUTO_MIN_BYTES of input), else 'numpy'."""
    if name != "auto":
        return name
    large = rows >= AUTO_MIN_ROWS if rows is not None else size is not None and size >= AUTO_MIN_BYTES
    if not large:
        return "numpy"  # (CuPy is not even imported)
    try:
        _cupy()
    except InputError:
        return "numpy"
    return "cupy"


def _cupy() -> Any:
    """CuPy with a device to run on, or an InputError that says what is missing and how to install it."""
    try:
        import cupy
    except ImportError as exc:
        raise InputError(f"--backend cupy needs CuPy, which is not installed ({exc}): {INSTALL}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA's own errors: no driver, a driver too old for this CuPy, no device
        status = getattr(exc, "status", None)
        if status == _INSUFFICIENT_DRIVER or "insufficient" in str(exc).lower():
            problem = (
                f"the NVIDIA driver is too old for this CuPy ({exc}): update the driver, or install the CuPy "
                "built for the driver's CUDA version"
            )
        elif status == _NO_DEVICE:
            problem = f"CUDA sees no GPU ({exc})"
        else:
            problem = f"CUDA could not start ({type(exc).__name__}: {exc})"
        raise InputError(f"--backend cupy: {problem}; {INSTALL}; or use --backend numpy") from exc
    if count < 1:
        raise InputError(f"--backend cupy: CUDA sees no GPU on this machine; use --backend numpy ({INSTALL})")
    return cupy


@contextmanager
def device_memory(chunk_rows: int) -> Iterator[None]:
    """The device running out of memory becomes an input error that suggests a smaller --chunk-rows."""
    try:
        yield
    except Exception as exc:
        cupy = sys.modules.get("cupy")
        if cupy is None or not isinstance(exc, cupy.cuda.memory.OutOfMemoryError):
            raise
        raise InputError(
            f"the GPU ran out of memory with --chunk-rows {chunk_rows} ({exc}); "
            f"pass a smaller one, such as --chunk-rows {max(1, chunk_rows // 8)}"
        ) from exc


def namespace_of(array: Any) -> Any:
    """The namespace an array belongs to: CuPy arrays stay on the GPU (as does an array of a NumPy subclass
    that names another namespace), anything else is NumPy."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    names = getattr(array, "__array_namespace__", None) if isinstance(array, np.ndarray) else None
    return np if names is None else names()


def to_numpy(array: Any) -> np.ndarray[Any, Any]:
    """A NumPy array (copied from the GPU where needed: CuPy arrays have `get`, NumPy's do not)."""
    if type(array) is np.ndarray:
        return array
    get = getattr(array, "get", None)
    return np.asarray(array if get is None else get())
