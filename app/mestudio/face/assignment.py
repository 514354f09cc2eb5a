"""Minimum-cost assignment (the Hungarian method) for matching detections to face tracks.

The shortest-augmenting-path form with row and column potentials (Kuhn–Munkres as Jonker and
Volgenant state it): ``O(n² m)`` for an ``n × m`` cost matrix, instant for the few faces of a
frame. Kept here, in numpy, so the application does not need SciPy for it.
"""

from __future__ import annotations

import numpy as np


def assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost assignment, as ``linear_sum_assignment`` gives.

    Args:
        cost: ``(n, m)`` finite costs. Every row is assigned when ``n <= m``, every column
            when ``n > m``.

    Returns:
        ``(rows, cols)``: ``min(n, m)`` index pairs, ``rows`` in increasing order.

    Raises:
        ValueError: a cost matrix that is not 2-D or holds a NaN or an infinity.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"assign: expected a 2-D cost matrix, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("assign: costs must be finite")
    n, m = c.shape
    if n == 0 or m == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    if n > m:
        cols, rows = assign(c.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    # rows 1..n are matched into columns 1..m; column 0 is the start of each search
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    match = np.zeros(m + 1, np.intp)  # match[j]: row matched to column j (0 = none)
    way = np.zeros(m + 1, np.intp)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    rows = match[1:] - 1
    cols = np.nonzero(match[1:])[0]
    rows = rows[cols]
    order = np.argsort(rows)
    return rows[order].astype(np.intp), cols[order].astype(np.intp)
