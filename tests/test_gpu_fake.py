"""--backend cupy on the CPU: a fake device (tests/gpu_support.py) stands in for CuPy, so these run
everywhere and prove the device path is taken, that no per-row array comes back (but for per-row
output and --group-by), that results agree with NumPy's and a float64 reference, and every error path."""

from __future__ import annotations

import math
import pickle
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from smoothl1_cli import backends, smooth_l1
from smoothl1_cli.api import evaluate
from smoothl1_cli.cli import cli
from smoothl1_cli.errors import InputError
from smoothl1_cli.options import Options
from smoothl1_cli.plan import plan_columns
from smoothl1_cli.readers import source_from_table
from smoothl1_cli.state import Block, RunState
from tests.gpu_support import DeviceArray, FakeDevice, load_gpu_check

ROWS = 150_000  # three chunks of 65,536, the last one short
SHORTEST = ROWS - 2 * 65_536  # a copy back this long is of a per-row array (the sketch's counts are ~5,000 here)


gpu_check = load_gpu_check()


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> FakeDevice:
    fake = FakeDevice()
    monkeypatch.setitem(sys.modules, "cupy", fake)  # found as CuPy is: by `import cupy`
    return fake


def _reference(table: pa.Table, beta: float) -> list[float]:
    """Each row's Smooth L1 in plain Python floats."""
    out = []
    for y, p in zip(table["y"].to_pylist(), table["pred"].to_pylist(), strict=True):
        d = abs(p - y)
        out.append(0.5 * d * d / beta if d < beta else d - 0.5 * beta)
    return out


def test_the_device_path_keeps_per_row_arrays_there_and_matches_a_float64_reference(device):
    table = gpu_check.table_of(ROWS).select(["y", "pred"])
    report = evaluate(table, "y", "pred", backend="cupy", beta=0.5).to_dict()
    losses = _reference(table, 0.5)
    result = report["results"][0]
    assert result["mean"] == pytest.approx(math.fsum(losses) / ROWS, rel=1e-12)
    assert result["sum"] == pytest.approx(math.fsum(losses), rel=1e-12)
    assert result["max"] == max(losses)
    assert result["min"] == min(losses)
    assert result["std"] == pytest.approx(float(np.std(np.array(losses))), rel=1e-10)
    diffs = [abs(p - y) for y, p in zip(table["y"].to_pylist(), table["pred"].to_pylist(), strict=True)]
    assert result["mae"] == pytest.approx(math.fsum(diffs) / ROWS, rel=1e-12)
    assert result["rmse"] == pytest.approx(math.sqrt(math.fsum(d * d for d in diffs) / ROWS), rel=1e-12)
    assert result["linear_fraction"] == sum(d >= 0.5 for d in diffs) / ROWS
    assert [row["loss"] for row in report["worst_rows"]] == sorted(losses, reverse=True)[:5]
    # y and pred, once a batch: the two full chunks as one, then the short one
    assert device.copies_there == [2 * 65_536] * 2 + [SHORTEST] * 2
    assert device.per_row_copies_back(SHORTEST) == []  # only the state's numbers came back
    assert device.pinned == [2 * ROWS * 8]  # one batch (of y and pred), staged in one pinned buffer
    assert device.events_waited == 0  # (no buffer was written a second time)


@pytest.mark.parametrize("name", list(gpu_check.CASES))
def test_every_statistic_agrees_with_numpy(device, name):
    """Every option of the check script: the whole report within a relative 1e-12 of NumPy's."""
    assert gpu_check.check_case(name, ROWS, gpu_check.CASES[name]) == []
    per_row = device.per_row_copies_back(SHORTEST)
    if "on the host" in name or gpu_check.CASES[name].get("exact_quantiles"):
        assert per_row  # thousands of groups in a chunk reduce on the host; exact quantiles keep every loss there
    else:
        assert per_row == []


