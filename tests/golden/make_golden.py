"""Generate tests/golden/golden.json: PyTorch's Smooth L1 and Huber losses on seeded inputs.

Run ONCE, under a Python that has PyTorch (torch is NOT a test dependency of smoothl1):

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy pyarrow
    /tmp/torchenv/bin/python tests/golden/make_golden.py

The output is deterministic (seeded), so re-running it with the same torch rewrites the
same file. Every float in the JSON is a string holding `repr(x)` of a Python float, which
`float()` reads back bit for bit (including "-0.0", "5e-324", "inf" and "nan").

Each case holds:
    id          a readable name, unique
    loss        "smooth_l1" or "huber"
    param       beta (smooth_l1) or delta (huber)
    dtype       "float64", or "float32" when pred and target are float32 values (stored as
                their exact float64 upcast; the reference is computed on that upcast, since
                smoothl1 always computes in float64)
    pred, target   the inputs
    none        torch's reduction="none" per-element losses (float64)
    mean, sum   torch's reduction="mean" and "sum" (float64)
    finite      whether every input and every loss is finite (the CLI's default
                --nan-policy error refuses non-finite inputs)
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

# torch is imported inside the functions that need it, so that pytest's --doctest-modules can
# import this file under the project's venv, which has no torch (and must not need one)

SEED = 20240601
BETAS = (0.0, 1e-6, 0.1, 0.5, 1.0, 2.5, 10.0, 1e6)
DELTAS = (1e-3, 0.5, 1.0, 3.0, 1e4)
SIZES = (1, 3, 17, 1000)
# 1000-element cases are stored only for these parameters, to keep the JSON small
LARGE_FOR = {("smooth_l1", 1.0), ("smooth_l1", 1e-6), ("huber", 3.0)}
TINY = 5e-324  # the smallest denormal
MIN_NORMAL = 2.2250738585072014e-308
OUT = Path(__file__).with_name("golden.json")


def _s(x: float) -> str:
    text = repr(float(x))
    assert float(text) == x or (math.isnan(x) and math.isnan(float(text)))
    assert math.copysign(1.0, float(text)) == math.copysign(1.0, x)
    return text


def torch_losses(loss: str, param: float, pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """PyTorch's reduction none, mean and sum, on float64 tensors."""
    import torch
    import torch.nn.functional as F

    p = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float64))
    t = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float64))
    assert p.dtype == torch.float64
    assert t.dtype == torch.float64
    out = {}
    for reduction in ("none", "mean", "sum"):
        if loss == "smooth_l1":
            value = F.smooth_l1_loss(p, t, reduction=reduction, beta=param)
        else:
            value = F.huber_loss(p, t, reduction=reduction, delta=param)
        assert value.dtype == torch.float64
        out[reduction] = value.numpy().tolist() if reduction == "none" else float(value.item())
    return out


def straddle(param: float) -> list[float]:
    """|d| just below, exactly at and just above the threshold, and a bit further out."""
    if param == 0:
        return [0.0, -0.0, TINY, -TINY, MIN_NORMAL, 1e-300, 1.0, -2.5]
    below, above = math.nextafter(param, 0.0), math.nextafter(param, math.inf)
    values = [param, below, above, param * (1 - 1e-9), param * (1 + 1e-9), param / 2, 2 * param, param * 1e-8,
              param * 1e8, math.nextafter(below, 0.0), math.nextafter(above, math.inf)]  # fmt: skip
    return values + [-v for v in values]


def specials(param: float) -> list[tuple[float, float]]:
    """(pred, target) pairs with huge, tiny, denormal and signed-zero values (differences stay finite)."""
    return [
        (0.0, 0.0), (-0.0, 0.0), (0.0, -0.0), (-0.0, -0.0),
        (TINY, 0.0), (0.0, TINY), (-TINY, TINY), (TINY, -0.0), (3 * TINY, TINY),
        (MIN_NORMAL, 0.0), (MIN_NORMAL, -MIN_NORMAL), (1e-300, -1e-300), (1e-300, 0.0), (-1e-300, 1e-310),
        (1e300, 0.0), (-1e300, 0.0), (1e300, -1e300), (1e300, 1e300), (0.0, 1e300), (1e300, math.nextafter(1e300, 0)),
        (1e154, -1e154), (1.3e154, 0.0), (1e200, 1e-200), (-1e-200, 1e200),
        (param, 0.0), (0.0, param), (-param, 0.0), (param + 1.0, 1.0), (1.0, 1.0 - param),
        (0.1 + 0.2, 0.3), (1e16 + 2.0, 1e16), (-7.25, 3.5),
        # d*d lands in the denormal range, where the order of 0.5 * d * d / beta shows in the last bit
        (1.4916681462400413e-154, 0.0), (3.3e-162, 0.0), (-2.7e-158, 0.0), (1.1e-160, -1.3e-160), (7.7e-163, 0.0),
    ]  # fmt: skip


def overflow() -> list[tuple[float, float]]:
    """Pairs whose difference overflows to inf, or whose inputs are inf or nan (torch gives inf or nan)."""
    big = 1.7976931348623157e308
    return [(big, -big), (-big, big), (1e308, -1e308), (math.inf, 0.0), (0.0, -math.inf),
            (math.inf, math.inf), (math.nan, 1.0), (1.0, math.nan)]  # fmt: skip


