"""The DICOM node's prior exams: found on its own disk or fetched from the PACS.

When a study's first image has been analysed, :class:`PriorFinder` starts looking for the
woman's earlier mammograms in the background, so that the search overlaps the analysis of
the study's other images:

1. the node's own exam documents (``OUT/exams/*/exam.exam.json`` and the priors it fetched
   before, ``OUT/priors/*/exam.exam.json``) of the same ``PatientID`` with an earlier
   ``StudyDate``;
2. with ``--prior-source AET@HOST:PORT``, the PACS: C-FIND at study level (Study Root) with
   ``PatientID`` (and ``IssuerOfPatientID`` when the image has one), ``ModalitiesInStudy``
   ``MG`` and a ``StudyDate`` before the current one; the latest earlier study, and the one
   before it when the two are less than two years apart (two years of stability can rest on
   it, :mod:`calcscope.exam.priors`), is taken from the node's own documents when it has
   them, else retrieved by C-GET (the node takes the C-STOREs of the C-GET as their SCP:
   the PACS need not know the node as a destination) into ``OUT/priors/<study>/images/``,
   analysed (``OUT/priors/<study>/results/<SOPInstanceUID>/analysis.json``, by the
   node's analysis process under its time limit) and written as an exam document
   (``OUT/priors/<study>/exam.exam.json``, compared with the study before it), so that it
   is reused next time. A PACS that does not offer C-GET gets a C-MOVE to the node's own
   AE title (the PACS must know it); the images then arrive as any other study, and the
   node waits for that study's exam.

When the exam is complete, :meth:`PriorFinder.wait` gives the priors found within
``timeout_s`` of the search's start. A failure (the PACS down or silent, nothing found,
a retrieval or analysis error) or the time limit never holds the exam back longer: it is
written without a comparison (``comparison`` all null) and the log says why.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calcscope.apps.node_worker import Analyze
from calcscope.config import Config
from calcscope.errors import CalcscopeError, ConfigError
from calcscope.exam.compare import PriorExam, months_between
from calcscope.files import write_atomic
from calcscope.imaging.tags import header_text

__all__ = [
    "ExamHeader",
    "ExamIndex",
    "PriorFinder",
    "PriorSource",
    "PriorStudy",
    "PriorsUnavailable",
    "StudyKey",
    "find_prior_studies",
    "retrieve_study",
]

log = logging.getLogger("calcscope.node")

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]")
EXAM_FILE = "exam.exam.json"
"""The name of an exam document in its study folder (``exams/<study>/``, ``priors/<study>/``)."""
STABLE_MONTHS = 24
"""A prior closer than this to the current exam brings the study before it as well."""


class PriorsUnavailable(CalcscopeError):
    """The prior exams could not be looked up or retrieved (PACS down, refused, timeout)."""


@dataclass(frozen=True)
class PriorSource:
    """The PACS asked for priors: ``AET@HOST:PORT`` (``--prior-source``)."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> PriorSource:
        """Parse ``AET@HOST:PORT`` (an IPv6 host in brackets: ``PACS@[::1]:4242``)."""
        aet, at, rest = text.partition("@")
        host, colon, port_text = rest.rpartition(":")
        example = "e.g. ORTHANC@127.0.0.1:4242"
        if not at or not colon or not aet or not host:
            raise ConfigError(f"--prior-source {text!r}: expected AET@HOST:PORT, {example}")
        if len(aet) > 16:
            raise ConfigError(f"--prior-source {text!r}: an AE title has at most 16 characters")
        port = int(port_text) if port_text.isdigit() else -1
        if not 0 < port < 65536:
            raise ConfigError(f"--prior-source {text!r}: the port must be a number in 1-65535")
        return cls(aet, host.strip("[]"), port)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class StudyKey:
    """What the search for a study's priors needs, read from one of its images' headers."""

    study_instance_uid: str
    patient_id: str
    issuer: str | None
    study_date: str | None  # DICOM YYYYMMDD

    @classmethod
    def from_file(cls, path: Path) -> StudyKey | None:
        """The key of the study of the DICOM file ``path``; ``None`` without a PatientID or
        a StudyInstanceUID (an unreadable file included)."""
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - unreadable: no priors, never an error
            return None
        patient = header_text(ds, "PatientID")
        study = header_text(ds, "StudyInstanceUID")
        if not patient or not study:
            return None
        issuer = header_text(ds, "IssuerOfPatientID") or None
        date = header_text(ds, "StudyDate") or None
        return cls(study, patient, issuer, date)


