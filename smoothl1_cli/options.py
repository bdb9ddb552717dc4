"""Every setting of an evaluation, and the choices of each: written once, read by Click and the core alike.

Only the standard library is imported here: the command's decorators are built from these
tuples when `smoothl1 --help` starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from smoothl1_cli.errors import InputError

LOSSES = ("smooth_l1", "huber")
REDUCTIONS = ("mean", "sum", "none")
NAN_POLICIES = ("error", "omit", "propagate")
MULTIOUTPUTS = ("elementwise", "row-sum")
INPUT_FORMATS = ("csv", "tsv", "parquet", "ipc", "jsonl")
BACKENDS = ("auto", "numpy", "cupy")
ENGINES = ("local", "dask")
REPORT_FORMATS = ("auto", "table", "json", "markdown", "markdown-compact", "csv")
COMPARISON_FORMATS = ("auto", "table", "json", "markdown")
DEFAULT_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Options:
    """Every setting of one evaluation, checked once when made."""

    target: tuple[str, ...]
    pred: tuple[str, ...] = ()
    loss: str = "smooth_l1"
    beta: float | None = None
    delta: float | None = None
    sigma: float | None = None
    multioutput: str = "elementwise"
    input_format: str | None = None
    reduction: str = "mean"
    weight: str | None = None
    nan_policy: str = "error"
    id: str | None = None
    group_by: str | None = None
    top: int = 5
    exact_quantiles: bool = False
    quantiles: bool = True  # False: no quantiles (nor their sketch's cost) where nothing shows them, as for -q
    ci: float | None = None
    bootstrap: int = 1000
    seed: int = 0
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    backend: str = "numpy"
    engine: str = "local"
    workers: int | None = None  # pieces at once; None: the machine's cores (with Dask, the local cluster's workers)
    scheduler: str | None = None  # a Dask scheduler's address; None: DASK_SCHEDULER_ADDRESS, else a local cluster
    labels: str | None = None  # targets from this file ...
    on: str | None = None  # ... joined on this key column (None: row by row)
    per_row: str | None = None  # per-row losses to this file ("-": stdout)
    fail_above: float | None = None  # the gates
    baseline: str | None = None
    max_increase: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _split_names(self.target))
        object.__setattr__(self, "pred", _split_names(self.pred))
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("reduction", self.reduction, REDUCTIONS)
        _check_choice("nan-policy", self.nan_policy, NAN_POLICIES)
        _check_choice("multioutput", self.multioutput, MULTIOUTPUTS)
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("engine", self.engine, ENGINES)
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be at least 1, not {self.workers}")
        if self.scheduler is not None and self.engine != "dask":
            raise InputError("--scheduler names a Dask scheduler: add --engine dask")
        if not self.target:
            raise InputError("--target is required: name the column that holds the true values")
        if self.top < 0:
            raise InputError(f"--top must be 0 or more, not {self.top}")
        if self.chunk_rows < 1:
            raise InputError(f"--chunk-rows must be at least 1, not {self.chunk_rows}")
        if self.ci is not None and not 0 < self.ci < 1:
            raise InputError(f"--ci is a confidence level between 0 and 1 (such as 0.95), not {self.ci}")
        if not 0 <= self.seed < 2**64:
            raise InputError(f"--seed must be a whole number from 0 to 2**64 - 1, not {self.seed}")
        if not 2 <= self.bootstrap <= 2**18:  # the weights' counter holds 2**16 hashes of 4 replicates per row
            raise InputError(f"--bootstrap takes 2 to 262144 replicates (1000 is usual), not {self.bootstrap}")
        self._check_parameter()

    def _check_parameter(self) -> None:
        if self.loss == "huber":
            if self.beta is not None or self.sigma is not None:
                raise InputError("--loss huber takes --delta, not --beta or --sigma")
            if self.delta is not None and not (self.delta > 0 and math.isfinite(self.delta)):
                raise InputError(f"--delta must be a finite number above 0, not {self.delta}")
            return
        if self.delta is not None:
            raise InputError("--delta goes with --loss huber; smooth_l1 takes --beta (or --sigma)")
        if self.beta is not None and self.sigma is not None:
            raise InputError("give --beta or --sigma, not both (beta = 1 / sigma**2)")
        if self.sigma is not None:
            if not (self.sigma > 0 and math.isfinite(self.sigma)):
                raise InputError(f"--sigma must be a finite number above 0, not {self.sigma}")
            squared = self.sigma * self.sigma  # not sigma**2, which raises OverflowError for a huge sigma
            if not (squared > 0 and math.isfinite(1 / squared)):
                raise InputError(
                    f"--sigma {self.sigma} is too small: beta = 1 / sigma**2 is beyond float64 (inf), "
                    "and beta must be finite"
                )
        if self.beta is not None and not (self.beta >= 0 and math.isfinite(self.beta)):
            raise InputError(f"--beta must be a finite number of 0 or more, not {self.beta}")

    @property
    def parameter(self) -> float:
        """beta (from --beta or --sigma) for smooth_l1, delta for huber; 1.0 unless given."""
        if self.loss == "huber":
            return 1.0 if self.delta is None else float(self.delta)
        if self.sigma is not None:
            return 1.0 / (self.sigma * self.sigma)
        return 1.0 if self.beta is None else float(self.beta)


def _split_names(names: Iterable[str] | str) -> tuple[str, ...]:
    """'a,b' and ('a', 'b') alike: repeatable options may also be comma-separated."""
    items = [names] if isinstance(names, str) else list(names)
    return tuple(part.strip() for item in items for part in item.split(",") if part.strip())


def _check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InputError(f"--{option} must be one of {', '.join(choices)}, not {value!r}")
