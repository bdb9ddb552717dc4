"""The state of an evaluation's rows: every accumulator and counter, as plain data that pickles.

`update(block, xp)` folds in one chunk of rows; `merge(other)` adds the state of the rows right
after these; `finish(inputs)` makes the Report. Row numbers in a state count from its own first
row, and a merge shifts the right-hand state's rows past the left-hand one's, so at the root of
the merge tree every row number is global.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from smoothl1_cli import backends, kernel
from smoothl1_cli.errors import InputError
from smoothl1_cli.options import Options
from smoothl1_cli.plan import Plan
from smoothl1_cli.readers import to_int64
from smoothl1_cli.report import GroupResult, InputInfo, Report, Result, WorstRow
from smoothl1_cli.sketch import EXACT_LIMIT, QuantileSketch
from smoothl1_cli.stats import Chunk, GroupStats, LossStats, zero_where_weightless

if TYPE_CHECKING:
    from smoothl1_cli.bootstrap import BootstrapStats

_PLAIN_INT = "^(0|-?[1-9][0-9]{0,17})$"  # an int64 written plainly: not "-0", "+7", "07" or " 7"


class RowSink(Protocol):
    """Where per-row losses go while evaluating (a CSV on stdout, a file)."""

    def write(
        self,
        rows: np.ndarray[Any, Any],
        ids: pa.Array | None,
        losses: list[np.ndarray[Any, Any]],
        omitted: np.ndarray[Any, Any] | None,
    ) -> None: ...


@dataclass
class Block:
    """A run of consecutive rows: float64 columns, and the id and group columns as Arrow arrays."""

    columns: dict[str, np.ndarray[Any, Any]]
    ids: list[pa.Array]
    groups: list[pa.Array]
    rows: int
    missing: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)  # where a column with nulls has them

    def slice(self, start: int, length: int) -> Block:
        return Block(
            {name: values[start : start + length] for name, values in self.columns.items()},
            _sliced(self.ids, start, length),
            _sliced(self.groups, start, length),
            length,
            {name: mask[start : start + length] for name, mask in self.missing.items()},
        )

    @staticmethod
    def concat(blocks: list[Block]) -> Block:
        if len(blocks) == 1:
            return blocks[0]
        names = blocks[0].columns
        return Block(
            {name: np.concatenate([b.columns[name] for b in blocks]) for name in names},
            [ids for b in blocks for ids in b.ids],
            [groups for b in blocks for groups in b.groups],
            sum(b.rows for b in blocks),
            {
                name: np.concatenate([b.missing.get(name, np.zeros(b.rows, dtype=bool)) for b in blocks])
                for name in dict.fromkeys(name for b in blocks for name in b.missing)
            },
        )


def _sliced(parts: list[pa.Array], start: int, length: int) -> list[pa.Array]:
    """Rows start .. start + length of the arrays `parts` one after another (a block joined from several
    holds one array of each)."""
    out = []
    for part in parts:
        if length > 0 and start < len(part):
            out.append(part.slice(start, min(length, len(part) - start)))
            length -= len(out[-1])
        start = max(0, start - len(part))
    return out or [part.slice(0, 0) for part in parts[:1]]


def aligned(blocks: Iterator[Block], chunk_rows: int) -> Iterator[Block]:
    """Re-cut blocks of any size into chunks of exactly `chunk_rows` rows (the last may be shorter), so
    the same rows form the same chunks whatever the format or the reader's block size."""
    pending: list[Block] = []
    buffered = 0
    for block in blocks:
        start = 0
        while start < block.rows:
            take = min(chunk_rows - buffered, block.rows - start)
            pending.append(block.slice(start, take) if take < block.rows else block)
            buffered += take
            start += take
            if buffered == chunk_rows:
                yield Block.concat(pending)
                pending, buffered = [], 0
    if pending:
        yield Block.concat(pending)


class RowError(Exception):
    """An input error at a row of a state; the engine names the input and the row within it."""

    def __init__(self, row: int, column: str, value: float | str, problem: str) -> None:
        super().__init__(row, column, value, problem)
        self.row, self.column, self.value, self.problem = row, column, value, problem

    def message(self, label: str, row: int) -> str:
        return f"{label}: row {row}, column '{self.column}': {format_value(self.value)} {self.problem}"


