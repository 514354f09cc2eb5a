"""The kiosk's event log: one SQLite file, one row per spotted facial movement.

Privacy by construction: the table has no column that could hold an image, a face
descriptor, a landmark or an identity. A row is *when* (wall-clock time), *where* (exhibit
name), *what* (``kind``: ``"micro"``, ``"macro"`` or ``"visit"``), the recognised ``emotion``
(NULL when none was recognised), its ``confidence`` and the ``duration_s`` of the movement (for
a visit: how long a face was in view) and the ``face``: the track number of the face within
one run of the kiosk (1, 2, ... in the order faces appeared, never reused in a run, started
again at the next run; 0 when one face is analysed; NULL in rows logged before the column
existed). It tells apart two people in view at the same time and links an expression to its
visit; it is a counter, not an identity: nothing about the face is kept that could recognise
the person again.

Durability: the database runs in WAL mode with ``synchronous=FULL`` and every event is its
own transaction, so an event that :meth:`EventLog.log` has returned for is on disk and
survives a power cut or a killed process; a half-written transaction is rolled back by
SQLite when the file is next opened.

Schema (version 2)::

    events(id INTEGER PRIMARY KEY, time TEXT, time_unix REAL, exhibit TEXT, kind TEXT,
           emotion TEXT NULL, confidence REAL NULL, duration_s REAL, face INTEGER NULL)
    meta(key TEXT PRIMARY KEY, value TEXT)

Version 1 had no ``face`` column: a version-1 file opened for writing is migrated in place
(``ALTER TABLE events ADD COLUMN face INTEGER DEFAULT NULL``, one transaction: its rows are
kept, their ``face`` is NULL); opened read-only (``mestudio stats``) it is read as it is.

``time`` is ISO 8601 local time with its UTC offset (``2025-11-21T17:30:12.345+01:00``),
``time_unix`` the same instant in seconds since the epoch (for range queries).

Damage: a file SQLite reports as corrupt (``database disk image is malformed``, ``file is not
a database``) is never a reason for the kiosk to stop. Opened with ``recover=True`` (the
kiosk), a damaged log is moved aside as ``events.sqlite.corrupt-<time>`` (with its ``-wal``)
and a fresh one is started (:attr:`EventLog.recovered`); the same happens when the damage
shows while the kiosk runs (:meth:`EventLog.recover`). Read-only (``mestudio stats``), the
rows before the damage are read and :attr:`EventLog.damage` says what went wrong. On
read-only media the file is opened as immutable, so no ``-wal``/``-shm`` file is needed.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mestudio.errors import ConfigError, MestudioError
from mestudio.types import SpotEvent

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
KINDS = ("micro", "macro", "visit")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    time_unix REAL NOT NULL,
    exhibit TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('micro', 'macro', 'visit')),
    emotion TEXT,
    confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    duration_s REAL NOT NULL CHECK (duration_s >= 0),
    face INTEGER DEFAULT NULL CHECK (face IS NULL OR face >= 0)
);
CREATE INDEX IF NOT EXISTS events_time ON events (time_unix);
CREATE INDEX IF NOT EXISTS events_exhibit ON events (exhibit, time_unix);
"""

# The only columns that exist; asserted by the tests so that no one adds an image column.
COLUMNS = ("id", "time", "time_unix", "exhibit", "kind", "emotion", "confidence", "duration_s",
           "face")
#: The column added by schema version 2 (a track number, not an identity).
_FACE_COLUMN = "face INTEGER DEFAULT NULL CHECK (face IS NULL OR face >= 0)"


class EventLogError(MestudioError):
    """The event-log database cannot be opened or written (path, permissions, corruption).

    Attributes:
        damaged: SQLite reports the file as corrupt (not a permission or space problem).
    """

    def __init__(self, message: str, *, damaged: bool = False,
                 disk_full: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged
        #: the disk of the log has (almost) no space left: a passing condition to wait out
        self.disk_full = disk_full


#: Free space (bytes) under which a failed write is put down to a full disk.
DISK_FULL_BYTES = 256 * 1024


def disk_full(path: str | os.PathLike[str]) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing folder) has less
    than :data:`DISK_FULL_BYTES` free."""
    import shutil

    p = Path(path)
    for folder in (p, *p.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free < DISK_FULL_BYTES
            except OSError:
                return False
    return False


#: SQLite result codes of a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB).
_DAMAGE_CODES = (11, 26)


def is_damage(exc: BaseException) -> bool:
    """True when ``exc`` is SQLite reporting a corrupt file (not a locked, read-only or full
    one)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (int(code) & 0xFF) in _DAMAGE_CODES
    text = str(exc).lower()  # pragma: no cover - Python < 3.11
    return "malformed" in text or "not a database" in text


