"""Long-video releases for spotting under the MEGC protocol: the common part of the loaders of
CAS(ME)² (``casme_sq_lv``), SAMM Long Videos (``samm_lv``) and CAS(ME)³ part A (``casme3``).

A long-video dataset is an :class:`~.base.MEDataset` whose samples are the coded intervals
(micro- AND macro-expressions, :attr:`Sample.kind`) of long recordings, with the same fixes
table, the same frame look-up and the same report as every loader. In addition it lists every
long video of the release as a :class:`LongVideo` (its image folder, its frame numbers and its
coded intervals), because spotting is scored per video: a long video without any coded
expression is still part of the evaluation (whatever is spotted there is a false positive).

What a loader cannot verify is said, never guessed silently: the release-specific
assumptions (:attr:`LongVideoDataset.ASSUMPTIONS`) are printed by ``mestudio data check``, and
rows whose values are doubtful (onset 0, an offset of 0 taken as unknown, an apex outside the
interval, frames missing from a video) are listed as issues or applied fixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mestudio.training.datasets import frames as framelib
from mestudio.training.datasets.base import (
    MISSING_FRAMES,
    NOTE,
    Annotation,
    DatasetReport,
    MEDataset,
    Sample,
)

UNVERIFIED = "unverified"
"""Issue kind of values a loader kept but could not verify (shown by ``data check``)."""
NO_EXPRESSION = "video without expression"
"""Issue kind of a long video that has no coded interval (it is still scored)."""


@dataclass
class LongVideo:
    """One long video of a spotting release.

    Attributes:
        id: stable id, ``"<subject>/<video>"`` as the release names them (``"s15/15_0101
            disgustingteeth"``, ``"006/006_1"``, ``"spNO.1/a"``).
        subject: subject id (text).
        folder: the folder of its frame images.
        fps: frames per second of the recording.
        frames: the frame numbers present (from the file names), increasing; frame ``i`` of
            the image sequence (``mestudio.capture.ImageSequenceSource``) is ``frames[i]``.
        paths: the image files, same order as :attr:`frames`.
        truth: the coded intervals (after the fixes), micro and macro, sorted by onset.
    """

    id: str
    subject: str
    folder: Path
    fps: float
    frames: list[int]
    paths: list[Path]
    truth: list[Sample] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        """Length in seconds (frames / fps)."""
        return self.n_frames / self.fps if self.fps else 0.0

    def truth_intervals(self) -> list[dict[str, Any]]:
        """The coded intervals as ``{"onset", "apex", "offset", "kind", "label", "id"}``
        dicts in frame numbers (what :mod:`mestudio.spotting.megc` scores against)."""
        return [{"onset": s.onset, "apex": s.apex, "offset": s.offset, "kind": s.kind,
                 "label": s.native_label, "id": s.id} for s in self.truth]

    def gaps(self) -> list[int]:
        """Frame numbers missing between the first and the last frame."""
        present = set(self.frames)
        if not self.frames:
            return []
        return [n for n in range(self.frames[0], self.frames[-1] + 1) if n not in present]


@dataclass
class SpottingReport(DatasetReport):
    """A :class:`~.base.DatasetReport` plus the long videos and the loader's assumptions."""

    videos: list[LongVideo] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    video_folders: dict[Path, tuple[str, str]] = field(default_factory=dict)
    """Found while reading: image folder -> (video id, subject)."""

    def kind_counts(self) -> dict[str, int]:
        """Usable coded intervals per kind."""
        out = {"micro": 0, "macro": 0}
        for s in self.samples:
            out[s.kind] = out.get(s.kind, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        doc["kinds"] = self.kind_counts()
        doc["assumptions"] = list(self.assumptions)
        doc["videos"] = [{"id": v.id, "subject": v.subject, "folder": str(v.folder),
                          "frames": v.n_frames,
                          "first_frame": v.frames[0] if v.frames else None,
                          "last_frame": v.frames[-1] if v.frames else None,
                          "micro": sum(s.kind == "micro" for s in v.truth),
                          "macro": sum(s.kind == "macro" for s in v.truth)}
                         for v in self.videos]
        return doc

    def to_text(self, max_lines: int = 12) -> str:
        text = super().to_text(max_lines=max_lines)
        kinds = self.kind_counts()
        n_frames = sum(v.n_frames for v in self.videos)
        with_truth = sum(bool(v.truth) for v in self.videos)
        hours = sum(v.duration_s for v in self.videos) / 3600.0
        lines = [f"long videos {len(self.videos)} ({with_truth} with coded expressions), "
                 f"{n_frames} frames ({hours:.2f} h); intervals for spotting: "
                 f"{kinds.get('micro', 0)} micro, {kinds.get('macro', 0)} macro"]
        for v in self.videos[:max_lines]:
            span = f"{v.frames[0]}..{v.frames[-1]}" if v.frames else "-"
            lines.append(f"  {v.id}: {v.n_frames} frames ({span}), "
                         f"{sum(s.kind == 'micro' for s in v.truth)} micro, "
                         f"{sum(s.kind == 'macro' for s in v.truth)} macro")
        if len(self.videos) > max_lines:
            lines.append(f"  ... {len(self.videos) - max_lines} more")
        if self.assumptions:
            lines.append("assumptions (not verified against the release; check them)")
            lines.extend(f"  - {a}" for a in self.assumptions)
        head, sep, verdict = text.rpartition("\nverdict")
        return head + "\n" + "\n".join(lines) + sep + verdict


class LongVideoDataset(MEDataset):
    """Base of the long-video loaders.

    Subclasses implement ``_read_release`` as usual (one :class:`~.base.Annotation` per coded
    interval, ``kind`` set) and record every long video they find in
    ``report.video_folders`` (image folder -> ``(video id, subject)``). :meth:`scan` then
    builds :attr:`SpottingReport.videos`.
    """

    ASSUMPTIONS: tuple[str, ...] = ()
    """What the loader assumes about the release where DATASETS.md says nothing (printed)."""

    spotting = True

    def _new_report(self, root: Path) -> SpottingReport:
        return SpottingReport(
            dataset=self.name, title=self.title, root=root, fps=self.fps,
            class_maps=dict(self.class_maps),
            class_orders={"native": self.native_classes, **self.class_orders},
            assumptions=list(self.ASSUMPTIONS),
        )

    def check(self, root: str | Path) -> SpottingReport:
        return self.scan(root)

    def scan(self, root: str | Path) -> SpottingReport:
        """Read the annotations and frames (:meth:`MEDataset.scan`), then list the long
        videos with their coded intervals."""
        report = super().scan(root)
        assert isinstance(report, SpottingReport)
        by_folder: dict[Path, list[Sample]] = {}
        for s in report.samples:
            if s.folder is not None:
                by_folder.setdefault(s.folder, []).append(s)
        folders = dict(report.video_folders)
        for folder in by_folder:  # a row's folder the loader did not list
            folders.setdefault(folder, (folder.name, by_folder[folder][0].subject))
        for folder, (vid, subject) in sorted(folders.items(),
                                             key=lambda kv: framelib.natural_key(kv[1][0])):
            files = framelib.list_frames(folder)
            if not files:
                report.issue(MISSING_FRAMES, f"{vid}: long video folder {folder} holds no "
                             "frame image; not scored", vid)
                continue
            video = LongVideo(id=vid, subject=subject, folder=folder, fps=self.fps,
                              frames=[n for n, _ in files], paths=[p for _, p in files],
                              truth=sorted(by_folder.get(folder, []),
                                           key=lambda s: (s.onset, s.offset)))
            gaps = video.gaps()
            if gaps:
                report.issue(UNVERIFIED,
                             f"{vid}: {len(gaps)} frame(s) missing from the numbering "
                             f"({framelib.format_ranges(gaps)}); the video is read as the "
                             "frames present, timestamps = position / fps", vid)
            if not video.truth:
                report.issue(NO_EXPRESSION, f"{vid}: no coded expression in this video "
                             "(scored: whatever is spotted there is a false positive)", vid)
            report.videos.append(video)
        return report

    def _make_sample(self, ann: Annotation, report: DatasetReport) -> Sample | None:
        first = framelib.list_frames(ann.folder)[:1] if ann.folder is not None else []
        if ann.onset == 0 and not (first and first[0][0] == 0):
            report.issue(UNVERIFIED, f"{ann.where}: onset 0 (frame numbers start at "
                         "1 in most releases: 0 may mean 'unknown'); kept as coded", ann.key)
        sample = super()._make_sample(ann, report)
        if sample is not None:
            if any(f.startswith(("apex-outside", "apex-missing")) for f in sample.fixes):
                report.issue(UNVERIFIED, f"{ann.where}: apex {ann.texts.get('apex', '')!r} "
                             f"not usable as coded (see fixes); the interval "
                             f"{sample.onset}..{sample.offset} is scored as coded", ann.key)
            if any("offset-unknown" in f for f in sample.fixes):
                report.issue(UNVERIFIED, f"{ann.where}: offset "
                             f"{ann.texts.get('offset', '')!r} taken as unknown: interval "
                             f"{sample.onset}..{sample.offset} (ends at the apex)", ann.key)
        return sample

    def long_videos(self, root: str | Path) -> tuple[SpottingReport, list[LongVideo]]:
        """The report and the usable long videos of the release at ``root``."""
        report = self.scan(root)
        return report, list(report.videos)


__all__ = ["NOTE", "NO_EXPRESSION", "UNVERIFIED", "LongVideo", "LongVideoDataset",
           "SpottingReport"]
