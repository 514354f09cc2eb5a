"""mestudio.gui — the PySide6 + pyqtgraph front end (the only package that imports Qt).

Importing this package applies :func:`protect_singletons`: PySide6 6.12 on CPython 3.11
returns ``None``/``True``/``False`` from C++ calls without taking a reference (it assumes
the immortal singletons of CPython >= 3.12). Every ``QPainter.drawImage``, ``setPen``,
``Signal.emit``... then lowers the singleton's reference count by one until CPython aborts
with "Fatal Python error: none_dealloc" (a few thousand calls: seconds of video). Making
the three singletons effectively immortal, as CPython 3.12 does, removes the crash.
"""

from __future__ import annotations

import sys

#: Added to the reference counts of None/True/False (CPython < 3.12 only).
_IMMORTAL_BOOST = 1 << 40


def protect_singletons() -> bool:
    """Give ``None``, ``True`` and ``False`` a huge reference count on CPython < 3.12 so
    that extension modules that forget to take references to them cannot free them.
    Returns True when applied (idempotent: applied once per process)."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    import ctypes

    for obj in (None, True, False):
        refcnt = ctypes.c_ssize_t.from_address(id(obj))
        if refcnt.value < _IMMORTAL_BOOST // 2:
            refcnt.value += _IMMORTAL_BOOST
    return True


protect_singletons()
