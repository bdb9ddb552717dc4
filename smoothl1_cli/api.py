"""The Python API: `smooth_l1` and `huber` on arrays, `evaluate` on a path, DataFrame or Table."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smoothl1_cli import backends, kernel
from smoothl1_cli.errors import InputError
from smoothl1_cli.report import Report
from smoothl1_cli.stats import ExactSum, zero_where_weightless

if TYPE_CHECKING:
    from smoothl1_cli.options import Options


def smooth_l1(pred: Any, target: Any, beta: float = 1.0, reduction: str = "mean", weight: Any = None) -> Any:
    """PyTorch's smooth_l1_loss in float64; with `weight`, mean is sum(w * l) / sum(w).

    >>> import numpy as np
    >>> smooth_l1(np.array([0.5, 1.5, 2.5]), np.array([1.0, 2.0, 3.0]))
    0.125
    """
    if not beta >= 0:
        raise InputError(f"beta must be 0 or more, not {beta}")
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN flow through silently, as in PyTorch
        xp, diff = _diff(pred, target)
        return _reduce(_terms(kernel.smooth_l1_terms, diff, float(beta), xp), reduction, weight, xp)


def huber(pred: Any, target: Any, delta: float = 1.0, reduction: str = "mean", weight: Any = None) -> Any:
    """PyTorch's huber_loss in float64 (delta * smooth_l1 with beta = delta).

    >>> import numpy as np
    >>> huber(np.array([0.0, 0.0]), np.array([1.0, 4.0]), delta=2.0, reduction="sum")
    6.5
    """
    if not delta > 0:
        raise InputError(f"delta must be above 0, not {delta}")
    with np.errstate(over="ignore", invalid="ignore"):
        xp, diff = _diff(pred, target)
        return _reduce(_terms(kernel.huber_terms, diff, float(delta), xp), reduction, weight, xp)


def _diff(pred: Any, target: Any) -> tuple[Any, Any]:
    xp = backends.namespace_of(pred)
    pred, target = xp.asarray(pred, dtype=xp.float64), xp.asarray(target, dtype=xp.float64)
    if pred.shape != target.shape:
        raise InputError(f"pred has shape {pred.shape} but target has shape {target.shape}")
    return xp, pred - target


def _terms(terms_of: Callable[[Any, float, Any], Any], diff: Any, parameter: float, xp: Any) -> Any:
    """Per-element losses in diff's shape; the kernel works in place on a flat array (a 0-d one is a scalar)."""
    return terms_of(diff.reshape(-1), parameter, xp).reshape(diff.shape)


def _reduce(terms: Any, reduction: str, weight: Any, xp: Any) -> Any:
    """The reduction of the command's statistics (smoothl1_cli.stats): compensated sums, scaled by powers
    of two where float64 would overflow, weight-0 rows left out; on the GPU the sums run there."""
    if weight is not None:
        weight = xp.asarray(weight, dtype=xp.float64)
        if weight.shape != terms.shape:
            raise InputError(f"weight has shape {weight.shape} but the losses have shape {terms.shape}")
        if bool((weight < 0).any()):
            raise InputError("weights must not be negative")
    if reduction == "none":
        return terms if weight is None else terms * weight
    if reduction not in ("sum", "mean"):
        raise InputError(f"reduction must be mean, sum or none, not {reduction!r}")
    total = ExactSum.of(zero_where_weightless(terms, weight), weight)
    if reduction == "sum":
        return _scalar(total.value, xp)
    count = ExactSum(float(terms.size)) if weight is None else ExactSum.of(weight)
    if count.value == 0:
        raise InputError("nothing to average: no elements, or weights that add up to 0")
    return _scalar(total.ratio(count), xp)


def _scalar(value: float, xp: Any) -> Any:
    return value if xp.__name__ == "numpy" else xp.asarray(value)  # CuPy in, a CuPy scalar out (as before)


def evaluate(
    source: Any, target: str | Sequence[str], pred: str | Sequence[str] | None = None, **options: Any
) -> Report:
    """Evaluate a path (or list of paths), a pandas DataFrame, a pyarrow Table or any object exporting
    Arrow data through `__arrow_c_stream__` (Polars, DuckDB); returns the Report.

    Options are the command's, in Python spelling: beta, delta, sigma, loss, reduction, weight,
    nan_policy, id, group_by, top, exact_quantiles, ci, bootstrap, seed, multioutput, input_format,
    chunk_rows, backend, engine, workers, scheduler, per_row, fail_above,
    baseline (a report's path), max_increase ('2%' or '0.01'), labels (a path) and on (a key column).
    """
    from smoothl1_cli.options import Options

    _check_keywords(options, [f.name for f in fields(Options) if f.name not in ("target", "pred")])
    try:
        settings = Options(target=_names(target), pred=_names(pred), **options)
    except TypeError as exc:
        raise InputError(str(exc)) from exc
    paths = _paths(source)
    if paths is None:
        return run(_sources(source, settings.id), settings)
    from smoothl1_cli.output import refuse_overwriting
    from smoothl1_cli.readers import expand_inputs

    files = expand_inputs(paths)  # as the command does: nothing is opened before the outputs are checked
    refuse_overwriting({"per_row": settings.per_row}, files, settings.labels)
    return run(open_all(files, settings.input_format), settings)


def _check_keywords(given: dict[str, Any], valid: list[str]) -> None:
    """A misspelt option is a TypeError, as for any Python function, naming the nearest valid one."""
    for name in given:
        if name not in valid:
            import difflib

            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (valid: {', '.join(valid)})"
            raise TypeError(f"evaluate() got an unexpected keyword argument '{name}'{hint}")


