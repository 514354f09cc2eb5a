"""Reading the annotation sheets of the releases (.xlsx, .xls, .csv) without pandas.

* ``.xlsx`` with openpyxl (read-only, cached formula values: a formula cell such as SAMM's
  ``Duration`` ``=F15-D15+1`` reads as its cached result, or None when the file was never
  calculated — the loaders recompute such columns themselves);
* ``.xls`` with xlrd (numbers arrive as floats: ``6.0`` -> ``"6"`` through :func:`cell_text`);
* ``.csv`` with the csv module (UTF-8 with or without BOM, CRLF or LF, empty rows kept as
  empty lists so row numbers stay those of the file).

The reader is chosen from the file's first bytes (a ZIP is xlsx, an OLE2 file is xls),
so a renamed file still opens. Every failure a user can cause raises
:class:`~mestudio.errors.DatasetError` with the file name and what to do.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mestudio.errors import DatasetError

logger = logging.getLogger(__name__)

MISSING_MARKS = frozenset({"", "/", "\\", "-", "--", "—", "–", "nan", "none", "null", "n/a", "na", "?"})
"""Cell texts that mean "not coded" (CASME II apex ``/``, CASME ApexF2 ``\\``)."""

_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class Sheet:
    """One table of cell values.

    Attributes:
        path: the file.
        name: sheet name ("" for a csv file).
        rows: cell values row by row (``None`` for an empty cell); ``rows[i]`` is spreadsheet
            row ``i + 1``.
        sheet_names: every sheet of the workbook (for messages).
    """

    path: Path
    name: str
    rows: list[list[Any]]
    sheet_names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``file.xlsx (sheet 'Sheet1')`` for messages."""
        return f"{self.path.name} (sheet '{self.name}')" if self.name else self.path.name

    def cell(self, row: int, col: int) -> Any:
        """Value at 0-based ``(row, col)``; None outside the table."""
        if row >= len(self.rows) or col >= len(self.rows[row]):
            return None
        return self.rows[row][col]


@dataclass
class Header:
    """Where a sheet's header is and which column holds each field.

    Attributes:
        row: 0-based index of the header row (SAMM: 13, i.e. Excel row 14).
        columns: field key -> 0-based column index.
        names: field key -> header text as written in the sheet.
    """

    row: int
    columns: dict[str, int]
    names: dict[str, str]

    def get(self, sheet: Sheet, row: int, key: str) -> Any:
        """The cell of field ``key`` in 0-based ``row``; None when the column is absent."""
        col = self.columns.get(key)
        return None if col is None else sheet.cell(row, col)