@dataclass(frozen=True)
class PriorStudy:
    """One earlier study the PACS holds."""

    study_instance_uid: str
    study_date: str | None


# --- DICOM query and retrieve --------------------------------------------------------------


def _ae(calling_ae_title: str, timeout_s: float) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    return ae


def _associate(ae: Any, source: PriorSource, **kw: Any) -> Any:
    assoc = ae.associate(source.host, source.port, ae_title=source.ae_title, **kw)
    if not assoc.is_established:
        raise PriorsUnavailable(f"no association with {source} (rejected, aborted or down)")
    return assoc


def find_prior_studies(
    source: PriorSource,
    key: StudyKey,
    *,
    calling_ae_title: str = "CALCSCOPE",
    timeout_s: float = 30.0,
) -> list[PriorStudy]:
    """The patient's mammography studies before ``key``'s, latest first (C-FIND, Study Root,
    study level); raises :class:`PriorsUnavailable`."""
    from pydicom import Dataset
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind as Find,
    )

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = key.patient_id
    if key.issuer:
        query.IssuerOfPatientID = key.issuer
    query.ModalitiesInStudy = "MG"
    query.StudyDate = f"-{key.study_date}" if key.study_date else ""
    query.StudyInstanceUID = ""
    ae = _ae(calling_ae_title, timeout_s)
    ae.add_requested_context(Find)
    assoc = _associate(ae, source)
    found: dict[str, PriorStudy] = {}
    try:
        for status, ident in assoc.send_c_find(query, Find):
            code = int(getattr(status, "Status", -1))
            if code in (0xFF00, 0xFF01) and ident is not None:
                uid = str(ident.get("StudyInstanceUID", "") or "")
                date = str(ident.get("StudyDate", "") or "") or None
                found[uid] = PriorStudy(uid, date)
            elif code != 0x0000:
                raise PriorsUnavailable(f"{source} answered the C-FIND with 0x{code:04X}")
    finally:
        assoc.release()
    earlier = [
        s
        for s in found.values()
        if s.study_instance_uid
        and s.study_instance_uid != key.study_instance_uid
        and (key.study_date is None or (s.study_date is not None and s.study_date < key.study_date))
    ]
    return sorted(earlier, key=lambda s: s.study_date or "", reverse=True)


