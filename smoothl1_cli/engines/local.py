"""The local engine: pieces reduced in this process, or on a pool of worker processes, one per core.

Pieces that can be read again elsewhere (files, not standard input or a FIFO) run on a pool of
processes started from a fork server that has NumPy and Arrow imported already; their states come
back pickled and merge in the tree, in index order. What has to run here runs here, piece after
piece: a stream, per-row output (written in row order), targets read row by row from --labels.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any

from smoothl1_cli.engines import Progress, count_rows, reduce_piece, script_not_rerun
from smoothl1_cli.errors import TERMINATING, InputError
from smoothl1_cli.plan import Job, Piece
from smoothl1_cli.readers import Source
from smoothl1_cli.state import RowSink, RunState

POOL_MIN_BYTES = 64 << 20  # the pool's start (about 0.4 s) pays for itself from about this much input ...
POOL_MIN_PIECES = 8  # ... in this many pieces or more
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _KEPT_BYTES = -1, -3, 256 << 20  # glibc's mallopt parameters (malloc.h)


def machine_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def reduce_locally(job: Job, sources: Sequence[Source], sink: RowSink | None, progress: Progress) -> list[RunState]:
    """Every piece's state, in index order."""
    workers = min(job.options.workers or machine_cores(), len(job.pieces))
    here = sink is not None or not all(source.reopenable for source in sources) or job.options.labels is not None
    if workers <= 1 or here or (job.options.workers is None and not _pool_pays(job)):
        return _in_process(job, sources, sink)
    try:
        return _in_pool(job, workers, progress)
    except _NoPool as exc:
        if job.options.workers is not None:
            raise InputError(f"--workers {job.options.workers}: {exc}; use --workers 1") from exc
        return _in_process(job, sources, sink)  # unasked: one process does the same work


class _NoPool(Exception):
    """Worker processes cannot be started here."""


def _pool_pays(job: Job) -> bool:
    """Whether the pool, unasked, saves more than its start costs (measured, BENCHMARKS.md): with the
    bootstrap (about 7 ns a row and replicate) from two pieces on; else for many pieces of much input,
    whose per-piece work (opening, decoding, statistics) runs side by side. A few large Parquet pieces
    are as fast here: their decoding already runs on all of Arrow's threads. The same holds on a GPU,
    whose work is rarely the slower part: the pool's processes decode side by side and share it."""
    if job.options.ci is not None:
        return True
    size = sum(piece.size or 0 for piece in job.pieces)
    return len(job.pieces) >= POOL_MIN_PIECES and size >= POOL_MIN_BYTES


def _in_process(job: Job, sources: Sequence[Source], sink: RowSink | None) -> list[RunState]:
    """Piece after piece in this process: each piece's first row is known once the one before it is read."""
    states: list[RunState] = []
    first_row = 0
    for piece in job.pieces:
        states.append(reduce_piece(piece, job, first_row, sources[piece.input], sink))
        first_row += states[-1].rows
    return states


def _in_pool(job: Job, workers: int, progress: Progress) -> list[RunState]:
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["smoothl1_cli.engines.local"])  # imported once, in the server
    pool = None
    try:
        with _starting_workers():
            try:
                pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)
            except (OSError, ImportError) as exc:  # no POSIX semaphores (/dev/shm), a sandbox without fork
                raise _NoPool(f"this system cannot start worker processes ({exc})") from exc
        job = replace(job, processes=workers)
        first_rows = job.first_rows()
        if job.options.ci is not None and None in first_rows:
            # The bootstrap weighs each row by its global number, which no footer gives for text: count first.
            with _starting_workers():
                counting = [pool.submit(count_rows, piece, job) for piece in job.pieces]
            counts = [future.result() for future in counting]
            first_rows = [sum(counts[:index]) for index in range(len(counts))]
        with _starting_workers():  # one starts per submit, up to `workers`
            futures = [
                pool.submit(reduce_piece, piece, job, first)
                for piece, first in zip(job.pieces, first_rows, strict=True)
            ]
        for piece, future in zip(job.pieces, futures, strict=True):
            future.add_done_callback(functools.partial(_told, progress, piece))
        states = [future.result() for future in futures]  # in index order: the first bad piece's error is raised
    except BrokenProcessPool as exc:
        _stop(pool)
        raise InputError(
            "a worker process ended abruptly (out of memory?); try fewer --workers, or --workers 1"
        ) from exc
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()
    return states


@contextmanager
def _starting_workers() -> Iterator[None]:
    """Worker processes (and the fork server and resource tracker behind them) start without the
    caller's script, with standard error on /dev/null, and without being cut short: a worker's
    answers, errors included, come back pickled; a Ctrl-C that lands while one is still starting
    must not print its traceback (or the fork server's) on the user's terminal; and a signal that
    arrived while the pool was starting a worker (it would not yet know the worker, which could then
    not be stopped) takes effect once the pool knows every worker."""
    sys.stderr.flush()
    saved, quiet = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    arrived: list[int] = []
    held = _hold_signals(arrived)
    try:
        with script_not_rerun():
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in arrived[:1]:
            signal.raise_signal(signum)  # its own handler now: KeyboardInterrupt, or the command's


def _hold_signals(arrived: list[int]) -> dict[int, Any]:
    """Replace the handlers of the signals that end a run by one that notes them; returns the handlers
    it replaced (none off the main thread, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    held: dict[int, Any] = {}
    for signum in (signal.SIGINT, *TERMINATING):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: a handler Python did not set, left alone
            held[signum] = signal.signal(signum, lambda number, frame: arrived.append(number))
    return held


def _told(progress: Progress, piece: Piece, future: Future[RunState]) -> None:
    if not future.cancelled() and future.exception() is None:
        progress(piece, future.result())


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole process group: the command handles it, and stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for the next chunk instead of handing it back to the system and
    faulting it in again: each chunk's temporaries are the same few sizes, so a 5M-row Parquet file
    took 74,000 page faults, and 8,700 with this (0.62-0.81 s -> 0.50-0.55 s, BENCHMARKS.md). For
    processes that only evaluate (the command, the pool's workers); elsewhere (no glibc) nothing."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    for parameter in (_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD):
        mallopt(parameter, _KEPT_BYTES)


def _stop(pool: ProcessPoolExecutor | None) -> None:
    """End the workers now, not after the pieces they are reading (an error or Ctrl-C wants no more).
    Whatever went wrong is what the caller reports: stopping adds no error of its own."""
    if pool is None:
        return
    with suppress(Exception):
        for process in list(getattr(pool, "_processes", {}).values()):  # the executor offers no way to end them
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