def random_pairs(rng: np.random.Generator, param: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixed-sign targets and differences spread around the threshold (log-uniform), exact ones mixed in."""
    scale = param if param > 0 else 1.0
    target = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)
    magnitude = scale * 10.0 ** rng.uniform(-4, 4, n)
    sign = rng.choice([-1.0, 1.0], n)
    pred = target + sign * magnitude
    if n >= 3 and param > 0:
        # a few rows whose difference is the threshold exactly or one ulp either side of it
        k = max(1, n // 10)
        rows = rng.choice(n, size=min(3 * k, n), replace=False)
        exact = [param, math.nextafter(param, 0.0), math.nextafter(param, math.inf)]
        for i, row in enumerate(rows):
            target[row] = 0.0 if i % 2 else -0.0
            pred[row] = exact[i % 3] * (1.0 if i % 4 < 2 else -1.0)
    return pred, target


def make_case(case_id: str, loss: str, param: float, pred: Any, target: Any, dtype: str = "float64") -> dict[str, Any]:
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    assert pred.shape == target.shape
    assert pred.ndim == 1
    ref = torch_losses(loss, param, pred, target)
    none = np.asarray(ref["none"], dtype=np.float64)
    finite = bool(np.isfinite(pred).all() and np.isfinite(target).all() and np.isfinite(none).all())
    return {
        "id": case_id,
        "loss": loss,
        "param": _s(param),
        "dtype": dtype,
        "finite": finite,
        "pred": [_s(x) for x in pred.tolist()],
        "target": [_s(x) for x in target.tolist()],
        "none": [_s(x) for x in ref["none"]],
        "mean": _s(ref["mean"]),
        "sum": _s(ref["sum"]),
    }


def cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(SEED)
    out = [make_case("spec-worked-example", "smooth_l1", 1.0, [0.5, 1.5, 2.5], [1.0, 2.0, 3.0])]
    params = [("smooth_l1", b) for b in BETAS] + [("huber", d) for d in DELTAS]
    for loss, param in params:
        name = f"{loss}-{'beta' if loss == 'smooth_l1' else 'delta'}{param:g}"
        d = straddle(param)
        out.append(make_case(f"{name}-straddle-vs-0", loss, param, d, [0.0] * len(d)))
        # the same differences on a nonzero, mixed-sign target: pred - target is rounded, torch sees that
        target = [(-1.0) ** i * 0.75 * (i + 1) for i in range(len(d))]
        out.append(
            make_case(f"{name}-straddle-shifted", loss, param, [t + x for t, x in zip(target, d, strict=True)], target)
        )
        pairs = specials(param)
        out.append(make_case(f"{name}-specials", loss, param, [p for p, _ in pairs], [t for _, t in pairs]))
        pairs = overflow()
        out.append(make_case(f"{name}-overflow-nan", loss, param, [p for p, _ in pairs], [t for _, t in pairs]))
        for n in SIZES:
            if n == 1000 and (loss, param) not in LARGE_FOR:
                continue
            pred, target = random_pairs(rng, param, n)
            out.append(make_case(f"{name}-random{n}", loss, param, pred, target))
    # float32 inputs, computed in float64 on their exact upcast
    for loss, param in [("smooth_l1", 1.0), ("smooth_l1", 0.1), ("smooth_l1", 0.0), ("huber", 0.5), ("huber", 1e-3)]:
        name = f"{loss}-{'beta' if loss == 'smooth_l1' else 'delta'}{param:g}"
        pred, target = random_pairs(rng, param, 33)
        p32, t32 = pred.astype(np.float32), target.astype(np.float32)
        p32[:3] = np.float32(param) + np.array([0, 1, -1], dtype=np.float32) * np.float32(1e-7)
        t32[:3] = 0.0
        p32[3], t32[3] = np.float32(1e38), np.float32(-1e38)
        p32[4], t32[4] = np.float32(1e-45), np.float32(0.0)  # the smallest float32 denormal
        assert np.isfinite(p32).all()
        assert np.isfinite(t32).all()
        out.append(
            make_case(f"{name}-float32-33", loss, param, p32.astype(np.float64), t32.astype(np.float64), "float32")
        )
    ids = [c["id"] for c in out]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return out


def main() -> None:
    import torch

    document = {
        "generator": "tests/golden/make_golden.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "seed": SEED,
        "note": "every float is repr(float) as a string; float(s) restores it exactly",
        "cases": cases(),
    }
    # one case a line, so a regenerated file diffs readably
    head = json.dumps({k: v for k, v in document.items() if k != "cases"}, separators=(",", ":"))[:-1]
    body = ",\n".join(json.dumps(case, separators=(",", ":")) for case in document["cases"])
    text = f'{head},"cases":[\n{body}\n]}}'
    assert json.loads(text) == document
    OUT.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(text) / 1024:.0f} KiB, {len(document['cases'])} cases, torch {torch.__version__})")


if __name__ == "__main__":
    main()
