"""--engine dask: the same report as the local engine, byte for byte (apart from `engine`), on real
Dask clusters on the loopback interface: a LocalCluster of worker processes shared by the module,
an external `dask scheduler` with a `dask worker`, and the command's own local cluster.

Failures are real too: a worker killed in the middle of a piece (Dask retries it elsewhere, the
report is exact), a worker that keeps dying (exit 2 naming the piece), an address nobody listens
at, Dask missing, workers of another version, a corrupt file and a bad value.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import smoothl1_cli
from smoothl1_cli import api, plan
from smoothl1_cli.engines import dask as dask_engine
from smoothl1_cli.errors import InputError
from smoothl1_cli.options import Options
from tests.conftest import invoke, run_command

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("dask")  # one worker runs these: one module cluster, not one per worker

DEADLINE_S = 60  # a safety net for waits on something observable, never a pause


def table(rows: int, seed: int, first_id: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    pn = rng.normal(size=rows)
    pn[rng.random(rows) < 0.05] = np.nan  # for --nan-policy omit and propagate
    return pa.table(
        {
            "id": np.arange(first_id, first_id + rows),
            "g": rng.choice(["a", "b", "c"], rows),
            "w": rng.random(rows),
            "y": rng.normal(size=rows).round(6),
            "pred": rng.normal(size=rows).round(6),
            "p2": rng.normal(size=rows).round(6),
            "t2": rng.normal(size=rows).round(6),
            "pn": pn,
        }
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pq/, csv/ and jsonl/: the same three partitions in three formats; labels.csv: the targets by id."""
    root = tmp_path_factory.mktemp("dask-data")
    parts = [table(300, seed, first_id=300 * seed) for seed in range(3)]
    for name in ("pq", "csv", "jsonl"):
        (root / name).mkdir()
    for number, part in enumerate(parts):
        pq.write_table(part, root / "pq" / f"part{number}.parquet", row_group_size=100)
        pacsv.write_csv(part, root / "csv" / f"part{number}.csv")
        with open(root / "jsonl" / f"part{number}.jsonl", "w") as out:
            for row in part.drop_columns(["pn"]).to_pylist():
                out.write(json.dumps(row) + "\n")
    labels = pa.concat_tables(parts).select(["id", "y"])
    pacsv.write_csv(labels, root / "labels.csv")
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One LocalCluster of two worker processes for the module, on the loopback interface."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = distributed.LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,
        )
    try:
        yield local
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            local.close()


@pytest.fixture
def observer(cluster: Any) -> Iterator[Any]:
    """A client of the module's cluster, to watch what its workers do."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


def without_engine(text: str, engine: str) -> str:
    """The JSON report's text without its one `engine` line, which must say `engine`."""
    lines = text.splitlines(keepends=True)
    marked = [line for line in lines if line.lstrip().startswith('"engine":')]
    assert marked == [f'  "engine": "{engine}",\n'], marked
    return "".join(line for line in lines if line not in marked)


def local_json(*args: Any, workers: int = 1) -> str:
    result = invoke(["eval", *map(str, args), "-f", "json", "--engine", "local", "--workers", str(workers)])
    assert result.exit_code == 0, result.stderr
    return without_engine(result.stdout, "local")


def dask_json(address: str, *args: Any) -> str:
    result = invoke(["eval", *map(str, args), "-f", "json", "--engine", "dask", "--scheduler", address])
    assert result.exit_code == 0, result.stderr
    return without_engine(result.stdout, "dask")


def command_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DASK_")}
    return {**env, **extra}


# --- the same report ---------------------------------------------------------------------------------


CASES = {
    "plain": [],
    "group-by and weights": ["--group-by", "g", "-w", "w", "--id", "id", "--top", "3"],
    "omit": ["-p", "pn", "--nan-policy", "omit"],
    "propagate": ["-p", "pn", "--nan-policy", "propagate", "--top", "0"],
    "multi-output": ["-t", "t2", "-p", "pred,p2", "--multioutput", "row-sum"],
    "bootstrap": ["-p", "pred,p2", "--ci", "0.9", "--bootstrap", "50"],
    "exact quantiles, huber": ["--exact-quantiles", "--loss", "huber", "--delta", "0.5"],
    "one piece at a time": ["--group-by", "g", "--workers", "1"],
}


