"""--backend cupy on a real GPU: every statistic against NumPy's (benchmarks/gpu_check.py's cases), and
the Python API on CuPy arrays. Skipped where CuPy does not import or sees no device."""

from __future__ import annotations

import pytest

from smoothl1_cli import huber, smooth_l1
from tests.gpu_support import load_gpu_check

cupy = pytest.importorskip("cupy")


def _devices() -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # CUDA's errors: no driver, a driver too old
        return 0


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_devices() < 1, reason="CuPy sees no GPU")]
gpu_check = load_gpu_check()


@pytest.mark.parametrize("name", list(gpu_check.CASES))
@pytest.mark.parametrize("rows", gpu_check.CHECK_SIZES)
def test_every_statistic_agrees_with_numpy(name, rows):
    assert gpu_check.check_case(name, rows, gpu_check.CASES[name]) == []


@pytest.mark.parametrize("name", gpu_check.SMALL_CHUNKS)
def test_batches_of_hundreds_of_small_chunks_agree_with_numpy(name):
    assert gpu_check.check_case(name, 300_000, gpu_check.CASES[name], chunk_rows=1000) == []


def test_smooth_l1_on_cupy_arrays_returns_a_device_scalar():
    pred, target = cupy.asarray([0.5, 1.5, 2.5, 9.0]), cupy.asarray([1.0, 2.0, 3.0, 1.0])
    mean = smooth_l1(pred, target)
    assert isinstance(mean, cupy.ndarray)
    assert mean.shape == ()
    assert float(mean) == (0.125 * 3 + 7.5) / 4
    terms = huber(pred, target, delta=2.0, reduction="none")
    assert isinstance(terms, cupy.ndarray)
    assert terms.get().tolist() == [0.125, 0.125, 0.125, 14.0]
