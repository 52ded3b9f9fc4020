"""The only orchestrator: ``analyze(image) -> Analysis``.

io -> preprocess -> detect -> describe (size class, benign patterns) -> cluster ->
describe (cluster morphology, distribution) -> assess. Surfaces (CLI, web, DICOM node,
batch) call :func:`analyze` and translate its :class:`Analysis`; they do no image work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from calcscope.about import __version__
from calcscope.config import Config, with_model
from calcscope.detection.classifier import resolve_model
from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.detect import Detection, detect
from calcscope.detection.model_card import ModelIdentity
from calcscope.exam.build import build_exam
from calcscope.exam.model import Exam, ExamImage
from calcscope.exam.pairing import ViewFinding
from calcscope.exam.views import ExamView
from calcscope.imaging.io import from_array, read_image
from calcscope.imaging.preprocess import Preprocessed, preprocess
from calcscope.model import Calcification, Cluster, Laterality, Mammogram, View
from calcscope.reading.assess import (
    Assessment,
    assess_benign_macro,
    assess_descriptors,
    assess_image,
)
from calcscope.reading.describe import (
    ClusterDescription,
    MacroFinding,
    describe,
    describe_clusters,
)
from calcscope.reading.location import Location, NippleLine, locate, nipple_line

__all__ = [
    "ClusterFinding",
    "MacroResult",
    "Analysis",
    "analyze",
    "analyze_mammogram",
    "ExamAnalysis",
    "analyze_exam",
    "exam_image",
]


@dataclass(frozen=True)
class ClusterFinding:
    cluster: Cluster
    description: ClusterDescription
    assessment: Assessment
    location: Location | None = None


@dataclass(frozen=True)
class MacroResult:
    finding: MacroFinding
    assessment: Assessment
    location: Location | None = None


@dataclass(frozen=True)
class Analysis:
    """Everything one image's analysis found, with the settings that produced it."""

    mammogram: Mammogram
    prep: Preprocessed
    detection: Detection
    calcifications: tuple[Calcification, ...]
    clusters: tuple[ClusterFinding, ...]
    macros: tuple[MacroResult, ...]
    assessment: Assessment
    config: Config
    breast_area_mm2: float
    nipple_line: NippleLine | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    version: str = __version__
    model: ModelIdentity | None = None  # the candidate classifier (card name and hash)

    @property
    def detected(self) -> tuple[Calcification, ...]:
        """Calcifications at the operating point (``config.detect.operating_score``);
        the others in :attr:`calcifications` are possible ones (cluster members)."""
        op = self.config.detect.operating_score
        return tuple(c for c in self.calcifications if c.score >= op)

    @property
    def reported_calcifications(self) -> tuple[Calcification, ...]:
        """Detections at the operating point plus every member of a reported finding:
        what the reports (SR, GSPS, letter, viewer) show."""
        op = self.config.detect.operating_score
        members = {i for f in self.clusters for i in f.cluster.member_ids}
        members |= {i for m in self.macros for i in m.finding.member_ids}
        return tuple(c for c in self.calcifications if c.score >= op or c.id in members)

    @property
    def findings(self) -> tuple[ClusterFinding | MacroResult, ...]:
        return (*self.clusters, *self.macros)


def analyze(
    image: str | Path | np.ndarray | Mammogram,
    spacing_mm: float | tuple[float, float] | None = None,
    config: Config | None = None,
    *,
    laterality: Laterality | str | None = None,
    view: View | str | None = None,
    model: str | Path | None = None,
) -> Analysis:
    """Analyse one mammogram: a file path, a 2-D array (needs ``spacing_mm``) or a
    :class:`~calcscope.model.Mammogram`.

    ``model`` is a model folder written by ``calcscope train`` (or a model name); it
    overrides ``config.detect.model``. A model whose card does not match (tampered, other
    features) raises :class:`~calcscope.errors.ConfigError`.

    Raises :class:`~calcscope.errors.InputError` subclasses for input that cannot be
    analysed (unreadable, not a mammogram, no spacing).
    """
    cfg = config or Config()
    if model is not None:
        cfg = with_model(cfg, model)
    t0 = time.perf_counter()
    if isinstance(image, Mammogram):
        mammo = image
    elif isinstance(image, np.ndarray):
        if spacing_mm is None:
            from calcscope.errors import MissingSpacingError

            raise MissingSpacingError("an array needs spacing_mm (pixel spacing in mm)")
        mammo = from_array(image, spacing_mm, laterality=laterality, view=view, config=cfg.io)
    else:
        mammo = read_image(
            image, spacing_mm=spacing_mm, laterality=laterality, view=view, config=cfg.io
        )
    timings = {"read": time.perf_counter() - t0}
    return analyze_mammogram(mammo, cfg, timings=timings)