@pytest.mark.parametrize("fmt", ["pq", "csv"])
@pytest.mark.parametrize("case", list(CASES))
def test_options_give_the_local_report_byte_for_byte(cluster: Any, data: Path, fmt: str, case: str) -> None:
    args = [data / fmt, "-t", "y", *CASES[case]]
    if fmt == "pq" and case == "plain":
        assert dask_json(cluster.scheduler_address, *args) == local_json(*args, workers=2)
    assert dask_json(cluster.scheduler_address, *args) == local_json(*args)


def test_jsonl_partitions_and_labels_joined_on_a_key(cluster: Any, data: Path) -> None:
    jsonl = [data / "jsonl", "-t", "y", "--group-by", "g", "--ci", "0.9", "--bootstrap", "50"]
    assert dask_json(cluster.scheduler_address, *jsonl) == local_json(*jsonl)
    labelled = [data / "pq", "-t", "y", "--labels", data / "labels.csv", "--on", "id", "-w", "w"]
    assert dask_json(cluster.scheduler_address, *labelled) == local_json(*labelled)


def test_installed_command_on_a_cluster(smoothl1_command: list[str], cluster: Any, data: Path, tmp_path: Path) -> None:
    """The entry point as a user runs it: a report equal to the local one, and nothing on stderr."""
    args = ["csv", "-t", "y", "-p", "pred,p2", "--group-by", "g", "--ci", "0.9", "--bootstrap", "50", "-f", "json"]
    done = run_command(
        smoothl1_command, "eval", *args, "--engine", "dask", "--scheduler", cluster.scheduler_address,
        "-o", tmp_path / "report.json", cwd=data, timeout=DEADLINE_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert done.stdout.decode() == (tmp_path / "report.json").read_text()
    expected = local_json(data / "csv", *args[1:-2])
    assert without_engine(done.stdout.decode(), "dask") == expected.replace(str(data / "csv"), "csv")


def test_pieces_of_a_large_parquet_file(cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file cut into runs of row groups: each run is a task; rows are numbered across them."""
    monkeypatch.setattr(plan, "PIECE_ROWS", 250)
    path = tmp_path / "big.parquet"
    pq.write_table(table(2000, seed=7), path, row_group_size=100)
    options = {"group_by": "g", "ci": 0.9, "bootstrap": 50, "top": 4}
    local = api.evaluate(str(path), "y", **options).to_dict()
    on_dask = api.evaluate(str(path), "y", engine="dask", scheduler=cluster.scheduler_address, **options).to_dict()
    assert on_dask.pop("engine") == "dask"
    assert local.pop("engine") == "local"
    assert json.dumps(on_dask) == json.dumps(local)


def per_row_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_per_row_directory_one_file_per_piece(cluster: Any, data: Path, tmp_path: Path) -> None:
    """--per-row DIR: the workers write part-00000.parquet... in piece order; read in order, they are
    the local engine's per-row file (text inputs: rows are counted first, to number them globally)."""
    files = sorted(str(path) for path in (data / "csv").iterdir())
    out = tmp_path / "losses"
    out.mkdir()
    (out / "part-00007.parquet").write_bytes(b"an earlier run's part")
    (out / "notes.txt").write_text("kept")
    report = api.evaluate(
        files, "y", pred=["pred", "pn"], id="id", nan_policy="omit", engine="dask",
        scheduler=cluster.scheduler_address, per_row=str(out),
    )  # fmt: skip
    assert per_row_files(out) == ["notes.txt", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    local = tmp_path / "local.parquet"
    expected = api.evaluate(files, "y", pred=["pred", "pn"], id="id", nan_policy="omit", per_row=str(local))
    parts = pa.concat_tables(pq.read_table(out / f"part-{n:05d}.parquet") for n in range(3))
    assert parts.equals(pq.read_table(local))
    assert report.to_dict() == {**expected.to_dict(), "engine": "dask"}


def test_per_row_directory_is_left_as_it_was_when_the_run_fails(cluster: Any, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "losses"
    with pytest.raises(InputError, match="missing, NaN or infinite|NaN"):
        api.evaluate(
            data / "pq" / "part0.parquet", "y", pred="pn", engine="dask", scheduler=cluster.scheduler_address,
            per_row=str(out),
        )  # fmt: skip
    assert per_row_files(out) == []


# --- clusters started by other means ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll something observable until it holds; fail (not hang) after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def stop_at_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in reversed(started):  # a worker without a nanny, and a scheduler: nothing of theirs outlives them
        process.kill()
        process.wait()


def test_external_scheduler_and_worker_elsewhere(
    smoothl1_command: list[str],
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop_at_end: list[subprocess.Popen[bytes]],
) -> None:
    """`dask scheduler` and `dask worker` started as a user would (the worker in another directory:
    relative paths are found from the client's), found through DASK_SCHEDULER_ADDRESS."""
    dask = [sys.executable, "-m", "dask"]  # the `dask` command of this environment
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    found = tmp_path / "scheduler.json"  # where the scheduler writes the address of the port it was given
    scheduler = [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(found)]
    no_dashboard = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]  # its HTTP routes on any free port
    stop_at_end.append(subprocess.Popen([*scheduler, *no_dashboard], env=command_env(), **quiet))
    wait_for(found.exists, "the scheduler's address")
    address = json.loads(found.read_text())["address"]
    # No worker yet: the run says so (after a shortened wait) instead of waiting for ever.
    monkeypatch.setattr(dask_engine, "WORKERS_TIMEOUT_S", 0.2)
    with pytest.raises(InputError, match=rf"the Dask scheduler at {address} has no workers"):
        api.evaluate(str(data / "pq"), "y", engine="dask", scheduler=address)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    worker = [*dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
    stop_at_end.append(subprocess.Popen(worker, cwd=elsewhere, env=command_env(), **quiet))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.Client(address, timeout=DEADLINE_S, set_as_default=False) as watcher:
            watcher.wait_for_workers(1, timeout=DEADLINE_S)
    args = ["jsonl", "-t", "y", "--group-by", "g", "-f", "json"]
    done = subprocess.run(
        [*smoothl1_command, "eval", *args, "--engine", "dask"],
        cwd=data, env=command_env(DASK_SCHEDULER_ADDRESS=address), capture_output=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    expected = local_json(data / "jsonl", *args[1:-2]).replace(str(data / "jsonl"), "jsonl")
    assert without_engine(done.stdout.decode(), "dask") == expected


def test_a_local_cluster_of_its_own(smoothl1_command: list[str], data: Path) -> None:
    """Without an address, --engine dask starts (and closes) a local cluster: quietly, exit 0."""
    args = ["pq", "-t", "y", "-w", "w", "-f", "json"]
    done = subprocess.run(
        [*smoothl1_command, "eval", *args, "--engine", "dask", "--workers", "1"],
        cwd=data, env=command_env(), capture_output=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    expected = local_json(data / "pq", *args[1:-2]).replace(str(data / "pq"), "pq")
    assert without_engine(done.stdout.decode(), "dask") == expected


def test_a_script_without_a_main_guard_starts_a_cluster_of_its_own(data: Path, tmp_path: Path) -> None:
    """Dask's worker processes start without the calling script, as the local pool's do."""
    script = tmp_path / "on_dask.py"
    script.write_text(
        "from smoothl1_cli import evaluate\n"
        f"print(evaluate({str(data / 'pq')!r}, 'y', engine='dask', workers=1).results[0].value)\n"
    )
    done = subprocess.run([sys.executable, script], env=command_env(), capture_output=True, timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == f"{api.evaluate(data / 'pq', 'y').results[0].value!r}\n"


# --- workers that die ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One piece that takes its worker a second or more at --chunk-rows 25."""
    path = tmp_path_factory.mktemp("slow") / "slow.csv"
    pacsv.write_csv(table(100_000, seed=11).select(["y", "pred"]), path)
    return path


def start_and_kill_its_worker(
    smoothl1_command: list[str], observer: Any, address: str, path: Path
) -> subprocess.CompletedProcess[bytes]:
    """Run the command on `path`; the moment the scheduler has its piece on a worker, kill that
    worker's process (SIGKILL, as the kernel's OOM killer does)."""
    observer.wait_for_workers(2, timeout=DEADLINE_S)  # both up (one may be restarting after another test)
    command = [*smoothl1_command, "eval", str(path), "-t", "y", "--chunk-rows", "25", "-f", "json"]
    running = subprocess.Popen(
        [*command, "--engine", "dask", "--scheduler", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=command_env(),
    )  # fmt: skip
    try:
        busy: list[str] = []

        def piece_running() -> bool:
            busy[:] = [
                worker
                for worker, keys in observer.processing().items()
                if any(str(key).startswith("smoothl1-reduce") for key in keys)
            ]
            return bool(busy)

        wait_for(piece_running, "the piece to start on a worker")
        os.kill(observer.run(os.getpid, workers=busy[:1])[busy[0]], signal.SIGKILL)
        out, err = running.communicate(timeout=DEADLINE_S)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    observer.wait_for_workers(2, timeout=DEADLINE_S)  # its nanny restarts it: the cluster is left as it was
    return subprocess.CompletedProcess(running.args, running.returncode, out, err)


def test_a_worker_killed_mid_piece_is_replaced_and_the_report_is_exact(
    smoothl1_command: list[str], cluster: Any, observer: Any, slow_csv: Path
) -> None:
    done = start_and_kill_its_worker(smoothl1_command, observer, cluster.scheduler_address, slow_csv)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert without_engine(done.stdout.decode(), "dask") == local_json(slow_csv, "-t", "y", "--chunk-rows", "25")


def test_a_piece_whose_workers_keep_dying_exits_2_naming_it(
    smoothl1_command: list[str], cluster: Any, observer: Any, slow_csv: Path
) -> None:
    scheduler = cluster.scheduler  # in this process: its tolerance can be lowered for one test
    allowed = scheduler.allowed_failures
    scheduler.allowed_failures = 0
    try:
        done = start_and_kill_its_worker(smoothl1_command, observer, cluster.scheduler_address, slow_csv)
    finally:
        scheduler.allowed_failures = allowed
    assert done.returncode == 2, done.stderr.decode()
    assert done.stderr.decode() == (
        f"Error: {slow_csv}: Dask gave up on it after 1 worker died reading it (out of memory?); "
        "give the workers more memory, or cut the input into smaller files\n"
    )


# --- failures ---------------------------------------------------------------------------------------


def test_unreachable_scheduler_exits_2_within_seconds(smoothl1_command: list[str], data: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there any more
    started = time.monotonic()
    done = run_command(smoothl1_command, "eval", data / "pq", "-t", "y", "--engine", "dask", "--scheduler", address)
    assert time.monotonic() - started < DEADLINE_S  # a refusal is seen at once; no answer, in CONNECT_TIMEOUT_S
    assert done.returncode == 2
    message = done.stderr.decode()
    refused = f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"
    assert message == (
        f"Error: cannot reach the Dask scheduler at {address} (--scheduler {address}): {refused}; "
        "is it running, and is the address right?\n"
    )


def test_dask_not_installed_exits_2_with_the_pip_command(
    smoothl1_command: list[str], data: Path, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "distributed.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'distributed'\", name='distributed')\n"
    )
    done = subprocess.run(
        [*smoothl1_command, "eval", str(data / "pq"), "-t", "y", "--engine", "dask"],
        env=command_env(PYTHONPATH=str(shadow)), capture_output=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "Error: --engine dask needs Dask's distributed package (No module named 'distributed'): "
        "pip install 'smoothl1[dask]'\n"
    )


def test_workers_of_another_version_are_refused(cluster: Any, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smoothl1_cli, "__version__", "9.9.9")  # this process only: the workers run 0.1.0
    with pytest.raises(InputError) as caught:
        api.evaluate(str(data / "pq"), "y", engine="dask", scheduler=cluster.scheduler_address)
    message = str(caught.value)
    assert f"runs smoothl1 {importlib.metadata.version('smoothl1')}, but this is smoothl1 9.9.9" in message
    assert message.startswith("the Dask worker at tcp://127.0.0.1:")
    assert "pip install 'smoothl1[dask]==9.9.9'" in message


def test_bad_value_and_corrupt_file_give_the_local_engines_message(cluster: Any, data: Path, tmp_path: Path) -> None:
    """The first bad piece's error, as the local engine words it: file, row, column, value."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for number, name in enumerate(["a", "b", "c"]):
        pacsv.write_csv(table(50, seed=number).select(["y", "pred"]), inputs / f"{name}.csv")
    for name, row in (("b", 7), ("c", 3)):
        lines = (inputs / f"{name}.csv").read_text().splitlines(keepends=True)
        lines[row + 1] = lines[row + 1].replace(",", ",oops", 1)
        (inputs / f"{name}.csv").write_text("".join(lines))
    corrupt = tmp_path / "corrupt.parquet"
    pq.write_table(table(50, seed=3).select(["y", "pred"]), corrupt, compression="snappy")
    raw = bytearray(corrupt.read_bytes())
    raw[4:40] = b"\xff" * 36  # the first page header: the footer (read when planning) is intact
    corrupt.write_bytes(bytes(raw))
    for args in ([inputs, "-t", "y"], [corrupt, "-t", "y"]):
        local = invoke(["eval", *map(str, args), "-f", "json", "--workers", "1"])
        on_dask = invoke(["eval", *map(str, args), "-f", "json", "--engine", "dask",
                          "--scheduler", cluster.scheduler_address])  # fmt: skip
        assert (local.exit_code, on_dask.exit_code) == (2, 2)
        assert on_dask.stderr == local.stderr
    assert local.stderr.startswith(f"Error: {corrupt}: ")
    first = invoke(["eval", str(inputs), "-t", "y", "--engine", "dask", "--scheduler", cluster.scheduler_address])
    assert first.stderr.startswith(f"Error: {inputs / 'b.csv'}: row 7 (line 9), column 'pred': 'oops")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["-", "-t", "y"], b"y,pred\n1,2\n", "--engine dask: standard input can be read only here, once"),
        (["{pq}", "-t", "y", "--labels", "{labels}"], None, "--labels without --on matches the two files row by row"),
        (
            ["{pq}", "-t", "y", "--per-row", "{out}/rows.csv"],
            None,
            "the workers write the per-row losses as a directory",
        ),
        (["{pq}", "-t", "y", "--reduction", "none", "-o", "{out}/r.json"], None, "the workers write the per-row"),
        (["{pq}", "-t", "y", "--per-row", "s3://KEY:SECRET@bucket/rows"], None, "--per-row s3://***@bucket/rows: "),
    ],
    ids=["stdin", "labels row by row", "per-row file", "reduction none", "per-row on a store"],
)
def test_what_cannot_be_shipped_is_refused_before_connecting(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: bytes | None, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    unreachable = f"tcp://127.0.0.1:{free_port()}"  # refused before any connection is tried
    filled = [arg.format(pq=data / "pq", labels=data / "labels.csv", out=tmp_path) for arg in args]
    result = invoke(["eval", *filled, "--engine", "dask", "--scheduler", unreachable], input=stdin)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "SECRET" not in result.stderr
    assert not (tmp_path / "s3:").exists()  # no local directory named after the URI


def test_an_input_a_worker_cannot_see_is_named_with_the_worker(observer: Any, data: Path, tmp_path: Path) -> None:
    """Workers read their inputs themselves: one they do not see is an answer naming it and the worker."""
    sources = api.open_all([str(data / "pq" / "part0.parquet")], None)
    settings = Options(target=("y",))
    job = plan.Job(
        settings, plan.plan_columns(sources[0], settings), ("gone/part0.parquet",), ("parquet",),
        plan.cut_pieces(sources),
    )  # fmt: skip
    task = observer.submit(dask_engine._reduce_task, job.pieces[0], 0, job=job, cwd=str(tmp_path), parts=None)
    answer = task.result(timeout=DEADLINE_S)
    worker = next(iter(observer.who_has(task)[task.key]))
    assert answer == dask_engine.TaskError(
        f"gone/part0.parquet: no such file on the Dask worker at {worker}; workers read the inputs themselves, "
        "so they must see the same files at the same paths (a shared filesystem, or a URI such as s3://)"
    )


def test_data_in_memory_is_refused(data: Path) -> None:
    frame = pq.read_table(data / "pq" / "part0.parquet").to_pandas()
    with pytest.raises(InputError, match="<DataFrame> is data in memory, and Dask workers read their pieces"):
        api.evaluate(frame, "y", engine="dask", scheduler="tcp://127.0.0.1:9")  # refused before connecting


def test_from_inside_an_event_loop(cluster: Any, data: Path) -> None:
    """The API called where an event loop runs already (a notebook cell)."""

    async def cell() -> dict[str, Any]:
        return api.evaluate(str(data / "pq"), "y", engine="dask", scheduler=cluster.scheduler_address).to_dict()

    assert asyncio.run(cell()) == {**api.evaluate(str(data / "pq"), "y").to_dict(), "engine": "dask"}
