"""mestudio — real-time facial micro-expression spotting and recognition."""

import os as _os
import time as _time

#: When the package was first imported (seconds since the epoch): the program's start, for
#: the "first frame painted" figure (a process's own start time, as the OS gives it, is only
#: known to the second on Linux).
STARTED_AT = _time.time()

__version__ = "0.1.0"

# ONNX Runtime (>= 1.2x, every platform) writes a telemetry database and a device id under
# ~/.cache/Microsoft/DeveloperTools/.onnxruntime as soon as it is imported; mestudio promises
# to store nothing but its own files (the kiosk: its event log). The variable is read when
# onnxruntime is first imported, so it is set here, before any module of the package can
# import it; ``inference.providers.session_options`` also turns its telemetry events off.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
