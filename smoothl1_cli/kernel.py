"""Per-row loss terms over an array namespace `xp` (NumPy or CuPy): pure math, no I/O.

Both functions evaluate exactly PyTorch's expressions, in PyTorch's order, so every
term is bit-identical to `torch.nn.functional.smooth_l1_loss(..., reduction="none")`
(and `huber_loss`) in float64; the one exception is `_extreme_quadratic`, where PyTorch's
intermediate leaves float64's range and smoothl1 returns the right value instead.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

Array = Any
Namespace = Any


def smooth_l1_terms(diff: Array, beta: float, xp: Namespace) -> Array:
    """Per-row Smooth L1 of d = pred - target: 0.5 * d**2 / beta where |d| < beta, else |d| - 0.5 * beta.

    >>> import numpy as np
    >>> smooth_l1_terms(np.array([-0.5, 3.0]), beta=1.0, xp=np).tolist()
    [0.125, 2.5]
    """
    d = xp.abs(diff)
    if beta == 0:
        return d  # exactly L1: no division
    return _blend(d, beta, divide=True, linear_scale=1.0, xp=xp)


def huber_terms(diff: Array, delta: float, xp: Namespace) -> Array:
    """Per-row Huber of d = pred - target: 0.5 * d**2 where |d| < delta, else delta * (|d| - 0.5 * delta).

    >>> import numpy as np
    >>> huber_terms(np.array([-0.5, 3.0]), delta=2.0, xp=np).tolist()
    [0.125, 4.0]
    """
    return _blend(xp.abs(diff), delta, divide=False, linear_scale=delta, xp=xp)


def _blend(d: Array, beta: float, divide: bool, linear_scale: float, xp: Namespace) -> Array:
    """Quadratic below `beta`, linear from it, computed in place on `d` (its caller's fresh |diff|).

    The quadratic branch squares min(|d|, beta) rather than |d|, so a discarded branch never
    overflows; where |d| < beta the two are the same number, so the result is unchanged.
    """
    quadratic = d < beta
    clipped = xp.minimum(d, beta)
    if divide and not 1.0 <= beta <= 1e150:  # only here can (0.5 * z) * z leave float64's normal range
        quad = _extreme_quadratic(clipped, beta, xp)
    else:
        quad = clipped * 0.5
        quad *= clipped  # (0.5 * z) * z, PyTorch's order
        if divide and beta != 1.0:  # (x / 1 is x, exactly: the default beta needs no division)
            quad /= beta  # a division, as PyTorch does, not a multiplication by 1 / beta
    d -= 0.5 * beta
    if linear_scale != 1.0:
        d *= linear_scale
    xp.copyto(d, quad, where=quadratic)
    return d


_SMALLEST_NORMAL = 2.2250738585072014e-308
_LARGEST = 1.7976931348623157e308


def _extreme_quadratic(clipped: Array, beta: float, xp: Namespace) -> Array:
    """((0.5 * z) * z) / beta as PyTorch computes it, except where (0.5 * z) * z overflowed or went
    subnormal while the loss itself is representable: there 0.5 * z * (z / beta), which cannot
    overflow (z < beta) and keeps every digit. PyTorch returns inf or a number with few correct
    digits in those places; everywhere else the result stays bit-identical to PyTorch's.
    Example: z = 1e-160, beta = 1e-100: the loss is 5e-221, but (0.5 * z) * z = 5e-321 is
    subnormal and keeps three digits.
    """
    with np.errstate(over="ignore", under="ignore") if xp is np else contextlib.nullcontext():
        quad = clipped * 0.5
        quad *= clipped
        lost = (quad > _LARGEST) | ((quad < _SMALLEST_NORMAL) & (clipped > 0))
        quad /= beta
        if bool(lost.any()):
            z = clipped[lost]
            quad[lost] = 0.5 * z * (z / beta)
    return quad