def analyze_mammogram(
    mammo: Mammogram, config: Config | None = None, *, timings: dict[str, float] | None = None
) -> Analysis:
    """Run the pipeline on an already-read :class:`Mammogram`."""
    cfg = config or Config()
    timings = dict(timings or {})

    def lap(name: str, t: float) -> float:
        now = time.perf_counter()
        timings[name] = now - t
        return now

    t = time.perf_counter()
    prep = preprocess(mammo, cfg.preprocess)
    t = lap("preprocess", t)
    det = detect(mammo, prep, cfg.detect)
    t = lap("detect", t)
    desc = describe(
        det.calcifications,
        mammo.spacing_mm,
        cfg.describe,
        breast=prep.breast,
        thresholds=cfg.describe.thresholds,
        operating_score=cfg.detect.operating_score,
    )
    calcs = tuple(replace(c, kind=desc.kinds[c.id]) for c in det.calcifications)
    # possible calcifications (score >= detect.min_score) may join clusters, except the
    # pieces of benign macro patterns and deposits too coarse for a cluster member
    clusterable = set(desc.clusterable_ids)
    candidates = [c for c in calcs if c.id in clusterable]
    t = lap("describe", t)
    clusters = cluster_calcifications(candidates, mammo.spacing_mm, cfg.cluster)
    # candidates under min_score kept only as sure members by their scale-matched CNR
    # (detection.scale_cnr) are listed only as members of a reported cluster
    members = {i for cl in clusters for i in cl.member_ids}
    kept_score = min(cfg.detect.min_score, cfg.detect.operating_score)
    calcs = tuple(c for c in calcs if c.score >= kept_score or not c.scale_sure or c.id in members)
    t = lap("cluster", t)
    # the nipple (estimated once) places segments and each finding
    line = nipple_line(mammo, prep)
    desc = describe_clusters(
        desc,
        clusters,
        calcs,
        mammo.spacing_mm,
        thresholds=cfg.describe.thresholds,
        operating_score=cfg.detect.operating_score,
        nipple_rc=None if line is None else line.nipple_rc,
        breast=prep.breast,
    )
    cluster_findings = []
    for cl, cd in zip(clusters, desc.clusters, strict=True):
        a = assess_descriptors(
            [cd.morphology],
            cd.distribution,
            n_calcifications=cd.n_members,
            morphology_confident=cd.morphology_confident,
            detection_confident=cl.score >= cfg.cluster.confident_score,
            thresholds=cfg.assess.thresholds,
        )
        cluster_findings.append(ClusterFinding(cl, cd, a, locate(cl.center_rc, mammo, line)))
    macro_results = [
        MacroResult(m, assess_benign_macro(m.pattern, m.reasons), locate(m.center_rc, mammo, line))
        for m in desc.macros
    ]
    image_assessment = assess_image(
        [f.assessment for f in cluster_findings] + [m.assessment for m in macro_results]
    )
    lap("assess", t)
    area = float(prep.mask.sum()) * mammo.spacing_mm[0] * mammo.spacing_mm[1]
    timings["total"] = sum(timings.values())
    return Analysis(
        mammogram=mammo,
        prep=prep,
        detection=det,
        calcifications=calcs,
        clusters=tuple(cluster_findings),
        macros=tuple(macro_results),
        assessment=image_assessment,
        config=cfg,
        breast_area_mm2=area,
        nipple_line=line,
        timings_s=timings,
        model=resolve_model(cfg.detect.model),
    )


