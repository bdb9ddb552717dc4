"""Arrow arrays as NumPy float64 and int64, and what is numeric: the conversions every format shares."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)


def is_numeric(type_: pa.DataType) -> bool:
    """Whether a column of this type can be read as float64 without losing its meaning."""
    return any(check(type_) for check in _NUMERIC)


def numeric_of(schema: pa.Schema) -> set[str]:
    return {f.name for f in schema if is_numeric(f.type)}


_NUMPY_TYPES: dict[pa.DataType, np.dtype[Any]] = {
    pa.float64(): np.dtype(np.float64),
    pa.float32(): np.dtype(np.float32),
    **{
        getattr(pa, f"{sign}int{bits}")(): np.dtype(f"{sign}int{bits}")
        for sign in ("", "u")
        for bits in (8, 16, 32, 64)
    },
}


def _values(array: pa.Array) -> np.ndarray[Any, Any]:
    """The array's values as NumPy sees them in Arrow's buffer (nulls hold anything); no copy."""
    dtype = _NUMPY_TYPES[array.type]
    data = array.buffers()[1]
    if data is None or len(array) == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _null_mask(array: pa.Array) -> np.ndarray[Any, Any]:
    """True where the array holds a null, from its validity bitmap."""
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
    mask: np.ndarray[Any, Any] = bits[array.offset : array.offset + len(array)] == 0
    return mask


def to_float64(array: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """A float64 NumPy view or copy of a numeric Arrow array, nulls as NaN.

    Plain floats and integers go straight from Arrow's buffers (no pyarrow.compute, which costs
    start-up time, and no to_numpy(), which can import pandas); other numeric types are cast, and
    so is text (a numeric column that is also --id or --group-by is read as text), trimmed first.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type in _NUMPY_TYPES:
        values = _values(array)
        if array.type != pa.float64() or array.null_count:
            values = values.astype(np.float64)  # integers beyond 2**53 round (and are reported)
        if array.null_count:
            values[_null_mask(array)] = np.nan
        return values
    import pyarrow.compute as pc

    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        array = _trim_blanks(array)
    return to_float64(pc.cast(array, pa.float64(), safe=False))


def _trim_blanks(text: pa.Array) -> pa.Array:
    """Text without the spaces and tabs around it: ' 7' is 7, as Arrow's CSV reader reads numbers (which
    trims only those: a no-break space before a digit is no number to it, so it is none here either)."""
    import pyarrow.compute as pc

    return pc.utf8_trim(text, characters=" \t")


ROUNDED_INTEGERS = b"smoothl1:integers beyond 2**53"  # field metadata: text held such integers


def beyond_exact_integers(batch: pa.RecordBatch, name: str) -> bool:
    """Whether column `name` holds an integer that float64 cannot represent exactly (|v| > 2**53):
    in an integer column, or in text that the reader parsed to float64 (and marked so)."""
    metadata = batch.schema.field(name).metadata
    if metadata and ROUNDED_INTEGERS in metadata:
        return True
    array = batch.column(name)
    if not pa.types.is_integer(array.type) or array.type.bit_width < 54 or len(array) == 0:
        return False
    import pyarrow.compute as pc

    extremes = pc.min_max(array)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    return low is not None and max(abs(low), abs(high)) > 2**53


def to_int64(array: pa.Array) -> np.ndarray[Any, Any]:
    """An int64 NumPy array of an integer Arrow array without nulls."""
    return _values(array).astype(np.int64, copy=False)


def first_unparsable(column: pa.ChunkedArray) -> int | None:
    """The index of the first value that Arrow cannot read as float64 (spaces and tabs around a number
    allowed, as Arrow's CSV reader and `to_float64` allow them), by bisection over prefixes."""
    import pyarrow.compute as pc

    values = _trim_blanks(column.combine_chunks())

    def parses(length: int) -> bool:
        try:
            pc.cast(values.slice(0, length), pa.float64())
        except pa.ArrowInvalid:
            return False
        return True

    if parses(len(values)):
        return None
    low, high = 0, len(values)  # parses(low) holds, parses(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if parses(middle) else (low, middle)
    return low


INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


def mark_rounded_integers(table: pa.Table, values_at: Callable[[str, np.ndarray[Any, Any]], list[Any]]) -> pa.Table:
    """`table` with ROUNDED_INTEGERS on each float64 field whose input held an integer beyond 2**53:
    the warning an int64 Parquet column gets, on every format. Only a value of magnitude 2**53 or
    more can have been one, so the input's values (`values_at(name, rows)`: text, or JSON's
    numbers) are looked at only there."""
    for index, field_ in enumerate(table.schema):
        if field_.type != pa.float64():
            continue
        chunks = [to_float64(chunk) for chunk in table.column(index).chunks]  # views, where no value is null
        if not any(c.size and (np.fmax.reduce(c) >= 2.0**53 or np.fmin.reduce(c) <= -(2.0**53)) for c in chunks):
            continue  # (fmax and fmin skip NaN)
        rows = np.flatnonzero(np.abs(np.concatenate(chunks)) >= 2.0**53)
        if any(_beyond_2_53(value) for value in values_at(field_.name, rows)):
            marked = field_.with_metadata({ROUNDED_INTEGERS: b"1"})
            table = table.set_column(index, marked, table.column(index))
    return table


def _beyond_2_53(value: Any) -> bool:
    if isinstance(value, str) and INTEGER_TEXT.fullmatch(value):
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53
