"""Fixtures of the robustness tests (the helpers live in :mod:`robust_cli`, a module name
no other test folder uses)."""

from robust_cli import small_fs  # noqa: F401 - the fixture
