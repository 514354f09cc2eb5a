"""SIGTERM on the kiosk (a service manager stopping it) closes it like its exit keys: the
session is closed and logged, not killed midway (issue 22, item 9, kiosk part)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_sigterm_closes_the_kiosk_session(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "kiosk.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mestudio", "kiosk", "--source", "demo",
                                 "--db", str(tmp_path / "k.sqlite"), "--windowed",
                                 "--exit-after", "120"], stdout=err, stderr=err, env=env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "capture running" not in log.read_text():
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    text = log.read_text()
    assert rc == 0, text
    assert "kiosk session closed" in text and "Traceback" not in text