@dataclass(frozen=True)
class ExamAnalysis:
    """The analyses of an exam's images and the exam read from them."""

    analyses: tuple[Analysis, ...]
    exam: Exam


def _view_finding(key: str, f: ClusterFinding | MacroResult) -> ViewFinding:
    """One finding of an image as the exam pairs it (NaN distance: not located)."""
    loc = f.location
    if isinstance(f, ClusterFinding):
        fid, morph, kind, score = (
            f.cluster.id,
            f.description.morphology.value,
            "cluster",
            f.cluster.score,
        )
        dist: str | None = f.description.distribution.value
        n = len(f.cluster.member_ids)
        extent: float | None = float(f.cluster.extent_mm)
    else:
        fid, morph, kind, score = f.finding.id, f.finding.pattern.value, "macro", 1.0
        dist, n, extent = None, len(f.finding.member_ids), None
    return ViewFinding(
        image=key,
        finding_id=fid,
        nipple_distance_mm=(
            float("nan")
            if loc is None or loc.nipple_distance_mm is None
            else loc.nipple_distance_mm
        ),
        offset_mm=0.0 if loc is None or loc.offset_mm is None else loc.offset_mm,
        morphology=morph,
        category=f.assessment.category.value,
        likelihood=f.assessment.likelihood,
        kind=kind,
        follow_up=f.assessment.follow_up.value,
        reason=f.assessment.reason,
        depth=None if loc is None or loc.depth is None else loc.depth.value,
        score=score,
        distribution=dist,
        n_calcifications=n,
        half=None if loc is None or loc.half is None else loc.half.value,
        extent_mm=extent,
    )


def exam_image(analysis: Analysis, key: str, view: ExamView | None = None) -> ExamImage:
    """The exam's view of one analysed image: ``key`` names its report (e.g. its JSON
    path relative to the exam document); ``view`` with its modifiers when known (default:
    the mammogram's view, no modifiers)."""
    m = analysis.mammogram
    return ExamImage(
        key=key,
        sop_instance_uid=m.source.sop_instance_uid,
        laterality=m.laterality,
        view=view if view is not None else ExamView(m.view),
        findings=tuple(_view_finding(key, f) for f in analysis.findings),
    )


def analyze_exam(
    images: Sequence[str | Path | Mammogram],
    config: Config | None = None,
    *,
    exam_id: str | None = None,
    keys: Sequence[str] | None = None,
) -> ExamAnalysis:
    """Analyse the images of one exam (file paths or mammograms) and read them together:
    one finding per calcification group seen on the CC and MLO views of a breast, per
    breast and per exam assessment (:func:`calcscope.exam.build.build_exam`).

    ``keys`` name each image in the exam (default: the file name, or ``image<k>``).
    Spot and magnification views are recognised from the DICOM view codes of files.
    """
    from calcscope.exam.grouping import read_header

    cfg = config or Config()
    analyses, exam_images = [], []
    uid = pid = date = None
    for k, image in enumerate(images):
        analysis = analyze(image, config=cfg)
        view = None
        if isinstance(image, str | Path):
            header = read_header(image)
            view = header.view if header.view.view is not None else None
            uid, pid, date = (
                uid or header.study_instance_uid,
                pid or header.patient_id,
                date or header.study_date,
            )
        key = (
            keys[k]
            if keys is not None
            else (Path(image).name if isinstance(image, str | Path) else f"image{k + 1}")
        )
        analyses.append(analysis)
        exam_images.append(exam_image(analysis, key, view))
        src = analysis.mammogram.source
        uid, pid = uid or src.study_instance_uid, pid or src.patient_id
    exam = build_exam(
        exam_images,
        exam_id=exam_id or uid or "exam",
        study_instance_uid=uid,
        patient_id=pid,
        study_date=date,
    )
    return ExamAnalysis(tuple(analyses), exam)
