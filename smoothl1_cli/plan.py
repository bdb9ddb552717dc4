"""The plan of an evaluation, made from headers and footers only: which columns pair up into which
results, and the pieces the inputs are cut into.

A piece is an input file, or a run of row groups of a large Parquet file. Every engine reduces
the same pieces, one state each, and merges the states in the same index-ordered tree, so
how many workers ran them, and where, never changes the report.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from smoothl1_cli.errors import InputError
from smoothl1_cli.options import Options
from smoothl1_cli.readers import TYPED_FORMATS, Source

PRED_NAMES = ("pred", "prediction", "y_pred", "yhat", "y_hat")
PIECE_ROWS = 1_000_000  # a Parquet file of more rows than this is cut into runs of row groups of about this many


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


def check_source(source: Source, plan: Plan) -> None:
    """Every input must hold the planned columns, and typed inputs must hold numbers in them."""
    for name in plan.columns:
        _find_column(source, name, "planned")
    if source.format not in TYPED_FORMATS:
        return
    for name in plan.numeric:
        if name not in source.numeric:
            raise InputError(f"{source.label}: column '{name}' is of type {source.types[name]}, not numeric")


@dataclass(frozen=True)
class Piece:
    """A run of consecutive rows reduced into one state: an input, or some of its Parquet row groups."""

    index: int
    input: int  # which input (its index in the plan's inputs)
    groups: range | None  # the input's row groups; None: all of it
    input_row: int  # its first row within its input
    rows: int | None  # how many rows, where a footer says
    size: int | None  # bytes, for the progress bar (the whole input's, for a piece that is all of it)


@dataclass(frozen=True)
class Job:
    """Everything an engine needs to reduce pieces anywhere: plain data that pickles."""

    options: Options
    plan: Plan
    inputs: tuple[str, ...]  # each input as given (path or URI), to be opened again where a piece runs
    formats: tuple[str, ...]
    pieces: tuple[Piece, ...]
    processes: int = 1  # processes reducing its pieces side by side on one machine (they share its GPU)

    def first_rows(self) -> list[int | None]:
        """Each piece's first row over all inputs, where the footers before it say (None after a text input)."""
        out: list[int | None] = []
        total: int | None = 0
        for piece in self.pieces:
            out.append(total)
            total = None if total is None or piece.rows is None else total + piece.rows
        return out


def cut_pieces(sources: Sequence[Source]) -> tuple[Piece, ...]:
    """Each input is a piece; a Parquet file of more than PIECE_ROWS rows, runs of its row groups."""
    pieces: list[Piece] = []
    for number, source in enumerate(sources):
        runs = _runs(source.group_rows) if source.rows is not None and source.rows > PIECE_ROWS else []
        if len(runs) < 2:
            pieces.append(Piece(len(pieces), number, None, 0, source.rows, source.size))
            continue
        row = 0
        for groups, rows in runs:
            share = None if source.size is None else source.size * rows // max(source.rows or 1, 1)
            pieces.append(Piece(len(pieces), number, groups, row, rows, share))
            row += rows
    return tuple(pieces)


def _runs(group_rows: Sequence[int]) -> list[tuple[range, int]]:
    """Consecutive row groups in runs of at least PIECE_ROWS rows (the last run may hold fewer)."""
    runs: list[tuple[range, int]] = []
    start = rows = 0
    for index, count in enumerate(group_rows):
        rows += count
        if rows >= PIECE_ROWS:
            runs.append((range(start, index + 1), rows))
            start, rows = index + 1, 0
    if start < len(group_rows):
        runs.append((range(start, len(group_rows)), rows))
    return runs