def retrieve_study(
    source: PriorSource,
    study_instance_uid: str,
    dest: Path,
    *,
    calling_ae_title: str = "CALCSCOPE",
    timeout_s: float = 60.0,
    move_to: str | None = None,
) -> list[Path] | int:
    """The study's mammograms, by C-GET into ``dest`` (``<SOPInstanceUID>.dcm``; other
    objects of the study are refused); when the PACS offers no C-GET and ``move_to`` is
    given, a C-MOVE to that AE title instead, returning the number of objects the PACS
    sent there. Raises :class:`PriorsUnavailable`."""
    from pydicom import Dataset
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelGet as Get,
    )

    from calcscope.apps.node import ACCEPTED_SOP_CLASSES, TRANSFER_SYNTAXES, check_dataset

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_instance_uid
    dest.mkdir(parents=True, exist_ok=True)
    got: list[Path] = []

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        uid = str(event.request.AffectedSOPInstanceUID)
        if check_dataset(ds, str(event.request.AffectedSOPClassUID), uid) is not None:
            return 0xA900  # not a mammogram (an SR, a GSPS): not wanted
        path = dest / f"{re.sub(r'[^0-9.]', '_', uid)}.dcm"
        write_atomic(path, event.encoded_dataset(include_meta=True), durable=True)
        got.append(path)
        return 0x0000

    ae = _ae(calling_ae_title, timeout_s)
    ae.add_requested_context(Get)
    for cls in ACCEPTED_SOP_CLASSES:
        ae.add_requested_context(cls, list(TRANSFER_SYNTAXES))
    roles = [build_role(cls, scp_role=True) for cls in ACCEPTED_SOP_CLASSES]
    handlers = [(evt.EVT_C_STORE, on_store)]
    assoc = ae.associate(
        source.host, source.port, ae_title=source.ae_title, ext_neg=roles, evt_handlers=handlers
    )
    offered = assoc.is_established and any(
        c.abstract_syntax == Get for c in assoc.accepted_contexts
    )
    if not offered:  # refused (no context accepted), down, or no C-GET among the accepted
        if assoc.is_established:
            assoc.release()
        if move_to is None:
            raise PriorsUnavailable(f"{source} offers no C-GET (or is down)")
        return _move(source, query, move_to, calling_ae_title, timeout_s)
    try:
        for status, _ in assoc.send_c_get(query, Get):
            code = int(getattr(status, "Status", -1))
            if code not in (0x0000, 0xFF00, 0xB000):  # B000: some sub-operations refused
                raise PriorsUnavailable(f"{source} answered the C-GET with 0x{code:04X}")
    finally:
        assoc.release()
    return got


def _move(source: PriorSource, query: Any, move_to: str, calling: str, timeout_s: float) -> int:
    """C-MOVE the study to ``move_to``; the number of objects sent."""
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove as Move,
    )

    ae = _ae(calling, timeout_s)
    ae.add_requested_context(Move)
    assoc = _associate(ae, source)
    sent = 0
    try:
        for status, _ in assoc.send_c_move(query, move_to, Move):
            code = int(getattr(status, "Status", -1))
            if code not in (0x0000, 0xFF00, 0xB000):
                raise PriorsUnavailable(f"{source} answered the C-MOVE with 0x{code:04X}")
            sent = int(status.get("NumberOfCompletedSuboperations", sent) or sent)
    finally:
        assoc.release()
    return sent


# --- the node's search --------------------------------------------------------------------


def _folder_name(study: str) -> str:
    name = _UNSAFE.sub("_", study)[:120].strip(".")
    return name or "unknown"


@dataclass
class _Search:
    key: StudyKey
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    priors: list[PriorExam] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class ExamHeader:
    """What a search for priors reads of an exam document before the document itself."""

    path: Path
    exam_id: str
    study_instance_uid: str | None
    patient_id: str | None
    study_date: str | None  # YYYYMMDD
    prior_study_date: str | None  # the study it was compared with


