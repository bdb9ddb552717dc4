"""Regenerate the sample files (seeded, so the output is the same every time).

.venv/bin/python sample_data/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).parent


def write_csv(table: pa.Table, path: Path) -> None:
    """Plain CSV, no quotes (Arrow's writer always quotes the header; no sample value needs quotes)."""
    with open(path, "wb") as out:
        out.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def rounded(values: np.ndarray, digits: int = 3) -> pa.Array:
    return pa.array(np.round(values, digits))


def main() -> None:
    rng = np.random.default_rng(2024)

    # A house-price model (prices in $100k): mostly close, a few badly wrong listings.
    n = 200
    sqm = rng.uniform(40, 220, n)
    price = 0.9 + sqm * 0.021 + rng.normal(0, 0.25, n)
    pred = price + rng.normal(0, 0.3, n)
    outliers = rng.choice(n, 6, replace=False)
    pred[outliers] += rng.choice([-1, 1], 6) * rng.uniform(2.5, 6, 6)
    ids = [f"house-{i:04d}" for i in range(n)]
    regression = pa.table({"id": ids, "sqm": rounded(sqm, 1), "y": rounded(price), "pred": rounded(pred)})
    write_csv(regression, HERE / "regression.csv")
    pq.write_table(regression, HERE / "regression.parquet")

    # Two models side by side on the same targets: model_b is a little better, except for a few rows.
    model_a = price + rng.normal(0, 0.35, n)
    model_b = price + rng.normal(0, 0.28, n)
    model_b[rng.choice(n, 3, replace=False)] += 3.0
    write_csv(
        pa.table({"id": ids, "y": rounded(price), "model_a": rounded(model_a), "model_b": rounded(model_b)}),
        HERE / "two_models.csv",
    )

    # Bounding-box regression (pixels): x1, y1, x2, y2 against their predictions.
    m = 120
    x1 = rng.uniform(0, 500, m)
    y1 = rng.uniform(0, 400, m)
    x2 = x1 + rng.uniform(20, 200, m)
    y2 = y1 + rng.uniform(20, 200, m)
    boxes = {"image": [f"img_{i // 4:03d}.jpg" for i in range(m)]}
    for name, true in (("x1", x1), ("y1", y1), ("x2", x2), ("y2", y2)):
        boxes[name] = rounded(true, 1)
    for name, true in (("x1", x1), ("y1", y1), ("x2", x2), ("y2", y2)):
        noisy = true + rng.normal(0, 1.5, m)
        noisy[rng.choice(m, 2, replace=False)] += rng.uniform(15, 40, 2)
        boxes[f"{name}_pred"] = rounded(noisy, 1)
    write_csv(pa.table(boxes), HERE / "boxes.csv")

    # SPEC's worked example: every |d| is 0.5, so every loss (and the mean) is 0.125.
    example = pa.table({"pred": [0.5, 1.5, 2.5], "target": [1.0, 2.0, 3.0]})
    write_csv(example, HERE / "worked_example.csv")


if __name__ == "__main__":
    main()
