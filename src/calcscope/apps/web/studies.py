"""The studies the web viewer shows: result folders written by ``calcscope analyze --out``
and the images uploaded to the viewer.

A study is one ``<stem>.json`` report (schema ``calcscope.analysis``) with, beside it,
``<stem>.overlay.png`` and optionally ``<stem>.letter.html``. Study ids are opaque
URL-safe strings looked up in an index built from the folders, never joined to a path,
so a request cannot reach a file outside them. Every file the viewer reads or serves
(report, overlay, letter, source image) must also be a regular file whose resolved path
(:meth:`pathlib.Path.resolve`, following symlinks) lies inside the folders it was given
(:meth:`StudyStore.safe_file`): a symlink out of a folder, or a report naming an absolute
or ``..`` source path, reaches nothing outside them.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calcscope.apps.web.tiles import Pyramid, to_uint8
from calcscope.errors import CalcscopeError
from calcscope.reports.schema import AnalysisReport, load_report

__all__ = [
    "Study",
    "StudyStore",
    "SCHEMA_NAME",
    "load_base_image",
    "letter_from_report",
    "study_id_for",
]

SCHEMA_NAME = "calcscope.analysis"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Study:
    """One report on disk. ``origin`` is ``"results"`` or ``"upload"``."""

    id: str
    json_path: Path
    origin: str
    name: str

    @property
    def stem(self) -> Path:
        return self.json_path.with_suffix("")

    @property
    def overlay_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".overlay.png")

    @property
    def letter_path(self) -> Path:
        return self.stem.with_name(self.stem.name + ".letter.html")


def study_id_for(stem: str) -> str:
    """The URL-safe id of a report named ``stem``: the stem itself when it is safe, else a
    hash of it."""
    if _SAFE_ID.match(stem) and not stem.endswith("."):
        return stem
    return "s-" + hashlib.sha1(stem.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _resolved_dirs(folders: Sequence[Path | None]) -> tuple[Path, ...]:
    out: list[Path] = []
    for folder in folders:
        if folder is not None and folder.is_dir():
            out.append(folder.resolve())
    return tuple(out)


class StudyStore:
    """Index of the studies in a results folder and an uploads folder.

    The folders are rescanned (cheaply: parsed reports are cached by modification
    time) each time the list is asked for.

    Parameters
    ----------
    results_dir, uploads_dir
        The folders whose ``*.json`` reports are the studies (either may be ``None``).
    image_dirs
        Further folders where source images are looked up by file name (never listed).
    """

    def __init__(
        self,
        results_dir: Path | None,
        uploads_dir: Path | None,
        image_dirs: Sequence[Path] = (),
    ) -> None:
        self.results_dir = results_dir
        self.uploads_dir = uploads_dir
        self.image_dirs = tuple(image_dirs)
        self.roots = _resolved_dirs([results_dir, uploads_dir, *self.image_dirs])
        self._lock = threading.Lock()
        self._studies: dict[str, Study] = {}
        self._reports: dict[Path, tuple[float, AnalysisReport]] = {}

    def scan(self) -> list[Study]:
        """Rescan the folders; returns the studies, results first, then uploads (newest
        first)."""
        found: dict[str, Study] = {}
        for folder, origin in ((self.results_dir, "results"), (self.uploads_dir, "upload")):
            if folder is None or not folder.is_dir():
                continue
            paths = sorted(folder.glob("*.json"))
            if origin == "upload":
                paths.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0, reverse=True)
            for path in paths:
                if (
                    path.name.endswith((".meta.json", ".truth.json", ".exam.json"))
                    or not path.is_file()
                ):
                    continue
                report = self.report_at(path)
                if report is None:
                    continue
                sid = study_id_for(path.stem)
                if sid in found:
                    continue
                found[sid] = Study(sid, path, origin, self._display_name(path, report, origin))
        with self._lock:
            self._studies = found
        return list(found.values())

    def get(self, study_id: str) -> Study | None:
        """The study with this id, or ``None`` (rescanning once on a miss)."""
        if not _SAFE_ID.match(study_id):
            return None
        with self._lock:
            study = self._studies.get(study_id)
        if study is None or not study.json_path.is_file():
            self.scan()
            with self._lock:
                study = self._studies.get(study_id)
        return study

    def safe_file(self, path: Path) -> Path | None:
        """``path`` resolved (symlinks followed) when it is a regular file inside one of the
        folders the store was given, else ``None``."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if not any(real.is_relative_to(root) for root in self.roots):
            return None
        return real if real.is_file() else None

    def report_at(self, path: Path) -> AnalysisReport | None:
        """The report at ``path`` (:func:`calcscope.reports.schema.load_report`) if it is a
        calcscope analysis inside the store's folders, else ``None``."""
        if self.safe_file(path) is None:
            return None
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        with self._lock:
            cached = self._reports.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            data = load_report(path)
        except CalcscopeError:
            return None
        if data.schema_name != SCHEMA_NAME:
            return None
        with self._lock:
            self._reports[path] = (mtime, data)
        return data

    def report(self, study: Study) -> AnalysisReport | None:
        return self.report_at(study.json_path)

    @staticmethod
    def _display_name(path: Path, report: AnalysisReport, origin: str) -> str:
        if origin == "upload":
            meta = _read_json(path.with_name(path.stem + ".meta.json")) or {}
            name = meta.get("original_name")
            if isinstance(name, str) and name:
                return name
        return path.stem