def format_value(value: float | str) -> str:
    if isinstance(value, str):  # as the input spelt it
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")


@dataclass
class BadRows:
    """Rows with a missing, NaN or infinite value: how many, and the first one."""

    count: int = 0
    first: tuple[int, str, str] | None = None  # row, column, the value as the input had it

    def merge(self, other: BadRows, shift: int) -> BadRows:
        first = self.first
        if first is None and other.first is not None:
            first = (other.first[0] + shift, *other.first[1:])
        return BadRows(self.count + other.count, first)


@dataclass
class TextLabels:
    """Whether each --id or --group-by column read from delimited text holds only integers written
    plainly (missing values aside). Such a column is one of integers, as a Parquet copy of the file
    has it; any other value ("07", " 7", "-0", "x") keeps the whole column as text, so no two
    spellings ever become one key ("0" and "-0" are two groups)."""

    integral: dict[str, bool] = field(default_factory=dict)

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

    def merge(self, other: TextLabels) -> TextLabels:
        names = dict.fromkeys([*self.integral, *other.integral])
        return TextLabels({name: self.integral.get(name, True) and other.integral.get(name, True) for name in names})


class GroupTable:
    """Per-group statistics of every result: a state's group values get codes in order of first
    appearance; states merge group by group, matched by value."""

    def __init__(self, results: int) -> None:
        self.codes: dict[Any, int] = {}
        self.stats = [GroupStats.empty(0) for _ in range(results)]

    def codes_of(self, groups: list[pa.Array]) -> np.ndarray[Any, Any]:
        """The group code of each row of a chunk; new values get the next codes.

        Each input's part of the chunk is encoded by itself, so keys are compared by value
        (7 from an int32 file is 7 from an int64 one), never through a common type.
        """
        return np.concatenate([self._codes_of(column) for column in groups])

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

    def merge(self, other: GroupTable) -> GroupTable:
        """Both tables' groups: the other's keys are matched to these by value, new ones get the next codes."""
        merged = GroupTable(0)
        merged.codes = dict(self.codes)
        places = np.array([merged.codes.setdefault(key, len(merged.codes)) for key in other.codes], dtype=np.int64)
        groups = len(merged.codes)
        merged.stats = [
            mine.merge(theirs.placed(places, groups)) for mine, theirs in zip(self.stats, other.stats, strict=True)
        ]
        return merged

    def results(self, plan: Plan, reduction: str, text_labels: TextLabels) -> tuple[GroupResult, ...]:
        """Every group's result for every pred, groups sorted by value (missing values last).

        A group whose rows were all omitted is left out. Keys read from delimited text are typed
        as `TextLabels` says.
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


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


@dataclass
class RunState:
    """Every accumulator of every result and the counters of some consecutive rows of the inputs."""

    plan: Plan
    options: Options
    first_row: int | None  # the global row of its first row, where known: the bootstrap and per-row output need it
    stats: list[LossStats]
    row_sum: LossStats | None
    groups: GroupTable | None
    boot: BootstrapStats | None
    inputs: list[list[int]]  # [input, rows] of each input it holds rows of, in order
    text_labels: TextLabels = field(default_factory=TextLabels)
    rows: int = 0
    omitted: int = 0
    bad: BadRows = field(default_factory=BadRows)
    notes: dict[str, str] = field(default_factory=dict)  # warnings for the report, first one of a kind kept
    overflows: dict[str, list[int]] = field(default_factory=dict)  # pred -> [rows, first row]

    @staticmethod
    def empty(plan: Plan, options: Options, input: int, first_row: int | None) -> RunState:
        """The state of no rows yet, of input number `input`, whose first row is global row `first_row`."""
        k = len(plan.pairs)
        return RunState(
            plan,
            options,
            first_row,
            [_stats(options, options.top) for _ in range(k)],
            _stats(options, 0) if plan.multi_output and options.multioutput == "row-sum" else None,
            GroupTable(k) if plan.group_by else None,
            _bootstrap(k, options),
            [[input, 0]],
        )

    def update(self, block: Block, feed: backends.Feed, sink: RowSink | None = None) -> None:
        """Fold in a block of whole chunks of `chunk_rows` rows (the last may be shorter), and write its rows
        to the per-row sink. NumPy is handed one chunk at a time; a device a batch of many, whose full
        chunks it reduces at once, chunk by chunk (ChunkRows), unless rows leave some of them (omitted, or
        of weight 0): then one chunk after another. Either way the chunks are the ones NumPy's are.

        Each numeric column goes to the device once (NumPy: the same arrays); from there every per-row
        array lives there, the check for missing, NaN and infinite values included, and only the
        accumulators' numbers come back."""
        size = self.options.chunk_rows
        full = block.rows // size if block.rows > size else 0
        head = full * size
        if full:
            batch = block if head == block.rows else block.slice(0, head)
            columns = feed.put(batch.columns)
            finite = self._finite(columns)
            if self._keeps_every_row(columns, finite):
                self._reduce(batch, columns, finite, full, feed.xp, sink)
            else:
                for start in range(0, head, size):
                    part = slice(start, start + size)
                    chunk = {name: values[part] for name, values in columns.items()}
                    self._reduce(batch.slice(start, size), chunk, finite[part], 1, feed.xp, sink)
        if head < block.rows:
            tail = block.slice(head, block.rows - head) if head else block
            columns = feed.put(tail.columns)
            self._reduce(tail, columns, self._finite(columns), 1, feed.xp, sink)

    def _finite(self, columns: dict[str, Any]) -> Any:
        """The rows whose every numeric value is finite."""
        flags = [np.isfinite(columns[name]) for name in self.plan.numeric]
        return reduce(np.logical_and, flags)

    def _keeps_every_row(self, columns: dict[str, Any], finite: Any) -> bool:
        """No row is omitted, and none has weight 0 (each would leave its chunk shorter); nor is any bad
        under --nan-policy error, where the first chunk with a bad row is the last one checked (a negative
        weight before it is the error, as chunk by chunk)."""
        kept = self.options.nan_policy == "propagate" or bool(finite.all())
        return kept and (self.plan.weight is None or bool(columns[self.plan.weight].all()))

    def _reduce(
        self, block: Block, columns: dict[str, Any], finite: Any, chunks: int, xp: Any, sink: RowSink | None
    ) -> None:
        """Fold `chunks` chunks of equal length (rows omitted from them aside) into every accumulator:
        `columns` are the block's numeric columns as the backend's arrays, `finite` their rows' check."""
        start, n = self.rows, block.rows
        self.rows += n
        self.inputs[-1][1] += n
        bad_rows = n - int(np.count_nonzero(finite))
        if bad_rows:
            self._note_bad(start, block, finite, bad_rows)
        if self.bad.count and self.options.nan_policy == "error":
            return  # the run ends in an error: only count what is left
        rows = xp.arange(start, start + n, dtype=np.int64)
        keep = None
        if bad_rows and self.options.nan_policy == "omit":
            keep = finite
            self.omitted += bad_rows
            rows = rows[keep]
            columns = {name: values[keep] for name, values in columns.items()}
        if self.plan.weight:
            self._check_weights(columns[self.plan.weight], rows)
        weight = columns[self.plan.weight] if self.plan.weight else None
        kept = None if keep is None else lambda: backends.to_numpy(keep)  # on the host, for labels and per-row output
        ids_of = _ids_getter(block.ids, kept)
        group_codes = None
        if self.groups is not None:
            group_codes = self.groups.codes_of(block.groups)
            if keep is not None:  # (on a device, the codes of the kept rows are picked there)
                group_codes = xp.asarray(group_codes)[keep]
        losses, results = [], []
        parameter = self.options.parameter
        with np.errstate(invalid="ignore", over="ignore"):
            for index, (pred, target) in enumerate(self.plan.pairs):
                diff = columns[pred] - columns[target]
                loss = self._terms(diff, xp)
                self._note_overflow(pred, zero_where_weightless(loss, weight), columns[pred], columns[target], rows)
                abs_diff = np.abs(diff)
                linear = abs_diff >= parameter
                if bad_rows and self.options.nan_policy == "propagate":
                    linear = np.where(np.isnan(abs_diff), np.nan, linear)  # NaN rows make the share NaN too
                chunk = Chunk(
                    loss, abs_diff, None, linear, rows, weight,
                    columns[pred], columns[target], ids_of,
                )  # fmt: skip
                self.stats[index] = self.stats[index].update(chunk, chunks)
                if self.groups is not None:
                    assert group_codes is not None
                    for codes, part in _by_chunk(group_codes, chunk, chunks):
                        self.groups.update(index, codes, part)
                losses.append(loss)
                results.append(chunk)
            if self.row_sum is not None:
                self.row_sum = self.row_sum.update(_row_sum(results), chunks)
            if self.boot is not None:
                assert self.first_row is not None, "the bootstrap weighs rows by their global number"
                self.boot = self.boot.update(rows + self.first_row, losses, weight, xp)
        if sink is not None:
            losses = [backends.to_numpy(loss) for loss in losses]  # per-row output: the one per-row copy back
            assert self.first_row is not None, "per-row output numbers rows globally"
            host_keep = None if kept is None else kept()
            first = self.first_row + start
            sink.write(
                np.arange(first, first + n, dtype=np.int64),
                _concat_ids(block.ids),
                _spread(losses, host_keep, n),
                None if host_keep is None else ~host_keep,
            )

    def _terms(self, diff: Any, xp: Any) -> Any:
        if self.options.loss == "huber":
            return kernel.huber_terms(diff, self.options.parameter, xp)
        return kernel.smooth_l1_terms(diff, self.options.parameter, xp)

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

    def _note_bad(self, start: int, block: Block, finite: np.ndarray[Any, Any], count: int) -> None:
        self.bad.count += count
        if self.bad.first is None:
            position = int(np.flatnonzero(~finite)[0])
            for name in self.plan.numeric:
                value = float(block.columns[name][position])
                if not math.isfinite(value):
                    missing = name in block.missing and block.missing[name][position]
                    self.bad.first = (start + position, name, "missing" if missing else f"value {format_value(value)}")
                    break

    def _check_weights(self, weight: np.ndarray[Any, Any], rows: np.ndarray[Any, Any]) -> None:
        negative = np.flatnonzero(weight < 0)
        if negative.size:
            position = int(negative[0])
            raise RowError(int(rows[position]), self.plan.weight or "", float(weight[position]), "is negative")

    def merge(self, other: RunState) -> RunState:
        """The state of these rows followed by `other`'s: its row numbers move past these rows."""
        shift = self.rows
        overflows = {pred: list(seen) for pred, seen in self.overflows.items()}
        for pred, (count, first) in other.overflows.items():
            overflows.setdefault(pred, [0, first + shift])[0] += count
        inputs = [list(entry) for entry in self.inputs]
        for number, rows in other.inputs:
            if inputs[-1][0] == number:
                inputs[-1][1] += rows
            else:
                inputs.append([number, rows])
        return RunState(
            self.plan,
            self.options,
            self.first_row,
            [a.merge(_shifted(b, shift)) for a, b in zip(self.stats, other.stats, strict=True)],
            None if self.row_sum is None or other.row_sum is None else self.row_sum.merge(other.row_sum),
            None if self.groups is None or other.groups is None else self.groups.merge(other.groups),
            None if self.boot is None or other.boot is None else self.boot.merge(other.boot),
            inputs,
            self.text_labels.merge(other.text_labels),
            self.rows + other.rows,
            self.omitted + other.omitted,
            self.bad.merge(other.bad, shift),
            {**other.notes, **self.notes},  # the first of a kind: these rows come first
            overflows,
        )

    def finish(self, inputs: Sequence[tuple[str, str]]) -> Report:
        """The report of the merged state of every piece; `inputs` are each input's (label, format)."""
        return _Finished(self, inputs).report()


