"""How the report looks on the screen and in files: many groups in JSON, self-describing CSV, escaped text."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from smoothl1_cli.render import _dump_json
from tests.conftest import reference_loss, run_command

# Many groups: the JSON writer streams them, byte for byte what json.dump(indent=2) wrote.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)


@given(data=st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_the_json_writer_writes_what_json_dump_indent_2_writes(data: dict[str, Any]) -> None:
    text = io.StringIO()
    _dump_json(data, text)
    assert text.getvalue() == json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def test_many_groups_give_a_valid_correct_json_report(smoothl1_command: list[str], tmp_path: Path) -> None:
    groups = 30_000
    rng = np.random.default_rng(5)
    keys = rng.permutation(np.repeat(np.arange(groups), 2))
    pred, target = rng.normal(size=keys.size) * 3, rng.normal(size=keys.size)
    pred[np.flatnonzero(keys == 7)[0]] = math.nan  # group 7's value is NaN: null in JSON
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"g": keys, "y": target, "pred": pred}), path)
    saved = tmp_path / "report.json"
    done = run_command(
        smoothl1_command, "eval", path, "-t", "y", "--group-by", "g", "--nan-policy", "propagate", "-o", saved,
        "-f", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert saved.read_bytes() == done.stdout
    report = json.loads(done.stdout)
    assert done.stdout.decode() == json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    losses: dict[int, list[float]] = {}
    for key, p, t in zip(keys.tolist(), pred.tolist(), target.tolist(), strict=True):
        losses.setdefault(key, []).append(reference_loss(p, t))
    assert [g["group"] for g in report["groups"]] == list(range(groups))
    for group in report["groups"]:
        expected = math.fsum(losses[group["group"]]) / 2
        assert group["count"] == 2
        if group["group"] == 7:
            assert (group["value"], group["mean"]) == (None, None)
        else:
            assert math.isclose(group["value"], expected, rel_tol=1e-12), group