def summary(study: Study, report: AnalysisReport) -> dict[str, Any]:
    """The fields of the study list (the API's JSON)."""
    return {
        "id": study.id,
        "name": study.name,
        "origin": study.origin,
        "laterality": report.source.laterality,
        "view": report.source.view,
        "shape_rc": list(report.source.shape_rc),
        "category": report.assessment.category,
        "follow_up_label": report.assessment.follow_up_label,
        "n_calcifications": report.n_calcifications,
        "n_clusters": len(report.clusters),
    }


def _source_candidates(study: Study, src_path: str, store: StudyStore) -> list[Path]:
    """Where the source image may be: a relative path beside the report, else its file name
    in the report's folder and in the image folders, each only if it is a regular file
    inside the store's folders. An absolute path is never opened as it is."""
    p = Path(src_path)
    folder = study.json_path.parent
    cands = [] if p.is_absolute() else [folder / p]
    cands += [d / p.name for d in (folder, *store.image_dirs)]
    out: list[Path] = []
    for cand in cands:
        real = store.safe_file(cand)
        if real is not None and real not in out:
            out.append(real)
    return out


def load_base_image(study: Study, report: AnalysisReport, store: StudyStore) -> Pyramid:
    """The pixels to tile: the source image (read again with :func:`calcscope.imaging.io.read_image`
    at the report's spacing), or else the overlay PNG written beside the report.

    Only files inside the folders of ``store`` are read (:meth:`StudyStore.safe_file`).
    Returns the pyramid, with its ``kind`` (``"source"`` or ``"overlay"``) and a ``note``
    for the user.
    Raises ``FileNotFoundError`` when neither can be read.
    """
    from calcscope.imaging.io import read_image

    src = report.source
    shape = src.shape_rc
    spacing_t = src.spacing_mm
    problem = "the report names no source image"
    if src.path:
        problem = f"the source image {Path(src.path).name} was not found in the viewer's folders"
        for cand in _source_candidates(study, src.path, store):
            try:
                mammo = read_image(cand, spacing_mm=spacing_t)
            except CalcscopeError as exc:
                problem = f"the source image cannot be read ({exc})"
                continue
            if tuple(mammo.pixels.shape) != shape:
                problem = (
                    f"the source image has changed ({mammo.pixels.shape[0]} x "
                    f"{mammo.pixels.shape[1]} pixels, the report says {shape[0]} x {shape[1]})"
                )
                continue
            return Pyramid(to_uint8(mammo.pixels), kind="source")
    overlay = store.safe_file(study.overlay_path)
    if overlay is not None:
        bgr = cv2.imread(str(overlay), cv2.IMREAD_COLOR)
        if bgr is not None:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if shape[0] > 0 and rgb.shape[:2] != shape:
                rgb = cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
            note = f"{problem}: showing the overlay PNG (marks drawn in)"
            return Pyramid(np.ascontiguousarray(rgb), kind="overlay", note=note)
    raise FileNotFoundError(f"{problem}, and there is no overlay PNG beside the report")


def letter_from_report(report: AnalysisReport) -> str:
    """The patient letter (:func:`calcscope.reports.letter.letter_html`) rendered from the
    report model, for result folders written without ``--letter``."""
    from calcscope.reports.letter import letter_html

    return letter_html(report)
