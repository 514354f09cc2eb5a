"""PyInstaller runtime hook: point mestudio at the bundled model files and assets.

In the one-folder build everything lives under ``sys._MEIPASS`` (``_internal/``);
``models/`` and ``assets/`` are copied there by ``packaging/mestudio.spec``. A user's own
``MESTUDIO_MODELS_DIR`` / ``MESTUDIO_ASSETS_DIR`` still wins.
"""

import os
import sys

_base = getattr(sys, "_MEIPASS", None)
if _base:
    for _var, _sub in (("MESTUDIO_MODELS_DIR", "models"), ("MESTUDIO_ASSETS_DIR", "assets")):
        _path = os.path.join(_base, _sub)
        if os.path.isdir(_path):
            os.environ.setdefault(_var, _path)
