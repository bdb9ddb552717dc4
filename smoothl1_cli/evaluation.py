"""evaluate(sources, options) -> Report: column pairing, the NaN policy, and the chunked reduction.

Readers yield Arrow batches; they are re-cut into chunks aligned to multiples of
`chunk_rows` over all inputs, so the same rows always form the same chunks whatever the
format or block size, and the same input gives the same report byte for byte.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from smoothl1_cli import backends, kernel
from smoothl1_cli.errors import InputError
from smoothl1_cli.readers import (
    TYPED_FORMATS,
    Source,
    beyond_exact_integers,
    first_unparsable,
    to_float64,
    to_int64,
)
from smoothl1_cli.report import GroupResult, InputInfo, Report, Result, WorstRow
from smoothl1_cli.sketch import EXACT_LIMIT, QuantileSketch
from smoothl1_cli.stats import Chunk, GroupStats, LossStats, zero_where_weightless

if TYPE_CHECKING:
    from smoothl1_cli.bootstrap import BootstrapStats

LOSSES = ("smooth_l1", "huber")
REDUCTIONS = ("mean", "sum", "none")
NAN_POLICIES = ("error", "omit", "propagate")
MULTIOUTPUTS = ("elementwise", "row-sum")
PRED_NAMES = ("pred", "prediction", "y_pred", "yhat", "y_hat")
DEFAULT_CHUNK_ROWS = 65_536
TEXT_FORMATS = ("csv", "tsv")
_PLAIN_INT = "^(0|-?[1-9][0-9]{0,17})$"  # an int64 written plainly: not "-0", "+7", "07" or " 7"


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
    ci: float | None = None
    bootstrap: int = 1000
    seed: int = 0
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    backend: str = "numpy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", _split_names(self.target))
        object.__setattr__(self, "pred", _split_names(self.pred))
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("reduction", self.reduction, REDUCTIONS)
        _check_choice("nan-policy", self.nan_policy, NAN_POLICIES)
        _check_choice("multioutput", self.multioutput, MULTIOUTPUTS)
        _check_choice("backend", self.backend, backends.BACKENDS)
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


class RowSink(Protocol):
    """Where per-row losses go while evaluating (a CSV on stdout, a file)."""

    def write(
        self,
        rows: np.ndarray[Any, Any],
        ids: pa.Array | None,
        losses: list[np.ndarray[Any, Any]],
        omitted: np.ndarray[Any, Any] | None,
    ) -> None: ...


@dataclass(frozen=True)
class Plan:
    """Which columns pair up into which results."""

    pairs: tuple[tuple[str, str], ...]  # (pred, target) per result
    weight: str | None
    id: str | None
    group_by: str | None = None

    @property
    def numeric(self) -> list[str]:
        names = [name for pair in self.pairs for name in pair] + ([self.weight] if self.weight else [])
        return list(dict.fromkeys(names))

    @property
    def labels(self) -> list[str]:
        """The columns read as they are (not as numbers): --id and --group-by."""
        return list(dict.fromkeys(name for name in (self.id, self.group_by) if name))

    @property
    def columns(self) -> list[str]:
        return self.numeric + [name for name in self.labels if name not in self.numeric]

    @property
    def multi_output(self) -> bool:
        return len({target for _, target in self.pairs}) > 1


def plan_columns(source: Source, options: Options) -> Plan:
    """Resolve and pair the target, prediction, weight and id columns against the first input."""
    targets = [_find_column(source, name, "target") for name in options.target]
    weight = _find_column(source, options.weight, "weight") if options.weight else None
    id_column = _find_column(source, options.id, "id") if options.id else None
    group_by = _find_column(source, options.group_by, "group-by") if options.group_by else None
    reserved = set(targets) | {weight, id_column, group_by}
    if options.pred:
        preds = [_find_column(source, name, "pred") for name in options.pred]
    else:
        preds = _default_preds(source, targets, reserved)
    _check_roles(targets, preds, weight, id_column)
    if len(targets) == 1:
        pairs = tuple((pred, targets[0]) for pred in preds)
    elif len(preds) == len(targets):
        pairs = tuple(zip(preds, targets, strict=True))
    else:
        where = "" if options.pred else f"{source.label}: "  # detected: say where they were found
        raise InputError(
            f"{where}{len(targets)} targets ({', '.join(targets)}) pair up with {len(targets)} predictions in order, "
            f"but {len(preds)} were {'given' if options.pred else 'found'} ({', '.join(preds)}); "
            "pass one --pred per target"
        )
    return Plan(pairs, weight, id_column, group_by)


def _check_roles(targets: list[str], preds: list[str], weight: str | None, id_column: str | None) -> None:
    """Each column plays one role: a target given twice, or a target that is also the weight, would
    score a column against itself or against the wrong values. Several targets may share a pred
    (pairs differ by target); --group-by may be any column, --id included."""
    for role, names in (("target", targets), ("pred", preds if len(targets) == 1 else [])):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise InputError(f"--{role} '{name}' is given twice; name each {role} column once")
            seen.add(name)
    roles: dict[str, str] = {}
    optional = [(role, column) for role, column in (("weight", weight), ("id", id_column)) if column is not None]
    for role, column in [*(("target", t) for t in targets), *(("pred", p) for p in preds), *optional]:
        if roles.setdefault(column, role) != role:
            raise InputError(
                f"column '{column}' is both the {roles[column]} and the {role}; a column can have one of these roles"
            )


def _find_column(source: Source, name: str, role: str) -> str:
    if source.columns.count(name) > 1:
        raise InputError(
            f"{source.label}: column '{name}' appears {source.columns.count(name)} times in the input; "
            "rename the copies so that each column has its own name"
        )
    if source.has_column(name):
        return name
    shown = ", ".join(source.columns[:20]) + (
        f", ... ({len(source.columns)} in all)" if len(source.columns) > 20 else ""
    )
    message = f"{source.label}: {role} column '{name}' not found (columns: {shown})"
    folded = {column.lower(): column for column in source.columns}
    import difflib

    close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.6)
    if close:
        message += f"; did you mean '{folded[close[0]]}'?"
    raise InputError(message)


def _default_preds(source: Source, targets: list[str], reserved: set[str | None]) -> list[str]:
    """SPEC's default: the one conventionally named prediction column, else every other numeric column."""
    if len(targets) == 1:
        target = targets[0].lower()
        names = {*PRED_NAMES, f"{target}_pred", f"pred_{target}"}
        named = [c for c in source.columns if c.lower() in names and c not in reserved]
        if len(named) == 1:
            return named
    else:
        per_target = [
            [c for c in source.columns if c.lower() in (f"{t.lower()}_pred", f"pred_{t.lower()}")] for t in targets
        ]
        if all(len(found) == 1 for found in per_target):
            return [found[0] for found in per_target]
    rest = list(dict.fromkeys(c for c in source.columns if c in source.numeric and c not in reserved))
    if not rest:
        raise InputError(
            f"{source.label}: no prediction column found: none is named {', '.join(PRED_NAMES)} "
            f"and no other column is numeric (columns: {', '.join(source.columns)}); pass --pred"
        )
    return rest


