"""The Dask engine: each piece is one task on a Dask cluster, its state gathered and merged here.

The client plans (headers and footers only, as for any engine) and ships the plan, not the data:
every task opens its input itself, by path or URI, and returns one piece's state, which holds
no per-row data. States merge here in the same index-ordered tree as the local engine's, so the
report is the same, byte for byte, apart from its `engine`. An error in the data comes back as a
value (Dask retries tasks whose worker died, not answers); a task whose workers kept dying is
named by its piece.

`distributed` is imported here only, and only when a run asks for Dask.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from smoothl1_cli.engines import Progress, count_rows, reduce_piece, script_not_rerun
from smoothl1_cli.errors import InputError
from smoothl1_cli.plan import Job, Piece
from smoothl1_cli.readers import Source
from smoothl1_cli.readers.fs import is_uri, redact
from smoothl1_cli.state import RunState

INSTALL = "pip install 'smoothl1[dask]'"
ADDRESS_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT_S = 5  # an address that does not answer is an error within seconds, not a hang
WORKERS_TIMEOUT_S = 30  # how long a scheduler without workers is given to get one
PART_NAME = "part-{:05d}.parquet"  # --per-row DIR: one file per piece, in piece order
_PART = re.compile(r"part-\d{5,}\.parquet")
_QUIET_LOGGERS = ("distributed", "tornado", "asyncio")


@dataclass(frozen=True)
class TaskError:
    """An input error met on a worker, returned as the task's value: Dask retries a task whose
    worker died, and an answer about the data would only fail again."""

    message: str


@dataclass(frozen=True)
class _Cluster:
    """The client, and what to call the cluster in messages."""

    distributed: Any  # the module
    client: Any
    where: str  # "the Dask scheduler at tcp://...", "the local Dask cluster"
    limit: int | None  # pieces at once (--workers with a cluster of its own); None: as many as it takes
    processes: int  # worker processes on this machine (a local cluster's share its GPU); 1 elsewhere


def reduce_on_dask(job: Job, sources: Sequence[Source], progress: Progress, parts: str | None = None) -> list[RunState]:
    """Every piece's state, in index order, each reduced by a task on a Dask cluster; with `parts`
    (a directory every worker sees), the workers write each piece's per-row losses there."""
    _check_shippable(job, sources)
    distributed = _import_distributed()
    with _quiet(), _connected(job, distributed) as cluster:
        _check_versions(cluster)
        run = uuid.uuid4().hex[:8]  # keys of this run: other runs may share the cluster
        job = replace(job, processes=cluster.processes)
        shipped = cluster.client.submit(_identity, job, key=f"smoothl1-job-{run}")  # the job is sent once
        shared = {"job": shipped, "cwd": os.getcwd()}
        try:
            first_rows = job.first_rows()
            if (job.options.ci is not None or parts is not None) and None in first_rows:
                # The bootstrap and per-row output number rows globally, which no footer gives for text: count first.
                counts = _run_tasks(cluster, job, _count_task, [], shared, f"smoothl1-count-{run}")
                first_rows = [sum(counts[:index]) for index in range(len(counts))]
            reduce = {**shared, "parts": parts}
            return _run_tasks(cluster, job, _reduce_task, [first_rows], reduce, f"smoothl1-reduce-{run}", progress)
        finally:
            shipped.release()


def _run_tasks(
    cluster: _Cluster,
    job: Job,
    task: Callable[..., Any],
    columns: Sequence[Sequence[Any]],
    shared: dict[str, Any],
    prefix: str,
    progress: Progress | None = None,
) -> list[Any]:
    """`task(piece, *(column[i] for column in columns), **shared)` for every piece i, gathered as they
    complete; the results in index order. The lowest failing piece's error is raised, as the local
    engine raises the first bad piece's."""
    client, pieces = cluster.client, job.pieces
    results: list[Any] = [None] * len(pieces)
    done = [False] * len(pieces)
    failed: dict[int, str] = {}
    window = min(cluster.limit or len(pieces), len(pieces))  # --workers on a shared cluster: pieces at once
    keys = [f"{prefix}-{index}" for index in range(len(pieces))]
    first = client.map(
        task, pieces[:window], *(column[:window] for column in columns), key=keys[:window], pure=False, **shared
    )
    futures = dict(zip(first, range(window), strict=True))
    queue = cluster.distributed.as_completed(first, loop=client.loop)
    submitted = window
    try:
        for future in queue:
            index = futures.pop(future)
            value = _result(future, cluster, job, pieces[index])
            future.release()  # the state is here now: the worker may forget it
            if isinstance(value, TaskError):
                failed[index] = value.message
            else:
                results[index], done[index] = value, True
                if progress is not None:
                    progress(pieces[index], value)
            if failed and all(done[: min(failed)]):  # no earlier piece can fail any more: stop here
                raise InputError(failed[min(failed)])
            if submitted < len(pieces):
                args = (column[submitted] for column in columns)
                new = client.submit(task, pieces[submitted], *args, key=keys[submitted], pure=False, **shared)
                futures[new] = submitted
                queue.add(new)
                submitted += 1
    finally:
        for future in futures:  # an error or Ctrl-C: the pieces still running are not wanted
            future.cancel()
    return results


