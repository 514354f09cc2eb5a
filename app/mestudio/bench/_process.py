"""A ``mestudio`` command run as a new process for a benchmark, with its peak memory.

The peak is the kernel's own count for that process (``os.wait4``: ``ru_maxrss``), not a
sampling that can miss a short peak. Where ``wait4`` does not exist (Windows) the peak is
None.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence


def run_mestudio(argv: Sequence[str], *, env: dict[str, str] | None = None,
                 preexec_fn: Callable[[], object] | None = None, capture: bool = True
                 ) -> tuple[subprocess.CompletedProcess[str], float | None]:
    """``python -m mestudio ARGV`` to its end: the result (its output captured as text when
    ``capture``) and its peak resident memory in MB."""
    from mestudio.batch import rusage_mb

    cmd = [sys.executable, "-m", "mestudio", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out if capture else subprocess.DEVNULL,
                                stderr=err if capture else subprocess.DEVNULL, env=env,
                                preexec_fn=preexec_fn)
        peak: float | None = None
        if hasattr(os, "wait4"):
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            peak = rusage_mb(usage)
        else:  # pragma: no cover - Windows
            proc.wait()
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
    return subprocess.CompletedProcess(cmd, proc.returncode, texts[0], texts[1]), peak
