"""The one writer of an exam's outputs, beside :mod:`calcscope.reports.writer` (the
image's): the exam SR, letter and page, then ``<exam>.exam.json`` listing them.

Naming: ``<exam>.sr.dcm``, ``<exam>.letter.html``, ``<exam>.letter.txt``, ``<exam>.html``
in the folder of the exam document (``<exam>`` is the exam's file-name-safe name; where
an image of the exam has that stem, ``<exam>.exam.<suffix>`` instead, so that no image
output is overwritten). Every file is written atomically
(:func:`calcscope.files.write_atomic`), the exam JSON last, so a folder whose exam JSON
exists holds every exam output it lists (``outputs``, relative to the exam JSON).

Everything is rendered from the exam report (:class:`calcscope.reports.exam.ExamReport`)
and, for the SR, the image reports it references (read with
:func:`calcscope.reports.schema.load_report`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from calcscope.exam.model import Exam
from calcscope.files import write_atomic
from calcscope.reports.exam import (
    ExamOutputsModel,
    exam_file_name,
    to_exam_report,
    write_exam,
)

__all__ = ["EXAM_OUTPUT_SUFFIXES", "ExamOutputOptions", "write_exam_outputs"]

#: The suffix of each exam output (after ``<exam>``).
EXAM_OUTPUT_SUFFIXES: dict[str, str] = {
    "sr": ".sr.dcm",
    "letter_html": ".letter.html",
    "letter_txt": ".letter.txt",
    "html": ".html",
}


@dataclass(frozen=True)
class ExamOutputOptions:
    """Which exam outputs to write beside the exam JSON, and whether to de-identify."""

    sr: bool = False
    """One DICOM Mammography CAD SR for the study (:mod:`calcscope.reports.exam_sr`)."""
    letter: bool = False
    """One patient letter, as HTML and plain text (:mod:`calcscope.reports.exam_letter`)."""
    html: bool = False
    """One exam page (:mod:`calcscope.reports.exam_html`)."""
    anonymize: bool = False
    """No patient id in the exam JSON; the SR de-identified (one seed for the exam)."""
    anonymize_seed: str | None = None
    """The de-identification's seed; ``None``: this process's (as the image outputs)."""
    durable: bool = False
    """fsync every file and its folder."""
    stem: str | None = None
    """A fixed stem of the outputs that tells nothing of the patient (the node's ``exam``,
    in a folder of the study); ``None``: the exam's name (de-identified with ``anonymize``)."""


def _stem(exam: Exam, opts: ExamOutputOptions) -> str:
    if opts.stem is not None:
        return opts.stem
    name = exam_file_name(exam, anonymize=opts.anonymize, seed=opts.anonymize_seed)
    image_stems = {Path(i.key).name.removesuffix(".json") for i in exam.images}
    return name if name not in image_stems else f"{name}.exam"


def write_exam_outputs(
    exam: Exam,
    out_dir: str | Path,
    options: ExamOutputOptions | None = None,
    *,
    sources: Mapping[str, Path] | None = None,
) -> Path:
    """Write the exam's outputs and its JSON (last) into ``out_dir``; returns the JSON's path.

    Parameters
    ----------
    exam
        The exam; each image's ``key`` is its JSON report's path relative to ``out_dir``.
    out_dir
        The folder of the exam document (and of the image reports it names).
    options
        Which outputs; by default none (the JSON only, ``outputs`` all null).
    sources
        The analysed file of each image (by key): the SR re-reads its DICOM header there
        (an anonymized image report keeps only the file name); default: the report's path.
    """
    opts = options or ExamOutputOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = to_exam_report(exam, anonymize=opts.anonymize, seed=opts.anonymize_seed)
    stem = _stem(exam, opts)
    written: dict[str, str] = {}

    def put(kind: str, data: bytes | str) -> None:
        name = stem + EXAM_OUTPUT_SUFFIXES[kind]
        write_atomic(out / name, data, durable=opts.durable)
        written[kind] = name

    if opts.sr:
        from calcscope.reports.exam_sr import exam_sr_bytes
        from calcscope.reports.schema import load_report
        from calcscope.reports.sr import source_dataset

        images = {}
        for img in exam.images:
            image_report = load_report(out / img.key)
            src = image_report.source
            path = (sources or {}).get(img.key)
            if path is not None:  # the analysed file, and its UID before any de-identification
                update = {"path": str(path), "sop_instance_uid": img.sop_instance_uid}
                src = src.model_copy(update=update)
            images[img.key] = (image_report, source_dataset(src))
        put("sr", exam_sr_bytes(report, images, anonymize=opts.anonymize, seed=opts.anonymize_seed))
    if opts.letter:
        from calcscope.reports.exam_letter import exam_letter_html, exam_letter_text

        put("letter_html", exam_letter_html(report))
        put("letter_txt", exam_letter_text(report))
    if opts.html:
        from calcscope.reports.exam_html import render_exam_html

        put("html", render_exam_html(report, has_overlay=lambda p: (out / p).is_file()))
    outputs = ExamOutputsModel(**written)
    return write_exam(
        exam,
        out,
        anonymize=opts.anonymize,
        seed=opts.anonymize_seed,
        outputs=outputs,
        durable=opts.durable,
        name=opts.stem,  # a fixed stem names the JSON too (the node's exam.exam.json)
    )
