"""Fuzzing `smoothl1 eval` with hostile bytes: the right answer, or one clean `Error:` line.

Property, for every generated input: the command exits 0 with the value an independent
reference parser computes (Python's `csv` module / `json` module + `float()`, losses summed
with `math.fsum`, relative 1e-12), or exits 2 with exactly one `Error: ...` line on stderr.
Never a traceback, never exit 3, never a hang (a run is cut off after HANG_LIMIT seconds, a
safety net far above the fraction of a second an input takes: time itself is not measured).

What is generated: delimited text (comma, tab, semicolon) with quotes inside fields, quoted
delimiters and newlines, ragged rows, LF / CRLF / lone-CR line ends, blank lines, a UTF-8 BOM,
Latin-1 and invalid UTF-8, NUL bytes, very long fields, thousands of columns, duplicate and
empty header names, unicode and spaces in column names, numbers in every spelling (exponent
form, 1e400, -0, subnormals, leading +, surrounding spaces, thousands separators, underscores,
integers beyond 2**53, non-ASCII digits); JSON Lines with every JSON type in the numeric
fields; and Parquet / gzip / zstd files truncated or bit-flipped at random positions. Text
inputs are also cut into tiny parse blocks (readers.text.BLOCK_BYTES patched per example) so that
every record boundary is also a block boundary somewhere.

Where the reference and Arrow legitimately differ (Python's float() takes '1_000', '١' and
exotic whitespace, Arrow does not), smoothl1 may exit 2, but its message must then name a row.
Number magnitudes stay below 1e300 so that sums of losses cannot overflow (overflow is
test_extremes.py's subject).

Runs (default: about 200 examples in all, a few seconds):

    .venv/bin/python -m pytest tests/test_fuzz.py

The long run: hypothesis' profile "long" (registered below, 5000 examples per test; about
10-20 minutes on 2 cores), selected by the environment variable:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_fuzz.py

(`--hypothesis-profile=long` does not work here: the plugin loads the profile before this module
registers it.) Failures found are saved in .hypothesis/ and replayed first by later runs.

Inputs that found bugs are kept as files in tests/corpus/ and replayed by test_corpus.py.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import gzip
import io
import json
import math
import re
import shutil
import signal
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from smoothl1_cli import readers
from tests.conftest import invoke, reference_loss

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

LONG = settings.default.max_examples >= settings.get_profile("long").max_examples
HANG_LIMIT = 60  # seconds: SIGALRM cuts off a run that hangs


def fuzz(examples: int) -> settings:
    """`examples` by default; the active profile's count under HYPOTHESIS_PROFILE=long."""
    return settings(
        max_examples=settings.default.max_examples if LONG else examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# --- running one input -------------------------------------------------------------------------


class Hang(BaseException):
    """Raised by SIGALRM inside a run that took longer than HANG_LIMIT."""


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    @property
    def error(self) -> str:
        return self.stderr.strip()


_WORK = Path(tempfile.mkdtemp(prefix="smoothl1-fuzz-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
_COUNTER = iter(range(1 << 62))


def run_bytes(data: bytes, suffix: str, *args: str, block_bytes: int | None = None) -> Outcome:
    """`smoothl1 eval FILE ARGS -f json` in-process on a file holding `data`; checks the universal
    property (exit 0 or 2, one Error line on 2, no traceback, no hang) before returning."""
    path = _WORK / f"input{next(_COUNTER)}{suffix}"
    path.write_bytes(data)
    patch = mock.patch.object(readers.text, "BLOCK_BYTES", block_bytes) if block_bytes else contextlib.nullcontext()
    try:
        with patch, alarm(HANG_LIMIT):
            result = invoke(["eval", str(path), *args, "-f", "json"])
    finally:
        path.unlink()
    outcome = Outcome(result.exit_code, result.stdout, result.stderr)
    context = "\n".join(
        (
            f"exit {outcome.code}",
            f"stdout: {outcome.stdout[:500]!r}",
            f"stderr: {outcome.stderr[:2000]!r}",
            f"input: {data[:300]!r}",
        )
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), context
    assert "Traceback" not in outcome.stdout + outcome.stderr, context
    assert outcome.code in (0, 2), context
    if outcome.code == 2:
        assert outcome.stdout == "", context
        # lines as a byte stream has them (U+0085 is one more to str.splitlines: corpus/header_c1_control.csv)
        lines = outcome.stderr.rstrip("\n").split("\n")
        assert len(lines) == 1, context
        assert lines[0].startswith("Error: "), context
    return outcome


# --- the reference -----------------------------------------------------------------------------

# What Arrow's float parser takes (and so what both must read as that number): optional blanks,
# a sign, decimal digits with an optional point, an optional exponent.
ARROW_NUMBER = re.compile(r"[ \t]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*")
ARROW_SPECIAL = re.compile(r"[ \t]*[+-]?(inf|infinity|nan)[ \t]*", re.IGNORECASE)


class Refused(Exception):
    """The reference's verdict: this input must end in exit 2."""


class Differs(Exception):
    """Python reads this input, Arrow (legitimately) may not: exit 2 naming a row is acceptable."""


def reference_float(field: str) -> float:
    """A field's number as both parsers must read it, or Refused/Differs."""
    if ARROW_NUMBER.fullmatch(field) or ARROW_SPECIAL.fullmatch(field):
        value = float(field)
        if not math.isfinite(value):
            raise Refused(f"non-finite {field!r} (nan-policy error)")
        return value
    try:
        value = float(field)
    except ValueError:
        raise Refused(f"not a number: {field!r}") from None
    if not math.isfinite(value):
        raise Refused(f"non-finite {field!r}")
    raise Differs(f"{field!r} is a number to Python only")


@dataclass
class Expected:
    pred: list[float]
    target: list[float]

    def check(self, outcome: Outcome, differs: str = "") -> None:
        """`differs`: why a refusal is acceptable: 'header' (any clean error), 'field' (one that names
        a row), '' (none: the reference reads this input, so must smoothl1)."""
        if outcome.code == 2:
            assert differs, f"refused an input the reference reads: {outcome.error}"
            if differs == "field":
                assert re.search(r"\brow \d+", outcome.error), outcome.error
            return
        result = outcome.report["results"][0]
        losses = [reference_loss(p, t) for p, t in zip(self.pred, self.target, strict=True)]
        assert outcome.report["rows"] == len(losses)
        assert result["count"] == len(losses)
        mean = math.fsum(losses) / len(losses)
        assert math.isclose(result["value"], mean, rel_tol=1e-12, abs_tol=1e-300), (result["value"], mean)
        assert math.isclose(result["sum"], math.fsum(losses), rel_tol=1e-12, abs_tol=1e-300)
        assert result["min"] == min(losses)
        assert result["max"] == max(losses)


def _records(text: str, delimiter: str) -> list[list[str]]:
    """csv.reader's records, with its 128 KiB field limit lifted only while reading (the limit is
    process-wide, and smoothl1 itself uses the csv module: lifting it for good would hide bugs)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(1 << 30)
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    finally:
        csv.field_size_limit(limit)


def sniff_delimiter(header: str, default: str) -> str:
    """README: 'the delimiter (comma, tab or semicolon) sniffed from the header line'; ties go to the
    format's default (tab for .tsv, else comma)."""
    counts = {d: header.count(d) for d in (",", "\t", ";")}
    best = max((",", "\t", ";"), key=lambda d: (counts[d], d == default))
    return best if counts[best] else default


def reference_delimited(
    data: bytes, tsv: bool, target: str, pred: str, also: tuple[str, ...] = ()
) -> tuple[Expected, str]:
    """Read delimited text with Python's csv module, as the README describes the format: the first
    line (ended by LF, CRLF or a lone CR, BOM removed, UTF-8 else Latin-1) is the header, blank lines
    are skipped, every record has the header's field count. Returns (expected, differs) or raises
    Refused. A field only Python reads is taken at Python's value (smoothl1 may refuse it)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    ends = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
    end = min(ends, default=len(data))
    line, rest = data[:end], data[end + (2 if data[end : end + 2] == b"\r\n" else 1) :]
    if not line.strip():
        raise Refused("no header")
    if b"\x00" in line:
        raise Refused("NUL in the header")
    try:
        header = line.decode("utf-8")
    except UnicodeDecodeError:
        header = line.decode("latin-1")
    delimiter = sniff_delimiter(header, "\t" if tsv else ",")
    names = [name.strip() for name in next(csv.reader([header], delimiter=delimiter))]
    differs = ""
    if any(not name for name in names) or len(set(names)) < len(names):
        differs = "header"  # smoothl1 refuses an empty or repeated column name, even an unused one
    if any(names.count(name) != 1 for name in (target, pred, *also)):
        raise Refused("a named column is missing or repeated")
    t, p = names.index(target), names.index(pred)
    text = rest.decode("utf-8", errors="surrogateescape")
    preds, targets = [], []
    for record in _records(text, delimiter):
        if not record:
            continue  # a blank line
        if len(record) == 1 and not record[0].strip(" \t"):
            differs = differs or "blank-looking line"  # spaces or tabs only: skipping or refusing it are both fair
            continue
        if len(record) != len(names):
            raise Refused(f"ragged row {record!r}")
        values = []
        for field in (record[t], record[p]):
            try:
                values.append(reference_float(field))
            except Differs:
                differs = differs or "field"
                values.append(float(field))
        targets.append(values[0])
        preds.append(values[1])
    if not preds:
        raise Refused("no data rows")
    return Expected(preds, targets), differs


# --- delimited text ----------------------------------------------------------------------------

FINITE = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)
SPELLINGS = [
    "-0",
    "+0",
    "0e0",
    "-0.0e-5",
    "5e-324",
    "4.9e-324",
    "2.2250738585072014e-308",
    "1e-400",
    "1e400",
    "-1e400",
    "1e300",
    "1,000",
    "1_000",
    "1 000",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-Infinity",
    "",
    "NA",
    "null",
    " 1",
    "1 ",
    "\t2",
    ".5",
    "5.",
    "+.5e-3",
    "0x10",
    "1e",
    "e1",
    "\u0661",
    "\uff11",
    "1\x00",
    "\xa01",
    "9007199254740993",
    "18446744073709551617",
    "0" * 400 + "1",
    "1" + "0" * 400,
    "0." + "0" * 400 + "1",
    "1.5.",
    "--1",
    "+-1",
    "'1'",
]
NUMBER = st.one_of(
    FINITE.map(repr),
    FINITE.map(lambda x: f"{x:e}"),
    FINITE.map(lambda x: f"{x:.3E}"),
    FINITE.map(lambda x: ("+" if x >= 0 else "") + repr(x)),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(SPELLINGS),
)
SHORT_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(['a"b', '"', '""', "x,y", "x;y", "x\ty", "a\nb", "a\r\nb", "a\rb", "\x00", "é", "名前", "😀", " "]),
)
# A long field (longer than 128 KiB: see corpus/long_field_*). Only with the real block size: with tiny
# blocks a long record costs O(n**2 / block) in re-reads.
TEXT = st.one_of(SHORT_TEXT, st.integers(1, 200_000).map(lambda n: "L" * n))
# None: the real 8 MiB blocks; else tiny blocks, so that record boundaries fall on block boundaries.
BLOCKS = st.sampled_from([None, None, 7, 16, 64, 1000])
NAME = st.one_of(
    st.sampled_from(["y", "pred", "target", "a b", " spaced ", "ünïcödé", "名前", "😀", 'q"uote', "semi;colon", "Y"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00,"), max_size=8),
)
SAFE_NAME = NAME.filter(lambda n: n.strip() and "," not in n and "\t" not in n and ";" not in n)


def quote(field: str, delimiter: str, force: bool) -> str:
    if force or any(c in field for c in (delimiter, '"', "\n", "\r")):
        return '"' + field.replace('"', '""') + '"'
    return field


@st.composite
def delimited(draw: st.DrawFn, wide: bool = False) -> tuple[bytes, str, str, str, int | None]:
    """(bytes, suffix, target, pred, block size) of a delimited-text file, clean or mutated."""
    block = draw(BLOCKS)
    delimiter = draw(st.sampled_from([",", "\t", ";"]))
    suffix = ".tsv" if delimiter == "\t" and draw(st.booleans()) else ".csv"
    columns = draw(st.integers(1000, 4000)) if wide else draw(st.integers(2, 6))
    t, p = draw(st.lists(st.integers(0, columns - 1), min_size=2, max_size=2, unique=True))
    target, pred = draw(SAFE_NAME), draw(SAFE_NAME)
    assume(target.strip() != pred.strip())
    names = [f"c{i}" for i in range(columns)] if wide else [draw(NAME) for _ in range(columns)]
    names[t], names[p] = target, pred
    rows = draw(st.integers(0, 3 if wide else 8))
    force_quotes = draw(st.booleans())
    body = []
    for _ in range(rows):
        record = ["1" if wide else draw(TEXT if block is None else SHORT_TEXT) for _ in range(columns)]
        record[t], record[p] = draw(NUMBER), draw(NUMBER)
        ragged = draw(st.integers(0, 19))
        if ragged == 0:
            record = record[:-1]  # a field short
        elif ragged == 1:
            record = [*record, draw(SHORT_TEXT)]  # a field too many
        body.append(delimiter.join(quote(f, delimiter, force_quotes and draw(st.booleans())) for f in record))
        if draw(st.integers(0, 9)) == 0:
            body.append("")  # a blank line
    header = delimiter.join(quote(n, delimiter, draw(st.booleans()) and force_quotes) for n in names)
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join([header, *body]) + (newline if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8", errors="surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    for _ in range(draw(st.integers(0, 3))):  # mutations: hostile bytes in, spans out
        position = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            junk = draw(
                st.sampled_from(
                    [b'"', b",", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xc3", b"\t", b";", b" ", b"1", b"e"]
                )
            )
            data = data[:position] + junk + data[position:]
        else:
            data = data[:position] + data[position + draw(st.integers(1, 4)) :]
    return data, suffix, target.strip(), pred.strip(), block


def check_delimited(data: bytes, suffix: str, target: str, pred: str, block: int | None) -> None:
    outcome = run_bytes(data, suffix, f"--target={target}", f"--pred={pred}", block_bytes=block)
    try:
        expected, differs = reference_delimited(data, suffix == ".tsv", target, pred)
    except Refused as why:
        refused: Refused | None = why
    else:
        refused = None
    if refused is not None:
        assert outcome.code == 2, f"exit 0 where the reference refuses ({refused}): {outcome.stdout[:300]}"
        return
    expected.check(outcome, differs)


@fuzz(80)
@given(delimited())
@example((b"y,pred\n1,0.5\n2,1.5\n", ".csv", "y", "pred", None))
@example((b"\xef\xbb\xbfy\tpred\r\n-0\t+4.9e-324\r\n", ".tsv", "y", "pred", 7))
@example((b"y,pred,note\n1,2," + b"L" * 140_000 + b"\n0,x,1\n", ".csv", "y", "pred", None))  # corpus/long_field_*
@example((b'a,b,c,y,pred\nx,0",,0.0,0.0\n,,"\n",0.0,0.0\n', ".csv", "y", "pred", None))  # corpus/stray_quote_*
@example(
    (b" spaced ,0,y,pred,target,a b\n0.0,\xc2\xa01,,,,\n", ".csv", "spaced", "0", None)
)  # no-break space: no number
def test_delimited_text_is_read_right_or_refused_cleanly(document) -> None:
    check_delimited(*document)


@fuzz(6)
@given(delimited(wide=True))
def test_thousands_of_columns(document) -> None:
    check_delimited(*document)


@fuzz(30)
@given(st.binary(max_size=300), st.sampled_from([".csv", ".tsv", ".jsonl", ".txt", ".dat"]))
@example(b"y,pred\n\x00\x00\n", ".csv")
@example(b"\x1f\x8b\x08\x00", ".csv")
@example(b"PAR1\x00\x00PAR1", ".csv")
@example(b"{", ".jsonl")
@example(b"\r\r\r", ".csv")
def test_random_bytes_never_crash(data, suffix) -> None:
    """Pure noise: the universal property only (there is no value to compare with)."""
    run_bytes(data, suffix, "-t", "y", "-p", "pred")


# --- JSON Lines --------------------------------------------------------------------------------

JSON_VALUE = st.one_of(
    FINITE.map(repr),
    FINITE.map(lambda x: f"{x:e}"),
    st.integers(-(2**80), 2**80).map(str),
    st.sampled_from(
        [
            "-0",
            "-0.0",
            "1E+5",
            "1e400",
            "-1e400",
            "5e-324",
            "null",
            "true",
            "false",
            '"1"',
            '""',
            "[1]",
            '{"a":1}',
            "NaN",
            "Infinity",
            "01",
            "+1",
            ".5",
            "1.",
            "0x1",
        ]
    ),
)


@st.composite
def json_lines(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        members = [f'"y":{draw(JSON_VALUE)}', f'"pred":{draw(JSON_VALUE)}']
        if draw(st.booleans()):
            members.append(f"{json.dumps(draw(st.text(max_size=5)))}:{json.dumps(draw(st.text(max_size=8)))}")
        if draw(st.integers(0, 7)) == 0:
            members.append(f'"y":{draw(JSON_VALUE)}')  # a repeated key
        if draw(st.integers(0, 7)) == 0:
            members.pop(draw(st.integers(0, 1)))  # a missing key
        order = draw(st.permutations(members))
        lines.append("{" + ",".join(order) + "}")
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["", " ", "{}", "[]", "1", "{", '{"y":1,"pred":2'])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    data = (newline.join(lines) + (newline if draw(st.booleans()) else "")).encode()
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(data)))
        data = data[:position] + draw(st.sampled_from([b"\x00", b"\xff", b"}", b'"', b"\n", b","])) + data[position:]
    return data


def invalid_utf8_key(data: bytes) -> bool:
    """Whether some object key ("...":) holds bytes that are not UTF-8."""
    for key in re.findall(rb'"((?:[^"\\]|\\.)*)"\s*:', data):
        try:
            key.decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


def _constant(name: str) -> float:
    return math.nan if name == "NaN" else math.inf


def _json_values(text: str) -> tuple[list[Any], str]:
    """The JSON values of JSON Lines text: one per non-blank line. Where a line is not JSON on its
    own but the text is a sequence of JSON values across lines (an object broken over two lines),
    those values, with 'multi-line' as the reason a refusal is also fair: smoothl1 (Arrow) reads
    such objects, and the JSON Lines format does not allow them."""
    decoder = json.JSONDecoder(object_pairs_hook=list, parse_constant=_constant)
    try:
        return [decoder.decode(line) for line in text.split("\n") if line.strip()], ""
    except ValueError:
        pass
    values, position = [], 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        if position == len(text):
            return values, "multi-line"
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError:
            raise Refused(f"not JSON: {text[position : position + 40]!r}") from None
        values.append(value)


def reference_jsonl(data: bytes) -> tuple[list[Expected], str]:
    """Each line a JSON object (blank lines skipped) with numbers in y and pred. A repeated key may be
    read first-wins or last-wins: both readings are returned."""
    first_wins: list[tuple[float, float]] = []
    last_wins: list[tuple[float, float]] = []
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    values, differs = _json_values(text)
    if data.startswith(b"\xef\xbb\xbf"):
        differs = differs or "bom"  # RFC 8259: JSON text must not begin with a BOM
    if re.search(rb"\\u[dD][89a-fA-F]", data):
        differs = differs or "surrogate escape"  # RFC 8259 8.2: unpaired surrogates are not interoperable
    if invalid_utf8_key(data):
        differs = differs or "key not UTF-8"  # RFC 8259 8.1: JSON text is UTF-8 (corpus/jsonl_invalid_utf8_key)
    for pairs in values:
        if not isinstance(pairs, list) or any(not isinstance(pair, tuple) for pair in pairs):
            raise Refused(f"not an object: {pairs!r}")
        for readings, pick in ((first_wins, 0), (last_wins, -1)):
            found = {}
            for key in ("y", "pred"):
                candidates = [value for name, value in pairs if name == key]
                if not candidates:
                    raise Refused(f"missing {key}")
                value = candidates[pick]
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
                    raise Refused(f"{key} is {value!r}")
                found[key] = float(value)
            readings.append((found["pred"], found["y"]))
        if len(pairs) != len({name for name, _ in pairs}):
            differs = differs or "repeated key"  # RFC 8259: names SHOULD be unique; refusing is fair
    if not first_wins:
        raise Refused("no rows")
    return [Expected([p for p, _ in rows], [t for _, t in rows]) for rows in (first_wins, last_wins)], differs


@fuzz(50)
@given(json_lines(), BLOCKS)
@example(b'{"y":1,"pred":1.5}\n{"y":-0,"pred":1E+5}\n', None)
@example(b'{"\xff":1,"y":1,"pred":2}\n', None)  # corpus/jsonl_invalid_utf8_key.jsonl
@example(b'\n{"y":1,"pred":2}', None)  # corpus/jsonl_no_final_newline.jsonl
def test_json_lines_are_read_right_or_refused_cleanly(data, block) -> None:
    outcome = run_bytes(data, ".jsonl", "-t", "y", "-p", "pred", block_bytes=block)
    try:
        readings, differs = reference_jsonl(data)
    except Refused as why:
        refused: Refused | None = why
    else:
        refused = None
    if refused is not None:
        assert outcome.code == 2, f"exit 0 where the reference refuses ({refused}): {outcome.stdout[:300]}"
        return
    if outcome.code == 2:
        assert differs, f"refused JSON Lines the reference reads: {outcome.error}"
        return
    failures = []
    for expected in readings:
        try:
            expected.check(outcome)
            return
        except AssertionError as exc:
            failures.append(exc)
    raise failures[0]


# --- binary formats: truncated and bit-flipped -------------------------------------------------

ORIGINAL = pa.table(
    {
        "y": [float(i % 17) - 3.25 for i in range(300)],
        "pred": [float(i % 11) * 0.75 for i in range(300)],
        "id": [f"r{i}" for i in range(300)],
    }
)
ORIGINAL_CSV = b"y,pred,id\n" + b"".join(
    f"{y!r},{p!r},{i}\n".encode()
    for y, p, i in zip(*[ORIGINAL[c].to_pylist() for c in ORIGINAL.column_names], strict=True)
)


def _parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(ORIGINAL, buffer, row_group_size=100)
    return buffer.getvalue()


def _zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return bytes(sink.getvalue().to_pybytes())


def decompress(data: bytes, codec: str) -> bytes | None:
    """What an independent decoder makes of the bytes (None: it refuses them)."""
    try:
        if codec == "gzip":
            if len(data) > 3 and data[3] & 0xE0:
                return None  # RFC 1952: reserved FLG bits set must be an error (Python's gzip ignores them)
            return gzip.decompress(data)
        with pa.CompressedInputStream(pa.BufferReader(data), "zstd") as stream:
            return bytes(stream.read())
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid):
        return None


BINARIES = {"parquet": _parquet_bytes(), "gzip": gzip.compress(ORIGINAL_CSV, mtime=0), "zstd": _zstd(ORIGINAL_CSV)}
SUFFIXES = {"parquet": ".parquet", "gzip": ".csv.gz", "zstd": ".csv.zst"}


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(BINARIES)))
    data = bytearray(BINARIES[kind])
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()) and len(data) > 1:
            del data[draw(st.integers(1, len(data) - 1)) :]  # truncated
        else:
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))  # one bit flipped
    return kind, bytes(data)


@fuzz(40)
@given(damaged())
def test_truncated_or_bit_flipped_binary_files(case) -> None:
    kind, data = case
    outcome = run_bytes(data, SUFFIXES[kind], "-t", "y", "-p", "pred", "--id", "id")
    if kind == "parquet":
        return  # a flipped bit can change numbers without breaking the file: exit 0 or 2 is all we ask
    decoded = decompress(data, kind)
    if decoded is None:
        # The independent decoder refuses; smoothl1 may too, or may have read a prefix that Arrow's
        # decoder accepts (a zstd frame without checksum); it must not invent rows.
        if outcome.code == 0:
            assert outcome.report["rows"] <= len(ORIGINAL)
        return
    try:
        expected, differs = reference_delimited(decoded, False, "y", "pred", also=("id",))
    except Refused:
        assert outcome.code == 2
        return
    expected.check(outcome, differs)


def test_truncated_gzip_at_every_tenth_byte_is_refused() -> None:
    """Deterministic sweep: gzip's length and CRC trailer make every truncation detectable."""
    data = BINARIES["gzip"]
    for cut in range(1, len(data), max(1, len(data) // 40)):
        assert run_bytes(data[:cut], ".csv.gz", "-t", "y").code == 2, cut


def test_truncated_parquet_at_many_positions_is_refused() -> None:
    data = BINARIES["parquet"]
    for cut in range(1, len(data), max(1, len(data) // 40)):
        assert run_bytes(data[:cut], ".parquet", "-t", "y", "-p", "pred").code == 2, cut
