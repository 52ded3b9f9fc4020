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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from calcscope.exam.compare import PriorExam
from calcscope.exam.grouping import ExamGroup, group_exams, read_manifest
from calcscope.exam.model import Exam, ExamImage
from calcscope.reports.exam_writer import ExamOutputOptions

if TYPE_CHECKING:
    from calcscope.pipeline import Analysis
    from calcscope.reports.writer import Outputs

__all__ = ["ExamCollector", "split_priors", "write_compared_exams", "write_phantom_exam"]


@dataclass
class ExamCollector:
    """The exams of one ``analyze`` run and the images analysed so far."""

    groups: list[ExamGroup]
    out: Path
    anonymize: bool = False
    options: ExamOutputOptions = field(default_factory=ExamOutputOptions)
    images: dict[Path, ExamImage] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    priors: list[PriorExam] = field(default_factory=list)  # read from earlier documents
    prior_files: frozenset[Path] = frozenset()  # images named with --prior

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
        priors: Sequence[PriorExam] = (),
        prior_files: Sequence[Path] = (),
    ) -> ExamCollector:
        """Group ``files`` (by study, or by ``manifest``; raises ConfigError for a bad
        manifest); ``sr``, ``letter``, ``html``: the exam outputs to write; ``priors`` and
        the images ``prior_files`` (among ``files``) are named as priors (``--prior``)."""
        rows = read_manifest(manifest) if manifest is not None else None
        options = ExamOutputOptions(sr=sr, letter=letter, html=html, anonymize=anonymize)
        return cls(
            group_exams(files, rows),
            out,
            anonymize,
            options,
            priors=list(priors),
            prior_files=frozenset(prior_files),
        )

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
        """Write the document of every exam with at least one analysed image, each
        compared with its prior (:func:`calcscope.exam.priors.compare_with_priors`)."""
        from calcscope.exam.build import build_exam

        exams = []
        explicit = set()
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
                issuer_of_patient_id=group.issuer_of_patient_id,
            )
            exams.append(exam)
            if any(h.path in self.prior_files for h in group.images):
                explicit.add(exam.exam_id)
        options = replace(self.options, anonymize=self.anonymize)
        written = write_compared_exams(
            exams,
            self.out,
            options,
            priors=self.priors,
            explicit=frozenset(explicit),
            sources=self.sources,
        )
        return [path for _, path in written]


def write_compared_exams(
    exams: Sequence[Exam],
    out: Path,
    options: ExamOutputOptions | None = None,
    *,
    priors: Sequence[PriorExam] = (),
    explicit: frozenset[str] = frozenset(),
    sources: Mapping[str, Path] | None = None,
) -> list[tuple[Exam, Path]]:
    """Compare every exam with its prior (:func:`calcscope.exam.priors.compare_with_priors`:
    the latest earlier exam of the same patient among ``exams`` and ``priors``) and write
    its document into ``out`` (:func:`calcscope.reports.exam_writer.write_exam_outputs`;
    an exam of one image gets its JSON only); ``explicit``: ids of the exams named as
    priors. Used by ``calcscope analyze`` and ``calcscope batch``. Returns each compared
    exam with its document's path, in the order given."""
    from calcscope.exam.priors import compare_with_priors
    from calcscope.reports.exam_writer import write_exam_outputs

    opts = options or ExamOutputOptions()
    written = []
    for e in compare_with_priors(exams, priors, explicit=explicit):
        one = opts if len(e.images) > 1 else ExamOutputOptions(anonymize=opts.anonymize)
        written.append((e, write_exam_outputs(e, out, one, sources=sources)))
    return written


def split_priors(inputs: Sequence[Path]) -> tuple[list[PriorExam], list[Path]]:
    """``--prior`` inputs: exam documents (``*.exam.json`` files, or the ones of a previous
    run's output folder: read, not re-analysed) and the other inputs (images or folders of
    images, analysed with the run). Raises ConfigError for an unreadable exam document."""
    from pydantic import ValidationError

    from calcscope.errors import ConfigError
    from calcscope.reports.exam import EXAM_SUFFIX, load_exam, prior_from_report

    priors: list[PriorExam] = []
    images: list[Path] = []
    for p in inputs:
        docs = sorted(p.glob(f"*{EXAM_SUFFIX}")) if p.is_dir() else []
        if p.is_file() and p.name.endswith(EXAM_SUFFIX):
            docs = [p]
        if not docs:
            images.append(p)
            continue
        for doc in docs:
            try:
                priors.append(prior_from_report(load_exam(doc)))
            except (OSError, ValueError, ValidationError) as exc:
                raise ConfigError(f"{doc}: not a calcscope exam document ({exc})"[:600]) from exc
    return priors, images


def write_phantom_exam(
    folder: Path, seed: int, spacing_mm: float, laterality: str, follow_up: bool = False
) -> str:
    """``calcscope phantom --exam DIR [--follow-up]``: write the four views and truth.json
    (with ``follow_up``: a prior and a current exam in DIR/prior and DIR/current); returns
    the line to print (raises ValueError for an invalid argument)."""
    if follow_up:
        from calcscope.phantom.follow_up import write_follow_up_phantom

        prior, current, truth_path = write_follow_up_phantom(
            folder, seed=seed, spacing_mm=spacing_mm
        )
        return f"wrote a prior exam into {prior}, a current one into {current} and {truth_path}"
    from calcscope.model import Laterality
    from calcscope.phantom.exam import write_exam_phantom

    files, truth = write_exam_phantom(
        folder, seed=seed, spacing_mm=spacing_mm, laterality=Laterality(laterality.upper())
    )
    return f"wrote {len(files)} views of one exam into {folder} and {truth}"