def _read_only_media(path: Path) -> bool:
    """The folder of ``path`` cannot be written (read-only mount or no permission)."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1):
            return True
    except (OSError, AttributeError):  # pragma: no cover - Windows
        pass
    return not os.access(folder, os.W_OK)


@dataclass(frozen=True)
class LoggedEvent:
    """One row of the event log.

    Attributes:
        id: row id (increasing with insertion order).
        time: ISO 8601 local time with UTC offset.
        time_unix: seconds since the epoch (UTC).
        exhibit: exhibit name.
        kind: ``"micro"``, ``"macro"`` or ``"visit"``.
        emotion: recognised emotion, or None.
        confidence: the recogniser's confidence in ``[0, 1]``, or None.
        duration_s: duration of the movement (or of the visit) in seconds.
        face: the face's track number within its kiosk run (0: single-face mode; None:
            logged before schema version 2).
    """

    id: int
    time: str
    time_unix: float
    exhibit: str
    kind: str
    emotion: str | None
    confidence: float | None
    duration_s: float
    face: int | None = None

    @property
    def local_datetime(self) -> datetime:
        """The event time as an aware :class:`datetime` in the offset it was logged with."""
        return datetime.fromisoformat(self.time)


def default_db_path() -> Path:
    """``events.sqlite`` in the user data directory (the kiosk's default log)."""
    from mestudio.config import user_data_dir

    return user_data_dir() / "events.sqlite"


def _iso_local(t_unix: float) -> str:
    return datetime.fromtimestamp(t_unix, tz=timezone.utc).astimezone().isoformat(
        timespec="milliseconds")


class EventLog:
    """Append-only kiosk event log in SQLite (thread-safe; one transaction per event).

    Args:
        path: database file; created with its parent folder when missing.
        exhibit: default exhibit name for :meth:`log` / :meth:`log_spot_event`.
        readonly: open an existing database for reading only (``mestudio stats``).
    """

    def __init__(self, path: str | os.PathLike[str], exhibit: str = "default",
                 *, readonly: bool = False, recover: bool = False) -> None:
        self.path = Path(path)
        self.exhibit = exhibit
        self.readonly = readonly
        #: Where a damaged log was moved by ``recover=True`` / :meth:`recover`, or None.
        self.recovered: Path | None = None
        #: Read-only: the damage met while reading (one line), or "".
        self.damage = ""
        self._lock = threading.Lock()
        if readonly:
            self._open_readonly()
            return
        try:
            self._open()
        except EventLogError as exc:
            if not (recover and exc.damaged):
                raise
            self._conn.close()
            self._move_aside(str(exc))
            self._open()
        log.info("event log %s (exhibit %r)", self.path, exhibit)

    def _open_readonly(self) -> None:
        if not self.path.is_file():
            raise EventLogError(f"event log {self.path} does not exist; give the file "
                                "written by `mestudio kiosk --db FILE`")
        uri = self.path.resolve().as_uri()
        # A WAL database read with mode=ro needs (and leaves) -wal/-shm files; on read-only
        # media they cannot be created at all. Without a -wal file (no kiosk writing, or
        # one closed cleanly) everything is in the main file: opened as immutable, SQLite
        # reads it and creates nothing. A -wal file (a kiosk running) must be read too.
        wal = self.path.with_name(self.path.name + "-wal")
        immutable = _read_only_media(self.path) or not wal.exists()
        uri += "?immutable=1" if immutable else "?mode=ro"
        try:
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            try:
                self._check_schema()
            except EventLogError as exc:
                if not exc.damaged:
                    raise
                # A damaged (e.g. truncated) file: SQLite refuses its schema as a whole
                # when a table or index lies beyond the end. Read without that check (this
                # connection never writes) and keep what can be read; say what happened.
                self._conn.close()
                self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                self._conn.execute("PRAGMA writable_schema=ON")
                if "events" not in self._table_names():
                    raise
                self.damage = (f"{self.path} is damaged ({str(exc).split('(')[-1].rstrip(')')})"
                               "; showing the rows that can be read")
            self._columns = self._read_columns()
            if not self.damage:
                try:
                    check = str(self._conn.execute("PRAGMA quick_check").fetchone()[0])
                except sqlite3.DatabaseError as exc:
                    check = str(exc)
                if check != "ok":  # e.g. a damaged index page: the table may read fine
                    self.damage = f"{self.path} is damaged ({check.splitlines()[0]})"
        except EventLogError:
            self._conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if is_damage(exc):
                raise EventLogError(f"{self.path} is damaged ({exc}); nothing could be read",
                                    damaged=True) from exc
            raise EventLogError(f"{self.path} is not a mestudio event log ({exc})") from exc

    def _table_names(self) -> set[str]:
        try:
            return {r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError:
            return set()

    def _open(self) -> None:
        """Open (creating when missing) for writing; EventLogError(damaged=True) when the
        file is corrupt."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per event.
            self._conn = sqlite3.connect(str(self.path), isolation_level=None,
                                         check_same_thread=False, timeout=10.0)
        except sqlite3.DatabaseError as exc:
            if disk_full(self.path):
                raise EventLogError(f"disk full: the event log {self.path} cannot be "
                                    f"written ({exc})", disk_full=True) from exc
            raise EventLogError(f"cannot open event log {self.path}: {exc}; check the path "
                                "and permissions, or give another file with --db") from exc
        except OSError as exc:
            if disk_full(self.path):
                raise EventLogError(f"disk full: the event log {self.path} cannot be "
                                    f"written ({exc})", disk_full=True) from exc
            raise EventLogError(f"cannot create event log {self.path}: {exc}") from exc
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("event log %s: WAL mode unavailable (journal_mode=%s)", self.path,
                            mode)
            self._conn.execute("PRAGMA synchronous=FULL")
            fresh = self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='events'"
            ).fetchone() is None
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                               (str(SCHEMA_VERSION if fresh else 1),))
            self._check_schema()
            self._migrate()
            self._columns = self._read_columns()
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise EventLogError(f"event log {self.path} is damaged ({check})", damaged=True)
        except EventLogError:
            raise
        except sqlite3.DatabaseError as exc:
            damaged = is_damage(exc)
            if not damaged and disk_full(self.path):
                raise EventLogError(f"disk full: the event log {self.path} cannot be "
                                    f"written ({exc})", disk_full=True) from exc
            what = "is damaged" if damaged else "cannot be opened"
            raise EventLogError(f"event log {self.path} {what}: {exc}; check the path and "
                                "permissions, or give another file with --db",
                                damaged=damaged) from exc

    def _read_columns(self) -> tuple[str, ...]:
        """The columns of the events table (a version-1 file has no ``face``)."""
        return tuple(r[1] for r in self._conn.execute("PRAGMA table_info(events)"))

    def _migrate(self) -> None:
        """Bring an older file to :data:`SCHEMA_VERSION` in one transaction (version 1 → 2:
        add the ``face`` column, NULL in the existing rows). Safe when two processes open
        the file at once: the check is repeated inside the write transaction."""
        if "face" in self._read_columns():
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if "face" not in self._read_columns():
                self._conn.execute(f"ALTER TABLE events ADD COLUMN {_FACE_COLUMN}")
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                               (str(SCHEMA_VERSION),))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        log.info("event log %s: migrated to schema version %d (face column added)",
                 self.path, SCHEMA_VERSION)

    def _select(self) -> str:
        """``SELECT`` of every column of :data:`COLUMNS` (NULL for a column an older file
        lacks)."""
        have = getattr(self, "_columns", COLUMNS)
        return "SELECT " + ", ".join(c if c in have else f"NULL AS {c}" for c in COLUMNS) \
            + " FROM events"

    def _move_aside(self, reason: str) -> Path:
        """Rename the damaged file (and its -wal/-shm) to ``<name>.corrupt-<time>``."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            os.replace(self.path, aside)
            for extra in ("-wal", "-shm", "-journal"):
                side = self.path.with_name(self.path.name + extra)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + extra))
        except OSError as exc:
            raise EventLogError(f"event log {self.path} is damaged and cannot be moved aside "
                                f"({exc.strerror or exc}); give another file with --db") from exc
        self.recovered = aside
        log.error("event log %s was damaged (%s): moved aside to %s; a fresh log was started",
                  self.path, reason, aside.name)
        return aside

    def recover(self, reason: str = "") -> Path:
        """The log turned out damaged while in use: close it, move it aside
        (``<name>.corrupt-<time>``) and continue in a fresh file; returns where the damaged
        file went."""
        if self.readonly:
            raise EventLogError("event log opened read-only")
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:  # pragma: no cover - closing a broken connection
                pass
            aside = self._move_aside(reason)
            self._open()
        return aside

    def _check_schema(self) -> None:
        try:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise EventLogError(f"{self.path} is not a mestudio event log ({exc})",
                                damaged=is_damage(exc)) from exc
        if row is None or int(row[0]) > SCHEMA_VERSION:
            raise EventLogError(f"{self.path}: unsupported event-log schema "
                                f"{row[0] if row else 'none'}; update mestudio")

    # ---------------------------------------------------------------- writing
    def log(self, kind: str, *, emotion: str | None = None, confidence: float | None = None,
            duration_s: float = 0.0, exhibit: str | None = None,
            time_unix: float | None = None, face: int | None = None) -> int:
        """Append one event in its own committed transaction; returns its row id.

        Args:
            kind: ``"micro"``, ``"macro"`` or ``"visit"``.
            emotion: recognised emotion class, or None.
            confidence: probability of ``emotion`` in ``[0, 1]``, or None.
            duration_s: duration in seconds (>= 0).
            exhibit: exhibit name (default: the log's).
            time_unix: wall-clock time in seconds since the epoch (default: now).
            face: the face's track number in this run (0: single-face mode), or None.

        When this returns, the row is durable (fsynced WAL).
        """
        if self.readonly:
            raise EventLogError("event log opened read-only")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if confidence is not None:
            confidence = float(confidence)
            if not math.isfinite(confidence):
                confidence = None
            else:
                confidence = min(1.0, max(0.0, confidence))
        duration_s = max(0.0, float(duration_s)) if math.isfinite(duration_s) else 0.0
        t = _time.time() if time_unix is None else float(time_unix)
        face = None if face is None else max(0, int(face))
        row = (_iso_local(t), t, exhibit or self.exhibit, kind, emotion, confidence, duration_s,
               face)
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                cur = self._conn.execute(
                    "INSERT INTO events (time, time_unix, exhibit, kind, emotion, confidence,"
                    " duration_s, face) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
                self._conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.DatabaseError:
                    pass
                damaged = is_damage(exc)
                full = not damaged and disk_full(self.path)
                raise EventLogError(f"{'disk full: ' if full else ''}cannot write to event "
                                    f"log {self.path}: {exc}", damaged=damaged,
                                    disk_full=full) from exc
        rowid = int(cur.lastrowid or 0)
        log.debug("logged %s event %d (%s, %s)", kind, rowid, emotion, confidence)
        return rowid

    def log_spot_event(self, event: SpotEvent, *, exhibit: str | None = None,
                       time_unix: float | None = None) -> int:
        """Log a spotted :class:`~mestudio.types.SpotEvent` (kind, emotion, confidence,
        duration, the face's track number); nothing else of the event (no ROI, no frames)
        is stored."""
        pred = event.prediction
        return self.log(event.kind, emotion=pred.emotion if pred is not None else None,
                        confidence=pred.confidence if pred is not None else None,
                        duration_s=event.duration_s, exhibit=exhibit, time_unix=time_unix,
                        face=int(getattr(event, "face_id", 0) or 0))

    # ---------------------------------------------------------------- reading
    def events(self, *, since: float | None = None, until: float | None = None,
               exhibit: str | None = None, kind: str | None = None) -> list[LoggedEvent]:
        """Rows in insertion order, optionally filtered by time range ``[since, until)``
        (seconds since the epoch), exhibit and kind."""
        return list(self.iter_events(since=since, until=until, exhibit=exhibit, kind=kind))

    def iter_events(self, *, since: float | None = None, until: float | None = None,
                    exhibit: str | None = None, kind: str | None = None
                    ) -> Iterator[LoggedEvent]:
        where: list[str] = []
        params: list[object] = []
        if since is not None:
            where.append("time_unix >= ?")
            params.append(since)
        if until is not None:
            where.append("time_unix < ?")
            params.append(until)
        if exhibit is not None:
            where.append("exhibit = ?")
            params.append(exhibit)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = self._select()
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        rows: list[tuple] = []
        with self._lock:
            try:
                rows = self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                if not self.readonly:
                    raise EventLogError(f"cannot read event log {self.path}: {exc}",
                                        damaged=is_damage(exc)) from exc
                rows = self._rows_before_damage(exc, since, until, exhibit, kind)
        for r in rows:
            yield LoggedEvent(int(r[0]), r[1], float(r[2]), r[3], r[4], r[5],
                              None if r[6] is None else float(r[6]), float(r[7]),
                              None if r[8] is None else int(r[8]))

    def _rows_before_damage(self, exc: sqlite3.DatabaseError, since: float | None,
                            until: float | None, exhibit: str | None,
                            kind: str | None) -> list[tuple]:
        """Read-only and the query failed: read the table by ranges of ids, skipping the
        ranges whose pages are damaged, and keep what can be read; :attr:`damage` says
        what happened (one line)."""
        cols = self._select()
        top = None
        for sql in ("SELECT seq FROM sqlite_sequence WHERE name = 'events'",
                    "SELECT max(id) FROM events"):
            try:
                row = self._conn.execute(sql).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None and row[0] is not None:
                top = int(row[0])
                break
        found: list[tuple] = []
        lost = 0
        if top is None:  # no way to know the ids: read in table order up to the damage
            try:
                cur = self._conn.execute(cols)
                while (r := cur.fetchone()) is not None:
                    found.append(r)
            except sqlite3.DatabaseError:
                lost = -1
        else:
            step = 256
            for start in range(0, top + 1, step):
                try:
                    found += self._conn.execute(cols + " WHERE id >= ? AND id < ?",
                                                (start, start + step)).fetchall()
                    continue
                except sqlite3.DatabaseError:
                    pass
                for i in range(start, start + step):  # the damaged range, row by row
                    try:
                        found += self._conn.execute(cols + " WHERE id = ?", (i,)).fetchall()
                    except sqlite3.DatabaseError:
                        lost += 1
        rows = [r for r in found
                if (since is None or r[2] >= since) and (until is None or r[2] < until)
                and (exhibit is None or r[3] == exhibit) and (kind is None or r[4] == kind)]
        unread = ("some rows could not be read" if lost < 0 else
                  f"up to {lost} row(s) could not be read" if lost else
                  "every row could be read, an index is damaged")
        self.damage = (f"{self.path} is damaged ({exc}): read {len(found)} event(s), "
                       f"{unread}; the kiosk moves the file aside on its next start")
        log.debug("%s", self.damage)
        return sorted(rows, key=lambda r: r[0])

    def count(self, kind: str | None = None, since: float | None = None,
              exhibit: str | None = None) -> int:
        """Number of rows (of one kind, since a time in seconds since the epoch, of one
        exhibit)."""
        sql = "SELECT COUNT(*) FROM events WHERE 1=1"
        params: list[object] = []
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if exhibit is not None:
            sql += " AND exhibit = ?"
            params.append(exhibit)
        if since is not None:
            sql += " AND time_unix >= ?"
            params.append(since)
        with self._lock:
            try:
                return int(self._conn.execute(sql, params).fetchone()[0])
            except sqlite3.DatabaseError as exc:
                raise EventLogError(f"cannot read event log {self.path}: {exc}",
                                    damaged=is_damage(exc)) from exc

    def integrity_ok(self) -> bool:
        """SQLite's own ``PRAGMA integrity_check``."""
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        with self._lock:
            try:
                if not self.readonly:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError as exc:  # pragma: no cover - best effort
                log.warning("event log checkpoint failed: %s", exc)
            self._conn.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_db_path(explicit: str | os.PathLike[str] | None, configured: str = "") -> Path:
    """The database a command should use: ``--db`` > the configured ``KioskConfig.db_path``
    > :func:`default_db_path`."""
    for cand in (explicit, configured):
        if cand:
            p = Path(cand).expanduser()
            if p.is_dir():
                raise ConfigError(f"{p} is a folder; give a database file such as {p}/events.sqlite")
            return p
    return default_db_path()
