"""The Hungarian method that matches detections to face tracks: optimal, one-to-one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mestudio.face.assignment import assign


def _best(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(sum(cost[i, p[i]] for i in range(n))
                   for p in itertools.permutations(range(m), n))
    return _best(cost.T)


@pytest.mark.parametrize("seed", range(40))
def test_assignment_is_optimal_and_one_to_one(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    cost = rng.uniform(0, 5, (n, m))
    if seed % 2:  # pairs that may not match, as the tracker marks them
        cost[rng.random((n, m)) < 0.4] = 1e6
    if seed % 3 == 0:
        cost = np.round(cost)  # ties
    rows, cols = assign(cost)
    assert len(rows) == len(cols) == min(n, m)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert rows.tolist() == sorted(rows.tolist())
    assert cost[rows, cols].sum() == pytest.approx(_best(cost))


def test_the_cheaper_crossing_wins():
    # two tracks, two detections: the greedy first choice (0 -> 0) is not the best
    cost = np.array([[1.0, 2.0], [1.5, 10.0]])
    rows, cols = assign(cost)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_empty_and_bad_input():
    assert [a.size for a in assign(np.zeros((0, 3)))] == [0, 0]
    with pytest.raises(ValueError, match="finite"):
        assign(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        assign(np.zeros(3))
