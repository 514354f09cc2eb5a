"""Tests of mestudio.training.datasets."""