class ExamIndex:
    """The headers of the node's exam documents by patient, each document read once per
    version.

    A version is known by its file's inode, size and modification time (the documents are
    replaced atomically, so a new version is a new inode). The documents under ``roots``
    (``*/exam.exam.json``) are listed once, at the first :meth:`of_patient`; the node
    tells the index of each document it writes afterwards (:meth:`note`). A search for
    priors then reads only the documents of the woman, not every exam the node ever wrote
    (a node that sees a study a minute writes half a million exams a year). Thread-safe.
    """

    def __init__(self, roots: Sequence[Path] = ()) -> None:
        self.roots = tuple(roots)
        self._seen: dict[Path, tuple[tuple[int, int, int], ExamHeader | None]] = {}
        self._by_patient: dict[str | None, set[Path]] = {}
        self._listed = False
        self._lock = threading.RLock()

    def headers(self, paths: Iterable[Path]) -> list[ExamHeader]:
        """The headers of the readable documents among ``paths``, in their order."""
        found = []
        for path in paths:
            header = self._refresh(path)
            if header is not None:
                found.append(header)
        return found

    def note(self, path: Path) -> None:
        """Take in the document at ``path`` (just written by the node)."""
        self._refresh(path)

    def of_patient(self, patient_id: str | None) -> list[ExamHeader]:
        """The headers of the documents under ``roots`` of ``patient_id``, in the order of
        the roots, then of their paths."""
        with self._lock:
            if not self._listed:
                self._listed = True
                for root in self.roots:
                    self.headers(sorted(root.glob(f"*/{EXAM_FILE}")))
            paths = sorted(self._by_patient.get(patient_id, ()), key=self._order)
        return [h for h in self.headers(paths) if h.patient_id == patient_id]

    def _order(self, path: Path) -> tuple[int, Path]:
        root = path.parent.parent
        return (self.roots.index(root) if root in self.roots else len(self.roots), path)

    def _refresh(self, path: Path) -> ExamHeader | None:
        """The header of ``path``'s current version (read when new), the index updated."""
        try:
            st = path.stat()
        except OSError:
            st = None
        with self._lock:
            seen = self._seen.get(path)
            stamp = None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns)
            if seen is not None and seen[0] == stamp:
                return seen[1]
            if seen is not None and seen[1] is not None:
                self._by_patient.get(seen[1].patient_id, set()).discard(path)
            if stamp is None:
                self._seen.pop(path, None)
                return None
            header = _read_header(path)
            self._seen[path] = (stamp, header)
            if header is not None:
                self._by_patient.setdefault(header.patient_id, set()).add(path)
            return header


def _read_header(path: Path) -> ExamHeader | None:
    prior = _read_prior(path)
    if prior is None:
        return None
    return ExamHeader(
        path=path,
        exam_id=prior.exam_id,
        study_instance_uid=prior.study_instance_uid,
        patient_id=prior.patient_id,
        study_date=prior.study_date,
        prior_study_date=prior.prior_study_date,
    )


def _earlier(p: ExamHeader | PriorExam, key: StudyKey) -> bool:
    """Whether ``p`` is an exam of ``key``'s patient taken before ``key``'s study."""
    return (
        p.patient_id == key.patient_id
        and p.study_instance_uid != key.study_instance_uid
        and p.study_date is not None
        and key.study_date is not None
        and p.study_date < key.study_date
    )


