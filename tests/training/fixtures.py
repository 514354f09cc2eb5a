"""Builders of small fixture releases that mimic each dataset's layout and annotation sheet.

The licensed datasets are not available here. These builders write what a user receives —
the annotation sheet with its real sheet name, column names, header offset and quirks, and
the frame folders with their real naming — filled with tiny synthetic face images.

Every builder returns a :class:`FixtureRelease` (root, sheet, rows written, and the counts a
correct loader must find). Defaults are small and quick (32 px frames, a few samples);
``size`` and ``image_fn`` make larger, more realistic fixtures, e.g. for training tests::

    rows = make_casme2_rows(n_subjects=6, per_class=2, length=9)
    release = build_casme2(tmp_path, rows=rows, quirks=False, size=96, image_fn=my_face)

``image_fn(row, frame_number, intensity) -> BGR uint8 (size, size, 3)`` draws one frame;
``intensity`` rises 0 -> 1 from onset to apex and falls back to 0 at offset.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ImageFn = Callable[["CodedRow", int, float], np.ndarray]


@dataclass
class CodedRow:
    """One coded sample of a fixture (what the sheet says and what the folder holds).

    Attributes:
        subject: subject id as the sheet writes it (``"01"``, ``"006"``, ``1``).
        filename: sample/clip name.
        onset, apex, offset: frame numbers as written (apex may be ``"/"``).
        aus: action-unit cell.
        emotion: label cell.
        frames: frame numbers to write (None: the layout's default).
        folder: False to write no frame folder (a row without a folder).
        extra: builder-specific values.
    """

    subject: Any
    filename: str
    onset: int | str
    apex: int | str
    offset: int | str
    aus: str
    emotion: str
    frames: Sequence[int] | None = None
    folder: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def intensity(self, number: int) -> float:
        """Expression intensity of frame ``number``: 0 at onset/offset, 1 at the apex
        (0 everywhere for a deliberately broken row)."""
        if not (isinstance(self.onset, int) and isinstance(self.offset, int)) \
                or self.offset <= self.onset:
            return 0.0
        apex = self.apex if isinstance(self.apex, int) else (self.onset + self.offset) // 2
        apex = min(max(apex, self.onset), self.offset)
        if number <= self.onset or number >= self.offset:
            return 0.0
        if number <= apex:
            return (number - self.onset) / max(apex - self.onset, 1)
        return (self.offset - number) / max(self.offset - apex, 1)


@dataclass
class FixtureRelease:
    """A fixture release on disk and what a loader must find in it."""

    root: Path
    sheet: Path | None
    rows: list[CodedRow]
    expected: dict[str, Any] = field(default_factory=dict)


# ---- synthetic faces ---------------------------------------------------------------------

_MOTION = {  # emotion -> (brow raise, brow frown, mouth-corner raise, mouth open)
    "happiness": (0.0, 0.0, 1.0, 0.2), "positive": (0.0, 0.0, 1.0, 0.2),
    "surprise": (1.0, 0.0, 0.0, 1.0),
    "disgust": (0.0, 0.8, -0.5, 0.0), "anger": (0.0, 1.0, -0.3, 0.0),
    "negative": (0.0, 0.9, -0.5, 0.0), "contempt": (0.0, 0.3, 0.5, 0.0),
    "repression": (0.0, 0.2, -0.2, 0.0), "tense": (0.0, 0.5, 0.0, 0.0),
    "fear": (0.7, 0.5, -0.3, 0.5), "sadness": (0.3, 0.6, -1.0, 0.0),
}


def _identity(subject: Any) -> np.random.Generator:
    digest = hashlib.sha256(str(subject).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def face_image(size: int = 32, *, subject: Any = "0", emotion: str = "", intensity: float = 0.0,
               gray: bool = False) -> np.ndarray:
    """A face-like BGR image: skin ellipse, eyes, brows, nose, mouth.

    The subject sets face shape and skin tone; ``emotion`` and ``intensity`` (0..1) move
    brows and mouth corners by up to ~6 % of the face.

    Returns:
        ``(size, size, 3)`` uint8 BGR (grey replicated when ``gray``).
    """
    rng = _identity(subject)
    s = float(size)
    img = np.full((size, size, 3), 70 + int(rng.integers(0, 40)), np.uint8)
    skin = tuple(int(v) for v in (rng.integers(110, 170), rng.integers(140, 190),
                                  rng.integers(180, 230)))
    cx, cy = s * 0.5, s * 0.55
    ax, ay = s * rng.uniform(0.28, 0.34), s * rng.uniform(0.38, 0.44)
    sh = 4  # fixed-point bits for sub-pixel drawing

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * (1 << sh))), int(round(y * (1 << sh)))

    cv2.ellipse(img, p(cx, cy), p(ax, ay), 0, 0, 360, skin, -1,
                cv2.LINE_AA, sh)
    raise_, frown, corner, open_ = _MOTION.get(emotion.lower(), (0.2, 0.2, 0.2, 0.0))
    k = float(intensity) * s * 0.06
    dark = (40, 40, 60)
    thick = max(1, size // 32)
    for side in (-1, 1):
        ex, ey = cx + side * s * 0.13, cy - s * 0.1
        cv2.circle(img, p(ex, ey), int(s * 0.035 * (1 << sh)) + 1, dark, -1, cv2.LINE_AA, sh)
        by = ey - s * 0.08 - raise_ * k + frown * k * 0.5
        inner = cx + side * (s * 0.06 + frown * k * -0.3)
        cv2.line(img, p(inner, by + frown * k * 0.5), p(cx + side * s * 0.2, by), dark, thick,
                 cv2.LINE_AA, sh)
    cv2.line(img, p(cx, cy - s * 0.05), p(cx, cy + s * 0.07), (90, 110, 150), thick,
             cv2.LINE_AA, sh)
    my = cy + s * 0.2
    left, right = (cx - s * 0.11, my - corner * k), (cx + s * 0.11, my - corner * k)
    mid_top, mid_bottom = (cx, my - open_ * k * 0.5), (cx, my + open_ * k)
    pts = np.array([p(*left), p(*mid_top), p(*right), p(*mid_bottom)], np.int32)
    cv2.polylines(img, [pts], True, (60, 60, 150), thick, cv2.LINE_AA, sh)
    if gray:
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        img = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    return img


def default_image_fn(size: int = 32, gray: bool = False) -> ImageFn:
    """``image_fn`` drawing :func:`face_image` for the row's subject and emotion."""
    def draw(row: CodedRow, number: int, intensity: float) -> np.ndarray:
        return face_image(size, subject=row.subject, emotion=row.emotion, intensity=intensity,
                          gray=gray)
    return draw


def write_frames(folder: Path, row: CodedRow, numbers: Sequence[int],
                 name: Callable[[int], str], image_fn: ImageFn) -> list[Path]:
    """Write one image per frame number into ``folder`` named ``name(number)``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in numbers:
        path = folder / name(n)
        img = image_fn(row, n, row.intensity(n))
        if not cv2.imwrite(str(path), img):
            raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


def _image_fn(image_fn: ImageFn | None, size: int, gray: bool = False) -> ImageFn:
    return image_fn if image_fn is not None else default_image_fn(size, gray)


def _write_xlsx(path: Path, sheets: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets:
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


# ---- CASME II ---------------------------------------------------------------------------

CASME2_HEADER_2019 = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame",
                      None, "Action Units", "Estimated Emotion", "Objective Classes"]
CASME2_OBJECTIVE = {"happiness": 1, "surprise": 2, "disgust": 3, "repression": 4,
                    "fear": 5, "sadness": 6, "others": 7}


def casme2_quirky_rows() -> list[CodedRow]:
    """The default CASME II rows: the real first row plus every quirk of DATASETS.md."""
    return [
        CodedRow("01", "EP02_01f", 46, 59, 86, "12", "happiness"),            # real first row
        CodedRow("01", "EP03_02", 2, 6, 12, "4+L10", "disgust"),              # img2 .. img12
        CodedRow("02", "EP09f", 5, 8, 12, "1+2", "surprise"),                 # irregular name
        CodedRow("04", "EP12_01f", 261, "/", 321, "4", "disgust"),            # apex '/'
        CodedRow("05", "EP09_05f", 20, 20, 28, "14", "repression"),           # apex == onset
        CodedRow("06", "EP01_2", 30, 33, 36, "R14", "repression"),            # irregular name
        CodedRow("07", "EP06_02_01", 3, 6, 9, "4+7", "others"),               # irregular name
        CodedRow("08", "EP18_03", 1, 3, 5, "1+2+4", "fear"),
        CodedRow("09", "EP08_01", 2, 10, 15, "15", "sadness"),
        CodedRow("16", "EP01_08", 73, 94, 110, "9", "disgust"),               # Cropped: 73-96
        CodedRow("10", "EP13_01", 40, 45, 50, "4", "others", folder=False),   # no folder
    ]


def make_casme2_rows(n_subjects: int = 4, per_class: int = 1, length: int = 9,
                     classes: Sequence[str] = ("happiness", "disgust", "surprise",
                                               "repression", "others")) -> list[CodedRow]:
    """Regular CASME II rows (no quirks): every subject gets ``per_class`` samples of every
    class, ``length`` frames each (apex in the middle)."""
    rows = []
    for s in range(1, n_subjects + 1):
        onset = 10
        for c_i, emotion in enumerate(classes):
            for k in range(per_class):
                ep = f"EP{c_i + 1:02d}_{k + 1:02d}"
                rows.append(CodedRow(f"{s:02d}", ep, onset, onset + length // 2,
                                     onset + length - 1, "4", emotion))
    return rows


def build_casme2(root: Path, *, version: str = "2019", layout: str = "raw",
                 rows: Sequence[CodedRow] | None = None, quirks: bool = True,
                 size: int = 32, image_fn: ImageFn | None = None,
                 margin: int = 2) -> FixtureRelease:
    """A CASME II release: ``CASME2-coding-<date>.xlsx`` (``Sheet1``, header on row 1) and
    one frame layout (``raw``: ``CASME2-RAW/subNN/<Filename>/imgN.jpg`` with ``margin``
    extra frames around the interval; ``selected``: onset..offset; ``cropped``:
    ``Cropped/.../reg_imgN.jpg``, where sub16/EP01_08 lacks frames 97-110).

    The 2014 version has no ``Objective Classes`` column and stores subjects as numbers.
    With ``quirks`` a folder without a row (``sub10/EP99_99``) is added.
    """
    root = Path(root)
    rows = list(rows) if rows is not None else casme2_quirky_rows()
    draw = _image_fn(image_fn, size)
    header = CASME2_HEADER_2019 if version == "2019" else CASME2_HEADER_2019[:-1]
    data: list[list[Any]] = [list(header)]
    for r in rows:
        subject = r.subject if version == "2019" else int(r.subject)
        line = [subject, r.filename, None, r.onset, r.apex, r.offset, None, r.aus, r.emotion]
        if version == "2019":
            line.append(CASME2_OBJECTIVE.get(r.emotion, 7))
        data.append(line)
    date = "20190701" if version == "2019" else "20140508"
    sheet = _write_xlsx(root / f"CASME2-coding-{date}.xlsx", [("Sheet1", data)])
    top, prefix = {"raw": ("CASME2-RAW", "img"), "selected": ("CASME2_RAW_selected", "img"),
                   "cropped": ("Cropped", "reg_img")}[layout]
    for r in rows:
        if not r.folder:
            continue
        if r.frames is not None:
            numbers: Sequence[int] = r.frames
        elif layout == "raw":
            numbers = range(max(1, r.onset - margin), r.offset + margin + 1)
        else:
            numbers = range(r.onset, r.offset + 1)
        if layout == "cropped" and quirks and (r.subject, r.filename) == ("16", "EP01_08"):
            numbers = range(73, 97)
        write_frames(root / top / f"sub{int(r.subject):02d}" / r.filename, r, numbers,
                     lambda n, p=prefix: f"{p}{n}.jpg", draw)
    if quirks:
        stray = CodedRow("10", "EP99_99", 1, 2, 3, "", "others")
        write_frames(root / top / "sub10" / "EP99_99", stray, range(1, 4),
                     lambda n, p=prefix: f"{p}{n}.jpg", draw)
    with_folder = [r for r in rows if r.folder]
    expected = {
        "rows": len(rows),
        "samples": len(with_folder),
        "subjects": sorted({f"{int(r.subject):02d}" for r in with_folder}),
        "native": _count(r.emotion for r in with_folder),
    }
    return FixtureRelease(root=root, sheet=sheet, rows=rows, expected=expected)


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


# ---- SAMM -------------------------------------------------------------------------------

SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
               "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
               "Objective Classes", "Notes"]


def samm_quirky_rows() -> list[CodedRow]:
    """Default SAMM rows: 5- and 4-digit frame padding, apex outside the interval
    (028_4_1, 032_3_1), AU strings with 'or' and '/', single-sample subjects, a subject
    stored as a number (37)."""
    return [
        CodedRow("006", "006_1_2", 5562, 5566, 5570, "4+7", "Anger", extra={"pad": 5}),
        CodedRow("006", "006_1_3", 7, 9, 12, "R14", "Contempt", extra={"pad": 5}),
        CodedRow("007", "007_3_1", 850, 854, 858, "R12 + R15 or R14", "Happiness",
                 extra={"pad": 4}),
        CodedRow("011", "011_2_3", 1020, 1023, 1026, "1+2/43", "Surprise", extra={"pad": 4}),
        CodedRow("028", "028_4_1", 100, 95, 106, "14", "Other", extra={"pad": 5}),
        CodedRow("032", "032_3_1", 200, 230, 206, "4+20", "Fear", extra={"pad": 5}),
        CodedRow("033", "033_1_1", 3000, 3003, 3006, "9", "Disgust", extra={"pad": 5}),
        CodedRow(37, "037_2_1", 40, 42, 44, "L12", "Happiness", extra={"pad": 5}),
    ]


def build_samm(root: Path, *, rows: Sequence[CodedRow] | None = None, size: int = 32,
               image_fn: ImageFn | None = None, sheet_name: str = "MICRO_ONLY",
               preamble: int = 13) -> FixtureRelease:
    """A SAMM release: ``SAMM_Micro_FACS_Codes_v2.xlsx`` (sheet ``MICRO_ONLY``, 13 preamble
    rows, header on Excel row 14, ``Duration`` as a formula ``=F15-D15+1``) and
    ``SAMM/<subject>/<Filename>/<subject>_<NNNNN>.jpg`` (grey frames, 4- or 5-digit numbers)."""
    root = Path(root)
    rows = list(rows) if rows is not None else samm_quirky_rows()
    draw = _image_fn(image_fn, size, gray=True)
    data: list[list[Any]] = [["SAMM: Spontaneous Micro-Facial Movement Dataset - FACS codes"]]
    data += [[None]] * (preamble - 3)
    data += [["Micro-movements only. Frame numbers refer to the image file names."],
             ["Duration = Offset Frame - Onset Frame + 1"]]
    data = data[:preamble]
    data.append(SAMM_HEADER)
    first = preamble + 2  # Excel row number of the first data row
    for i, r in enumerate(rows):
        excel_row = first + i
        data.append([r.subject, r.filename, 1, r.onset, r.apex, r.offset,
                     f"=F{excel_row}-D{excel_row}+1", "Micro", r.aus, r.emotion,
                     "1", "" if r.filename != "028_4_1" else "apex coded after onset?"])
    sheet = _write_xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", [(sheet_name, data)])
    for r in rows:
        if not r.folder:
            continue
        subject = f"{int(r.subject):03d}"
        pad = int(r.extra.get("pad", 5))
        numbers = r.frames if r.frames is not None else range(r.onset, r.offset + 1)
        write_frames(root / "SAMM" / subject / r.filename, r, numbers,
                     lambda n, s=subject, w=pad: f"{s}_{n:0{w}d}.jpg", draw)
    with_folder = [r for r in rows if r.folder]
    expected = {"rows": len(rows), "samples": len(with_folder),
                "subjects": sorted({f"{int(r.subject):03d}" for r in with_folder})}
    return FixtureRelease(root=root, sheet=sheet, rows=rows, expected=expected)


# ---- CASME (I) --------------------------------------------------------------------------

CASME_HEADER = ["Subject", "Filename", "", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "",
                "Onset", "Total", "AU", "Emotion"]


def casme_rows() -> list[CodedRow]:
    """Default CASME rows: ApexF2 '\\' (missing) or coded, padded and unpadded frame names."""
    return [
        CodedRow(1, "EP01_5", 10, 14, 18, "4+9", "disgust", extra={"apex2": "\\", "pad": 3}),
        CodedRow(1, "EP03_2", 7, 9, 11, "12", "happiness", extra={"apex2": 10, "pad": 0}),
        CodedRow(2, "EP05_4", 1, 4, 12, "4", "tense", extra={"apex2": "\\", "pad": 3}),
        CodedRow(7, "EP07_1", 30, 33, 36, "14", "repression", extra={"apex2": "\\", "pad": 0}),
        CodedRow(12, "EP02_2", 5, 7, 9, "1+2", "surprise", extra={"apex2": "\\", "pad": 0}),
        CodedRow(13, "EP11_3", 20, 25, 30, "1+4", "fear", extra={"apex2": 26, "pad": 3}),
    ]


def build_casme(root: Path, *, rows: Sequence[CodedRow] | None = None, cropped: bool = False,
                size: int = 32, image_fn: ImageFn | None = None) -> FixtureRelease:
    """A CASME release: ``CASME-coded-20190721.xls`` (written with xlwt; subjects as numbers,
    missing ApexF2 ``\\``) and ``CASME_raw_selected/subNN/<Filename>/<Filename>-<N>.jpg``
    (``N`` padded to 3 digits for some samples) or ``CASME_cropped/.../reg_<Filename>-<N>.jpg``."""
    import xlwt

    root = Path(root)
    rows = list(rows) if rows is not None else casme_rows()
    draw = _image_fn(image_fn, size)
    book = xlwt.Workbook()
    ws = book.add_sheet("Sheet1")
    for c, v in enumerate(CASME_HEADER):
        ws.write(0, c, v)
    for i, r in enumerate(rows, start=1):
        onset_ms = round(r.onset * 1000 / 60)
        total_ms = round((r.offset - r.onset + 1) * 1000 / 60)
        values = [r.subject, r.filename, "", r.onset, r.apex, r.extra.get("apex2", "\\"),
                  r.offset, "", onset_ms, total_ms, r.aus, r.emotion]
        for c, v in enumerate(values):
            if v != "":
                ws.write(i, c, v)
    sheet = root / "CASME-coded-20190721.xls"
    root.mkdir(parents=True, exist_ok=True)
    book.save(str(sheet))
    top = "CASME_cropped" if cropped else "CASME_raw_selected"
    for r in rows:
        if not r.folder:
            continue
        pad = int(r.extra.get("pad", 0))
        prefix = "reg_" if cropped else ""
        numbers = r.frames if r.frames is not None else range(r.onset, r.offset + 1)
        write_frames(root / top / f"sub{int(r.subject):02d}" / r.filename, r, numbers,
                     lambda n, f=r.filename, w=pad, p=prefix: f"{p}{f}-{n:0{w}d}.jpg", draw)
    with_folder = [r for r in rows if r.folder]
    expected = {"rows": len(rows), "samples": len(with_folder),
                "subjects": sorted({f"{int(r.subject):02d}" for r in with_folder})}
    return FixtureRelease(root=root, sheet=sheet, rows=rows, expected=expected)


# ---- CAS(ME)^2 --------------------------------------------------------------------------

CASME_SQ_RULE1 = [(15, "s15", 1), (16, "s16", 2), (19, "s19", 3)]
CASME_SQ_RULE2: list[tuple[Any, str]] = [(101, "disgust1"), ("0401", "anger1"), ("0502", "happy1")]
CASME_SQ_VIDEOS = {"disgust1": "disgustingteeth", "anger1": "girlcrashing", "happy1": "funnyerrors"}


def casme_sq_rows() -> list[CodedRow]:
    """Default CAS(ME)^2 rows (subject = sheet subject number; extra: type, self-report)."""
    micro, macro = "micro-expression", "macro-expression"
    return [
        CodedRow(1, "disgust1_1", 5, 8, 12, "4+9", "negative", extra={"type": micro}),
        CodedRow(1, "anger1_1", 20, 25, 0, "4", "negative", extra={"type": micro}),  # offset 0
        CodedRow(1, "anger1_2", 30, 36, 50, "4+7", "negative", extra={"type": macro}),
        CodedRow(2, "happy1_1", 3, 6, 9, "12", "positive", extra={"type": micro}),
        CodedRow(3, "disgust1_1", 10, 12, 14, "1+2", "surprise", extra={"type": micro}),
        CodedRow(3, "disgust1_2", 15, 20, 25, "", "others", extra={"type": micro}),
        CodedRow(3, "disgust1_3", 28, 32, 36, "4", "negative", extra={"type": macro}),
    ]


def build_casme_sq(root: Path, *, rows: Sequence[CodedRow] | None = None, n_frames: int = 40,
                   size: int = 32, image_fn: ImageFn | None = None,
                   code_sheet: str = "CASFEcode_final") -> FixtureRelease:
    """A CAS(ME)^2 release: ``CAS(ME)^2code_final.xlsx`` (sheet ``CASFEcode_final`` with NO
    header; ``naming rule1``: folder number, folder, subject; ``naming rule2``: code (some
    stored as numbers, e.g. 101 for '0101'), name) and
    ``rawpic/s15/15_0101disgustingteeth/img001.jpg`` long videos of ``n_frames`` frames."""
    root = Path(root)
    rows = list(rows) if rows is not None else casme_sq_rows()
    draw = _image_fn(image_fn, size)
    code = [[r.subject, r.filename, r.onset, r.apex, r.offset, r.aus, r.emotion,
             r.extra.get("type", "micro-expression"), r.extra.get("self", "")] for r in rows]
    sheet = _write_xlsx(root / "CAS(ME)^2code_final.xlsx", [
        (code_sheet, code),
        ("naming rule1", [list(x) for x in CASME_SQ_RULE1]),
        ("naming rule2", [list(x) for x in CASME_SQ_RULE2]),
    ])
    folder_of = {subj: num for num, _, subj in CASME_SQ_RULE1}
    codes = {name: str(c).zfill(4) for c, name in CASME_SQ_RULE2}
    videos: dict[Path, CodedRow] = {}
    for r in rows:
        num = folder_of[int(r.subject)]
        video = r.filename.rsplit("_", 1)[0]
        path = root / "rawpic" / f"s{num}" / f"{num}_{codes[video]}{CASME_SQ_VIDEOS[video]}"
        videos.setdefault(path, r)
    for path, r in videos.items():
        write_frames(path, r, range(1, n_frames + 1), lambda n: f"img{n:03d}.jpg", draw)
    micro = [r for r in rows if r.extra.get("type", "micro-expression") == "micro-expression"]
    expected = {"rows": len(rows), "samples": len(micro), "macro": len(rows) - len(micro),
                "subjects": sorted({f"s{folder_of[int(r.subject)]}" for r in micro})}
    return FixtureRelease(root=root, sheet=sheet, rows=rows, expected=expected)


# ---- MMEW -------------------------------------------------------------------------------

MMEW_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
               "Estimated Emotion", "remarks"]


def mmew_rows() -> list[CodedRow]:
    """Default MMEW rows; S02-07-002 has frame files numbered 1..7 for onset..offset 20..26."""
    return [
        CodedRow("S01", "S01-01-001", 1, 4, 8, "AU12", "happiness"),
        CodedRow("S01", "S01-02-001", 1, 3, 6, "AU4+AU9", "disgust"),
        CodedRow("S02", "S02-03-001", 2, 5, 11, "AU1+AU2", "surprise"),
        CodedRow("S02", "S02-07-002", 20, 23, 26, "AU14", "others", frames=range(1, 8)),
        CodedRow("S03", "S03-04-001", 1, 2, 5, "AU4", "anger"),
        CodedRow("S03", "S03-05-001", 3, 6, 9, "AU1+AU4", "fear"),
    ]


def build_mmew(root: Path, *, arrangement: str = "emotion", others_folder: str = "others",
               rows: Sequence[CodedRow] | None = None, size: int = 32,
               image_fn: ImageFn | None = None) -> FixtureRelease:
    """An MMEW release: ``MMEW_Micro_Exp.xlsx`` and ``Micro_Expression/<emotion>/<Filename>/
    <k>.jpg`` (``arrangement="emotion"``; the others folder named ``others_folder``, e.g.
    ``"repression"``) or ``Micro_Expression/<Subject>/<Filename>/<k>.jpg`` (``"subject"``)."""
    root = Path(root)
    rows = list(rows) if rows is not None else mmew_rows()
    draw = _image_fn(image_fn, size)
    data = [MMEW_HEADER] + [[r.subject, r.filename, r.onset, r.apex, r.offset, r.aus,
                             r.emotion, ""] for r in rows]
    sheet = _write_xlsx(root / "MMEW_Micro_Exp.xlsx", [("Sheet1", data)])
    for r in rows:
        if not r.folder:
            continue
        if arrangement == "emotion":
            group = others_folder if r.emotion == "others" else r.emotion
        else:
            group = str(r.subject)
        numbers = r.frames if r.frames is not None else range(r.onset, r.offset + 1)
        write_frames(root / "Micro_Expression" / group / r.filename, r, numbers,
                     lambda n: f"{n}.jpg", draw)
    expected = {"rows": len(rows), "samples": sum(1 for r in rows if r.folder)}
    return FixtureRelease(root=root, sheet=sheet, rows=rows, expected=expected)


# ---- SMIC -------------------------------------------------------------------------------

def smic_rows() -> list[CodedRow]:
    """Default SMIC samples (subject folder, sample folder, frames; emotion = folder)."""
    return [
        CodedRow("s1", "s1_ne_01", 36237, "", 36243, "", "negative"),
        CodedRow("s1", "s1_po_01", 8, "", 12, "", "positive"),          # image000008..12
        CodedRow("s2", "s2_sur_01", 1201, "", 1209, "", "surprise"),
        CodedRow("s2", "s2_ne_02", 500, "", 506, "", "negative"),
        CodedRow("s3", "s3_po_02", 77, "", 83, "", "positive"),
    ]


def build_smic(root: Path, *, variants: Sequence[str] = ("HS",), cropped: bool = False,
               rows: Sequence[CodedRow] | None = None, size: int = 32,
               image_fn: ImageFn | None = None) -> FixtureRelease:
    """A SMIC release: ``SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image036237.bmp``
    (6-digit numbers; cropped: ``SMIC_all_cropped/.../reg_image036237.bmp``) plus a
    ``non_micro`` folder that must be ignored."""
    root = Path(root)
    rows = list(rows) if rows is not None else smic_rows()
    draw = _image_fn(image_fn, size)
    top, prefix = ("SMIC_all_cropped", "reg_image") if cropped else ("SMIC_all_raw", "image")
    for variant in variants:
        base = root / top / variant
        for r in rows:
            numbers = r.frames if r.frames is not None else range(r.onset, r.offset + 1)
            write_frames(base / r.subject / "micro" / r.emotion / r.filename, r, numbers,
                         lambda n: f"{prefix}{n:06d}.bmp", draw)
        stray = CodedRow("s1", "s1_n1", 1, "", 3, "", "")
        write_frames(base / "s1" / "non_micro" / "s1_n1", stray, range(1, 4),
                     lambda n: f"{prefix}{n:06d}.bmp", draw)
    expected = {"samples": len(rows), "subjects": sorted({r.subject for r in rows})}
    return FixtureRelease(root=root, sheet=None, rows=rows, expected=expected)


# ---- MEGC2019 composite -----------------------------------------------------------------

MEGC_CSV_ROWS: list[tuple[str, str, str, int] | None] = [
    ("casme2", "sub01", "EP02_01f", 1),
    ("casme2", "sub01", "EP03_02", 0),
    ("casme2", "sub02", "EP09f", 2),
    ("casme2", "sub06", "EP01_2", 0),
    ("casme2", "sub16", "EP01_08", 0),
    ("casme2", "sub10", "EP13_01", 0),        # CASME II row without a folder
    None,                                     # an empty row
    ("smic", "s01", "s01_ne_01", 0),
    ("smic", "s01", "s01_po_01", 1),
    ("smic", "s02", "s02_sur_01", 2),
    ("smic", "s02", "s02_ne_02", 0),
    ("smic", "s03", "s03_po_02", 1),
    None,
    ("samm", "6", "006_1_2", 0),
    ("samm", "6", "006_1_3", 0),
    ("samm", "7", "007_3_1", 1),
    ("samm", "11", "011_2_3", 2),
    ("samm", "32", "032_3_1", 0),
    None,
]


def build_megc2019(root: Path, *, csv_rows: Sequence[tuple[str, str, str, int] | None] | None
                   = None, size: int = 32) -> FixtureRelease:
    """A composite root: ``combined_3class_gt.csv`` (no header, CRLF, empty rows) next to
    ``CASME2/``, ``SAMM/`` and ``SMIC/`` fixture releases."""
    root = Path(root)
    build_casme2(root / "CASME2", size=size)
    build_samm(root / "SAMM", size=size)
    build_smic(root / "SMIC", size=size)
    rows = list(csv_rows) if csv_rows is not None else list(MEGC_CSV_ROWS)
    path = root / "combined_3class_gt.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        for row in rows:
            writer.writerow(list(row) if row is not None else [])
    real = [r for r in rows if r is not None]
    expected = {"rows": len(real), "missing": 1, "samples": len(real) - 1}
    return FixtureRelease(root=root, sheet=path, rows=[], expected=expected)