def _result(future: Any, cluster: _Cluster, job: Job, piece: Piece) -> Any:
    """The task's value; a worker that kept dying, or a cluster gone, as an InputError that names the piece."""
    try:
        return future.result()
    except cluster.distributed.KilledWorker as exc:
        tries = exc.allowed_failures + 1
        raise InputError(
            f"{_describe(job, piece)}: Dask gave up on it after {tries} {'worker' if tries == 1 else 'workers'} "
            "died reading it (out of memory?); give the workers more memory, or cut the input into smaller files"
        ) from None
    except (OSError, TimeoutError, CancelledError) as exc:
        raise InputError(
            f"lost {cluster.where} while reducing {_describe(job, piece)} ({type(exc).__name__}{_colon(exc)})"
        ) from None


def _colon(exc: BaseException) -> str:
    return f": {exc}" if str(exc) else ""


def _describe(job: Job, piece: Piece) -> str:
    """A piece as a user can find it: its input, and its row groups if it is some of them."""
    where = job.inputs[piece.input]
    if piece.groups is None:
        return where
    first, last = piece.groups.start, piece.groups.stop - 1
    return f"{where} (row group {first})" if first == last else f"{where} (row groups {first}-{last})"


def _identity(value: Any) -> Any:
    return value


def _reduce_task(piece: Piece, first_row: int | None, job: Job, cwd: str, parts: str | None) -> RunState | TaskError:
    """One piece's state, reduced on a worker; an input error as a value."""
    local, given = _relocated(job, piece.input, cwd)
    missing = _missing(local, piece.input, given)
    if missing is not None:
        return TaskError(missing)
    sink = _PartSink(os.path.join(parts, PART_NAME.format(piece.index)), job) if parts is not None else None
    try:
        state = reduce_piece(piece, local, first_row, sink=sink)
    except InputError as exc:
        if sink is not None:
            sink.discard()
        return TaskError(_restored(str(exc), given))
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    if sink is not None:
        sink.close()
    state.notes = {kind: _restored(note, given) for kind, note in state.notes.items()}
    return state


def _count_task(piece: Piece, job: Job, cwd: str) -> int | TaskError:
    """A piece's rows, counted on a worker; an input error as a value."""
    local, given = _relocated(job, piece.input, cwd)
    missing = _missing(local, piece.input, given)
    if missing is not None:
        return TaskError(missing)
    try:
        return count_rows(piece, local)
    except InputError as exc:
        return TaskError(_restored(str(exc), given))


def _relocated(job: Job, number: int, cwd: str) -> tuple[Job, dict[str, str]]:
    """The job with input `number` and the labels file found from the client's working directory
    (a worker may run in another); and each path so changed, to name it in messages as it was given."""
    if os.getcwd() == cwd:
        return job, {}
    given: dict[str, str] = {}

    def moved(path: str) -> str:
        if os.path.isabs(path) or is_uri(path):
            return path
        absolute = os.path.join(cwd, path)
        given[absolute] = path
        return absolute

    inputs = list(job.inputs)
    inputs[number] = moved(inputs[number])
    labels = None if job.options.labels is None else moved(job.options.labels)
    return replace(job, inputs=tuple(inputs), options=replace(job.options, labels=labels)), given


def _restored(text: str, given: dict[str, str]) -> str:
    for absolute, path in given.items():
        text = text.replace(absolute, path)
    return text


def _missing(job: Job, number: int, given: dict[str, str]) -> str | None:
    """Why a worker cannot read an input that the client can: it does not see the same files."""
    paths = [job.inputs[number], *([job.options.labels] if job.options.labels is not None else [])]
    for path in paths:
        if not is_uri(path) and not os.path.exists(path):
            from distributed import get_worker

            return (
                f"{given.get(path, path)}: no such file on the Dask worker at {get_worker().address}; workers read "
                "the inputs themselves, so they must see the same files at the same paths (a shared filesystem, "
                "or a URI such as s3://)"
            )
    return None


