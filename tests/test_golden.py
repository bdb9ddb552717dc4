"""smoothl1 against golden values computed once with PyTorch (tests/golden/golden.json).

The JSON and the script that made it (tests/golden/make_golden.py, run under a Python that
has torch) are committed; these tests need no torch. Checked:

- kernel.smooth_l1_terms / huber_terms: every term BIT-IDENTICAL to torch's reduction="none"
  (the kernel evaluates torch's expressions in torch's order);
- the Python API (smooth_l1, huber): none bit-identical, mean and sum within relative 1e-12;
- the CLI, on a handful of cases written as CSV and Parquet: the reported value for
  --reduction mean and sum within relative 1e-12.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from smoothl1_cli import huber, kernel, smooth_l1
from tests.conftest import eval_json

GOLDEN = Path(__file__).parent / "golden" / "golden.json"
REL = 1e-12


@dataclass(frozen=True)
class Case:
    id: str
    loss: str
    param: float
    dtype: str
    finite: bool
    pred: np.ndarray[Any, Any]
    target: np.ndarray[Any, Any]
    none: np.ndarray[Any, Any]
    mean: float
    sum: float

    def inputs(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """pred and target in the case's dtype (float32 cases hold float32 values exactly)."""
        if self.dtype == "float64":
            return self.pred, self.target
        pred, target = self.pred.astype(np.float32), self.target.astype(np.float32)
        assert np.array_equal(pred.astype(np.float64), self.pred)
        assert np.array_equal(target.astype(np.float64), self.target)
        return pred, target


def _floats(values: list[str]) -> np.ndarray[Any, Any]:
    return np.array([float(v) for v in values], dtype=np.float64)


def _load() -> dict[str, Case]:
    document = json.loads(GOLDEN.read_text(encoding="utf-8"))
    cases = {}
    for raw in document["cases"]:
        cases[raw["id"]] = Case(
            raw["id"], raw["loss"], float(raw["param"]), raw["dtype"], raw["finite"],
            _floats(raw["pred"]), _floats(raw["target"]), _floats(raw["none"]), float(raw["mean"]), float(raw["sum"]),
        )  # fmt: skip
    return cases


CASES = _load()
ALL = [pytest.param(case, id=case_id) for case_id, case in CASES.items()]

# a handful of finite cases for the (slower) CLI round trip through files
CLI_CASES = (
    "spec-worked-example",
    "smooth_l1-beta0-random17",
    "smooth_l1-beta1-random1000",
    "smooth_l1-beta1e-06-specials",
    "smooth_l1-beta1e+06-straddle-shifted",
    "huber-delta0.001-specials",
    "huber-delta3-random1000",
    "smooth_l1-beta0.1-float32-33",
)


