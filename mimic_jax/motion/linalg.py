"""Small linear-algebra routines that give the same bits on every machine.

``numpy.linalg`` and ``@`` call BLAS/LAPACK, whose kernels are picked at run time for the CPU and may sum in
a different order (different last bits on another machine). The synthesized clips must be reproducible
bit for bit, so the generator solves its systems here with element-wise numpy operations only (IEEE
rounded, no reductions whose order depends on the CPU): a right-looking Cholesky factorisation (optionally
banded) and products written as broadcasts summed along a leading axis (sequential order).
"""

from __future__ import annotations

import numpy as np


def gram(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a.T @ diag(w) @ a`` for ``a`` [K, N], summed over K in order."""
    return np.sum(a[:, :, None] * (w[:, None] * a)[:, None, :], axis=0)


def mat_t_vec(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``a.T @ v`` for ``a`` [K, N] and ``v`` [K] (or [K, M]), summed over K in order."""
    if v.ndim == 1:
        return np.sum(a * v[:, None], axis=0)
    return np.sum(a[:, :, None] * v[:, None, :], axis=0)


def solve_spd(m: np.ndarray, b: np.ndarray, bandwidth: int | None = None) -> np.ndarray:
    """Solves ``m x = b`` for symmetric positive-definite ``m`` [N, N]; ``b`` is [N] or [N, M].

    ``bandwidth``: number of non-zero diagonals above the main one (``None``: dense).
    """
    n = m.shape[0]
    band = n - 1 if bandwidth is None else bandwidth
    low = np.array(m, dtype=np.float64, copy=True)
    for j in range(n):
        end = min(n, j + band + 1)
        low[j, j] = np.sqrt(low[j, j])
        low[j + 1:end, j] = low[j + 1:end, j] / low[j, j]
        col = low[j + 1:end, j]
        low[j + 1:end, j + 1:end] -= col[:, None] * col[None, :]
    y = np.array(b, dtype=np.float64, copy=True)
    for j in range(n):  # forward: L y = b
        end = min(n, j + band + 1)
        y[j] = y[j] / low[j, j]
        y[j + 1:end] -= np.multiply.outer(low[j + 1:end, j], y[j]) if y.ndim > 1 else low[j + 1:end, j] * y[j]
    for j in range(n - 1, -1, -1):  # backward: L^T x = y
        start = max(0, j - band)
        y[j] = y[j] / low[j, j]
        y[start:j] -= np.multiply.outer(low[j, start:j], y[j]) if y.ndim > 1 else low[j, start:j] * y[j]
    return y
