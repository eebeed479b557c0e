"""Streaming normalization statistics: per-dimension count, mean, std (population, ddof 0), min and max.

Batches are merged with Chan et al.'s pairwise update in float64, so the result equals ``np.mean`` /
``np.std`` over all rows at once (to float64 rounding) without holding the rows.
"""

from __future__ import annotations

import numpy as np


class RunningStats:
    """Statistics over the leading axis of batches [n, *shape] (a mutable accumulator)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.count = 0
        self.mean = np.zeros(self.shape, np.float64)
        self.m2 = np.zeros(self.shape, np.float64)
        self.low = np.full(self.shape, np.inf)
        self.high = np.full(self.shape, -np.inf)

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64).reshape((-1,) + self.shape)
        n = batch.shape[0]
        if n == 0:
            return
        mean = batch.mean(axis=0)
        m2 = ((batch - mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * n / total)
        self.count = total
        self.low = np.minimum(self.low, batch.min(axis=0))
        self.high = np.maximum(self.high, batch.max(axis=0))

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1))

    def summary(self) -> dict:
        """JSON-ready: nested lists of the field's trailing shape."""
        return {"count": int(self.count), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "min": self.low.tolist(), "max": self.high.tolist()}
