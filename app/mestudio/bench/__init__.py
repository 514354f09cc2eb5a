"""Benchmarks run by ``mestudio bench NAME`` (``make bench`` runs them all).

Each module ``mestudio.bench.<name>`` exposes::

    HELP: str
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> dict   # prints a table and returns the figures

Benchmarks print figures and ratios against targets; they never fail a build.
"""
