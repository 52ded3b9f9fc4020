"""The DICOM node's exams: the images of one study, assembled as they arrive.

Each analysed image (its committed ``results/<SOPInstanceUID>/analysis.json``) joins the
exam of its study (the report's StudyInstanceUID; an image without one is an exam of its
own). An exam is complete when ``views`` images of it have arrived, or when none arrived
for ``idle_s`` seconds; it is then written from the images' reports (never their pixels),
like ``calcscope analyze`` does (:mod:`calcscope.apps.exams`)::

    OUT/exams/<study>/members          SOP Instance UIDs of the analysed images, one a line
    OUT/exams/<study>/written          the members when the exam was last written
    OUT/exams/<study>/exam.exam.json   the exam (:func:`calcscope.reports.exam.write_exam`)
    OUT/exams/<study>/exam.letter.html, exam.letter.txt, exam.html
                                       the patient letter (with the change since the
                                       prior in plain words) and the exam page, as
                                       ``calcscope analyze --letter --html`` writes them
                                       (:func:`calcscope.reports.exam_writer.write_exam_outputs`;
                                       de-identified with ``anonymize``)
    OUT/exams/<study>/exam.sr.dcm      the exam's Mammography CAD SR (with the DICOM
                                       reports, not with ``anonymize``)
    OUT/exams/<study>/exam.vN.exam.json  earlier versions, N = 1, 2, ... (oldest first)

A late image of a completed study reopens its exam: the exam is written again with every
image, the version it replaces kept as ``exam.vN.exam.json``; nothing is lost. ``members``
is written (atomically, durably) before anything else, so a node restarted before an
exam was written reopens it (:meth:`ExamAssembler.recover`).

A prior study that arrives after the exam it precedes (out of order): once the prior's
exam is written, the patient's earliest later exam (one only: bounded work) that was not
compared with it or a later prior is compared again and written as a new version.

The image reports are named relative to the exam document (``../../results/<uid>/
analysis.json``); with ``anonymize`` the node's folder names (the received UIDs) must not
leak, so each image is named by its de-identified SOP Instance UID instead
(``<uid>/analysis.json``, under ``results/`` of no folder).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from calcscope.apps.node_priors import PriorFinder, StudyKey
from calcscope.apps.node_worker import STEM, results_folder
from calcscope.errors import CalcscopeError
from calcscope.exam.compare import PriorExam
from calcscope.files import write_atomic
from calcscope.reports.exam import EXAM_SUFFIX, exam_image_from_report, load_exam
from calcscope.reports.exam_writer import ExamOutputOptions, write_exam_outputs
from calcscope.reports.schema import AnalysisReport, load_report
from calcscope.reports.writer import folder_seed

__all__ = ["EXAM_NAME", "ExamAssembler"]

log = logging.getLogger("calcscope.node")

#: The exam document's name in its study folder: ``exam.exam.json``.
EXAM_NAME = "exam"
_UNSAFE = re.compile(r"[^0-9A-Za-z._-]")


def _folder_name(study: str) -> str:
    name = _UNSAFE.sub("_", study)[:120].strip(".")
    return name or "unknown"


def _read_lines(path: Path) -> list[str]:
    try:
        return [x for x in path.read_text(encoding="utf-8").splitlines() if x]
    except OSError:
        return []


@dataclass
class ExamAssembler:
    """Assembles the node's exams (see the module docstring).

    Parameters
    ----------
    out
        The node's folder (its ``results/`` and ``exams/``).
    idle_s
        An exam is complete when no image of it arrived for this long, in seconds.
    views
        ... or when this many images of it arrived.
    anonymize
        Leave the patient id out and name the images by their (de-identified) SOP
        Instance UID rather than by the node's folders.
    dicom_reports
        Also write the exam's Mammography CAD SR (``exam.sr.dcm``, one for the study,
        :mod:`calcscope.reports.exam_sr`), replaced with each new version of the exam.
        Not with ``anonymize``: the de-identified exam names no image file to re-read.
    priors
        Compare each exam with the woman's prior exam that this finder gives
        (:mod:`calcscope.apps.node_priors`; its search starts with the study's first
        image); ``None``: no comparison (the exam has no ``comparison``).
    """

    out: Path
    idle_s: float = 60.0
    views: int = 4
    anonymize: bool = False
    dicom_reports: bool = False
    priors: PriorFinder | None = None
    _last: dict[str, float] = field(default_factory=dict)  # open study -> last arrival
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seed: str | None = field(default=None, init=False)  # the de-identification seed
    due: threading.Event = field(default_factory=threading.Event, init=False)
    """Set when an exam is complete and waits for :meth:`poll` (which need not wait for
    its next tick)."""

    def __post_init__(self) -> None:
        if self.idle_s <= 0 or self.views < 1:
            raise ValueError("exam idle time must be positive and the view count at least 1")
        (self.out / "exams").mkdir(parents=True, exist_ok=True)
        self._seed = folder_seed(self.out) if self.anonymize else None

    def folder(self, study: str) -> Path:
        """The study's exam folder."""
        return self.out / "exams" / _folder_name(study)

    def _report(self, uid: str) -> AnalysisReport | None:
        try:
            return load_report(results_folder(self.out, uid, self._seed) / f"{STEM}.json")
        except (CalcscopeError, OSError):
            return None

    def add(self, uid: str) -> Path | None:
        """Add the committed image ``uid`` to its study's exam; writes the exam when this
        completes it (the view count) and returns the document's path, else ``None``.
        With ``priors``, a completed exam is left to the next :meth:`poll` instead (it
        waits for the priors)."""
        report = self._report(uid)
        if report is None:
            return None
        study = report.source.study_instance_uid or f"image-{report.source.sop_instance_uid}"
        with self._lock:
            folder = self.folder(study)
            folder.mkdir(parents=True, exist_ok=True)
            members = _read_lines(folder / "members")
            if uid not in members:
                members.append(uid)
                write_atomic(folder / "members", "\n".join(members) + "\n", durable=True)
            if members == _read_lines(folder / "written"):
                return None
            self._last[study] = time.monotonic()
            if len(members) == 1:
                self._search(members)
            if len(members) < self.views:
                return None
            if self.priors is not None:  # written by poll(), whose wait for the priors
                self._last[study] = -math.inf  # never holds back an analysis worker
                if len(members) == self.views:  # just complete: written at once; a late
                    self.due.set()  # image waits for the tick (no rewrite per image)
                return None
            self._last.pop(study, None)
        return self._write(study)

    def _key(self, members: list[str]) -> StudyKey | None:
        """The study's key for the search of priors, from a received image's header."""
        for uid in members:
            key = StudyKey.from_file(self.out / "received" / f"{uid}.dcm")
            if key is not None:
                return key
        return None

    def _search(self, members: list[str]) -> None:
        key = self._key(members) if self.priors is not None else None
        if self.priors is not None and key is not None:
            self.priors.start(key)

    def poll(self, now: float | None = None) -> list[Path]:
        """Write every open exam with no image for ``idle_s``; returns the documents."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [s for s, t in self._last.items() if now - t >= self.idle_s]
            for s in due:
                self._last.pop(s, None)
        return [p for p in (self._write(s) for s in due) if p is not None]

    def flush(self) -> list[Path]:
        """Write every open exam now (whatever its view count)."""
        return self.poll(now=float("inf"))

    def recover(self) -> None:
        """Reopen the exams whose members changed since they were last written (a node
        stopped in between); they are written after ``idle_s``."""
        now = time.monotonic()
        with self._lock:
            for folder in sorted((self.out / "exams").iterdir()):
                members = _read_lines(folder / "members")
                if members and members != _read_lines(folder / "written"):
                    report = self._report(members[0])
                    if report is not None:
                        src = report.source
                        study = src.study_instance_uid or f"image-{src.sop_instance_uid}"
                        self._last[study] = now

    @property
    def open_exams(self) -> int:
        """Exams waiting to be written."""
        with self._lock:
            return len(self._last)

    def _write(self, study: str) -> Path | None:
        """Write the study's exam, compared with its priors (waited for outside the lock:
        a bounded time)."""
        key = self._key(_read_lines(self.folder(study) / "members"))
        priors = None
        if self.priors is not None:
            priors = self._same_issuer(key, self.priors.wait(key)) if key is not None else []
        with self._lock:
            path = self._write_locked(study, key, priors)
        if path is not None and key is not None and priors is not None:
            self._compare_later(key, path)
        return path

    def _same_issuer(self, key: StudyKey, priors: list[PriorExam]) -> list[PriorExam]:
        """``priors`` without the node's own exams whose images give another Issuer of
        Patient ID than ``key``'s (the same id from another issuer: another patient; the
        exam documents do not keep the issuer, the received images do)."""
        from calcscope.exam.priors import same_issuer

        kept = []
        for prior in priors:
            members = _read_lines(self.folder(prior.exam_id) / "members")
            theirs = self._key(members) if members else None
            if theirs is None or same_issuer(theirs.issuer, key.issuer):
                kept.append(prior)
        return kept

    def _later_exam(self, key: StudyKey) -> tuple[str, str] | None:
        """(study, study date) of the node's earliest exam of ``key``'s patient taken after
        ``key``'s study, where that exam was not compared with it or a later prior."""
        if key.study_date is None or self.priors is None:
            return None
        later: list[tuple[str, str]] = []
        exams = self.out / "exams"
        for doc in self.priors.index.of_patient(key.patient_id):  # the woman's, read once
            if (
                doc.path.parent.parent == exams
                and doc.study_instance_uid not in (None, key.study_instance_uid)
                and doc.study_date is not None
                and doc.study_date > key.study_date
            ):
                later.append((doc.study_date, doc.exam_id))
                prior_date = doc.prior_study_date
                if prior_date is not None and prior_date >= key.study_date:
                    later[-1] = (doc.study_date, "")  # already compared with this or later
        if not later:
            return None
        date, study = min(later)
        return (study, date) if study else None

    def _compare_later(self, key: StudyKey, path: Path) -> None:
        """A prior that arrived after the exam it precedes: that exam (the earliest later
        one of the patient, one only: bounded work) is compared again and rewritten, with
        the priors it had and this one."""
        from calcscope.exam.priors import same_issuer
        from calcscope.reports.exam import prior_from_report

        found = self._later_exam(key)
        if found is None or self.priors is None:
            return
        study, _ = found
        later_key = self._key(_read_lines(self.folder(study) / "members"))
        if later_key is None or not same_issuer(later_key.issuer, key.issuer):
            return  # the same id from another issuer: another patient
        try:
            prior = prior_from_report(load_exam(path))
        except (ValueError, OSError):
            return
        priors = [*self._same_issuer(later_key, self.priors.wait(later_key)), prior]
        log.info(
            "exam of study %s: prior study %s arrived after it; compared again",
            study,
            key.study_instance_uid,
        )
        with self._lock:
            self._write_locked(study, later_key, priors, force=True)

    def _write_locked(
        self,
        study: str,
        key: StudyKey | None,
        priors: list[PriorExam] | None,
        *,
        force: bool = False,
    ) -> Path | None:
        """Write the study's exam (a new version when one exists); under the lock.
        ``force``: also when it was written with the same members (compared again)."""
        from calcscope.exam.build import build_exam
        from calcscope.exam.priors import compare_with_priors

        self._last.pop(study, None)
        folder = self.folder(study)
        members = _read_lines(folder / "members")
        if members == _read_lines(folder / "written") and not force:
            return None  # written meanwhile by another thread
        images, patient_id = [], None
        for uid in members:
            report = self._report(uid)
            if report is None:
                continue
            if self.anonymize:
                name = f"{report.source.sop_instance_uid}/analysis.json"
            else:
                name = os.path.relpath(results_folder(self.out, uid) / f"{STEM}.json", folder)
            images.append(exam_image_from_report(report, Path(name).as_posix()))
            if report.patient is not None:
                patient_id = patient_id or report.patient.id
        if not images:
            return None
        exam = build_exam(
            images,
            exam_id=study,
            name=EXAM_NAME,
            study_instance_uid=None if study.startswith("image-") else study,
            patient_id=patient_id,
            study_date=key.study_date if key is not None and priors is not None else None,
            issuer_of_patient_id=key.issuer if key is not None else None,
        )
        if priors is not None:
            (exam,) = compare_with_priors([exam], priors)
            if exam.comparison is not None and exam.comparison.prior_study_instance_uid:
                c = exam.comparison
                log.info(
                    "exam of study %s compared with study %s of %s (%s months earlier)",
                    study,
                    c.prior_study_instance_uid,
                    c.prior_study_date,
                    c.interval_months,
                )
        current = folder / f"{EXAM_NAME}{EXAM_SUFFIX}"
        if current.exists():
            n = len(list(folder.glob(f"{EXAM_NAME}.v*{EXAM_SUFFIX}"))) + 1
            os.replace(current, folder / f"{EXAM_NAME}.v{n}{EXAM_SUFFIX}")
        opts = ExamOutputOptions(
            sr=self.dicom_reports and not self.anonymize,
            letter=True,
            html=True,
            anonymize=self.anonymize,
            anonymize_seed=self._seed,  # the folder's, as the image reports'
            durable=True,
            stem=EXAM_NAME,
        )
        path = write_exam_outputs(exam, folder, opts)
        if self.priors is not None:
            self.priors.index.note(path)
        write_atomic(folder / "written", "\n".join(members) + "\n", durable=True)
        log.info("exam of study %s written: %d image(s), %s", study, len(images), path.name)
        return path
