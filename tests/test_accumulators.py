"""The accumulators behind every number (smoothl1_cli.stats, sketch, bootstrap): one overflow-safe
arithmetic for overall results, groups and the API; bounded cost; value equality."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from smoothl1_cli import bootstrap
from smoothl1_cli.bootstrap import BootstrapStats
from tests.conftest import run_command


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
