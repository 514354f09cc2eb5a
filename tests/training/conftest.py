"""Fixtures shared by the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _restore_logging():
    """``mestudio.cli.main`` points logging at the (captured) stderr; undo it afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