def _kind(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise DatasetError(f"cannot open annotation sheet {path}: {exc.strerror or exc}") from exc
    if head.startswith(_XLSX_MAGIC):
        return "xlsx"
    if head.startswith(_XLS_MAGIC):
        return "xls"
    suffix = path.suffix.lower()
    if suffix == ".csv" or suffix == ".txt":
        return "csv"
    if suffix in (".xlsx", ".xlsm", ".xls"):
        raise DatasetError(
            f"annotation sheet {path} is not a readable {suffix} workbook (damaged or an "
            "incomplete download): copy it again from the release"
        )
    return "csv"


def _match_sheet(available: Sequence[str], wanted: Sequence[str]) -> str | None:
    def norm(s: str) -> str:
        return re.sub(r"[\s_]+", "", s).lower()

    for w in wanted:
        if w in available:
            return w
    for w in wanted:
        for a in available:
            if norm(a) == norm(w):
                return a
    return None


def sheet_names(path: Path) -> list[str]:
    """Names of the sheets of a workbook ([""] for a csv file)."""
    kind = _kind(path)
    if kind == "csv":
        return [""]
    if kind == "xlsx":
        wb = _open_xlsx(path)
        try:
            return list(wb.sheetnames)
        finally:
            wb.close()
    return list(_open_xls(path).sheet_names())


def _open_xlsx(path: Path) -> Any:
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException, ...
        raise DatasetError(
            f"cannot read annotation sheet {path}: {type(exc).__name__}: {exc}. The file is "
            "damaged or not an Excel workbook: copy it again from the release"
        ) from exc


def _open_xls(path: Path) -> Any:
    import xlrd

    try:
        return xlrd.open_workbook(str(path))
    except Exception as exc:  # xlrd.XLRDError, struct.error, ...
        raise DatasetError(
            f"cannot read annotation sheet {path}: {type(exc).__name__}: {exc}. The file is "
            "damaged or not an .xls workbook: copy it again from the release"
        ) from exc


def read_sheet(
    path: Path,
    sheet: str | Sequence[str] | None = None,
    *,
    single_fallback: bool = True,
) -> Sheet:
    """Read one sheet of a workbook (or a csv file) into a :class:`Sheet`.

    Args:
        path: ``.xlsx``, ``.xls`` or ``.csv`` file.
        sheet: the sheet name, or alternative names tried in order (exact, then ignoring
            case, spaces and underscores); None for the first sheet.
        single_fallback: when no wanted name exists but the workbook has exactly one sheet,
            read that one (re-saved copies rename ``Sheet1``).

    Raises:
        DatasetError: unreadable file, or no sheet of that name (the message lists the
            sheets the file has).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation sheet {path} does not exist")
    kind = _kind(path)
    if kind == "csv":
        return read_csv(path)
    wanted = [sheet] if isinstance(sheet, str) else list(sheet or [])
    if kind == "xlsx":
        wb = _open_xlsx(path)
        try:
            names = list(wb.sheetnames)
            name = _choose(path, names, wanted, single_fallback)
            ws = wb[name]
            try:
                ws.reset_dimensions()  # some writers store a wrong <dimension>
            except AttributeError:
                pass
            rows = [list(r) for r in ws.iter_rows(values_only=True)]
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(
                f"cannot read annotation sheet {path}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            wb.close()
    else:
        book = _open_xls(path)
        names = list(book.sheet_names())
        name = _choose(path, names, wanted, single_fallback)
        sh = book.sheet_by_name(name)
        rows = [[None if v == "" else v for v in sh.row_values(i)] for i in range(sh.nrows)]
    while rows and all(v is None for v in rows[-1]):
        rows.pop()
    return Sheet(path=path, name=name, rows=rows, sheet_names=names)


def _choose(path: Path, names: list[str], wanted: list[str], single_fallback: bool) -> str:
    if not names:
        raise DatasetError(f"annotation sheet {path} holds no sheet")
    if not wanted:
        return names[0]
    name = _match_sheet(names, wanted)
    if name is not None:
        return name
    if single_fallback and len(names) == 1:
        logger.info("%s: no sheet named %s; reading its only sheet '%s'",
                    path.name, " or ".join(repr(w) for w in wanted), names[0])
        return names[0]
    raise DatasetError(
        f"{path.name} has no sheet {' or '.join(repr(w) for w in wanted)} (its sheets: "
        f"{', '.join(repr(n) for n in names)}): use the official annotation file of the release"
    )


def read_csv(path: Path) -> Sheet:
    """Read a csv file (any of UTF-8/UTF-8-BOM/cp1252, CRLF or LF; empty rows kept as [])."""
    data = Path(path).read_bytes()
    text = None
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    assert text is not None  # latin-1 decodes anything
    if "\x00" in text:
        raise DatasetError(f"{path} is not a text csv file (binary content): copy it again")
    rows: list[list[Any]] = []
    for row in csv.reader(io.StringIO(text, newline="")):
        rows.append([None if c.strip() == "" else c.strip() for c in row])
    while rows and all(v is None for v in rows[-1]):
        rows.pop()
    return Sheet(path=Path(path), name="", rows=rows, sheet_names=[""])


def normalize_header(value: Any) -> str:
    """Header text for matching: lower case without spaces, underscores, dots or dashes."""
    if value is None:
        return ""
    return re.sub(r"[\s_.\-]+", "", str(value)).lower()


def find_header(
    sheet: Sheet,
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]] | None = None,
    *,
    max_scan: int = 40,
    what: str = "annotation",
) -> Header:
    """Find the header row and the column of every field.

    Scans the first ``max_scan`` rows for the row that names every required field (names
    compared with :func:`normalize_header`; each field may have alternative names, the
    first present wins), so preamble rows (SAMM's 13) are skipped wherever the header is.

    Args:
        sheet: the table.
        required: field key -> accepted header names, e.g. ``{"onset": ("OnsetFrame",)}``.
        optional: same for columns that may be absent (e.g. CASME II 2019's
            ``Objective Classes``).
        what: the sheet's description for the error message.

    Raises:
        DatasetError: no row holds every required column; the message names the missing
            columns and the header that was found.
    """
    optional = optional or {}
    best: tuple[int, int, dict[str, int]] | None = None
    for r, row in enumerate(sheet.rows[:max_scan]):
        norm = {}
        for c, v in enumerate(row):
            key = normalize_header(v)
            if key and key not in norm:
                norm[key] = c
        columns: dict[str, int] = {}
        for field_key, names in required.items():
            for n in names:
                if normalize_header(n) in norm:
                    columns[field_key] = norm[normalize_header(n)]
                    break
        if best is None or len(columns) > best[1]:
            best = (r, len(columns), columns)
        if len(columns) == len(required):
            for field_key, names in optional.items():
                for n in names:
                    if normalize_header(n) in norm:
                        columns[field_key] = norm[normalize_header(n)]
                        break
            names_written = {k: str(row[c]) for k, c in columns.items()}
            return Header(row=r, columns=columns, names=names_written)
    if best is None or best[1] == 0:
        raise DatasetError(
            f"{sheet.label} is not the {what} sheet: none of its first {max_scan} rows names "
            f"the columns {', '.join(repr(n[0]) for n in required.values())}"
        )
    r, _, columns = best
    missing = [names[0] for k, names in required.items() if k not in columns]
    found = [str(v) for v in sheet.rows[r] if v is not None]
    raise DatasetError(
        f"{sheet.label} lacks column(s) {', '.join(repr(m) for m in missing)} (header on row "
        f"{r + 1}: {', '.join(repr(f) for f in found)}): use the official {what} sheet"
    )


def cell_text(value: Any) -> str:
    """A cell as text: numbers without a spurious ``.0`` (xlrd's ``6.0`` -> ``"6"``), text
    stripped, None -> ``""``. Leading zeros of text cells are kept (``'006'``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return str(value).strip()


def cell_int(value: Any) -> int | None:
    """A frame number from a cell: ``46``, ``46.0``, ``"46"``, ``" 46 "`` -> 46; missing
    marks (``'/'``, ``'\\'``, ``'-'``, blank) and anything not an integer -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and value.is_integer() else None
    text = str(value).strip()
    if text.lower() in MISSING_MARKS:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def is_blank_row(row: Sequence[Any]) -> bool:
    """True when every cell of the row is empty."""
    return all(cell_text(v) == "" for v in row)


def cell_id(value: Any, width: int | None = None) -> str:
    """An identifier (subject, clip) as text.

    Text cells are returned as written (``'006'``, ``'01'`` keep their zeros). A cell that
    the workbook stores as a NUMBER has lost its padding; ``width`` restores the release's
    convention (SAMM 3 digits, CASME II 2) — documented per loader.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = cell_text(value)
        return text.zfill(width) if width and text.isdigit() else text
    return cell_text(value)