def _shifted(stats: LossStats, shift: int) -> LossStats:
    if stats.worst is None or not shift:
        return stats
    return replace(stats, worst=replace(stats.worst, rows=stats.worst.rows + shift))


@dataclass
class _Finished:
    """A merged state and the inputs it read: row numbers located, checks made, the Report built."""

    state: RunState
    labels: Sequence[tuple[str, str]]

    def locate(self, row: int) -> tuple[str, int]:
        """The input a global row came from, and the row's number within it."""
        start = 0
        for number, rows in self.state.inputs:
            if row < start + rows:
                return self.labels[number][0], row - start
            start += rows
        raise AssertionError(f"row {row} is beyond the {start} rows read")

    def all_labels(self) -> str:
        return ", ".join(label for label, _ in self.labels)

    def report(self) -> Report:
        run = self.state
        options, plan = run.options, run.plan
        if run.rows == 0:
            raise InputError(f"{self.all_labels()}: no data rows to evaluate (only a header, or nothing)")
        if run.bad.count and options.nan_policy == "error":
            assert run.bad.first is not None
            row, column, value = run.bad.first
            label, local = self.locate(row)
            raise InputError(
                f"{label}: {run.bad.count} row{'s' if run.bad.count > 1 else ''} with a missing, NaN or infinite "
                f"value (first: row {local}, column '{column}', {value}); "
                "pass --nan-policy omit to skip such rows, or --nan-policy propagate to keep them as NaN"
            )
        if run.omitted == run.rows:
            raise InputError(f"{self.all_labels()}: no rows left: all {run.rows} rows were omitted for missing values")
        results = tuple(
            self.result(pred, target, stats) for (pred, target), stats in zip(plan.pairs, run.stats, strict=True)
        )
        if run.boot is not None:
            results = _with_uncertainty(results, run.boot, options)
        overall = None
        if plan.multi_output:
            stats = run.row_sum if run.row_sum is not None else reduce(LossStats.merge, run.stats)
            overall = self.result("overall", "overall", stats)
        worst = tuple(
            WorstRow(
                int(row), pred, target, float(p), float(a), float(loss),
                run.text_labels.typed(plan.id or "", identifier),
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
        )  # fmt: skip
        inputs = tuple(InputInfo(*self.labels[number], rows) for number, rows in run.inputs)
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
            warnings=self.warnings(results + ((overall,) if overall else ())),
            engine=options.engine,
        )

    def warnings(self, results: Sequence[Result]) -> tuple[str, ...]:
        """What the values cannot show: float64 overflow, integers it rounded."""
        notes = list(self.state.notes.values())
        for result in results:
            if math.isinf(result.summary.sum) and math.isfinite(result.summary.max):
                notes.append(f"{result.pred}: the sum of the losses overflows float64, so `sum` is inf")
        for pred, (count, first) in self.state.overflows.items():
            label, row = self.locate(first)
            notes.append(
                f"{label}: {pred}: the loss overflows float64 to inf in {count} row{'s' if count > 1 else ''} "
                f"(first: row {row}) though pred and target are finite; the value is inf"
            )
        return tuple(notes)

    def result(self, pred: str, target: str, stats: LossStats) -> Result:
        summary = stats.summarize()
        options = self.state.options
        if summary.weight == 0:
            raise InputError(f"{self.all_labels()}: the weights in '{options.weight}' add up to 0; nothing to average")
        value = summary.sum if options.reduction == "sum" else summary.mean
        return Result(pred, target, self.state.omitted, value, summary)