@dataclass
class PriorFinder:
    """The node's background search for each study's priors (see the module docstring).

    Parameters
    ----------
    out
        The node's folder (``exams/``, and ``priors/`` for what it fetched).
    source
        The PACS to ask; ``None``: the node's own documents only.
    ae_title
        The node's AE title: the calling AE title of the queries, and the C-MOVE
        destination when the PACS offers no C-GET.
    timeout_s
        How long after the search's start the exam waits for its priors, in seconds.
    config, processes, analysis_timeout_s, analyze
        How a retrieved image is analysed: as the node's own images
        (:class:`~calcscope.apps.node_worker.AnalysisWorker`).
    """

    out: Path
    source: PriorSource | None = None
    ae_title: str = "CALCSCOPE"
    timeout_s: float = 120.0
    config: Config = field(default_factory=Config)
    processes: bool = True
    analysis_timeout_s: float | None = None
    analyze: Analyze | None = None
    _searches: dict[str, _Search] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fetching: threading.Lock = field(default_factory=threading.Lock)
    index: ExamIndex = field(init=False)
    """The headers of the node's exam documents and its priors' (shared with the exam
    assembler, which notes each exam it writes)."""

    def __post_init__(self) -> None:
        self.index = ExamIndex((self.out / "exams", self.out / "priors"))
        if self.timeout_s <= 0:
            raise ConfigError(f"prior timeout {self.timeout_s} s: must be positive")

    def start(self, key: StudyKey) -> None:
        """Start searching the priors of ``key``'s study (once per study)."""
        with self._lock:
            if key.study_instance_uid in self._searches:
                return
            search = _Search(key, time.monotonic())
            self._searches[key.study_instance_uid] = search
        name = f"calcscope-priors-{len(self._searches)}"
        threading.Thread(target=self._run, args=(search,), name=name, daemon=True).start()

    def wait(self, key: StudyKey) -> list[PriorExam]:
        """The priors of ``key``'s study, waiting at most until ``timeout_s`` after the
        search started; when the PACS failed or ran over, the node's own priors only (and a
        log line), often none."""
        self.start(key)
        with self._lock:
            search = self._searches[key.study_instance_uid]
        left = search.started + self.timeout_s - time.monotonic()
        if not search.done.wait(max(0.0, left)):
            log.warning(
                "exam of study %s: the search for priors took over %g s; %s",
                key.study_instance_uid,
                self.timeout_s,
                "the node's own priors only" if search.priors else "no comparison",
            )
            return list(search.priors)
        with self._lock:  # a later image's exam version searches again
            self._searches.pop(key.study_instance_uid, None)
        if search.error is not None:
            log.warning(
                "exam of study %s: priors from %s unavailable (%s); %s",
                key.study_instance_uid,
                self.source,
                search.error,
                "the node's own priors only" if search.priors else "no comparison",
            )
        return search.priors

    def _run(self, search: _Search) -> None:
        try:
            search.priors = self._local(search.key)  # kept should the PACS fail
            search.priors = search.priors + self._fetch(
                search.key, search.started + self.timeout_s, search.priors
            )
        except Exception as exc:  # noqa: BLE001 - any failure: the exam goes without priors
            search.error = f"{type(exc).__name__}: {exc}"
        finally:
            search.done.set()

    # the documents the node has
    def _document(self, study: str) -> PriorExam | None:
        for sub in ("exams", "priors"):
            prior = _read_prior(self.out / sub / _folder_name(study) / "exam.exam.json")
            if prior is not None:
                return prior
        return None

    def _local(self, key: StudyKey) -> list[PriorExam]:
        headers = [h for h in self.index.of_patient(key.patient_id) if _earlier(h, key)]
        priors = [_read_prior(h.path) for h in headers]
        return [p for p in priors if p is not None and _earlier(p, key)]

    def _fetch(self, key: StudyKey, deadline: float, local: list[PriorExam]) -> list[PriorExam]:
        """The priors from the PACS that ``local`` lacks."""
        if self.source is None:
            return []
        left = max(1.0, deadline - time.monotonic())
        studies = find_prior_studies(
            self.source, key, calling_ae_title=self.ae_title, timeout_s=left
        )
        if not studies:
            log.info(
                "the PACS %s holds no earlier mammography of study %s's patient",
                self.source,
                key.study_instance_uid,
            )
            return []
        chain = studies[:1]
        interval = months_between(studies[0].study_date, key.study_date)
        if len(studies) > 1 and (interval is None or interval < STABLE_MONTHS):
            chain.append(studies[1])
        with self._fetching:  # one retrieval at a time
            older: PriorExam | None = None
            for study in reversed(chain):
                older = self._prior(study, key, older, deadline)
        known = {p.study_instance_uid for p in local}
        return [] if older is None or older.study_instance_uid in known else [older]

    def _prior(
        self, study: PriorStudy, key: StudyKey, older: PriorExam | None, deadline: float
    ) -> PriorExam | None:
        """The prior exam of ``study``: the node's own document, else retrieved and
        analysed (compared with ``older``); ``None`` when its images did not come."""
        uid = study.study_instance_uid
        prior = self._document(uid)
        if prior is not None:
            log.info("prior study %s: the node's own exam document is reused", uid)
            return prior
        folder = self.out / "priors" / _folder_name(uid)
        left = max(1.0, deadline - time.monotonic())
        files = retrieve_study(
            self.source,  # type: ignore[arg-type]
            uid,
            folder / "images",
            calling_ae_title=self.ae_title,
            timeout_s=left,
            move_to=self.ae_title,
        )
        if isinstance(files, int):  # C-MOVE to the node itself: analysed as any image
            log.info("%s sent %d image(s) of prior study %s by C-MOVE", self.source, files, uid)
            reports = self._await_moved(uid, files, deadline)
        else:
            log.info("retrieved %d image(s) of prior study %s by C-GET", len(files), uid)
            self._analyze_images(files, folder / "results")
            reports = sorted((folder / "results").glob("*/analysis.json"))
        if not reports:
            raise PriorsUnavailable(f"no mammogram of prior study {uid} was analysed")
        prior = _write_prior_exam(folder, reports, study, key, older)
        self.index.note(folder / EXAM_FILE)
        return prior

    def _analyze_images(self, files: Sequence[Path], results: Path) -> None:
        """Analyse retrieved images, each into ``results/<file stem>/analysis.json``
        (failures are logged and left out)."""
        from calcscope.apps.node_worker import STEM, AnalysisJob, AnalysisWorker

        worker = AnalysisWorker(processes=self.processes, timeout_s=self.analysis_timeout_s)
        try:
            for f in files:
                if (results / f.stem / f"{STEM}.json").exists():
                    continue
                tmp = results / f".tmp-{f.stem}"
                tmp.mkdir(parents=True, exist_ok=True)
                job = AnalysisJob(str(f), str(tmp), self.config, False, str(f), self.analyze)
                outcome = worker.run(job)
                if outcome.ok:
                    shutil.rmtree(results / f.stem, ignore_errors=True)
                    os.replace(tmp, results / f.stem)
                else:
                    shutil.rmtree(tmp, ignore_errors=True)
                    log.warning("prior image %s not analysed: %s", f.name, outcome.message)
        finally:
            worker.close()

    def _await_moved(self, study: str, n: int, deadline: float) -> list[Path]:
        """The node's reports of the ``n`` images of ``study`` it was sent by C-MOVE, once
        analysed (those of the study's ``members``, :mod:`calcscope.apps.node_exams`)."""
        members = self.out / "exams" / _folder_name(study) / "members"
        while True:
            try:
                uids = members.read_text(encoding="utf-8").split()
            except OSError:
                uids = []
            if len(uids) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        reports = [self.out / "results" / u / "analysis.json" for u in uids]
        reports = [r for r in reports if r.exists()]
        if len(reports) < n:
            raise PriorsUnavailable(f"the images of study {study} sent by C-MOVE came too late")
        return reports