def test_the_bootstrap_runs_on_the_device(device):
    """The weights are drawn there: the replicates' sums (results x replicates) come back, not the rows."""
    table = gpu_check.table_of(ROWS).select(["y", "pred"])
    evaluate(table, "y", "pred", backend="cupy", ci=0.95, bootstrap=100)
    assert device.per_row_copies_back(SHORTEST) == []
    assert device.copies_back.count(100) == 2 * 2  # each batch's sums and weights
    # y and pred of the two batches, and one copy of the 65,536-entry Poisson table (kept there)
    there = [size for size in device.copies_there if size != 100]  # (the replicates' sums go there too)
    assert [size for size in there if size != 65_536] == [2 * 65_536] * 2 + [SHORTEST] * 2
    assert there.count(65_536) <= 1


def test_per_row_output_copies_the_losses_back(device, tmp_path):
    table = gpu_check.table_of(ROWS).select(["y", "pred"])
    evaluate(table, "y", "pred", backend="cupy", per_row=str(tmp_path / "rows.csv"))
    assert device.per_row_copies_back(SHORTEST) == [2 * 65_536, SHORTEST]  # each batch's losses, once
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert len(lines) == ROWS + 1
    assert [float(line.split(",")[1]) for line in lines[1:4]] == _reference(table.slice(0, 3), 1.0)


def test_smooth_l1_on_device_arrays_stays_there(device):
    pred, target = device.asarray(np.array([0.5, 1.5, 2.5, 9.0])), device.asarray(np.array([1.0, 2.0, 3.0, 1.0]))
    mean = smooth_l1(pred, target)
    assert isinstance(mean, DeviceArray)
    assert mean.shape == ()
    assert float(mean) == (0.125 * 3 + 7.5) / 4
    terms = smooth_l1(pred, target, reduction="none")
    assert isinstance(terms, DeviceArray)
    assert terms.get().tolist() == [0.125, 0.125, 0.125, 7.5]
    assert device.copies_back == [4]  # the get() above, nothing else


def test_mixing_host_and_device_arrays_is_refused_as_cupy_does(device):
    with pytest.raises(TypeError, match=r"a host array \(\(3,\)\) met a device array"):
        np.add(device.asarray(np.ones(3)), np.ones(3))


def _fake_cupy(monkeypatch: pytest.MonkeyPatch, count: Any) -> types.ModuleType:
    """A `cupy` module whose CUDA runtime reports `count` devices (or raises it)."""

    def device_count() -> int:
        if isinstance(count, BaseException):
            raise count
        return int(count)

    class OutOfMemoryError(MemoryError):
        pass

    cupy = types.ModuleType("cupy")
    cupy.arange = np.arange  # type: ignore[attr-defined]  # (a kernel runs)
    cupy.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        runtime=types.SimpleNamespace(getDeviceCount=device_count),
        memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
    )
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return cupy


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _eval(tmp_path: Path, *extra: str) -> Any:
    path = tmp_path / "data.csv"
    path.write_text("y,pred\n1,2\n3,5\n")
    return CliRunner().invoke(cli, ["eval", str(path), "-t", "y", "-p", "pred", "--backend", "cupy", *extra])


def test_no_cupy_exits_2_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    result = _eval(tmp_path)
    assert result.exit_code == 2
    assert "needs CuPy, which is not installed" in result.stderr
    assert "pip install 'smoothl1[gpu-cuda12]' (CUDA 12) or 'smoothl1[gpu-cuda13]' (CUDA 13)" in result.stderr


@pytest.mark.parametrize(
    ("count", "says"),
    [
        (0, "CUDA sees no GPU on this machine"),
        (CUDARuntimeError(100, "cudaErrorNoDevice: no CUDA-capable device is detected"), "CUDA sees no GPU"),
        (
            CUDARuntimeError(35, "cudaErrorInsufficientDriver: CUDA driver version is insufficient"),
            "the NVIDIA driver is too old for this CuPy",
        ),
        (CUDARuntimeError(999, "cudaErrorUnknown"), "CUDA could not start (CUDARuntimeError: cudaErrorUnknown)"),
    ],
)
def test_no_device_or_an_old_driver_exits_2_saying_which(monkeypatch, tmp_path, count, says):
    _fake_cupy(monkeypatch, count)
    result = _eval(tmp_path)
    assert result.exit_code == 2
    assert says in result.stderr
    assert "pip install 'smoothl1[gpu-cuda12]'" in result.stderr