def _stats(options: Options, top: int) -> LossStats:
    """Empty statistics: quantiles from the sketch, from every value with --exact-quantiles, or none
    where nothing shows them (-q)."""
    if not options.quantiles:
        return LossStats.without_quantiles(top)
    return LossStats(top_k=top, sketch=QuantileSketch(math.inf if options.exact_quantiles else EXACT_LIMIT))


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


def _by_chunk(codes: np.ndarray[Any, Any], chunk: Chunk, chunks: int) -> Iterator[tuple[np.ndarray[Any, Any], Chunk]]:
    """A batch's group codes and per-row arrays, chunk by chunk: GroupStats reduces a chunk at a time, as
    it does for NumPy."""
    if chunks == 1:
        yield codes, chunk
        return
    size = codes.size // chunks
    for start in range(0, codes.size, size):
        part = slice(start, start + size)
        yield codes[part], chunk.for_sums(itemgetter(part))


def _ids_getter(
    ids: list[pa.Array], kept: Callable[[], np.ndarray[Any, Any]] | None
) -> Callable[[np.ndarray[Any, Any]], list[Any]] | None:
    """The ids at some positions of the kept rows (`kept()`: which rows were kept, on the host)."""
    if not ids:
        return None

    def ids_of(positions: Any) -> list[Any]:
        positions = backends.to_numpy(positions)  # (the few worst rows' positions, from the device)
        if kept is not None:
            positions = np.flatnonzero(kept())[positions]
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
