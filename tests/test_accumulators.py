"""The accumulators behind every number (smoothl1_cli.stats, sketch, bootstrap): one overflow-safe
arithmetic for overall results, groups and the API; bounded cost; value equality."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np

from smoothl1_cli import bootstrap
from smoothl1_cli.bootstrap import BootstrapStats
from smoothl1_cli.sketch import QuantileSketch
from tests.conftest import run_command

REPORTED = (0.5, 0.9, 0.95, 0.99)


def _report(command: list[str], *args: Any) -> dict[str, Any]:
    """The installed command's JSON report, checked to have exited 0 with nothing on stderr but warnings."""
    done = run_command(command, "eval", *args, "-f", "json")
    assert done.returncode == 0, done.stderr.decode()
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_bootstrap_works_in_blocks_of_bounded_size_with_the_same_replicates(monkeypatch):
    """At any replicate count no weight matrix exceeds 128 x 2048 cells, and every replicate's sums are
    those of the whole matrix of weights, 2048 rows at a time, as before the blocking (bit for bit)."""
    rng = np.random.default_rng(4)
    rows, loss, weight = np.arange(5, 5005, dtype=np.int64), rng.exponential(size=5000), rng.random(5000)
    expected_sums, expected_weights = np.zeros((2, 1001)), np.zeros(1001)
    for start in range(0, rows.size, 2048):
        block = slice(start, start + 2048)
        draws = bootstrap.poisson_weights(9, rows[block], 1001) * weight[block]
        expected_weights += draws.sum(axis=1)
        expected_sums[0] += (draws * loss[block]).sum(axis=1)
        expected_sums[1] += (draws * 2 * loss[block]).sum(axis=1)
    cells = []
    real = bootstrap.poisson_weights

    def counted(*args: Any) -> Any:
        drawn = real(*args)
        cells.append(drawn.size)
        return drawn

    monkeypatch.setattr(bootstrap, "poisson_weights", counted)
    stats = BootstrapStats.empty(2, 1001, seed=9).update(rows, [loss, 2 * loss], weight)
    assert max(cells) <= 128 * 2048
    assert np.array_equal(stats.sums, expected_sums)
    assert np.array_equal(stats.weights, expected_weights)


def test_a_bootstrap_of_200000_replicates_runs_in_bounded_memory(smoothl1_command, tmp_path):
    """--bootstrap 200000 (a MemoryError before, all replicates x 2048 rows at once) stays far below the
    2 GB that 300 rows took in one block: a parent of nothing else reads the command's peak memory."""
    path = tmp_path / "data.csv"
    path.write_text("y,pred\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(300)))
    peak_of_child = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    args = ["eval", path, "-t", "y", "--ci", "0.9", "--bootstrap", "200000", "-f", "json"]
    done = run_command([sys.executable, "-c", peak_of_child, *smoothl1_command], *args, timeout=120)
    returncode, peak_kib = map(int, done.stdout.split())
    assert returncode == 0, done.stderr.decode()
    assert peak_kib < 400_000


def test_exact_quantiles_keep_chunks_without_copying_them():
    """--exact-quantiles is linear in the chunks: each chunk's values join one list by reference (no
    copy of the chunks before, as a tuple per merge made), concatenated once when the quantiles are taken."""
    rng = np.random.default_rng(8)
    chunks = [rng.exponential(size=3) for _ in range(2000)]
    sketch = QuantileSketch(math.inf)
    for chunk in chunks:
        grown = sketch.update(chunk)
        assert sketch.parts is None or not sketch.used or grown.parts is sketch.parts  # appended in place
        sketch = grown
    assert sketch.parts is not None
    assert [values for values, _ in sketch.parts] == chunks  # the chunks' own arrays, in order
    assert all(kept is chunk for (kept, _), chunk in zip(sketch.parts, chunks, strict=True))
    assert sketch.quantiles(REPORTED) == [float(np.quantile(np.concatenate(chunks), q)) for q in REPORTED]


def test_a_sketch_whose_list_grew_elsewhere_keeps_its_own_values():
    """Sharing the list is safe: growing an older sketch again copies its prefix, it never sees the other's chunks."""
    base = QuantileSketch(math.inf).update(np.array([1.0])).update(np.array([2.0]))
    first, second = base.update(np.array([10.0])), base.update(np.array([20.0, 30.0]))
    assert first.quantiles([0.0, 1.0]) == [1.0, 10.0]
    assert second.quantiles([0.0, 0.5, 1.0]) == [float(np.quantile([1, 2, 20, 30], q)) for q in (0.0, 0.5, 1.0)]
    assert base.quantiles([1.0]) == [2.0]
    assert base.merge(first).quantiles([0.25, 1.0]) == [float(np.quantile([1, 2, 1, 2, 10], 0.25)), 10.0]