def _check_source(source: Source, plan: Plan) -> None:
    """Every input must hold the planned columns, and typed inputs must hold numbers in them."""
    for name in plan.columns:
        _find_column(source, name, "planned")
    if source.format not in TYPED_FORMATS:
        return
    for name in plan.numeric:
        if name not in source.numeric:
            raise InputError(f"{source.label}: column '{name}' is of type {source.types[name]}, not numeric")


@dataclass
class _Piece:
    """A run of consecutive rows: float64 columns, and the id and group columns as Arrow arrays."""

    columns: dict[str, np.ndarray[Any, Any]]
    ids: list[pa.Array]
    groups: list[pa.Array]
    rows: int
    missing: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)  # where a column with nulls has them

    def slice(self, start: int, length: int) -> _Piece:
        return _Piece(
            {name: values[start : start + length] for name, values in self.columns.items()},
            [ids.slice(start, length) for ids in self.ids],
            [groups.slice(start, length) for groups in self.groups],
            length,
            {name: mask[start : start + length] for name, mask in self.missing.items()},
        )

    @staticmethod
    def concat(pieces: list[_Piece]) -> _Piece:
        if len(pieces) == 1:
            return pieces[0]
        names = pieces[0].columns
        return _Piece(
            {name: np.concatenate([p.columns[name] for p in pieces]) for name in names},
            [ids for p in pieces for ids in p.ids],
            [groups for p in pieces for groups in p.groups],
            sum(p.rows for p in pieces),
            {
                name: np.concatenate([p.missing.get(name, np.zeros(p.rows, dtype=bool)) for p in pieces])
                for name in dict.fromkeys(name for p in pieces for name in p.missing)
            },
        )


