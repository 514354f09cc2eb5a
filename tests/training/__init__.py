"""Tests of mestudio.training (package so that tests can import training.fixtures)."""
