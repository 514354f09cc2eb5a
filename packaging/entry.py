"""Entry point of the frozen (PyInstaller) build: the same CLI as the `mestudio` script."""

import multiprocessing
import sys

from mestudio.cli import fast_exit, main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch/data-loader workers in the frozen app
    fast_exit(main())