def _aligned(pieces: Iterator[_Piece], chunk_rows: int) -> Iterator[_Piece]:
    """Re-cut pieces of any size into chunks of exactly `chunk_rows` rows (the last may be shorter)."""
    pending: list[_Piece] = []
    buffered = 0
    for piece in pieces:
        start = 0
        while start < piece.rows:
            take = min(chunk_rows - buffered, piece.rows - start)
            pending.append(piece.slice(start, take) if take < piece.rows else piece)
            buffered += take
            start += take
            if buffered == chunk_rows:
                yield _Piece.concat(pending)
                pending, buffered = [], 0
    if pending:
        yield _Piece.concat(pending)


@dataclass
class _BadRows:
    """Rows with a missing, NaN or infinite value: how many, and the first one."""

    count: int = 0
    first: tuple[int, str, str] | None = None  # global row, column, the value as the input had it


@dataclass
class _Run:
    """The mutable state of one evaluation pass: accumulators and counters."""

    plan: Plan
    options: Options
    xp: Any
    sink: RowSink | None
    stats: list[LossStats]
    row_sum: LossStats | None
    groups: _Groups | None = None
    boot: BootstrapStats | None = None
    text_labels: _TextLabels = field(default_factory=lambda: _TextLabels({}))
    rows: int = 0
    omitted: int = 0
    bad: _BadRows = field(default_factory=_BadRows)
    notes: dict[str, str] = field(default_factory=dict)  # warnings for the report, first one of a kind kept
    overflows: dict[str, list[int]] = field(default_factory=dict)  # pred -> [rows, first row]

    def terms(self, diff: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        xp, parameter = self.xp, self.options.parameter
        data = diff if xp is np else xp.asarray(diff)
        if self.options.loss == "huber":
            out = kernel.huber_terms(data, parameter, xp)
        else:
            out = kernel.smooth_l1_terms(data, parameter, xp)
        return backends.to_numpy(out)

    def reduce(self, piece: _Piece) -> None:
        """Fold one aligned chunk into every accumulator (and the per-row sink)."""
        start, n = self.rows, piece.rows
        self.rows += n
        columns = piece.columns
        finite = np.ones(n, dtype=bool)
        for name in self.plan.numeric:
            finite &= np.isfinite(columns[name])
        bad_rows = n - int(np.count_nonzero(finite))
        if bad_rows:
            self._note_bad(start, piece, finite, bad_rows)
        if self.bad.count and self.options.nan_policy == "error":
            return  # the run ends in an error: only count what is left
        rows = np.arange(start, start + n, dtype=np.int64)
        keep = None
        if bad_rows and self.options.nan_policy == "omit":
            keep = finite
            self.omitted += bad_rows
            rows = rows[keep]
            columns = {name: values[keep] for name, values in columns.items()}
        weight = columns[self.plan.weight] if self.plan.weight else None
        if weight is not None:
            self._check_weights(weight, rows)
        ids_of = _ids_getter(piece.ids, keep)
        group_codes = self.groups.codes_of(piece.groups, keep) if self.groups is not None else None
        losses, chunks = [], []
        parameter = self.options.parameter
        with np.errstate(invalid="ignore", over="ignore"):
            for index, (pred, target) in enumerate(self.plan.pairs):
                diff = columns[pred] - columns[target]
                loss = self.terms(diff)
                self._note_overflow(pred, zero_where_weightless(loss, weight), columns[pred], columns[target], rows)
                abs_diff = np.abs(diff)
                linear = abs_diff >= parameter
                if bad_rows and self.options.nan_policy == "propagate":
                    linear = np.where(np.isnan(abs_diff), np.nan, linear)  # NaN rows make the share NaN too
                chunk = Chunk(
                    loss, abs_diff, None, linear, rows, weight,
                    columns[pred], columns[target], ids_of,
                )  # fmt: skip
                self.stats[index] = self.stats[index].update(chunk)
                if self.groups is not None:
                    assert group_codes is not None
                    self.groups.update(index, group_codes, chunk)
                losses.append(loss)
                chunks.append(chunk)
            if self.row_sum is not None:
                self.row_sum = self.row_sum.update(_row_sum(chunks))
            if self.boot is not None:
                self.boot = self.boot.update(rows, losses, weight)
        if self.sink is not None:
            omitted = None if keep is None else ~keep
            self.sink.write(
                np.arange(start, start + n, dtype=np.int64), _concat_ids(piece.ids), _spread(losses, keep, n), omitted
            )

    def _note_overflow(
        self,
        pred: str,
        loss: np.ndarray[Any, Any],
        prediction: np.ndarray[Any, Any],
        actual: np.ndarray[Any, Any],
        rows: np.ndarray[Any, Any],
    ) -> None:
        """Count rows whose loss is infinite though their inputs are finite: float64 overflowed."""
        infinite = np.isinf(loss)
        if not infinite.any():
            return
        overflowed = np.flatnonzero(infinite & np.isfinite(prediction) & np.isfinite(actual))
        if overflowed.size:
            seen = self.overflows.setdefault(pred, [0, int(rows[overflowed[0]])])
            seen[0] += int(overflowed.size)

    def _note_bad(self, start: int, piece: _Piece, finite: np.ndarray[Any, Any], count: int) -> None:
        self.bad.count += count
        if self.bad.first is None:
            position = int(np.flatnonzero(~finite)[0])
            for name in self.plan.numeric:
                value = float(piece.columns[name][position])
                if not math.isfinite(value):
                    missing = name in piece.missing and piece.missing[name][position]
                    self.bad.first = (start + position, name, "missing" if missing else f"value {format_value(value)}")
                    break

    def _check_weights(self, weight: np.ndarray[Any, Any], rows: np.ndarray[Any, Any]) -> None:
        negative = np.flatnonzero(weight < 0)
        if negative.size:
            position = int(negative[0])
            raise _RowError(int(rows[position]), self.plan.weight or "", float(weight[position]), "is negative")


class _Groups:
    """Per-group statistics of every result: group values get codes in order of first appearance."""

    def __init__(self, results: int) -> None:
        self.codes: dict[Any, int] = {}
        self.stats = [GroupStats.empty(0) for _ in range(results)]

    def codes_of(self, groups: list[pa.Array], keep: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
        """The group code of each (kept) row of a chunk; new values get the next codes.

        Each input's part of the chunk is encoded by itself, so keys are compared by value
        (7 from an int32 file is 7 from an int64 one), never through a common type.
        """
        codes = np.concatenate([self._codes_of(column) for column in groups])
        return codes[keep] if keep is not None else codes

    def _codes_of(self, column: pa.Array) -> np.ndarray[Any, Any]:
        encoded = column.dictionary_encode(null_encoding="encode")
        mapping = np.array(
            [self.codes.setdefault(_json_id(value), len(self.codes)) for value in encoded.dictionary.to_pylist()],
            dtype=np.int64,
        )
        indices = to_int64(encoded.indices)
        return mapping[indices] if mapping.size else indices

    def update(self, index: int, codes: np.ndarray[Any, Any], chunk: Chunk) -> None:
        self.stats[index] = self.stats[index].update(codes, len(self.codes), chunk)

    def results(self, plan: Plan, reduction: str, text_labels: _TextLabels) -> tuple[GroupResult, ...]:
        """Every group's result for every pred, groups sorted by value (missing values last).

        A group whose rows were all omitted is left out. Keys read from delimited text are typed
        as `_TextLabels` says.
        """
        assert plan.group_by is not None
        collecting = gc.isenabled()
        gc.disable()  # a million groups make millions of objects, none in a cycle: passes over them cost more
        try:
            every = [stats.summaries() for stats in self.stats]  # all groups at once, not group by group
            seen = every[0]
            codes = [
                (text_labels.typed(plan.group_by, key), code) for key, code in self.codes.items() if seen[code].count
            ]
            codes.sort(key=lambda item: _sort_key(item[0]))
            out = []
            for key, code in codes:
                for (pred, target), summaries in zip(plan.pairs, every, strict=True):
                    summary = summaries[code]
                    value = summary.sum if reduction == "sum" else summary.mean
                    out.append(GroupResult(key, Result(pred, target, 0, value, summary)))
            return tuple(out)
        finally:
            if collecting:
                gc.enable()


@dataclass
class _TextLabels:
    """Whether each --id or --group-by column read from delimited text holds only integers written
    plainly (missing values aside). Such a column is one of integers, as a Parquet copy of the file
    has it; any other value ("07", " 7", "-0", "x") keeps the whole column as text, so no two
    spellings ever become one key ("0" and "-0" are two groups)."""

    integral: dict[str, bool]

    def observe(self, name: str, column: pa.Array, from_text: bool) -> None:
        if not pa.types.is_string(column.type) or not self.integral.get(name, True):
            return
        if not from_text:  # text that a typed format (JSON Lines, Parquet) holds as text stays text
            self.integral[name] = False
            return
        import pyarrow.compute as pc

        plain = pc.all(pc.match_substring_regex(column, _PLAIN_INT)).as_py()
        self.integral[name] = plain is not False  # None: no value but missing ones

    def typed(self, name: str, value: Any) -> Any:
        return int(value) if isinstance(value, str) and self.integral.get(name) else value


def _label_column(column: pa.Array, label: str, name: str, role: str) -> pa.Array:
    """An --id or --group-by column in one type per kind, decided by its type alone so that every
    chunk of every input agrees: integers as int64, floats as float64, text as string, and a
    dictionary (a pandas categorical) by its values. Lists and structs are refused."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    kind = column.type
    if pa.types.is_nested(kind):
        raise InputError(
            f"{label}: {role} column '{name}' holds values of type {kind}; an id or group key must be a number or text"
        )
    if pa.types.is_integer(kind) and kind not in (pa.int64(), pa.uint64()):  # uint64 beyond int64 stays exact
        return column.cast(pa.int64())
    if pa.types.is_floating(kind) and kind != pa.float64():
        return column.cast(pa.float64())
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return column.cast(pa.string())
    return column


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


class _RowError(Exception):
    """An input error at a global row; `evaluate` names the file and the row within it."""

    def __init__(self, row: int, column: str, value: float | str, problem: str) -> None:
        super().__init__(row, column, value, problem)
        self.row, self.column, self.value, self.problem = row, column, value, problem


def _row_sum(chunks: list[Chunk]) -> Chunk:
    """The k outputs' chunks as one row-sum chunk: losses, |d| and d**2 summed over the outputs, the
    linear share averaged (its NaN, under propagate, stays NaN)."""
    return Chunk(
        reduce(np.add, [c.loss for c in chunks]),
        reduce(np.add, [c.abs_diff for c in chunks]),
        reduce(np.add, [np.square(c.abs_diff) for c in chunks]),
        reduce(np.add, [c.linear.astype(np.float64) for c in chunks]) / len(chunks),
        chunks[0].rows,
        chunks[0].weight,
    )


def _ids_getter(
    ids: list[pa.Array], keep: np.ndarray[Any, Any] | None
) -> Callable[[np.ndarray[Any, Any]], list[Any]] | None:
    if not ids:
        return None

    def ids_of(positions: np.ndarray[Any, Any]) -> list[Any]:
        if keep is not None:
            positions = np.flatnonzero(keep)[positions]
        column = _concat_ids(ids)
        assert column is not None
        return [_json_id(value) for value in column.take(pa.array(positions, type=pa.int64())).to_pylist()]

    return ids_of


def _concat_ids(ids: list[pa.Array]) -> pa.Array | None:
    if not ids:
        return None
    if len(ids) == 1:
        return ids[0]
    if len({a.type for a in ids}) > 1:
        ids = [a.cast(pa.string()) for a in ids]
    return pa.concat_arrays(ids)


def _json_id(value: Any) -> Any:
    """A JSON-ready key or id: NaN is missing (None), other types become text."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _spread(
    losses: list[np.ndarray[Any, Any]], keep: np.ndarray[Any, Any] | None, n: int
) -> list[np.ndarray[Any, Any]]:
    """Losses at their rows again (an omitted row's slot is masked when written)."""
    if keep is None:
        return losses
    spread = []
    for loss in losses:
        full = np.full(n, np.nan)
        full[keep] = loss
        spread.append(full)
    return spread


def evaluate_sources(
    sources: Sequence[Source],
    options: Options,
    sink: RowSink | None = None,
) -> Report:
    """Stream every source through the accumulators and build the report."""
    plan = plan_columns(sources[0], options)
    for source in sources:
        _check_source(source, plan)
    k = len(plan.pairs)
    run = _Run(
        plan,
        options,
        backends.namespace(options.backend),
        sink,
        [_stats(options, options.top) for _ in range(k)],
        _stats(options, 0) if plan.multi_output and options.multioutput == "row-sum" else None,
        _Groups(k) if plan.group_by else None,
        _bootstrap(k, options),
    )
    inputs: list[InputInfo] = []
    text = set(plan.labels)
    offsets: list[int] = []
    try:
        pieces = _pieces(sources, plan, text, options.chunk_rows, inputs, offsets, run.notes, run.text_labels)
        with np.errstate(all="ignore"):  # inf and NaN are handled (and reported) explicitly, not warned about
            for piece in _aligned(pieces, options.chunk_rows):
                run.reduce(piece)
            return _report(run, sources, offsets, tuple(inputs))
    except _RowError as exc:
        label, row = _locate(sources, offsets, exc.row)
        raise InputError(f"{label}: row {row}, column '{exc.column}': {format_value(exc.value)} {exc.problem}") from exc


def _numbers(column: pa.Array | pa.ChunkedArray, name: str, first_row: int) -> np.ndarray[Any, Any]:
    """A numeric column as float64; one that is also --id or --group-by arrives as text, so a value that
    is not a number is found here, not by the reader."""
    try:
        return to_float64(column)
    except pa.ArrowInvalid:
        row = first_unparsable(pa.chunked_array([column]) if isinstance(column, pa.Array) else column)
        if row is None:
            raise
        raise _RowError(first_row + row, name, column[row].as_py(), "is not a number") from None


def _stats(options: Options, top: int) -> LossStats:
    """Empty statistics: quantiles from the sketch, or from every value with --exact-quantiles."""
    return LossStats(top_k=top, sketch=QuantileSketch(math.inf if options.exact_quantiles else EXACT_LIMIT))


def _pieces(
    sources: Sequence[Source],
    plan: Plan,
    text: set[str],
    chunk_rows: int,
    inputs: list[InputInfo],
    offsets: list[int],
    notes: dict[str, str],
    text_labels: _TextLabels,
) -> Iterator[_Piece]:
    """Each source's batches as pieces, in order; records each input's row count and first row."""
    total = 0
    for source in sources:
        offsets.append(total)
        rows = 0
        try:
            for batch in source.batches(plan.columns, text, chunk_rows):
                for name in plan.numeric:
                    if f"int:{name}" not in notes and beyond_exact_integers(batch, name):
                        notes[f"int:{name}"] = (
                            f"{source.label}: column '{name}' holds integers beyond 2**53, which float64 (and so "
                            "PyTorch's float64) rounds; the losses are of the rounded values"
                        )
                columns = {name: _numbers(batch.column(name), name, total + rows) for name in plan.numeric}
                missing = {
                    name: batch.column(name).is_null().to_numpy(zero_copy_only=False)
                    for name in plan.numeric
                    if batch.column(name).null_count
                }
                labels = {
                    name: _label_column(
                        batch.column(name), source.label, name, "--id" if name == plan.id else "--group-by"
                    )
                    for name in plan.labels
                }
                for name, column in labels.items():
                    text_labels.observe(name, column, from_text=source.format in TEXT_FORMATS)
                ids = [labels[plan.id]] if plan.id else []
                groups = [labels[plan.group_by]] if plan.group_by else []
                rows += batch.num_rows
                yield _Piece(columns, ids, groups, batch.num_rows, missing)
        finally:
            source.close()
        inputs.append(InputInfo(source.label, source.format, rows))
        total += rows


def _locate(sources: Sequence[Source], offsets: list[int], row: int) -> tuple[str, int]:
    """The input a global row came from, and the row's number within it."""
    index = max(i for i, offset in enumerate(offsets) if offset <= row)
    return sources[index].label, row - offsets[index]


def format_value(value: float | str) -> str:
    if isinstance(value, str):  # as the input spelt it
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _labels(sources: Sequence[Source]) -> str:
    return ", ".join(s.label for s in sources)


def _report(run: _Run, sources: Sequence[Source], offsets: list[int], inputs: tuple[InputInfo, ...]) -> Report:
    options, plan = run.options, run.plan
    if run.rows == 0:
        raise InputError(f"{_labels(sources)}: no data rows to evaluate (only a header, or nothing)")
    if run.bad.count and options.nan_policy == "error":
        assert run.bad.first is not None
        row, column, value = run.bad.first
        label, local = _locate(sources, offsets, row)
        raise InputError(
            f"{label}: {run.bad.count} row{'s' if run.bad.count > 1 else ''} with a missing, NaN or infinite value "
            f"(first: row {local}, column '{column}', {value}); "
            "pass --nan-policy omit to skip such rows, or --nan-policy propagate to keep them as NaN"
        )
    if run.omitted == run.rows:
        raise InputError(f"{_labels(sources)}: no rows left: all {run.rows} rows were omitted for missing values")
    results = tuple(
        _result(pred, target, stats, run.omitted, options, sources)
        for (pred, target), stats in zip(plan.pairs, run.stats, strict=True)
    )
    if run.boot is not None:
        results = _with_uncertainty(results, run.boot, options)
    overall = None
    if plan.multi_output:
        stats = run.row_sum if run.row_sum is not None else reduce(LossStats.merge, run.stats)
        overall = _result("overall", "overall", stats, run.omitted, options, sources)
    worst = tuple(
        WorstRow(
            int(row), pred, target, float(p), float(a), float(loss), run.text_labels.typed(plan.id or "", identifier)
        )
        for (pred, target), stats in zip(plan.pairs, run.stats, strict=True)
        if stats.worst is not None
        for loss, row, p, a, identifier in zip(
            stats.worst.loss,
            stats.worst.rows,
            stats.worst.prediction,
            stats.worst.actual,
            stats.worst.ids or (None,) * len(stats.worst.rows),
            strict=True,
        )
    )
    return Report(
        loss=options.loss,
        parameter=options.parameter,
        reduction=options.reduction,
        nan_policy=options.nan_policy,
        multioutput=options.multioutput,
        weight=plan.weight,
        id_column=plan.id,
        inputs=inputs,
        rows=run.rows,
        results=results,
        overall=overall,
        group_by=plan.group_by,
        groups=run.groups.results(plan, options.reduction, run.text_labels) if run.groups is not None else (),
        worst_rows=worst,
        warnings=_warnings(run, sources, offsets, results + ((overall,) if overall else ())),
    )


def _warnings(run: _Run, sources: Sequence[Source], offsets: list[int], results: Sequence[Result]) -> tuple[str, ...]:
    """What the values cannot show: float64 overflow, integers it rounded."""
    notes = list(run.notes.values())
    for result in results:
        if math.isinf(result.summary.sum) and math.isfinite(result.summary.max):
            notes.append(f"{result.pred}: the sum of the losses overflows float64, so `sum` is inf")
    for pred, (count, first) in run.overflows.items():
        label, row = _locate(sources, offsets, first)
        notes.append(
            f"{label}: {pred}: the loss overflows float64 to inf in {count} row{'s' if count > 1 else ''} "
            f"(first: row {row}) though pred and target are finite; the value is inf"
        )
    return tuple(notes)


def _bootstrap(results: int, options: Options) -> BootstrapStats | None:
    if options.ci is None:
        return None
    from smoothl1_cli.bootstrap import BootstrapStats  # only with --ci: its tables cost start-up time

    return BootstrapStats.empty(results, options.bootstrap, options.seed)


def _with_uncertainty(results: tuple[Result, ...], boot: BootstrapStats, options: Options) -> tuple[Result, ...]:
    """Each result's bootstrap interval; from the second on, a paired test against the first."""
    from smoothl1_cli.bootstrap import interval, paired_p_value

    level = options.ci
    assert level is not None
    method = {"level": level, "replicates": options.bootstrap, "seed": options.seed, "method": "poisson-bootstrap"}
    first = boot.replicate_values(0, options.reduction)
    out = []
    for index, result in enumerate(results):
        values = boot.replicate_values(index, options.reduction)
        low, high = interval(values, level)
        paired = None
        if index > 0:
            differences = values - first
            d_low, d_high = interval(differences, level)
            paired = {
                "against": results[0].pred,
                "difference": result.value - results[0].value,
                "low": d_low,
                "high": d_high,
                "p_value": paired_p_value(differences),
            }
        out.append(replace(result, ci={**method, "low": low, "high": high}, paired=paired))
    return tuple(out)


def _result(
    pred: str, target: str, stats: LossStats, omitted: int, options: Options, sources: Sequence[Source]
) -> Result:
    summary = stats.summarize()
    if summary.weight == 0:
        raise InputError(f"{_labels(sources)}: the weights in '{options.weight}' add up to 0; nothing to average")
    value = summary.sum if options.reduction == "sum" else summary.mean
    return Result(pred, target, omitted, value, summary)
