"""The only orchestrator: ``analyze(image) -> Analysis``.

io -> preprocess -> detect -> describe (size class, benign patterns) -> cluster ->
describe (cluster morphology, distribution) -> assess. Surfaces (CLI, web, DICOM node,
batch) call :func:`analyze` and translate its :class:`Analysis`; they do no image work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from calcscope.about import __version__
from calcscope.config import Config, with_model
from calcscope.detection.classifier import resolve_model
from calcscope.detection.clusters import cluster_calcifications
from calcscope.detection.detect import Detection, detect
from calcscope.detection.model_card import ModelIdentity
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

__all__ = ["ClusterFinding", "MacroResult", "Analysis", "analyze", "analyze_mammogram"]


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