class _PartSink:
    """One piece's per-row losses, as a Parquet file that appears complete or not at all (a piece of
    no rows writes none)."""

    def __init__(self, path: str, job: Job) -> None:
        self._path = path
        self._job = job
        self._stack = contextlib.ExitStack()
        self._sink: Any = None

    def write(self, rows: Any, ids: Any, losses: Any, omitted: Any) -> None:
        if self._sink is None:
            from smoothl1_cli.output import ParquetRowSink, atomic_output

            out = self._stack.enter_context(atomic_output(self._path, "--per-row"))
            self._sink = ParquetRowSink(out, self._job.plan.id, self._job.plan.pairs)
        self._sink.write(rows, ids, losses, omitted)

    def close(self) -> None:
        with self._stack:
            if self._sink is not None:
                self._sink.close()

    def discard(self) -> None:
        """Leave no file: the temporary one is removed (as atomic_output does on any error)."""
        if self._sink is not None:
            with contextlib.suppress(Exception):
                self._sink.close()
        with contextlib.suppress(_Discarded), self._stack:
            raise _Discarded


class _Discarded(Exception):
    pass


@contextlib.contextmanager
def per_row_parts(path: str | None, job: Job) -> Iterator[str | None]:
    """--per-row DIR with --engine dask: a staging directory inside DIR for the workers' part files,
    moved into DIR (replacing the part files of an earlier run) only when the run succeeds, and
    removed otherwise. Yields None without DIR."""
    if path is None:
        yield None
        return
    target = _parts_target(path, job)
    try:
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".smoothl1-", dir=target)).resolve()
    except OSError as exc:
        raise InputError(f"cannot write --per-row {path}: {exc.strerror or exc}") from exc
    try:
        yield str(staging)  # absolute: the workers run elsewhere
        for old in target.iterdir():
            if _PART.fullmatch(old.name):
                old.unlink()
        for part in sorted(staging.iterdir()):
            os.replace(part, target / part.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _parts_target(path: str, job: Job) -> Path:
    if path == "-":
        raise InputError(
            "with --engine dask the workers write the per-row losses themselves, so they cannot stream to "
            "stdout (--per-row -, --reduction none): pass --per-row DIR for a directory of Parquet files, "
            "or use --engine local"
        )
    if is_uri(path):
        raise InputError(
            f"--per-row {redact(path)}: with --engine dask the workers write the per-row losses into a local "
            "directory that every worker sees; a store is not one yet: name such a directory"
        )
    target = Path(path)
    if path.lower().endswith((".csv", ".parquet", ".pq")) or (target.exists() and not target.is_dir()):
        raise InputError(
            f"--per-row {path}: with --engine dask the workers write the per-row losses as a directory of "
            f"Parquet files, one per piece ({PART_NAME.format(0)}, ...); name a directory"
        )
    inside = target.resolve()
    for given in job.inputs:
        if not is_uri(given) and inside in Path(given).resolve().parents:
            raise InputError(
                f"--per-row {path} holds input {given}: its part files would be read as inputs next time; "
                "name another directory"
            )
    return target


def _check_shippable(job: Job, sources: Sequence[Source]) -> None:
    """What a worker cannot read again (a stream, data in memory, labels matched row by row) is refused
    before anything starts."""
    for source in sources:
        if source.format == "table":
            raise InputError(
                f"--engine dask: {source.label} is data in memory, and Dask workers read their pieces themselves "
                "from files; write it to Parquet and evaluate that (or use the local engine)"
            )
        if not source.reopenable:
            what = "standard input" if source.label in ("-", "<stdin>") else source.label
            raise InputError(
                f"--engine dask: {what} can be read only here, once, and Dask workers read their pieces "
                "themselves; save it to a file (or use --engine local)"
            )
    path, on = job.options.labels, job.options.on
    if path is not None:
        if on is None:
            raise InputError(
                "--engine dask: --labels without --on matches the two files row by row, one stream read in order, "
                "which cannot be cut into pieces for workers; join on a key column (--on KEY), or use --engine local"
            )
        if path == "-" or (os.path.exists(path) and not os.path.isfile(path)):
            raise InputError(
                f"--engine dask: --labels {path} is a stream, which each worker would have to read again; "
                "save it to a file (or use --engine local)"
            )


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise InputError(f"--engine dask needs Dask's distributed package ({exc}): {INSTALL}") from None
    return distributed


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Dask's log lines and warnings (connection retries, a cluster closing) stay off the user's terminal."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _connected(job: Job, distributed: Any) -> Iterator[_Cluster]:
    """A client of the scheduler at --scheduler or $DASK_SCHEDULER_ADDRESS, else of a local cluster of
    worker processes (one per core, or --workers) started for this run and closed after it."""
    options = job.options
    address = options.scheduler or os.environ.get(ADDRESS_VARIABLE) or None
    if address is None:
        from smoothl1_cli.engines.local import machine_cores

        workers = min(options.workers or machine_cores(), len(job.pieces))
        with _local_cluster(distributed, workers) as cluster:
            client = distributed.Client(cluster, set_as_default=False)
            pids: dict[str, int] = {}
            try:
                pids = client.run(os.getpid)
                yield _Cluster(distributed, client, "the local Dask cluster", None, workers)
            except BaseException:
                # An error or Ctrl-C wants no more pieces: end the workers now, not after the pieces they
                # are reading (a graceful close would wait for those, then kill them anyway).
                for pid in pids.values():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                raise
            finally:
                client.close()
        return
    named = f"--scheduler {address}" if options.scheduler else f"{ADDRESS_VARIABLE}={address}"
    try:
        _knock(address, distributed)
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except Exception as exc:  # refused, no such host, a malformed address, no answer, not Dask
        reason = f"no answer within {CONNECT_TIMEOUT_S} s" if isinstance(exc, TimeoutError) else _first_line(exc)
        raise InputError(
            f"cannot reach the Dask scheduler at {address} ({named}): {reason}; "
            "is it running, and is the address right?"
        ) from None
    try:
        where = f"the Dask scheduler at {address}"
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise InputError(
                f"{where} has no workers (waited {WORKERS_TIMEOUT_S} s); start some: dask worker {address}"
            ) from None
        yield _Cluster(distributed, client, where, options.workers, 1)
    finally:
        client.close()


def _knock(address: str, distributed: Any) -> None:
    """Whether a Dask scheduler answers at `address`, asked once before a client is made: a TCP port where
    nothing listens is refused at once (Dask's own connect retries until its timeout), and a server of
    another kind (a dashboard, a proxy) is told apart without a client left half made."""
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme == "tcp":
        with socket.create_connection(parse_host_port(location, 8786), timeout=CONNECT_TIMEOUT_S):
            pass

    async def identify() -> Any:
        comm = await distributed.comm.connect(address, timeout=CONNECT_TIMEOUT_S)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:  # on a thread of its own: the caller may be inside an event loop already (a notebook)
        with ThreadPoolExecutor(1) as thread:
            identity = thread.submit(asyncio.run, asyncio.wait_for(identify(), CONNECT_TIMEOUT_S)).result()
    except (OSError, TimeoutError, ValueError):
        raise
    except Exception as exc:  # garbage read as a message: a huge length, bytes that do not unpack
        raise OSError(f"what answers there is not a Dask scheduler ({type(exc).__name__})") from None
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        kind = identity.get("type") if isinstance(identity, dict) else None
        raise OSError(f"what answers there is {f'a Dask {kind}' if kind else 'not a Dask scheduler'}")


@contextlib.contextmanager
def _local_cluster(distributed: Any, workers: int) -> Iterator[Any]:
    try:
        with script_not_rerun():  # its workers start now (one Dask restarts later would run the script)
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,  # a piece's reduction holds the GIL: processes, not threads, run pieces at once
                processes=True,
                host="127.0.0.1",  # nothing outside this machine can reach it
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its HTTP routes (no dashboard): any free port
                silence_logs=logging.CRITICAL,
            )
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot start a local Dask cluster: {_first_line(exc)}") from None
    try:
        yield cluster
    finally:
        cluster.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _installed_version() -> str:
    import smoothl1_cli

    return str(smoothl1_cli.__version__)


def _check_versions(cluster: _Cluster) -> None:
    """Workers must run this very smoothl1: a state pickled by another version may not merge, or may
    merge into another report."""
    ours = _installed_version()
    try:
        theirs: dict[str, str] = cluster.client.run(_installed_version)
    except Exception as exc:  # smoothl1 missing on a worker: its function does not even unpickle there
        raise InputError(
            f"cannot run smoothl1 on the workers of {cluster.where} ({_first_line(exc)}); "
            f"install smoothl1 {ours} on every worker: pip install 'smoothl1[dask]=={ours}'"
        ) from None
    other = {address: version for address, version in sorted(theirs.items()) if version != ours}
    if other:
        address, version = next(iter(other.items()))
        more = f" and {len(other) - 1} more" if len(other) > 1 else ""
        raise InputError(
            f"the Dask worker at {address}{more} runs smoothl1 {version}, but this is smoothl1 {ours}; "
            f"install the same version everywhere: pip install 'smoothl1[dask]=={ours}'"
        )
