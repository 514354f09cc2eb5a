"""Every change mestudio makes to the official annotations: ONE table, with reasons.

The loaders never edit an annotation anywhere else. For each sample the fields are
processed in the order onset, offset, apex; for each field the FIRST entry of
:data:`FIXES` that matches (dataset, sample, layout, condition) is applied, and the applied
fix is recorded on the sample (``Sample.fixes``) and in the ``data check`` report.

Specific entries (one sample) come before the general policies (``"*"``). A specific entry
names the official value it replaces (``when=110``): a corrected copy of a sheet is then left
alone.

Conditions (``when``):
    ``"missing"``   the cell is blank or a "not coded" mark (``/``, ``\\``, ``-``)
    ``"zero"``      the cell holds 0
    ``"outside"``   apex not within [onset, offset]
    ``"at_onset"``  apex == onset (and offset > onset + 1)
    ``"at_offset"`` apex == offset as coded (and offset > onset + 1); not when the offset
                    itself was derived from the apex by an earlier fix
    an ``int``      the cell holds exactly this official value
    a tuple         any of the above
Actions (``action``):
    ``"middle"``    apex = (onset + offset) // 2, and ``Sample.apex_estimated`` = True
                    (the preprocessing may refine it, e.g. frame of maximum flow)
    ``"apex"``      the field takes the apex value
    ``"drop"``      the sample is excluded (reported)
    an ``int``      the field takes this value
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

Condition = str | int | tuple[str | int, ...]

FIELDS: tuple[str, ...] = ("onset", "offset", "apex")


@dataclass(frozen=True)
class AnnotationFix:
    """One correction of the official annotations.

    Attributes:
        id: short stable name, shown by ``mestudio data check``.
        dataset: registry name (glob, e.g. ``"smic*"``) or ``"*"``.
        sample: ``"subject/filename"`` as the sheet writes them (glob) or ``"*"``.
        field: ``"onset"``, ``"offset"`` or ``"apex"``.
        when: condition (see the module docstring).
        action: new value or rule (see the module docstring).
        reason: why, in one sentence (shown to users).
        layouts: only for these frame layouts (e.g. ``("cropped",)``); empty for all.
    """

    id: str
    dataset: str
    sample: str
    field: str
    when: Condition
    action: str | int
    reason: str
    layouts: tuple[str, ...] = ()


FIXES: tuple[AnnotationFix, ...] = (
    # ---- specific samples ---------------------------------------------------------------
    AnnotationFix(
        id="casme2-cropped-16/EP01_08-offset",
        dataset="casme2", sample="16/EP01_08", field="offset", when=110, action=96,
        layouts=("cropped",),
        reason="the Cropped release holds only frames 73-96 of the coded 73-110 "
               "(the apex, 94, is inside); the coded tail does not exist there",
    ),
    # ---- dataset policies ---------------------------------------------------------------
    AnnotationFix(
        id="smic-apex-middle",
        dataset="smic*", sample="*", field="apex", when="missing", action="middle",
        reason="the SMIC release codes no apex (a clip folder is onset..offset): "
               "apex = middle frame, estimated",
    ),
    AnnotationFix(
        id="casme_sq-offset-unknown",
        dataset="casme_sq", sample="*", field="offset", when=("zero", "missing"),
        action="apex",
        reason="CAS(ME)^2 writes offset 0 when the offset is unknown: the interval ends at "
               "the apex",
    ),
    AnnotationFix(
        id="casme_sq_lv-offset-unknown",
        dataset="casme_sq_lv", sample="*", field="offset", when=("zero", "missing"),
        action="apex",
        reason="CAS(ME)^2 writes offset 0 when the offset is unknown: the interval ends at "
               "the apex (long videos, spotting)",
    ),
    AnnotationFix(
        id="samm_lv-offset-unknown",
        dataset="samm_lv", sample="*", field="offset", when=("zero", "missing"),
        action="apex",
        reason="(unverified) a SAMM Long Videos offset of 0 or blank is taken as unknown, as "
               "CAS(ME)^2 codes it: the interval ends at the apex",
    ),
    AnnotationFix(
        id="casme3-offset-unknown",
        dataset="casme3", sample="*", field="offset", when=("zero", "missing"),
        action="apex",
        reason="(unverified) a CAS(ME)^3 offset of 0 or blank is taken as unknown, as "
               "CAS(ME)^2 codes it: the interval ends at the apex",
    ),
    # ---- general policies ---------------------------------------------------------------
    AnnotationFix(
        id="apex-missing",
        dataset="*", sample="*", field="apex", when=("missing", "zero"), action="middle",
        reason="apex not coded (e.g. CASME II sub04/EP12_01f '/'): middle frame, marked "
               "estimated; the preprocessing may refine it",
    ),
    AnnotationFix(
        id="apex-outside",
        dataset="*", sample="*", field="apex", when="outside", action="middle",
        reason="apex outside [onset, offset] (e.g. SAMM 028_4_1, 032_3_1): the interval is "
               "kept, apex = middle frame, marked estimated",
    ),
    AnnotationFix(
        id="apex-at-onset",
        dataset="*", sample="*", field="apex", when="at_onset", action="middle",
        reason="apex equal to onset (e.g. CASME II sub05/EP09_05f) leaves no onset-to-apex "
               "motion: middle frame, marked estimated",
    ),
    AnnotationFix(
        id="apex-at-offset",
        dataset="*", sample="*", field="apex", when="at_offset", action="middle",
        reason="apex equal to offset leaves no apex-to-offset motion: middle frame, marked "
               "estimated",
    ),
)


@dataclass
class AppliedFix:
    """A fix applied to one sample (for the report)."""

    fix_id: str
    sample: str
    field: str
    old: str
    new: str
    reason: str

    def __str__(self) -> str:
        return f"{self.fix_id}: {self.field} {self.old} -> {self.new}"


@dataclass
class FixTarget:
    """The editable annotation values of one row while fixes are applied.

    ``None`` means "not coded"; ``texts`` holds the cells as written (for the report).
    """

    onset: int | None
    apex: int | None
    offset: int | None
    texts: dict[str, str]
    derived: set[str]
    apex_estimated: bool = False
    dropped: str = ""


def _holds(cond: str | int, name: str, t: FixTarget) -> bool:
    value = getattr(t, name)
    if isinstance(cond, int):
        return value == cond
    if cond == "missing":
        return value is None
    if cond == "zero":
        return value == 0
    if name != "apex" or t.apex is None or t.onset is None or t.offset is None:
        return False
    if cond == "outside":
        return not (t.onset <= t.apex <= t.offset)
    interior = t.offset > t.onset + 1
    if cond == "at_onset":
        return interior and t.apex == t.onset
    if cond == "at_offset":
        return interior and t.apex == t.offset and "offset" not in t.derived
    raise ValueError(f"unknown fix condition {cond!r}")


def _matches(fix: AnnotationFix, dataset: str, sample: str, layout: str, name: str,
             t: FixTarget) -> bool:
    if fix.field != name:
        return False
    if not fnmatch.fnmatchcase(dataset, fix.dataset):
        return False
    if fix.sample != "*" and not fnmatch.fnmatchcase(sample.lower(), fix.sample.lower()):
        return False
    if fix.layouts and layout not in fix.layouts:
        return False
    conds = fix.when if isinstance(fix.when, tuple) else (fix.when,)
    return any(_holds(c, name, t) for c in conds)


def _fmt(value: Any, text: str = "") -> str:
    if value is None:
        return repr(text) if text else "(not coded)"
    return str(value)


def apply_fixes(
    dataset: str,
    sample: str,
    layout: str,
    target: FixTarget,
    fixes: tuple[AnnotationFix, ...] = FIXES,
) -> list[AppliedFix]:
    """Apply the first matching fix of every field to ``target`` (in place).

    Args:
        dataset: registry name of the dataset, e.g. ``"casme2"``.
        sample: ``"subject/filename"`` as in the sheet, e.g. ``"04/EP12_01f"``.
        layout: the frame layout in use (``"raw"``, ``"selected"``, ``"cropped"``).
        target: the row's values; changed in place.

    Returns:
        The applied fixes, in the order applied.
    """
    applied: list[AppliedFix] = []
    for name in FIELDS:
        for fix in fixes:
            if not _matches(fix, dataset, sample, layout, name, target):
                continue
            old = _fmt(getattr(target, name), target.texts.get(name, ""))
            action = fix.action
            if action == "drop":
                target.dropped = fix.reason
                applied.append(AppliedFix(fix.id, sample, name, old, "dropped", fix.reason))
                return applied
            if action == "middle":
                if target.onset is None or target.offset is None:
                    break
                new_value: int | None = (target.onset + target.offset) // 2
                if name == "apex":
                    target.apex_estimated = True
            elif action == "apex":
                new_value = target.apex
            elif isinstance(action, int):
                new_value = action
            else:
                raise ValueError(f"unknown fix action {action!r} in {fix.id}")
            setattr(target, name, new_value)
            target.derived.add(name)
            applied.append(AppliedFix(fix.id, sample, name, old, _fmt(new_value), fix.reason))
            break
    return applied

