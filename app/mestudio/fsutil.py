"""Atomic file writes: the one implementation every writer of mestudio uses.

A crash, a full disk or a power cut while a file is being written leaves either the previous
version or the new one, never a torn file:

1. the content goes to a temporary file in the target's folder (same file system, so the
   rename below is atomic), created with mode ``0o666`` minus the process umask — the mode
   an ordinary ``open(path, "w")`` would give (``tempfile.mkstemp`` would give ``0o600``,
   which other users and tools then cannot read);
2. the temporary file is flushed and ``fsync``-ed (``durable=True``, the default);
3. it is renamed over the target (:func:`os.replace`);
4. the folder is ``fsync``-ed so the rename itself survives a power cut (POSIX;
   ``durable=True``).

On any error the temporary file is removed and the target is untouched; an
:class:`OSError` that names no file (a write on a full disk) is given the target's name.

``durable=False`` skips both ``fsync`` calls (still atomic against a crash of the process):
for bulk caches that are recomputed when unreadable, where thousands of ``fsync`` calls would
cost more than they protect.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["agg_matplotlib", "atomic_path", "atomic_write_bytes", "atomic_write_text",
           "fsync_dir", "remove_stale_temps"]


def agg_matplotlib():  # noqa: ANN201 - the matplotlib module
    """matplotlib with its Agg back-end (no display), its configuration and font cache in
    mestudio's own cache folder (``<user cache>/mestudio/matplotlib``) instead of
    ``~/.config/matplotlib`` and ``~/.cache/matplotlib``: the program writes nothing
    outside its documented places. A ``MPLCONFIGDIR`` the user set is kept."""
    import sys

    if "matplotlib" not in sys.modules and not os.environ.get("MPLCONFIGDIR"):
        from platformdirs import user_cache_dir

        folder = Path(user_cache_dir("mestudio", appauthor=False)) / "matplotlib"
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["MPLCONFIGDIR"] = str(folder)
    import matplotlib

    matplotlib.use("Agg", force=False)
    return matplotlib


_NO_FSYNC = {errno.EINVAL, getattr(errno, "ENOTSUP", errno.EINVAL),
             getattr(errno, "EOPNOTSUPP", errno.EINVAL)}


def _new_temp(path: Path, keep_suffix: bool = False) -> Path:
    """Create an empty, unique temporary file beside ``path`` (mode ``0o666 & ~umask``);
    ``keep_suffix``: its name ends with ``path``'s suffix too (``.clip.mp4.1a2b3c4d.tmp.mp4``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    end = ".tmp" + (path.suffix if keep_suffix else "")
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{end}")
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask, like open()
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")


_TEMP_NAME = re.compile(r"\.(.+)\.[0-9a-f]{8}\.tmp(\.[^.]*)?")


def temp_target(path: str | os.PathLike[str]) -> str | None:
    """The file a temporary file of :func:`_new_temp` was to become (same folder), or None
    when ``path`` is not such a temporary file (for error messages: name the real file)."""
    name = os.path.basename(os.fspath(path))
    match = _TEMP_NAME.fullmatch(name)
    return None if match is None else os.path.join(os.path.dirname(os.fspath(path)),
                                                   match.group(1))


def remove_stale_temps(folder: str | os.PathLike[str], names: tuple[str, ...]) -> int:
    """Remove the temporary files (:func:`_new_temp`) that a run killed before it could
    rename them left beside ``names`` in ``folder``; call it before a run writes those
    files again. Returns how many were removed."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        target = temp_target(entry.path)
        if target is None or os.path.basename(target) not in names:
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # A file system without fsync (some FUSE/network mounts) is not an I/O error.
        if exc.errno not in _NO_FSYNC:
            raise
    finally:
        os.close(fd)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """``fsync`` a folder, so a rename inside it is on disk (no-op where folders cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse it
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, durable: bool = True,
                keep_suffix: bool = False) -> Iterator[Path]:
    """Context manager for writers that want a file name (``torch.save``, ``onnx.save``,
    ``np.savez``, a workbook's ``save``): yields a temporary path beside ``path``; when the
    block ends without an exception the file written there replaces ``path`` atomically
    (see the module docstring), otherwise it is deleted and ``path`` is left as it was.

    ``keep_suffix=True`` gives the temporary file ``path``'s suffix as well, for writers
    that choose the format from the name (``cv2.VideoWriter``, matplotlib's ``savefig``).

    Example::

        with atomic_path(out) as tmp:
            torch.save(obj, tmp)
    """
    target = Path(path)
    tmp = _new_temp(target, keep_suffix)
    try:
        yield tmp
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(target)  # a failed write (disk full) says which file
        raise
    if durable:
        fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *,
                       durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring); returns ``path``."""
    target = Path(path)
    with atomic_path(target, durable=durable) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
                      newline: str | None = "", durable: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (see the module docstring); returns ``path``.

    ``newline=""`` (default) writes the text as given (``"\\n"`` stays ``"\\n"`` on every
    platform); ``None`` translates ``"\\n"`` to the platform's line ending.
    """
    target = Path(path)
    with atomic_path(target, durable=durable) as tmp:
        with open(tmp, "w", encoding=encoding, newline=newline) as f:
            f.write(text)
    return target
