"""Array namespaces: NumPy, or CuPy when asked for. The only module that imports CuPy.

On CuPy, a chunk's columns go to the device once and every per-row step (the loss, |d|, the sums,
moments, min and max, the worst rows' selection, the sketch's bucket counts, the bootstrap) runs
there; only each accumulator's few numbers come back (`to_numpy`). The accumulators call NumPy's
functions, which hand a CuPy array to CuPy's own (NumPy's `__array_ufunc__` and `__array_function__`
protocols, NEP 13 and 18): one implementation serves both backends.
"""

from __future__ import annotations

import sys
import threading
import weakref
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
    if cupy not in _RUNS_KERNELS:
        try:
            int((cupy.arange(2) + 1).sum())  # a kernel compiled (NVRTC, from CUDA's toolkit) and run
        except Exception as exc:
            raise InputError(
                f"--backend cupy: CuPy sees a GPU but cannot run a kernel on it ({type(exc).__name__}: {exc}); "
                f"where CUDA's toolkit is missing, the extras bring it (cupy-cuda1Nx[ctk]): {INSTALL}; "
                "or use --backend numpy"
            ) from exc
        _RUNS_KERNELS.add(cupy)
    return cupy


_RUNS_KERNELS: weakref.WeakSet[Any] = weakref.WeakSet()  # the CuPy modules that ran a kernel here (checked once)


class Feed:
    """How a piece's rows reach a backend's arrays: NumPy takes the reader's arrays as they are, one chunk
    at a time (`batch_rows`), in this thread."""

    read_ahead = 0  # batches a reader thread prepares (`stage`) while this one is reduced

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def batch_rows(self, chunk_rows: int, columns: int, results: int, sharing: int = 1) -> int:
        """Rows handed to one update (whole chunks), for `columns` numeric columns and `results` results,
        where `sharing` processes of the job may share a device."""
        return chunk_rows

    def stage(self, columns: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        """A batch's host float64 columns made ready for `put` (in the reader thread, where there is one)."""
        return columns

    def put(self, columns: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        """Host float64 columns (of the batch staged first of those not yet `done`) as the backend's arrays."""
        return columns

    def done(self) -> None:
        """The batch staged first of those not yet done has been reduced."""

    @contextmanager
    def running(self) -> Iterator[None]:
        """Where a piece's work is queued."""
        yield


BATCH_ROWS = 1 << 22  # rows a device reduces at once, at most: 32 MiB a column
_RESULT_ROW_BYTES = 8 * 24  # device memory a result's temporaries take per row of a batch, at most


class DeviceFeed(Feed):
    """A GPU's feed: batches of many chunks (BATCH_ROWS rows, fewer where device memory is short), so a
    launch does the work of many chunks.

    A reader thread parses the next batch while this one is reduced (`read_ahead`), and stages its columns
    in one of a ring of pinned host buffers, allocated once; `put` copies them to the device
    asynchronously on the feed's stream, where all of the piece's work is queued, and `done` records an
    event after the batch. A buffer is written again only once the event after its last batch has
    passed. The ring has read_ahead + 2 buffers: one being copied and reduced, read_ahead waiting, one
    being staged; so its event has always been recorded when the reader comes back to it.
    """

    read_ahead = 1

    def __init__(self, xp: Any) -> None:
        super().__init__(xp)
        self.device = int(xp.cuda.runtime.getDevice())
        self.stream = xp.cuda.Stream(non_blocking=True)
        ring = self.read_ahead + 2
        self.buffers: list[np.ndarray[Any, Any] | None] = [None] * ring
        self.events: list[Any] = [None] * ring
        self.staged = self.finished = 0  # batches staged (by the reader) and done (by the reducer)

    def batch_rows(self, chunk_rows: int, columns: int, results: int, sharing: int = 1) -> int:
        """As many chunks as BATCH_ROWS rows hold, or as this process's share of half the device's free
        memory (CuPy's pool's cached blocks included) holds with every column and temporary; at least one
        chunk."""
        free = int(self.xp.cuda.runtime.memGetInfo()[0]) + int(self.xp.get_default_memory_pool().free_bytes())
        rows = min(BATCH_ROWS, free // 2 // sharing // (8 * columns + _RESULT_ROW_BYTES * results))
        return max(chunk_rows, rows // chunk_rows * chunk_rows)

    def stage(self, columns: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        slot = self.staged % len(self.buffers)
        self.staged += 1
        if self.events[slot] is not None:
            self.events[slot].synchronize()  # the buffer's last batch has reached the device: it is free
        size = sum(values.size for values in columns.values())
        buffer = self.buffers[slot]
        if buffer is None or buffer.size < size:  # (the first batch is the largest: allocated once)
            memory = self.xp.cuda.alloc_pinned_memory(max(size, 1) * 8)
            buffer = self.buffers[slot] = np.ndarray((size,), np.float64, buffer=memory)
        staged, offset = {}, 0
        for name, values in columns.items():
            staged[name] = buffer[offset : offset + values.size]
            np.copyto(staged[name], values)
            offset += values.size
        return staged

    def put(self, columns: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        out = {}
        for name, values in columns.items():
            out[name] = self.xp.empty(values.size, dtype=np.float64)
            out[name].set(values, stream=self.stream)  # asynchronous from pinned memory (the staged columns)
        return out

    def done(self) -> None:
        self.events[self.finished % len(self.events)] = self.stream.record()
        self.finished += 1

    @contextmanager
    def running(self) -> Iterator[None]:
        self.staged = self.finished = 0  # (a piece before this one may have stopped early)
        with self.stream:
            yield
        self.stream.synchronize()


_FEEDS = threading.local()  # this thread's DeviceFeed: its stream and pinned buffers serve every piece it reduces


def feed(name: str) -> Feed:
    """The feed of a backend name, 'numpy' or 'cupy' (one DeviceFeed per thread, kept while it uses one
    device)."""
    if name == "numpy":
        return Feed(np)
    xp = _cupy()
    kept = getattr(_FEEDS, "feed", None)
    if kept is None or kept.xp is not xp or kept.device != int(xp.cuda.runtime.getDevice()):
        kept = _FEEDS.feed = DeviceFeed(xp)
    return kept


@contextmanager
def device_memory(chunk_rows: int) -> Iterator[None]:
    """The device running out of memory becomes an input error that suggests a smaller --chunk-rows, or
    fewer processes on the GPU."""
    try:
        yield
    except Exception as exc:
        cupy = sys.modules.get("cupy")
        if cupy is None or not isinstance(exc, cupy.cuda.memory.OutOfMemoryError):
            raise
        smaller = (
            f"pass a smaller one, such as --chunk-rows {max(1, chunk_rows // 8)}, or "
            if chunk_rows > BATCH_ROWS // 8  # (else the batches, of many chunks, are what fills the GPU)
            else ""
        )
        raise InputError(
            f"the GPU ran out of memory with --chunk-rows {chunk_rows} ({exc}); "
            f"{smaller}run fewer processes on the GPU (--workers 1)"
        ) from exc


def namespace_of(array: Any) -> Any:
    """The namespace an array belongs to: CuPy's arrays stay on the GPU, anything else is NumPy."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def to_numpy(array: Any) -> np.ndarray[Any, Any]:
    """A NumPy array (copied from the GPU where needed: CuPy arrays have `get`, NumPy's do not)."""
    if type(array) is np.ndarray:
        return array
    get = getattr(array, "get", None)
    return np.asarray(array if get is None else get())