def test_a_gpu_that_cannot_run_a_kernel_exits_2_naming_the_toolkit(monkeypatch, tmp_path):
    """CuPy imports and sees a device, but its first kernel fails (no CUDA toolkit to compile it with)."""
    cupy = _fake_cupy(monkeypatch, 1)

    def arange(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CuPy failed to load libnvrtc.so.13")

    cupy.arange = arange  # type: ignore[attr-defined]
    result = _eval(tmp_path)
    assert result.exit_code == 2
    assert "CuPy sees a GPU but cannot run a kernel on it (RuntimeError: CuPy failed to load libnvrtc.so.13)" in (
        result.stderr
    )
    assert "cupy-cuda1Nx[ctk]" in result.stderr
    assert backends.choose("auto", backends.AUTO_MIN_ROWS, None) == "numpy"  # auto falls back


def test_device_out_of_memory_exits_2_suggesting_smaller_chunks(device, tmp_path):
    fake = device

    def empty(shape: Any, dtype: Any = None) -> Any:
        raise fake.cuda.memory.OutOfMemoryError("out of memory allocating 8,000,000,000 bytes")

    fake.empty = empty  # type: ignore[method-assign]
    result = _eval(tmp_path, "--chunk-rows", "1000000000")
    assert result.exit_code == 2
    assert "the GPU ran out of memory with --chunk-rows 1000000000" in result.stderr
    assert "--chunk-rows 125000000, or run fewer processes on the GPU (--workers 1)" in result.stderr


def test_auto_takes_cupy_only_for_large_work_on_a_machine_with_a_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert backends.choose("auto", backends.AUTO_MIN_ROWS, None) == "numpy"  # no CuPy
    _fake_cupy(monkeypatch, 0)
    assert backends.choose("auto", backends.AUTO_MIN_ROWS, None) == "numpy"  # no device
    _fake_cupy(monkeypatch, 1)
    assert backends.choose("auto", backends.AUTO_MIN_ROWS, None) == "cupy"
    assert backends.choose("auto", backends.AUTO_MIN_ROWS - 1, None) == "numpy"  # small: not worth a start
    assert backends.choose("auto", None, backends.AUTO_MIN_BYTES) == "cupy"  # text: its bytes decide
    assert backends.choose("auto", None, None) == "numpy"
    assert backends.choose("numpy", 10**12, None) == "numpy"


def test_auto_on_small_input_never_imports_cupy(monkeypatch, device):
    monkeypatch.setitem(sys.modules, "cupy", None)
    table = pa.table({"y": [1.0, 2.0], "pred": [1.5, 2.0]})
    assert evaluate(table, "y", "pred", backend="auto").results[0].value == 0.0625
    assert device.copies_there == []


def test_a_state_reduced_on_the_device_pickles_with_host_arrays_only(device):
    options = Options(target=("y",), pred=("pred",), backend="cupy", ci=0.9, bootstrap=8)
    table = gpu_check.table_of(2_000)
    plan = plan_columns(source_from_table(table, "<t>"), options)
    state = RunState.empty(plan, options, 0, 0)
    block = Block({name: table[name].to_numpy() for name in plan.numeric}, [], [], 2_000)
    state.update(block, backends.feed("cupy"))
    assert b"cupy.fake" not in pickle.dumps(state)  # no device array in it (of type cupy.fake.DeviceArray)


def test_namespace_errors_are_input_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(InputError, match="--backend cupy needs CuPy"):
        backends.namespace("cupy")


def test_batches_are_staged_in_a_ring_of_three_pinned_buffers_allocated_once(device):
    """Batches of three 1,000-row chunks (half the device's free memory holds 3,000 rows of two columns
    and one result's temporaries, 8 * 2 + 192 bytes a row): four batches, staged by the reader thread in
    turn in three pinned buffers, each allocated once; the fourth batch waited for the event recorded
    after the first one before writing its buffer again."""
    device.free_bytes = 2 * 3_000 * (8 * 2 + 192) + 1_000
    table = gpu_check.table_of(10_000).select(["y", "pred"])
    report = evaluate(table, "y", "pred", backend="cupy", chunk_rows=1_000)
    assert device.copies_there == [3_000, 3_000] * 3 + [1_000, 1_000]  # y and pred of each batch
    assert device.pinned == [2 * 3_000 * 8] * 3
    assert device.events_waited == 1
    assert device.streams == 1
    expected = evaluate(table, "y", "pred", chunk_rows=1_000)
    assert report.to_dict()["results"] == expected.to_dict()["results"]


def _read_ahead_threads() -> list[Any]:
    return [thread for thread in threading.enumerate() if thread.name == "smoothl1-read-ahead"]


def test_a_bad_value_read_ahead_is_reported_at_its_row_and_the_reader_stops(device, tmp_path):
    """The reader thread parses ahead of the device; its error names the file and row, as without it."""
    path = tmp_path / "data.csv"
    lines = [f"{i},{i + 0.5}" for i in range(5_000)]
    lines[4_321] = "4321,oops"
    path.write_text("y,pred\n" + "\n".join(lines) + "\n")
    result = CliRunner().invoke(
        cli, ["eval", str(path), "-t", "y", "-p", "pred", "--backend", "cupy", "--chunk-rows", "100"]
    )
    assert result.exit_code == 2
    assert result.stderr == f"Error: {path}: row 4321 (line 4323), column 'pred': 'oops' is not a number\n"
    assert _read_ahead_threads() == []


def test_an_error_while_reducing_stops_the_reader_thread(device, monkeypatch):
    """A negative weight in the first batch: the reducing thread raises while the reader still has
    batches to make; the thread is stopped and joined before the source closes."""
    monkeypatch.setattr(backends, "BATCH_ROWS", 1_000)
    weight = np.ones(50_000)
    weight[10] = -1.0
    table = pa.table({"y": np.zeros(50_000), "pred": np.ones(50_000), "w": weight})
    with pytest.raises(InputError, match="row 10, column 'w': -1.0 is negative"):
        evaluate(table, "y", "pred", backend="cupy", weight="w", chunk_rows=500)
    assert _read_ahead_threads() == []


def test_pieces_reduced_in_one_thread_share_its_stream_and_pinned_buffers(device, tmp_path):
    """Two files, two pieces, in this process: one stream, and the second piece's batch staged in the
    pinned buffer of the first one's."""
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / f"{name}.csv")
        paths[-1].write_text("y,pred\n" + "".join(f"{i},{i % 7}\n" for i in range(3_000)))
    result = CliRunner().invoke(
        cli, ["eval", *map(str, paths), "-t", "y", "-p", "pred", "--backend", "cupy", "--chunk-rows", "1000"]
    )
    assert result.exit_code == 0, result.stderr
    assert device.streams == 1
    assert device.pinned == [2 * 3_000 * 8]
    assert device.copies_there == [3_000] * 4  # y and pred of each file's one batch of three chunks


