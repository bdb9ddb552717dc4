"""The canonical reduction in memory: any partition of the rows into pieces, each reduced into its own
RunState (pickled, as a worker sends it), merged in the tree, gives the report of one piece."""

from __future__ import annotations

import json
import pickle
import re
import sys
from functools import reduce
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smoothl1_cli import backends
from smoothl1_cli.engines import merge_tree
from smoothl1_cli.errors import InputError
from smoothl1_cli.options import Options
from smoothl1_cli.plan import Plan
from smoothl1_cli.render import RENDERERS
from smoothl1_cli.state import Block, RunState, aligned
from tests.conftest import reference_mean, run_command, within_1e12
from tests.gpu_support import FakeDevice

INPUTS = [("data.parquet", "parquet")]
NUMPY = backends.Feed(np)


def _table(rows: int, seed: int, bad: float) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=rows)
    data = {
        "y": y,
        "a": y + rng.standard_cauchy(size=rows),
        "b": y + rng.normal(scale=0.5, size=rows),
        "w": rng.integers(0, 4, size=rows).astype(np.float64),
        "g": rng.integers(0, 7, size=rows),
        "id": np.arange(rows) * 3,
    }
    data["w"][0] = 1.0  # weights of 0 occur, but never all of them
    data["a"][rng.random(rows) < bad] = np.nan
    return data


def _state(
    plan: Plan, options: Options, data: dict[str, Any], start: int, stop: int, feed: backends.Feed = NUMPY
) -> RunState:
    """One piece of rows [start, stop), read in blocks of 7 rows, re-cut into the feed's batches of the
    options' chunks."""
    state = RunState.empty(plan, options, 0, start)
    blocks = (
        Block(
            {name: data[name][lo : min(lo + 7, stop)] for name in plan.numeric},
            [pa.array(data["id"][lo : min(lo + 7, stop)])] if plan.id else [],
            [pa.array(data["g"][lo : min(lo + 7, stop)])] if plan.group_by else [],
            min(lo + 7, stop) - lo,
        )
        for lo in range(start, stop, 7)
    )
    with np.errstate(all="ignore"):
        for block in aligned(blocks, feed.batch_rows(options.chunk_rows, len(plan.numeric), len(plan.pairs))):
            state.update(block, feed)
    return state


def _json(state: RunState) -> str:
    out: list[str] = []

    class Text:
        def write(self, text: str) -> None:
            out.append(text)

    with np.errstate(all="ignore"):
        RENDERERS["json"](state.finish(INPUTS), Text())  # type: ignore[arg-type]
    return "".join(out)


OPTIONS = [
    {},
    {"weight": "w"},
    {"nan_policy": "omit", "group_by": "g"},
    {"nan_policy": "propagate", "group_by": "g", "weight": "w"},
    {"target": ("y", "y"), "pred": ("a", "b"), "multioutput": "row-sum", "nan_policy": "omit"},
    {"ci": 0.9, "bootstrap": 20, "nan_policy": "omit", "loss": "huber", "delta": 0.5},
    {"exact_quantiles": True, "nan_policy": "omit", "id": "id", "top": 4},
]


def _setup(settings: dict[str, Any], chunk_rows: int) -> tuple[Plan, Options]:
    options = Options(**{"target": ("y",), "pred": ("a", "b"), "chunk_rows": chunk_rows, **settings})
    targets = options.target if len(options.target) > 1 else options.target * len(options.pred)
    plan = Plan(tuple(zip(options.pred, targets, strict=True)), options.weight, options.id, options.group_by)
    return plan, options