def assert_bits_equal(actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], what: str) -> None:
    """Bit for bit (so -0.0 != 0.0), with any NaN equal to any NaN."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape, what
    same = (actual.view(np.uint64) == expected.view(np.uint64)) | (np.isnan(actual) & np.isnan(expected))
    if not same.all():
        bad = np.flatnonzero(~same)
        shown = [
            f"[{i}] got {actual[i]!r} ({actual[i].hex()}), torch {expected[i]!r} ({expected[i].hex()})" for i in bad[:5]
        ]
        pytest.fail(f"{what}: {bad.size} of {same.size} terms differ from torch: " + "; ".join(shown))


def assert_close(actual: float, expected: float, what: str) -> None:
    """Within relative 1e-12; a non-finite reference must be matched exactly (NaN by NaN)."""
    if math.isnan(expected):
        assert math.isnan(actual), f"{what}: got {actual!r}, torch {expected!r}"
    elif math.isinf(expected):
        assert actual == expected, f"{what}: got {actual!r}, torch {expected!r}"
    else:
        assert actual == pytest.approx(expected, rel=REL, abs=0.0), f"{what}: got {actual!r}, torch {expected!r}"


def _api(case: Case) -> Callable[..., Any]:
    if case.loss == "huber":
        return lambda pred, target, reduction: huber(pred, target, delta=case.param, reduction=reduction)
    return lambda pred, target, reduction: smooth_l1(pred, target, beta=case.param, reduction=reduction)


def test_golden_file_is_complete() -> None:
    assert CASES["spec-worked-example"].mean == 0.125
    losses = {(case.loss, case.param) for case in CASES.values()}
    betas = {0.0, 1e-6, 0.1, 0.5, 1.0, 2.5, 10.0, 1e6}
    assert {("smooth_l1", b) for b in betas} | {("huber", d) for d in (1e-3, 0.5, 1.0, 3.0, 1e4)} <= losses
    assert {case.pred.size for case in CASES.values()} >= {1, 3, 17, 1000}
    assert any(case.dtype == "float32" for case in CASES.values())
    assert all(name in CASES and CASES[name].finite for name in CLI_CASES)


def _rescued(case: Case) -> np.ndarray:
    """Where PyTorch's (0.5 * z) * z left float64's normal range in the quadratic branch of
    smooth_l1 though the loss itself is representable. There PyTorch returns inf or a value with
    few correct digits; smoothl1 computes 0.5 * z * (z / beta) instead (kernel._extreme_quadratic)."""
    if case.loss == "huber" or 1.0 <= case.param <= 1e150:
        return np.zeros(case.pred.shape, dtype=bool)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        z = np.abs(case.pred - case.target)
        square = (0.5 * z) * z
        return (z < case.param) & (
            (square > np.finfo(np.float64).max) | ((square < np.finfo(np.float64).tiny) & (z > 0))
        )


def _exact_quadratic(z: float, beta: float) -> float:
    return float(Fraction(z) * Fraction(z) / (2 * Fraction(beta)))


def assert_torch_or_exact(actual: np.ndarray, case: Case, label: str) -> None:
    """Bit-identical to PyTorch, except where PyTorch's intermediate lost range: there within two
    ulps of the exact rational value (PyTorch's own value may be off in its fourth digit)."""
    rescued = _rescued(case)
    assert_bits_equal(np.where(rescued, 0.0, actual), np.where(rescued, 0.0, case.none), label)
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.abs(case.pred - case.target)
    for position in np.flatnonzero(rescued):
        exact = _exact_quadratic(float(z[position]), case.param)
        assert math.isclose(actual[position], exact, rel_tol=5e-16, abs_tol=1e-323), (
            label,
            position,
            actual[position],
            exact,
        )


def test_the_rescue_is_exercised_and_beats_torch() -> None:
    """The golden cases do reach the rescued region, and there smoothl1 is closer to the exact value."""
    rescued_cases = [case for case in CASES.values() if _rescued(case).any()]
    assert rescued_cases
    improved = 0
    for case in rescued_cases:
        with np.errstate(over="ignore", invalid="ignore"):
            z = np.abs(case.pred - case.target)
            ours = kernel.smooth_l1_terms(case.pred - case.target, case.param, xp=np)
        for position in np.flatnonzero(_rescued(case)):
            exact = _exact_quadratic(float(z[position]), case.param)
            assert abs(ours[position] - exact) <= abs(case.none[position] - exact)
            improved += ours[position] != case.none[position]
    assert improved > 0


@pytest.mark.parametrize("case", ALL)
def test_kernel_terms_bit_identical_to_torch(case: Case) -> None:
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf and 1e308 - -1e308 are part of the cases
        diff = case.pred - case.target
        if case.loss == "huber":
            terms = kernel.huber_terms(diff, case.param, xp=np)
        else:
            terms = kernel.smooth_l1_terms(diff, case.param, xp=np)
    assert_torch_or_exact(terms, case, f"{case.id} kernel")


@pytest.mark.parametrize("case", ALL)
def test_api_matches_torch(case: Case) -> None:
    pred, target = case.inputs()
    loss = _api(case)
    with np.errstate(over="ignore", invalid="ignore"):
        assert_torch_or_exact(loss(pred, target, "none"), case, f"{case.id} reduction=none")
        assert_close(loss(pred, target, "mean"), case.mean, f"{case.id} reduction=mean")
        assert_close(loss(pred, target, "sum"), case.sum, f"{case.id} reduction=sum")


def _cli_params() -> list[Any]:
    params = []
    for case_id in CLI_CASES:
        for fmt in ("csv", "parquet"):
            if CASES[case_id].dtype == "float32" and fmt == "csv":
                continue  # CSV text has no dtype: it is read as float64, not as the float32 upcast
            params.append(pytest.param(CASES[case_id], fmt, id=f"{case_id}-{fmt}"))
    return params


@pytest.mark.parametrize(("case", "fmt"), _cli_params())
def test_cli_matches_torch(case: Case, fmt: str, write_table: Callable[..., Path]) -> None:
    pred, target = case.inputs()
    arrow_type = pa.float32() if case.dtype == "float32" else pa.float64()
    path = write_table(fmt, pred=pa.array(pred, type=arrow_type), y=pa.array(target, type=arrow_type))
    options = ["--loss", "huber", "--delta", repr(case.param)] if case.loss == "huber" else ["--beta", repr(case.param)]
    for reduction, expected in (("mean", case.mean), ("sum", case.sum)):
        report = eval_json([path, "-t", "y", "-p", "pred", *options, "--reduction", reduction])
        result = report["results"][0]
        assert result["count"] == case.pred.size
        assert_close(result["value"], expected, f"{case.id} {fmt} --reduction {reduction}")