def test_a_batch_is_sized_by_this_process_share_of_the_device_memory(device):
    """Half the free memory, shared by the job's processes on the GPU, over 8 bytes a column and 192 a
    result per row; whole chunks of it, at most BATCH_ROWS, at least one chunk."""
    feed = backends.DeviceFeed(device)
    device.free_bytes = 2 * 4 * 3_500 * (8 * 3 + 192 * 2)
    assert feed.batch_rows(1_000, 3, 2, sharing=4) == 3_000
    assert feed.batch_rows(1_000, 3, 2, sharing=1) == 14_000
    assert feed.batch_rows(5_000, 3, 2, sharing=4) == 5_000  # never less than one chunk
    device.free_bytes = 1 << 45
    assert feed.batch_rows(1_000, 3, 2) == backends.BATCH_ROWS // 1_000 * 1_000


def test_the_first_error_of_a_batch_is_numpys_under_nan_policy_error(device):
    """A negative weight at row 10 and a NaN at row 3,500 of one batch: NumPy, chunk by chunk, stops at
    the weight; so does the device, which reduces a batch with a bad row a chunk at a time."""
    weight, pred = np.ones(5_000), np.zeros(5_000)
    weight[10], pred[3_500] = -1.0, np.nan
    table = pa.table({"y": np.zeros(5_000), "pred": pred, "w": weight})
    for backend in ("numpy", "cupy"):
        with pytest.raises(InputError, match=r"^<Table>: row 10, column 'w': -1.0 is negative$"):
            evaluate(table, "y", "pred", backend=backend, weight="w", chunk_rows=1_000)