def _names(names: str | Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return ()
    return (names,) if isinstance(names, str) else tuple(names)


def _paths(source: Any) -> list[str] | None:
    """A path or a list of paths (directories and globs as on the command line); None for data in memory."""
    if isinstance(source, str | Path):
        return [str(source)]
    if isinstance(source, Sequence) and source and all(isinstance(s, str | Path) for s in source):
        return [str(s) for s in source]
    return None


def _sources(source: Any, id_column: str | None) -> list[Any]:
    """Data in memory as a source: a pyarrow Table, a pandas DataFrame, an Arrow C stream."""
    import pyarrow as pa

    from smoothl1_cli.readers import source_from_table

    if isinstance(source, pa.Table):
        return [source_from_table(source, "<Table>")]
    if type(source).__module__.startswith("pandas"):
        index = {"index" if name is None else str(name) for name in source.index.names}  # reset_index's names
        if id_column is not None and id_column not in source.columns and id_column in index:
            source = source.reset_index()  # the index as the id: its values in the worst rows and per-row output
        return [source_from_table(pa.Table.from_pandas(source, preserve_index=False), "<DataFrame>")]
    if hasattr(source, "__arrow_c_stream__"):  # Polars, DuckDB, pyarrow readers: their buffers, not a copy
        return [source_from_table(pa.table(source), f"<{type(source).__name__}>")]
    raise InputError(
        f"cannot evaluate a {type(source).__name__}: pass a path, a pandas DataFrame, a pyarrow Table "
        "or an object exporting Arrow data (__arrow_c_stream__)"
    )


def open_all(files: Sequence[str], input_format: str | None) -> list[Any]:
    """Open every input (`readers.expand_inputs`' files) before reading any, so a missing file or
    a file whose columns differ is reported before work starts; files are read for their headers
    and opened again when streamed, so any number of them can be inputs."""
    from smoothl1_cli.readers import open_lazily

    if files.count("-") > 1:
        raise InputError("standard input ('-') can be read only once")
    opened: list[Any] = []
    try:
        for path in files:
            opened.append(open_lazily(path, input_format))
            _check_same_columns(opened[0], opened[-1])
    except BaseException:
        for source in opened:
            source.close()
        raise
    return opened


def _check_same_columns(first: Any, other: Any) -> None:
    """Several inputs are one table: each must have the first one's columns."""
    theirs, ours = set(other.columns), set(first.columns)
    missing = [c for c in first.columns if c not in theirs]
    extra = [c for c in other.columns if c not in ours]
    if missing or extra:
        how = "; ".join(
            part
            for part in (
                f"missing {', '.join(repr(c) for c in missing)}" if missing else "",
                f"extra {', '.join(repr(c) for c in extra)}" if extra else "",
            )
            if part
        )
        raise InputError(
            f"{other.label}: its columns differ from those of {first.label} ({how}); inputs are read as one table"
        )


def run(sources: list[Any], settings: Options) -> Report:
    """Evaluate opened sources (targets from `settings.labels` if given), writing per-row losses to
    `settings.per_row` ('-' is stdout) as it goes; then gate."""
    from smoothl1_cli import gate
    from smoothl1_cli.engines import evaluate_sources
    from smoothl1_cli.output import CsvRowSink, ParquetRowSink, atomic_output
    from smoothl1_cli.plan import plan_columns

    with ExitStack() as stack:
        for source in sources:
            stack.callback(source.close)
        labels, on, per_row, baseline = settings.labels, settings.on, settings.per_row, settings.baseline
        if settings.max_increase is not None and baseline is None:
            raise InputError("--max-increase needs --baseline REPORT to compare against")
        tolerance = gate.Tolerance.parse(settings.max_increase or "0")
        if settings.fail_above is not None:
            gate.check_limit(settings.fail_above)
        saved = gate.load_report(baseline) if baseline is not None else None
        if on is not None and labels is None:
            raise InputError("--on KEY goes with --labels FILE: the key joins the predictions to the labels")
        if labels is not None:
            from smoothl1_cli.labels import with_labels
            from smoothl1_cli.readers import open_source

            if labels == "-" and "-" in (source.label for source in sources):
                raise InputError("standard input ('-') can be read only once: not as an input and as --labels too")
            label_source = open_source(labels, None)
            stack.callback(label_source.close)
            sources = with_labels(sources, label_source, settings.target, on)
        sink = None
        if per_row is not None and settings.engine != "dask":  # (Dask's workers write a directory of parts)
            from smoothl1_cli.readers.fs import name_of, redact

            name = name_of(per_row).lower()
            parquet = name.endswith((".parquet", ".pq"))
            if not (parquet or name.endswith(".csv") or per_row == "-"):
                raise InputError(
                    f"--per-row {redact(per_row)}: name a .csv or .parquet file, or - for stdout "
                    "(a directory of Parquet parts, one per piece, is for --engine dask)"
                )
            plan = plan_columns(sources[0], settings)
            out = sys.stdout.buffer if per_row == "-" else stack.enter_context(atomic_output(per_row, "--per-row"))
            sink = (ParquetRowSink if parquet else CsvRowSink)(out, plan.id, plan.pairs)
            stack.callback(sink.close)  # before the file it writes to is closed (or, on an error, removed)
        report = evaluate_sources(sources, settings, sink)
    if settings.fail_above is not None:
        report = report.with_gate(gate.fail_above(report, settings.fail_above))
    if saved is not None and baseline is not None:  # (both or neither: for the type checker)
        comparison = gate.compare(saved, report.to_dict(), tolerance, baseline)
        report = report.with_gate(comparison.gate, comparison)
    return report