def _read_prior(path: Path) -> PriorExam | None:
    from pydantic import ValidationError

    from calcscope.reports.exam import load_exam, prior_from_report

    try:
        return prior_from_report(load_exam(path))
    except (OSError, ValueError, ValidationError):
        return None


def _write_prior_exam(
    folder: Path,
    reports: Sequence[Path],
    study: PriorStudy,
    key: StudyKey,
    older: PriorExam | None,
) -> PriorExam:
    """Build the exam of a retrieved study from its images' ``reports``, compare it with
    ``older`` and write it into ``folder``."""
    from calcscope.exam.build import build_exam
    from calcscope.exam.priors import compare_with_priors
    from calcscope.reports.exam import exam_image_from_report, write_exam
    from calcscope.reports.schema import load_report

    images = []
    folder.mkdir(parents=True, exist_ok=True)
    for report_path in reports:
        try:
            report = load_report(report_path)
        except (CalcscopeError, OSError):
            continue
        rel = os.path.relpath(report_path, folder)
        images.append(exam_image_from_report(report, Path(rel).as_posix()))
    if not images:
        raise PriorsUnavailable(f"no image of prior study {study.study_instance_uid} analysed")
    exam = build_exam(
        images,
        exam_id=study.study_instance_uid,
        name="exam",
        study_instance_uid=study.study_instance_uid,
        patient_id=key.patient_id,
        study_date=study.study_date,
    )
    (exam,) = compare_with_priors([exam], [older] if older is not None else [])
    path = write_exam(exam, folder, durable=True)
    prior = _read_prior(path)
    if prior is None:
        raise PriorsUnavailable(f"{path}: the prior's exam document cannot be read back")
    return prior