@given(
    rows=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    which=st.integers(0, len(OPTIONS) - 1),
    chunk_rows=st.integers(1, 64),
    cuts=st.lists(st.floats(0, 1), max_size=6),
    bad=st.sampled_from([0.0, 0.1]),
)
@example(rows=1, seed=0, which=2, chunk_rows=1, cuts=[0.0, 1.0], bad=0.0)  # empty pieces at both ends
@settings(deadline=None, max_examples=max(40, settings.default.max_examples // 2))  # 2,500 with HYPOTHESIS_PROFILE=long
def test_any_partition_into_pieces_gives_the_report_of_one_piece(rows, seed, which, chunk_rows, cuts, bad):
    if OPTIONS[which].get("nan_policy") is None:
        bad = 0.0
    plan, options = _setup(OPTIONS[which], chunk_rows)
    data = _table(rows, seed, bad)
    bounds = sorted([0, rows, *(round(cut * rows) for cut in cuts)])  # pieces may be empty (a header only)
    states = [_state(plan, options, data, lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    shipped = [pickle.loads(pickle.dumps(state)) for state in states]  # as a worker process returns it
    try:
        whole = json.loads(_json(_state(plan, options, data, 0, rows)))
    except InputError as exc:  # every row omitted: the same error, however the rows were cut
        with pytest.raises(InputError, match=re.escape(str(exc))):
            _json(merge_tree(shipped))
        return
    merged = _json(merge_tree(shipped))
    assert merged == _json(merge_tree(states))  # the same pieces: the same bytes, pickled or not
    report = json.loads(merged)
    assert report["inputs"] == whole["inputs"] == [{"path": "data.parquet", "format": "parquet", "rows": rows}]
    assert report["worst_rows"] == whole["worst_rows"]  # rows are global: the same rows, the same losses
    for key in ("results", "groups", "overall"):
        assert report.get(key) == within_1e12(whole.get(key))


@given(
    rows=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    which=st.integers(0, len(OPTIONS) - 1),
    chunk_rows=st.integers(1, 40),
    batch=st.integers(1, 6),
    cuts=st.lists(st.floats(0, 1), max_size=3),
    bad=st.sampled_from([0.0, 0.05]),
    scale=st.sampled_from([1.0, 1e-160, 1e155]),
)
@settings(deadline=None, max_examples=max(30, settings.default.max_examples // 3))
def test_a_device_reducing_batches_of_chunks_gives_numpys_report(
    rows, seed, which, chunk_rows, batch, cuts, bad, scale
):
    """The fake device (tests/gpu_support.py) takes `batch` chunks per update, each chunk's partials merged
    in chunk order: on any partition into pieces, the report of NumPy's chunk-at-a-time reduction within
    a relative 1e-12, the worst rows and counts exactly; at scales where the sums are kept scaled too."""
    if OPTIONS[which].get("nan_policy") is None:
        bad = 0.0
    plan, options = _setup(OPTIONS[which], chunk_rows)
    data = _table(rows, seed, bad)
    for name in ("y", "a", "b"):
        data[name] = data[name] * scale
    device = FakeDevice()
    bounds = sorted([0, rows, *(round(cut * rows) for cut in cuts)])
    pieces = list(zip(bounds, bounds[1:], strict=False))
    feed = backends.DeviceFeed(device)
    # DeviceFeed's batches: `batch` chunks; the fake device is found as CuPy is, by `import cupy`
    with mock.patch.object(backends, "BATCH_ROWS", chunk_rows * batch), mock.patch.dict(sys.modules, cupy=device):
        on_device = [_state(plan, options, data, lo, hi, feed) for lo, hi in pieces]
    try:
        whole = json.loads(_json(_state(plan, options, data, 0, rows)))
    except InputError as exc:
        with pytest.raises(InputError, match=re.escape(str(exc))):
            _json(merge_tree(on_device))
        return
    report = json.loads(_json(merge_tree(on_device)))
    assert report["inputs"] == whole["inputs"]
    assert report["worst_rows"] == whole["worst_rows"]
    for key in ("results", "groups", "overall"):
        assert report.get(key) == within_1e12(whole.get(key))


@pytest.mark.parametrize("which", range(len(OPTIONS)))
def test_a_left_fold_agrees_with_the_tree_and_the_reference(which):
    """Another merge order changes only rounding; the value is math.fsum's."""
    plan, options = _setup(OPTIONS[which], 16)
    data = _table(200, which, 0.1 if "nan_policy" in OPTIONS[which] else 0.0)
    states = [_state(plan, options, data, lo, lo + 25) for lo in range(0, 200, 25)]
    tree = json.loads(_json(merge_tree(states)))
    fold = json.loads(_json(reduce(RunState.merge, states)))
    assert fold["results"] == within_1e12(tree["results"])
    if options.weight is None and options.nan_policy == "error" and options.loss == "smooth_l1":
        assert tree["results"][0]["value"] == pytest.approx(reference_mean(data["a"], data["y"]), rel=1e-12)


def test_a_merge_moves_the_right_states_rows_past_the_left_ones():
    plan, options = _setup({"nan_policy": "omit", "top": 3}, 8)
    data = _table(60, 5, 0.2)
    left, right = _state(plan, options, data, 0, 20), _state(plan, options, data, 20, 60)
    merged = left.merge(right)
    whole = _state(plan, options, data, 0, 60)
    assert merged.rows == whole.rows == 60
    assert merged.omitted == whole.omitted > 0
    assert merged.bad == whole.bad
    assert merged.inputs == [[0, 60]]
    for ours, theirs in zip(merged.stats, whole.stats, strict=True):
        assert ours.worst is not None
        assert theirs.worst is not None
        assert ours.worst.rows.tolist() == theirs.worst.rows.tolist()


def test_without_quantiles_the_values_are_the_same_bits(smoothl1_command, tmp_path) -> None:
    """-q shows values only, so it reduces without the sketch: the values do not change by a bit."""
    data = _table(5000, 3, 0.0)
    path = tmp_path / "data.csv"
    path.write_text(
        "y,a\n" + "".join(f"{y!r},{a!r}\n" for y, a in zip(data["y"].tolist(), data["a"].tolist(), strict=True))
    )
    quiet = run_command(smoothl1_command, "eval", path, "-t", "y", "-q")
    report = json.loads(run_command(smoothl1_command, "eval", path, "-t", "y", "-f", "json").stdout)
    assert quiet.stdout.decode() == f"{report['results'][0]['value']!r}\n"
    plan, options = _setup({"quantiles": False, "pred": ("a",)}, 65_536)  # the command's chunks
    bare = json.loads(_json(_state(plan, options, data, 0, 5000)))["results"][0]
    assert bare["quantiles"] == {"p50": None, "p90": None, "p95": None, "p99": None}
    assert {k: v for k, v in bare.items() if k != "quantiles"} == {
        k: v for k, v in report["results"][0].items() if k != "quantiles"
    }


def test_a_joined_block_slices_its_label_arrays_across_their_seams():
    """Block.concat keeps one id and group array per joined block; a slice of the join (a device's
    batch cut into chunks) takes the right rows of each, whatever seams it crosses."""
    sizes = [3, 5, 4]
    values = np.arange(12.0)
    starts = np.cumsum([0, *sizes])
    blocks = [
        Block({"y": values[a:b]}, [pa.array(values[a:b] * 10)], [pa.array([f"g{i}" for i in range(a, b)])], b - a)
        for a, b in zip(starts, starts[1:], strict=False)
    ]
    joined = Block.concat(blocks)
    for start in range(12):
        for length in range(0, 13 - start):
            part = joined.slice(start, length)
            assert part.columns["y"].tolist() == values[start : start + length].tolist()
            assert pa.concat_arrays(part.ids).to_pylist() == (values[start : start + length] * 10).tolist()
            assert pa.concat_arrays(part.groups).to_pylist() == [f"g{i}" for i in range(start, start + length)]
