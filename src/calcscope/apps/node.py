"""DICOM node: a Storage SCP that analyses every received mammogram exactly once.

The node (``calcscope node``) stands beside a PACS. Modalities or the PACS send it
mammograms by C-STORE; it answers C-ECHO; each image is analysed by
:func:`calcscope.pipeline.analyze`, and the JSON report, the Mammography CAD SR and the
presentation state (GSPS) are written by :func:`calcscope.reports.writer.write_outputs`
and, with ``forward``, sent back to a PACS by C-STORE.

Accepted SOP classes: Digital Mammography X-Ray Image Storage For Presentation and For
Processing, and Secondary Capture Image Storage whose Modality is ``MG``; transfer
syntaxes: implicit and explicit VR little endian, deflated, JPEG 2000, JPEG-LS, RLE and
JPEG (lossless and baseline).

Who may connect
---------------
The node listens on ``127.0.0.1`` unless another ``host`` is given; it refuses an
association whose called AE title is not its own, and, with ``allow``, one whose calling
AE title is not listed. With :class:`~calcscope.apps.tls.TLSFiles` it speaks DICOM over
TLS only (and, with a CA file, requires a client certificate signed by it).

Durability and exactly-once
---------------------------
The received file is the unit of work, and the disk is the queue::

    OUT/node.log                      the log
    OUT/incoming/<SOPInstanceUID>.dcm received, not yet analysed
    OUT/results/<SOPInstanceUID>/     analysis.json, .sr.dcm, .gsps.dcm (the writer's
                                      <stem><suffix>) or error.json; de-identified UID
                                      with --anonymize
    OUT/done/<SOPInstanceUID>         commit marker (one line of JSON)
    OUT/received/<SOPInstanceUID>.dcm analysed images
    OUT/failed/<SOPInstanceUID>.dcm   images whose analysis failed
    OUT/exams/<study>/exam.exam.json  the study's exam and its SR, exam.sr.dcm (sent to the
                                      PACS with ``forward``; :mod:`calcscope.apps.node_exams`)

1. The C-STORE handler checks the data set (a mammogram, pixel data present and complete),
   writes it through a temporary file, ``fsync`` and ``os.replace`` to ``incoming/``, and
   only then answers success: a crash after the answer loses nothing.
2. The path goes on a bounded :class:`queue.Queue`. When the queue stays full for
   ``put_timeout_s`` (the sender is slowed down meanwhile), the file is dropped and the
   sender gets ``0xA700`` (out of resources) and may retry.
3. Worker threads, apart from the association threads, take the images one by one and
   analyse each in their own worker process (:mod:`calcscope.apps.node_worker`), under a
   time limit when one is set. The results go to a temporary folder renamed to
   ``results/<uid>``; the ``done`` marker is the commit; then the image moves to
   ``received/``. An image with a marker is never analysed again.
4. On start, the node deletes half-received temporary files and half-written result
   folders, and queues every file left in ``incoming/`` and every unforwarded result.

Failure statuses: ``0xA900`` not a mammogram or UID mismatch, ``0xC000`` undecodable or
truncated data set, ``0x0117`` invalid SOP Instance UID, ``0xA700`` out of resources. An
image that passes but cannot be analysed (an error, a decoder panic, a worker that died or
ran over the time limit) is recorded in ``results/<uid>/error.json``; the node goes on.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydicom import uid as dicom_uid

from calcscope.about import DISCLAIMER
from calcscope.apps.node_exams import ExamAssembler
from calcscope.apps.node_priors import PriorFinder, PriorSource
from calcscope.apps.node_worker import (
    STEM,
    AnalysisJob,
    AnalysisWorker,
    Analyze,
    NodeStats,
    results_folder,
)
from calcscope.apps.send import SUCCESS, Forward, ForwardError, send_files
from calcscope.apps.tls import TLSFiles
from calcscope.config import Config
from calcscope.errors import ConfigError, one_line
from calcscope.files import fsync_dir, write_atomic
from calcscope.reports.writer import folder_seed, output_paths

__all__ = [
    "ACCEPTED_SOP_CLASSES",
    "REPORT_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "Forward",
    "ForwardError",
    "NodeStats",
    "PriorSource",
    "StorageNode",
    "TLSFiles",
    "analysed_counts",
    "check_dataset",
    "run_node",
    "send_files",
]

ACCEPTED_SOP_CLASSES: tuple[str, ...] = (
    dicom_uid.DigitalMammographyXRayImageStorageForPresentation,
    dicom_uid.DigitalMammographyXRayImageStorageForProcessing,
    dicom_uid.SecondaryCaptureImageStorage,
)

MAMMOGRAPHY_CAD_SR: str = dicom_uid.MammographyCADSRStorage
REPORT_SOP_CLASSES: tuple[str, ...] = (
    MAMMOGRAPHY_CAD_SR,
    dicom_uid.ComprehensiveSRStorage,
    dicom_uid.GrayscaleSoftcopyPresentationStateStorage,
    dicom_uid.SegmentationStorage,
)

TRANSFER_SYNTAXES: tuple[str, ...] = (
    dicom_uid.ExplicitVRLittleEndian,
    dicom_uid.ImplicitVRLittleEndian,
    dicom_uid.DeflatedExplicitVRLittleEndian,
    dicom_uid.JPEG2000Lossless,
    dicom_uid.JPEG2000,
    dicom_uid.JPEGLSLossless,
    dicom_uid.JPEGLSNearLossless,
    dicom_uid.RLELossless,
    dicom_uid.JPEGLosslessSV1,
    dicom_uid.JPEGLossless,
    dicom_uid.JPEGBaseline8Bit,
    dicom_uid.JPEGExtended12Bit,
)
_NATIVE = {
    dicom_uid.ExplicitVRLittleEndian,
    dicom_uid.ImplicitVRLittleEndian,
    dicom_uid.DeflatedExplicitVRLittleEndian,
}

OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
INVALID_SOP_INSTANCE = 0x0117

_UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
_TMP = ".tmp-"
log = logging.getLogger("calcscope.node")


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1) + "\n").encode("utf-8")


# --- checks on received data sets ------------------------------------------------------------


def check_dataset(ds: Any, sop_class: str, sop_instance: str) -> tuple[int, str] | None:
    """Why a received data set is refused, as ``(status, reason)``; ``None`` when accepted.

    Cheap structural checks only (the pixels are decoded by the analysis): SOP class and
    instance as announced, a mammogram (Modality ``MG``; Secondary Capture only with
    ``MG``), one frame, pixel data present and, for native transfer syntaxes, complete.
    """
    ds_class = str(ds.get("SOPClassUID", "") or "")
    ds_uid = str(ds.get("SOPInstanceUID", "") or "")
    if ds_class and ds_class != sop_class:
        return DATASET_MISMATCH, f"SOP Class UID {ds_class} differs from the request's {sop_class}"
    if ds_uid != sop_instance:
        return DATASET_MISMATCH, f"SOP Instance UID {ds_uid!r} differs from the request's"
    if sop_class not in ACCEPTED_SOP_CLASSES:
        return DATASET_MISMATCH, f"SOP class {sop_class} is not a mammography image class"
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality != "MG":
        what = f"modality {modality}" if modality else "no modality"
        return DATASET_MISMATCH, f"not a mammogram: {what} (Modality MG is required)"
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    if frames > 1:
        return DATASET_MISMATCH, f"multi-frame image ({frames} frames); one 2-D view is expected"
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if "PixelData" not in ds or rows <= 0 or cols <= 0:
        return CANNOT_UNDERSTAND, "no pixel data or no image size"
    pixel_data = ds.PixelData
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts in _NATIVE or not ts:
        bits = int(ds.get("BitsAllocated", 16) or 16)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        expected = rows * cols * spp * ((bits + 7) // 8) if bits >= 8 else 0
        if len(pixel_data) < expected:
            return CANNOT_UNDERSTAND, (
                f"truncated pixel data: {len(pixel_data)} bytes for {rows} x {cols} x {bits} bit"
            )
    else:
        from pydicom.encaps import generate_frames

        try:
            frame = next(generate_frames(pixel_data, number_of_frames=1))
        except Exception as exc:  # noqa: BLE001 - any parse failure is "cannot understand"
            return CANNOT_UNDERSTAND, f"unreadable encapsulated pixel data: {exc}"
        if len(frame) == 0:
            return CANNOT_UNDERSTAND, "empty compressed frame"
    return None


# --- the node -----------------------------------------------------------------------------------


class StorageNode:
    """The Storage SCP with its analysis workers (see the module docstring).

    Parameters
    ----------
    ae_title
        This node's AE title (at most 16 characters).
    port
        TCP port to listen on; 0 picks a free one (read :attr:`port` after :meth:`start`).
    out_dir
        The node's folder (incoming, results, done markers, log).
    forward
        PACS to send the SR and GSPS to, or ``None``.
    workers
        Analysis threads.
    queue_size
        Bound of the in-memory queue of received images waiting for a worker.
    config
        Analysis configuration; default :class:`~calcscope.config.Config`.
    host
        Address to listen on: ``127.0.0.1`` (this machine only) by default, ``""`` or
        ``0.0.0.0`` for every interface.
    dicom_reports
        Write (and forward) the SR and GSPS; ``False`` writes the JSON only.
    put_timeout_s
        How long a C-STORE waits for room in the queue before answering ``0xA700``.
    max_associations
        Concurrent associations accepted.
    forward_retries
        Attempts to send one result before leaving it for the next start.
    processes
        Analyse each image in a spawned process of its worker (apart from the association
        threads and their interpreter lock, and from crashes of the decoders); ``False``
        analyses in the worker threads.
    allow
        Calling AE titles accepted; empty: any. The called AE title must always be
        ``ae_title``.
    tls
        Speak DICOM over TLS with these files; ``None``: plain TCP.
    timeout_s
        Time limit of one image's analysis, in seconds, after which its process is killed
        and the image recorded as failed; ``None``: none (only with ``processes``).
    analyze
        The analysis of one file, ``(path, config) -> Analysis``; ``None`` is
        :func:`calcscope.pipeline.analyze`. With ``processes`` it must be a module-level
        function (it is pickled).
    anonymize
        De-identify every output (``results/<uid>/``: the JSON, SR and GSPS, the forwarded
        SR and GSPS included; ``error.json``) by DICOM PS3.15's Basic Profile
        (:mod:`calcscope.reports.dicom_source`) under the seed kept in
        ``OUT/.calcscope-anonymize-seed`` (:func:`calcscope.reports.writer.folder_seed`),
        so that a restarted node maps the same UIDs to the same pseudonyms. The node's own
        state (the received images, the folder names, the markers and the log) stays keyed
        by the received SOP Instance UID.
    exam_idle_s, exam_views
        A study's exam is written when no image of it arrived for ``exam_idle_s`` seconds
        or when ``exam_views`` images of it arrived; a late image writes a new version
        (:class:`~calcscope.apps.node_exams.ExamAssembler`).
    prior_source, prior_timeout_s
        Compare each exam with the woman's prior exam: the node's own earlier exams, and,
        with ``prior_source`` (``AET@HOST:PORT``), the PACS's (C-FIND, C-GET or C-MOVE;
        :mod:`calcscope.apps.node_priors`), waited for at most ``prior_timeout_s`` seconds
        after the study's first image; not with ``anonymize``.
    """

    def __init__(
        self,
        ae_title: str,
        port: int,
        out_dir: str | Path,
        *,
        forward: Forward | str | None = None,
        workers: int = 1,
        queue_size: int = 64,
        config: Config | None = None,
        host: str = "127.0.0.1",
        dicom_reports: bool = True,
        put_timeout_s: float = 30.0,
        max_associations: int = 64,
        forward_retries: int = 3,
        processes: bool = True,
        allow: Sequence[str] = (),
        tls: TLSFiles | None = None,
        timeout_s: float | None = None,
        analyze: Analyze | None = None,
        anonymize: bool = False,
        exam_idle_s: float = 60.0,
        exam_views: int = 4,
        prior_source: PriorSource | str | None = None,
        prior_timeout_s: float = 120.0,
    ) -> None:
        if exam_idle_s <= 0 or exam_views < 1:
            raise ConfigError("exam idle time must be positive and exam views at least 1")
        if not ae_title or len(ae_title) > 16:
            raise ConfigError(f"AE title {ae_title!r}: 1-16 characters")
        if workers < 1 or queue_size < 1:
            raise ConfigError("workers and queue_size must be at least 1")
        if any(not a or len(a) > 16 for a in allow):
            raise ConfigError(f"allowed AE titles {list(allow)!r}: 1-16 characters each")
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigError(f"time limit {timeout_s} s: must be positive")
        self.ae_title = ae_title
        self.requested_port = port
        self.host = host
        self.out = Path(out_dir)
        self.forward = Forward.parse(forward) if isinstance(forward, str) else forward
        self.n_workers = workers
        self.config = config or Config()
        self.dicom_reports = dicom_reports
        self.put_timeout_s = put_timeout_s
        self.max_associations = max_associations
        self.forward_retries = forward_retries
        self.processes = processes
        self.allow = tuple(allow)
        self.tls = tls
        self.timeout_s = timeout_s
        self.analyze = analyze
        self._ssl_context = tls.server_context() if tls is not None else None
        self.stats = NodeStats()
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=queue_size)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._busy = 0
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._log_handler: logging.Handler | None = None
        for sub in ("incoming", "results", "done", "received", "failed"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.anonymize_seed = folder_seed(self.out) if anonymize else None
        if isinstance(prior_source, str):
            prior_source = PriorSource.parse(prior_source)
        if anonymize and prior_source is not None:
            raise ConfigError("--prior-source needs the patient's identity: not with --anonymize")
        self.priors = None if anonymize else PriorFinder(
            self.out, prior_source, ae_title, prior_timeout_s, self.config, processes,
            timeout_s, analyze,
        )  # fmt: skip
        self.exams = ExamAssembler(
            self.out, exam_idle_s, exam_views, anonymize, dicom_reports, self.priors
        )

    # paths
    def _incoming(self, uid: str) -> Path:
        return self.out / "incoming" / f"{uid}.dcm"

    def _done(self, uid: str) -> Path:
        return self.out / "done" / uid

    def _results(self, uid: str) -> Path:
        return results_folder(self.out, uid, self.anonymize_seed)

    @property
    def address(self) -> tuple[str, int]:
        """The address and port listened on (the chosen port when started with port 0)."""
        if self._server is None:
            return self.host, self.requested_port
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when started with port 0)."""
        return self.address[1]

    # lifecycle
    def start(self) -> StorageNode:
        """Recover leftovers, start the workers and the SCP (non-blocking)."""
        from pynetdicom import evt

        self._attach_log()
        log.info(
            "starting node %s on %s port %s%s, output %s, forward %s, %d worker(s), queue %d. %s",
            self.ae_title,
            self.host or "every interface",
            self.requested_port,
            " (TLS)" if self.tls is not None else "",
            self.out,
            self.forward or "none",
            self.n_workers,
            self._queue.maxsize,
            DISCLAIMER,
        )
        leftovers = self._recover()
        self.exams.recover()
        tick = min(1.0, self.exams.idle_s / 4)
        t = threading.Thread(target=self._poll_exams, args=(tick,), name="calcscope-exams")
        t.daemon = True
        t.start()
        self._threads.append(t)
        for i in range(self.n_workers):
            t = threading.Thread(target=self._work, name=f"calcscope-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if leftovers:
            feeder = threading.Thread(
                target=self._feed, args=(leftovers,), name="calcscope-recover", daemon=True
            )
            feeder.start()
            self._threads.append(feeder)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)]
        try:
            self._server = self._application_entity().start_server(
                (self.host, self.requested_port),
                block=False,
                evt_handlers=handlers,
                ssl_context=self._ssl_context,
            )
        except BaseException:
            log.error("cannot listen on %s port %s", self.host, self.requested_port)
            self.stop()
            raise
        log.info("listening on %s port %d", *self.address)
        return self

    def _application_entity(self) -> Any:
        """The pynetdicom AE: its contexts, timeouts and who may associate."""
        # (ignore: pynetdicom makes its SOP classes at import time, unseen by mypy)
        from pynetdicom import AE
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        ae = AE(ae_title=self.ae_title)
        ae.maximum_associations = self.max_associations
        ae.network_timeout = 60
        ae.dimse_timeout = max(60.0, self.put_timeout_s + 30)
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.allow)
        for cls in ACCEPTED_SOP_CLASSES:
            ae.add_supported_context(cls, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(Verification)
        return ae

    def stop(self, *, drain: bool = False, timeout_s: float | None = None) -> None:
        """Stop accepting, let each worker finish its current image, and return.

        Images still queued stay in ``incoming/`` and are analysed at the next start;
        ``drain`` waits for the queue to empty first.
        """
        if self._server is not None:
            self._server.shutdown()
        if drain:
            self.wait_idle(timeout_s)
        self._stop.set()
        self.exams.due.set()  # the exam thread need not wait for its tick
        for t in self._threads:
            t.join(timeout_s)
        log.info("node stopped: %s", self.stats)
        self._detach_log()

    def serve_until(self, stop: threading.Event) -> None:
        """Serve (once started) until ``stop`` is set or Ctrl-C, then :meth:`stop`."""
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> StorageNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is queued or being analysed; ``False`` on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            with self._lock:
                idle = not self._pending and self._busy == 0
            if idle and self._queue.unfinished_tasks == 0:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _attach_log(self) -> None:
        handler = logging.FileHandler(self.out / "node.log", encoding="utf-8")
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
        )
        handler.setLevel(logging.INFO)
        log.addHandler(handler)
        logging.getLogger("pynetdicom").addHandler(handler)
        if log.level == logging.NOTSET or log.level > logging.INFO:
            log.setLevel(logging.INFO)
        self._log_handler = handler

    def _detach_log(self) -> None:
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            logging.getLogger("pynetdicom").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def _recover(self) -> list[tuple[str, str]]:
        """Clean half-written files; list the received-but-unanalysed and unforwarded."""
        for tmp in (self.out / "incoming").glob(f"{_TMP}*"):
            tmp.unlink(missing_ok=True)
        for sub in ("results", "done"):
            for tmp in (self.out / sub).glob(f"{_TMP}*"):
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        files = sorted((self.out / "incoming").glob("*.dcm"), key=lambda p: p.stat().st_mtime)
        jobs = [("analyse", p.stem) for p in files]
        if self.forward is not None:
            for u in sorted(m.name for m in (self.out / "done").iterdir()):  # tmp ones gone
                if (self._results(u) / "forward_pending").exists():
                    jobs.append(("forward", u))
        with self._lock:
            self._pending.update(uid for kind, uid in jobs if kind == "analyse")
        if jobs:
            self.stats.add("recovered", len(jobs))
            n = sum(k == "analyse" for k, _ in jobs)
            msg = "recovering %d image(s) and %d unsent result(s) from the last run"
            log.info(msg, n, len(jobs) - n)
        return jobs

    def _feed(self, jobs: Iterable[tuple[str, str]]) -> None:
        for job in jobs:
            while not self._stop.is_set():
                try:
                    self._queue.put(job, timeout=0.2)
                    break
                except queue.Full:
                    continue

    # DICOM handlers (association threads)
    def _on_echo(self, event: Any) -> int:
        log.info("C-ECHO from %s", event.assoc.requestor.ae_title)
        return SUCCESS

    def _on_store(self, event: Any) -> int:
        req = event.request
        sop_class = str(req.AffectedSOPClassUID)
        uid = str(req.AffectedSOPInstanceUID)
        sender = f"{event.assoc.requestor.ae_title}@{event.assoc.requestor.address}"
        if self._stop.is_set():
            self.stats.add("busy")
            return OUT_OF_RESOURCES
        if len(uid) > 64 or not _UID_RE.fullmatch(uid):
            self.stats.add("rejected")
            log.warning("refused from %s: invalid SOP Instance UID %r", sender, uid)
            return INVALID_SOP_INSTANCE
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            problem = check_dataset(ds, sop_class, uid)
        except Exception as exc:  # noqa: BLE001 - a corrupt data set must not take the node down
            problem = CANNOT_UNDERSTAND, one_line(f"corrupt data set: {type(exc).__name__}: {exc}")
        if problem is not None:
            self.stats.add("rejected")
            log.warning("refused %s from %s (0x%04X): %s", uid, sender, problem[0], problem[1])
            return problem[0]
        if self._done(uid).exists():
            self.stats.add("duplicates")
            log.info("%s from %s was already analysed; not again", uid, sender)
            return SUCCESS
        try:
            raw = event.encoded_dataset(include_meta=True)
            write_atomic(self._incoming(uid), raw, durable=True)
        except OSError as exc:
            self.stats.add("busy")
            log.error("cannot store %s from %s: %s", uid, sender, exc)
            return OUT_OF_RESOURCES
        with self._lock:
            queued = uid in self._pending
            self._pending.add(uid)
        if queued:
            self.stats.add("duplicates")
            log.info("%s from %s is already waiting for analysis; file replaced", uid, sender)
            return SUCCESS
        try:
            self._queue.put(("analyse", uid), timeout=self.put_timeout_s)
        except queue.Full:
            with self._lock:
                self._pending.discard(uid)
            self._incoming(uid).unlink(missing_ok=True)
            self.stats.add("busy")
            wait_s = self.put_timeout_s
            log.warning("queue full for %.0f s: refused %s from %s (0xA700)", wait_s, uid, sender)
            return OUT_OF_RESOURCES
        self.stats.add("received")
        log.info("received %s from %s", uid, sender)
        return SUCCESS

    # workers
    def _work(self) -> None:
        model = self.config.detect.model
        worker = AnalysisWorker(processes=self.processes, timeout_s=self.timeout_s, model=model)
        try:
            while not self._stop.is_set():
                try:
                    kind, uid = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._run(worker, kind, uid)
        finally:
            worker.close()

    def _run(self, worker: AnalysisWorker, kind: str, uid: str) -> None:
        with self._lock:
            self._busy += 1
        try:
            if kind == "analyse":
                self._analyse(worker, uid)
            else:
                self._forward_results(uid)
        except Exception:  # noqa: BLE001 - a worker never dies
            log.exception("unexpected error on %s", uid)
        finally:
            with self._lock:
                self._busy -= 1
                if kind == "analyse":
                    self._pending.discard(uid)
            self._queue.task_done()

    def _move(self, src: Path, folder: str) -> None:
        if src.exists():
            os.replace(src, self.out / folder / src.name)

    def _poll_exams(self, tick_s: float) -> None:
        while not self._stop.is_set():  # woken at once when an exam is complete or at stop
            self.exams.due.wait(tick_s)
            if self._stop.is_set():
                return
            self.exams.due.clear()
            try:
                for path in self.exams.poll():
                    self._forward_exam(path)
            except Exception:  # noqa: BLE001 - the exam thread never dies
                log.exception("unexpected error writing an exam")

    def _add_to_exam(self, uid: str) -> None:
        try:
            path = self.exams.add(uid)
        except Exception:  # noqa: BLE001 - the image is analysed; its exam is retried
            log.exception("unexpected error adding %s to its exam", uid)
            return
        if path is not None:
            self._forward_exam(path)

    def _forward_exam(self, exam_json: Path) -> None:
        """Send a newly written exam's SR to the PACS (a failure is logged and counted)."""
        sr = exam_json.with_name(exam_json.name.removesuffix(".exam.json") + ".sr.dcm")
        if self.forward is None or not self.dicom_reports or not sr.exists():
            return
        try:
            send_files([sr], self.forward, calling_ae_title=self.ae_title)
        except Exception as exc:  # noqa: BLE001 - network trouble
            self.stats.add("forward_failed")
            log.error("could not forward the exam SR %s to %s: %s", sr, self.forward, exc)
            return
        self.stats.add("forwarded")
        log.info("forwarded the exam SR %s to %s", sr.parent.name, self.forward)

    def _analyse(self, worker: AnalysisWorker, uid: str) -> None:
        src = self._incoming(uid)
        if self._done(uid).exists():  # committed before a crash; only the move was missing
            self._move(src, "received")
            self._add_to_exam(uid)
            return
        if not src.exists():
            return
        t0 = time.perf_counter()
        final = self._results(uid)  # never the original UID's name on an anonymising node
        tmp = final.parent / f"{_TMP}{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        job = AnalysisJob(
            src=str(src),
            out_dir=str(tmp),
            config=self.config,
            dicom_reports=self.dicom_reports,
            final_path=str(self.out / "received" / src.name),
            analyze=self.analyze,
            anonymize_seed=self.anonymize_seed,
        )
        log.info("analysing %s", uid)
        try:
            outcome = worker.run(job)
            if outcome.error is not None:
                self._fail(uid, src, tmp, outcome.error, outcome.message)
                return
            if self.forward is not None and self.dicom_reports:
                write_atomic(tmp / "forward_pending", str(self.forward), durable=True)
            times = {"analysis_s": outcome.analysis_s, "outputs_s": outcome.outputs_s}
            self._commit(uid, tmp, {"status": "ok", "seconds": time.perf_counter() - t0, **times})
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self._move(src, "received")
        self.stats.add("analysed")
        log.info(
            "analysed %s in %.2f s (analysis %.2f s, outputs %.2f s): %d calcification(s), "
            "%d cluster(s), BI-RADS %s",
            uid,
            time.perf_counter() - t0,
            outcome.analysis_s,
            outcome.outputs_s,
            outcome.n_calcifications,
            outcome.n_clusters,
            outcome.category,
        )
        self._add_to_exam(uid)
        if self.forward is not None and self.dicom_reports:
            self._forward_results(uid)

    def _commit(self, uid: str, tmp: Path, record: dict[str, Any]) -> None:
        final = self._results(uid)
        if final.exists():  # an attempt interrupted before its commit
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        marker = _json_bytes({"sop_instance_uid": uid, **record})
        write_atomic(self._done(uid), marker, durable=True)

    def _fail(self, uid: str, src: Path, tmp: Path, error: str, message: str) -> None:
        record = {"status": "failed", "error": error, "message": message}
        shown = {"sop_instance_uid": uid, **record}
        if self.anonymize_seed is not None:  # the received file's path names its UID
            new_uid = self._results(uid).name  # the de-identified UID
            text = message.replace(f"{self.out}{os.sep}", "").replace(uid, new_uid)
            shown = {**shown, "sop_instance_uid": new_uid, "message": text}
        write_atomic(tmp / "error.json", _json_bytes(shown), durable=True)
        self._commit(uid, tmp, record)
        self._move(src, "failed")
        self.stats.add("failed")
        log.error("analysis of %s failed: %s", uid, message)

    def _forward_results(self, uid: str) -> None:
        assert self.forward is not None
        folder = self._results(uid)
        marker = folder / "forward_pending"
        if not marker.exists():
            return
        paths = output_paths(folder, STEM)
        files = [f for f in (paths["sr"], paths["gsps"]) if f.exists()]
        for attempt in range(1, self.forward_retries + 1):
            try:
                send_files(files, self.forward, calling_ae_title=self.ae_title)
            except Exception as exc:  # noqa: BLE001 - network trouble; retried
                log.warning("forwarding %s to %s, attempt %d: %s", uid, self.forward, attempt, exc)
                if self._stop.wait(min(2.0**attempt, 10.0)):
                    break
                continue
            marker.unlink(missing_ok=True)
            self.stats.add("forwarded")
            log.info("forwarded SR and GSPS of %s to %s", uid, self.forward)
            return
        self.stats.add("forward_failed")
        log.error("could not forward %s to %s; will retry at the next start", uid, self.forward)


def analysed_counts(out_dir: str | Path) -> Counter[str]:
    """How many times the node's log says each SOP Instance UID was analysed."""
    counts: Counter[str] = Counter()
    pattern = re.compile(r": analysed ([0-9.]+) in ")
    log_path = Path(out_dir) / "node.log"
    if log_path.exists():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            m = pattern.search(line)
            if m:
                counts[m.group(1)] += 1
    return counts


def run_node(
    ae_title: str,
    port: int,
    out_dir: str | Path,
    forward: Forward | str | None = None,
    workers: int = 1,
    queue_size: int = 64,
    stop_event: threading.Event | None = None,
    **kwargs: Any,
) -> NodeStats:
    """Run a :class:`StorageNode` until ``stop_event`` is set (or for ever); return its stats.

    Extra keyword arguments go to :class:`StorageNode` (``config``, ``host``,
    ``dicom_reports``, ``put_timeout_s``, ...). Usable from a thread in tests.
    """
    stop = stop_event or threading.Event()
    node = StorageNode(
        ae_title, port, out_dir, forward=forward, workers=workers, queue_size=queue_size, **kwargs
    )
    node.start()
    node.serve_until(stop)
    return node.stats
