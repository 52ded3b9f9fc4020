"""The exam side of ``calcscope analyze``: group the files into exams, collect each
analysed image's part, and write one ``<exam>.exam.json`` per exam into the output folder.

With ``--sr``, ``--letter`` and ``--html`` an exam of two or more images also gets one SR,
one letter and one page (:func:`calcscope.reports.exam_writer.write_exam_outputs`),
listed in its ``outputs``; each image keeps its own SR, letter and page as well (they are
written per image exactly as for a single image). An exam of one image (a single file, or
a file without DICOM headers) gets no exam outputs: its image outputs say it all.

The per-image outputs are written as before (:func:`calcscope.reports.writer.write_outputs`);
an exam keeps only the findings of its images (never their pixels), so a run over many
exams holds one image at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from calcscope.exam.grouping import ExamGroup, group_exams, read_manifest
from calcscope.exam.model import ExamImage
from calcscope.reports.exam_writer import ExamOutputOptions

if TYPE_CHECKING:
    from calcscope.pipeline import Analysis
    from calcscope.reports.writer import Outputs

__all__ = ["ExamCollector", "write_phantom_exam"]


@dataclass
class ExamCollector:
    """The exams of one ``analyze`` run and the images analysed so far."""

    groups: list[ExamGroup]
    out: Path
    anonymize: bool = False
    options: ExamOutputOptions = field(default_factory=ExamOutputOptions)
    images: dict[Path, ExamImage] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def for_files(
        cls,
        files: Sequence[Path],
        out: Path,
        *,
        manifest: Path | None = None,
        anonymize: bool = False,
        sr: bool = False,
        letter: bool = False,
        html: bool = False,
    ) -> ExamCollector:
        """Group ``files`` (by study, or by ``manifest``; raises ConfigError for a bad
        manifest); ``sr``, ``letter``, ``html``: the exam outputs to write."""
        rows = read_manifest(manifest) if manifest is not None else None
        options = ExamOutputOptions(sr=sr, letter=letter, html=html, anonymize=anonymize)
        return cls(group_exams(files, rows), out, anonymize, options)

    @property
    def overrides(self) -> dict[Path, tuple[str | None, str | None]]:
        """Laterality and view that a manifest gives each file (passed to the analysis)."""
        out: dict[Path, tuple[str | None, str | None]] = {}
        for group in self.groups:
            if group.grouped_by != "manifest":
                continue
            for h in group.images:
                lat = h.laterality.value if h.laterality else None
                view = h.view.view.value if h.view.view else None
                out[h.path] = (lat, view)
        return out

    def add(self, path: Path, analysis: Analysis, written: Outputs) -> None:
        """Keep the exam's part of one analysed image (its report named relative to OUT)."""
        from calcscope.pipeline import exam_image

        header = next((h for g in self.groups for h in g.images if h.path == path), None)
        view = header.view if header is not None and header.view.view is not None else None
        key = written.json.relative_to(self.out).as_posix()
        self.images[path] = exam_image(analysis, key, view)
        self.sources[key] = path

    def write(self) -> list[Path]:
        """Write the document of every exam with at least one analysed image."""
        from calcscope.exam.build import build_exam
        from calcscope.reports.exam_writer import write_exam_outputs

        written = []
        for group in self.groups:
            images = [self.images[h.path] for h in group.images if h.path in self.images]
            if not images:
                continue
            exam = build_exam(
                images,
                exam_id=group.exam_id,
                name=group.name,
                study_instance_uid=group.study_instance_uid,
                patient_id=group.patient_id,
                study_date=group.study_date,
            )
            options = self.options if len(images) > 1 else ExamOutputOptions()
            options = replace(options, anonymize=self.anonymize)
            written.append(write_exam_outputs(exam, self.out, options, sources=self.sources))
        return written


def write_phantom_exam(folder: Path, seed: int, spacing_mm: float, laterality: str) -> str:
    """``calcscope phantom --exam DIR``: write the four views and truth.json; returns the
    line to print (raises ValueError for an invalid argument)."""
    from calcscope.model import Laterality
    from calcscope.phantom.exam import write_exam_phantom

    files, truth = write_exam_phantom(
        folder, seed=seed, spacing_mm=spacing_mm, laterality=Laterality(laterality.upper())
    )
    return f"wrote {len(files)} views of one exam into {folder} and {truth}"
