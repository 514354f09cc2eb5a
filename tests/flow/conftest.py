"""Fixtures of the flow tests: real face crops moved by known smooth displacement fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Small tensors: one thread is fastest (and polite on a shared machine)."""


@pytest.fixture(scope="session")
def faces(data_dir: Path):
    """Real face images with boxes (shared test data + scikit-image's astronaut)."""
    from mestudio.bench.flow import face_images

    found = face_images(data_dir, max_faces=8)
    if len(found) < 4:
        pytest.skip("not enough face images found in the shared data")
    return found


@pytest.fixture(scope="session")
def face_pairs(faces):
    """``pairs(size, n, seed)`` -> (prev (n,S,S) uint8, next, true flow (n,S,S,2))."""
    from mestudio.bench.flow import make_pairs

    cache: dict = {}

    def pairs(size: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (size, n, seed)
        if key not in cache:
            cache[key] = make_pairs(faces, size, n, seed)
        return cache[key]

    return pairs
