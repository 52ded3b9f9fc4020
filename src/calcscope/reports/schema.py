"""Reports: the JSON result (versioned pydantic schema) and the overlay PNG.

JSON conventions: every length in millimetres (unit in the name), coordinates
``[row, col]`` in pixels of the source image, every assessment with its rule trace,
``score`` in [0, 1] on every calcification and cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calcscope.about import DISCLAIMER, __version__
from calcscope.config import Config
from calcscope.detection.domain import MEASURED_SHARPNESS, SOFTEST_SCAN, image_domain
from calcscope.errors import ReportError
from calcscope.files import write_atomic
from calcscope.model import Calcification
from calcscope.pipeline import Analysis, ClusterFinding, MacroResult
from calcscope.reading.assess import Assessment, Category
from calcscope.reading.location import Location
from calcscope.reports.dicom_source import pixel_digest

__all__ = [
    "SCHEMA_VERSION",
    "AnalysisReport",
    "ModelInfo",
    "to_report",
    "load_report",
    "write_json",
    "render_overlay",
    "write_overlay",
    "overlay_png",
    "write_atomic",
]

SCHEMA_VERSION = "1.6"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodedConcept(_Model):
    value: str
    scheme: str
    meaning: str


class RuleModel(_Model):
    rule: str
    reason: str


class AssessmentModel(_Model):
    category: str = Field(description="BI-RADS category: 0, 1, 2, 3, 4A, 4B, 4C or 5")
    category_label: str
    likelihood: float = Field(ge=0, le=1, description="likelihood of malignancy")
    follow_up: str
    follow_up_label: str
    rules: list[RuleModel]
    reason: str


class SourceModel(_Model):
    path: str | None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    modality: str | None = None
    presentation_intent: str | None = None
    photometric_interpretation: str | None = None
    laterality: str | None = None
    view: str | None = None
    spacing_mm: tuple[float, float]
    spacing_origin: str | None = None
    shape_rc: tuple[int, int]
    pixel_sha256: str | None = Field(
        default=None,
        description="SHA-256 of the analysed pixels and spacing: the key of the synthetic "
        "DICOM identity that the SR and GSPS reference when the image was not DICOM "
        "(schema 1.4; null in older reports)",
    )


class PatientModel(_Model):
    id: str | None = None
    name: str | None = None
    birth_date: str | None = None


class DepositOutlineModel(_Model):
    size_mm: float = Field(description="diameter of the circle of the whole outline's area, mm")
    corner_fraction: float = Field(
        ge=0, le=1, description="share of the outline at sharp convex corners (angular)"
    )
    straight_fraction: float = Field(
        ge=0, le=1, description="share of the outline along straight edges (angular)"
    )
    inscribed_ratio: float = Field(
        ge=0,
        le=1,
        description="largest inscribed disc's diameter / size_mm: low for a clump of "
        "rounded lobes (popcorn), high for a compact body",
    )


class CalcificationModel(_Model):
    id: int
    kind: str
    cluster_id: int | None
    macro_finding_id: int | None
    center_rc: tuple[float, float]
    bbox_rc: tuple[int, int, int, int]
    area_mm2: float = Field(description="area inside the outline, mm2")
    diameter_mm: float = Field(description="diameter of the circle of the same area, mm")
    max_diameter_mm: float = Field(
        description="greatest dimension (the size a radiologist measures), mm"
    )
    min_diameter_mm: float = Field(description="width across the greatest dimension, mm")
    contrast: float = Field(description="peak brightness above the surrounding tissue")
    cnr: float = Field(description="contrast-to-noise ratio")
    score: float = Field(ge=0, le=1)
    detected: bool = Field(description="score at or above the operating point")
    circularity: float = Field(
        description="4 pi area / perimeter^2: 1 for a disc, lower for an irregular outline"
    )
    contour_circularity: float | None = Field(
        default=None,
        description="circularity of the half-maximum contour traced between pixels: 1 for "
        "a disc; reliable on specks a few pixels across, where the pixel outline's "
        "staircase dominates circularity (null: not measured)",
    )
    elongation: float = Field(description="1 - width / length: 0 round, near 1 linear")
    solidity: float = Field(
        description="area / convex-hull area: 1 convex, lower for an irregular (angular, "
        "branching) outline"
    )
    lucent_center: bool = Field(
        description="centre darker than its rim (rim or eggshell, skin calcification)"
    )
    deposit: DepositOutlineModel | None = Field(
        default=None,
        description="whole outline of a coarse deposit (1 mm or more), traced at 30 % of "
        "its height so that it holds all its lobes; tells popcorn (lobulated) from "
        "dystrophic (angular); null: not measured",
    )
    contour_rc: list[tuple[int, int]]


class LocationModel(_Model):
    """Where a finding lies, as far as one view tells (BI-RADS "location of lesion")."""

    laterality: str | None
    view: str | None
    half: str | None = Field(
        description="outer / inner (CC view) or upper / lower (MLO, ML, LM view) half of "
        "the breast, central behind the nipple; the quadrant needs both views; null: "
        "view unknown"
    )
    depth: str | None = Field(
        description="anterior, middle or posterior third of the nipple-to-chest-wall depth"
    )
    nipple_distance_mm: float | None = Field(description="distance from the nipple, mm")
    offset_mm: float | None = Field(
        default=None,
        description="signed distance from the posterior nipple line, mm: + outer (CC view) "
        "or upper (MLO view), - inner or lower; pairs with the other view give the quadrant "
        "and clock face",
    )
    text: str = Field(description="the location in words")


class NippleLineModel(_Model):
    nipple_rc: tuple[float, float] = Field(
        description="estimated nipple: the breast's most anterior point"
    )
    length_mm: float = Field(
        description="posterior nipple line: from the nipple back to the chest wall (the "
        "pectoral muscle's edge where it shows), the breast's depth"
    )
    orientation: str = Field(description="how the image's top side was read (which half)")


class ClusterModel(_Model):
    id: int
    center_rc: tuple[float, float]
    bbox_rc: tuple[int, int, int, int]
    member_ids: list[int]
    n_members: int
    n_detected: int = Field(
        description="Members detected at the operating point; the others are possible "
        "calcifications (faint members that add to the cluster's score)."
    )
    extent_mm: float
    area_mm2: float
    median_diameter_mm: float
    score: float = Field(ge=0, le=1)
    morphology: str
    morphology_code: CodedConcept
    morphology_confident: bool
    distribution: str
    distribution_code: CodedConcept
    description_reasons: list[str]
    location: LocationModel | None = None
    assessment: AssessmentModel


class MacroModel(_Model):
    id: int
    pattern: str
    pattern_code: CodedConcept
    member_ids: list[int]
    center_rc: tuple[float, float]
    size_mm: float
    location: LocationModel | None = None
    assessment: AssessmentModel


class DomainModel(_Model):
    """Whether the image lies inside what the detector was trained and measured on
    (:func:`calcscope.detection.domain.image_domain`)."""

    pixel_mm: float
    acquisition: str = Field(description="film, digital or unknown")
    processing: str | None = Field(None, description="DICOM Presentation Intent, if given")
    familiar: bool
    warning: str | None = None
    scan_sharpness: float | None = Field(
        None,
        description="how sharply the scanner drew the film's grain (calcscope.detection.domain."
        "scan_sharpness; 1 for uncorrelated grain, lower when blurred; measured DDSM films "
        f"{MEASURED_SHARPNESS[0]:.2f}-{MEASURED_SHARPNESS[1]:.2f}, under {SOFTEST_SCAN:.2f} "
        "outside the measured domain of film; not judged on digital images); null where not "
        "measured (pixels over 0.06 mm) and in reports before schema 1.6",
    )


class SettingsModel(_Model):
    macro_threshold_mm: float
    cluster_definition: str
    detect_operating_score: float
    cluster_operating_score: float
    config: dict[str, Any]


class ModelInfo(_Model):
    """The candidate classifier that scored the calcifications: its card's name and
    content hash (``model.json`` of its model folder)."""

    name: str
    sha256: str | None = None


class AnalysisReport(_Model):
    """The JSON document calcscope writes per image."""

    schema_name: str = "calcscope.analysis"
    schema_version: str = SCHEMA_VERSION
    calcscope_version: str = __version__
    disclaimer: str = DISCLAIMER
    source: SourceModel
    patient: PatientModel | None
    settings: SettingsModel
    model: ModelInfo | None = None
    breast_area_mm2: float
    nipple_line: NippleLineModel | None = None
    domain: DomainModel | None = None
    assessment: AssessmentModel
    n_calcifications: int = Field(description="calcifications at the operating point")
    n_macrocalcifications: int
    n_microcalcifications: int
    n_possible_calcifications: int = Field(
        description="listed calcifications below the operating point (possible ones)"
    )
    calcifications: list[CalcificationModel]
    clusters: list[ClusterModel]
    macro_findings: list[MacroModel]
    timings_s: dict[str, float]

    def reported_calcifications(self) -> list[CalcificationModel]:
        """The calcifications the reports show (SR, GSPS, viewer): detections at the
        operating point and every member of a finding; possible calcifications below
        the operating point are listed in the JSON only."""
        return [
            c
            for c in self.calcifications
            if c.detected or c.cluster_id is not None or c.macro_finding_id is not None
        ]


def _code(c: Any) -> CodedConcept:
    return CodedConcept(value=c.value, scheme=c.scheme_designator, meaning=c.meaning)


def _location(loc: Location | None) -> LocationModel | None:
    if loc is None:
        return None
    return LocationModel(
        laterality=loc.laterality.value if loc.laterality else None,
        view=loc.view.value if loc.view else None,
        half=loc.half.value if loc.half else None,
        depth=loc.depth.value if loc.depth else None,
        nipple_distance_mm=(
            None if loc.nipple_distance_mm is None else round(loc.nipple_distance_mm, 1)
        ),
        offset_mm=None if loc.offset_mm is None else round(loc.offset_mm, 1),
        text=loc.text,
    )


def _assessment(a: Assessment) -> AssessmentModel:
    return AssessmentModel(
        category=a.category.value,
        category_label=a.category.label,
        likelihood=round(a.likelihood, 4),
        follow_up=a.follow_up.value,
        follow_up_label=a.follow_up.label,
        rules=[RuleModel(rule=r.rule, reason=r.reason) for r in a.rules],
        reason=a.reason,
    )


def _calcification(
    c: Calcification, *, operating_score: float, cluster_id: int | None, macro_id: int | None
) -> CalcificationModel:
    d = c.deposit
    return CalcificationModel(
        id=c.id,
        kind=c.kind.value,
        cluster_id=cluster_id,
        macro_finding_id=macro_id,
        center_rc=_rc(c.center_rc, 2),
        bbox_rc=c.bbox_rc,
        area_mm2=round(c.area_mm2, 4),
        diameter_mm=round(c.diameter_mm, 3),
        max_diameter_mm=round(c.max_diameter_mm, 3),
        min_diameter_mm=round(c.min_diameter_mm, 3),
        contrast=round(c.contrast, 4),
        cnr=round(c.cnr, 2),
        score=round(c.score, 4),
        detected=c.score >= operating_score,
        circularity=round(c.circularity, 3),
        contour_circularity=(
            None if c.contour_circularity is None else round(c.contour_circularity, 4)
        ),
        elongation=round(c.elongation, 3),
        solidity=round(c.solidity, 3),
        lucent_center=c.lucent_center,
        deposit=(
            None
            if d is None
            else DepositOutlineModel(
                size_mm=round(d.size_mm, 3),
                corner_fraction=round(d.corner_fraction, 4),
                straight_fraction=round(d.straight_fraction, 4),
                inscribed_ratio=round(d.inscribed_ratio, 4),
            )
        ),
        contour_rc=[(int(r), int(cc)) for r, cc in c.contour_rc],
    )


def _rc(rc: tuple[float, float], digits: int) -> tuple[float, float]:
    return (round(rc[0], digits), round(rc[1], digits))


def _calcifications(analysis: Analysis) -> list[CalcificationModel]:
    cluster_of = {i: f.cluster.id for f in analysis.clusters for i in f.cluster.member_ids}
    macro_of = {i: r.finding.id for r in analysis.macros for i in r.finding.member_ids}
    op = analysis.config.detect.operating_score
    return [
        _calcification(
            c, operating_score=op, cluster_id=cluster_of.get(c.id), macro_id=macro_of.get(c.id)
        )
        for c in analysis.calcifications
    ]


def _cluster(f: ClusterFinding, detected: set[int]) -> ClusterModel:
    cl, desc = f.cluster, f.description
    return ClusterModel(
        id=cl.id,
        center_rc=_rc(cl.center_rc, 2),
        bbox_rc=cl.bbox_rc,
        member_ids=list(cl.member_ids),
        n_members=len(cl.member_ids),
        n_detected=sum(i in detected for i in cl.member_ids),
        extent_mm=round(cl.extent_mm, 2),
        area_mm2=round(cl.area_mm2, 2),
        median_diameter_mm=round(desc.median_diameter_mm, 3),
        score=round(cl.score, 4),
        morphology=desc.morphology.value,
        morphology_code=_code(desc.morphology.code),
        morphology_confident=desc.morphology_confident,
        distribution=desc.distribution.value,
        distribution_code=_code(desc.distribution.code),
        description_reasons=list(desc.reasons),
        location=_location(f.location),
        assessment=_assessment(f.assessment),
    )


def _macro(r: MacroResult) -> MacroModel:
    m = r.finding
    return MacroModel(
        id=m.id,
        pattern=m.pattern.value,
        pattern_code=_code(m.pattern.code),
        member_ids=list(m.member_ids),
        center_rc=_rc(m.center_rc, 2),
        size_mm=round(m.size_mm, 2),
        location=_location(r.location),
        assessment=_assessment(r.assessment),
    )


def _source(analysis: Analysis, *, anonymize: bool, seed: str | None) -> SourceModel:
    m = analysis.mammogram
    src = m.source
    path = src.path
    uids = (src.study_instance_uid, src.series_instance_uid, src.sop_instance_uid)
    if anonymize:
        from calcscope.reports.dicom_source import Deidentifier

        deid = Deidentifier(seed)
        if path is not None:  # neither the folders nor the file's name: they may name a patient
            path = deid.source_name(path, src.sop_instance_uid)
        study, series, sop = (deid.uid(u) if u else u for u in uids)
        uids = (study, series, sop)
    return SourceModel(
        path=path,
        study_instance_uid=uids[0],
        series_instance_uid=uids[1],
        sop_instance_uid=uids[2],
        sop_class_uid=src.sop_class_uid,
        modality=src.modality,
        presentation_intent=src.presentation_intent,
        photometric_interpretation=src.photometric_interpretation,
        laterality=m.laterality.value if m.laterality else None,
        view=m.view.value if m.view else None,
        spacing_mm=(float(m.spacing_mm[0]), float(m.spacing_mm[1])),
        spacing_origin=src.spacing_origin,
        shape_rc=m.shape,
        pixel_sha256=pixel_digest(m),
    )


def _patient(analysis: Analysis, *, anonymize: bool) -> PatientModel | None:
    src = analysis.mammogram.source
    if anonymize or not (src.patient_id or src.patient_name or src.patient_birth_date):
        return None
    return PatientModel(id=src.patient_id, name=src.patient_name, birth_date=src.patient_birth_date)


def _settings(cfg: Config) -> SettingsModel:
    return SettingsModel(
        macro_threshold_mm=cfg.describe.macro_threshold_mm,
        cluster_definition=(
            f">= {cfg.cluster.min_members} calcifications within "
            f"{cfg.cluster.within_mm:g} mm (CAD convention)"
        ),
        detect_operating_score=cfg.detect.operating_score,
        cluster_operating_score=cfg.cluster.operating_score,
        config=cfg.model_dump(mode="json"),
    )


def _nipple_line(analysis: Analysis) -> NippleLineModel | None:
    line = analysis.nipple_line
    if line is None:
        return None
    return NippleLineModel(
        nipple_rc=_rc(line.nipple_rc, 1),
        length_mm=round(line.length_mm, 1),
        orientation=line.orientation_note,
    )


def _domain(analysis: Analysis) -> DomainModel:
    d = image_domain(analysis.mammogram, analysis.detection.scan_sharpness)
    return DomainModel(
        pixel_mm=round(d.pixel_mm, 4),
        acquisition=d.acquisition.value,
        processing=d.processing,
        familiar=d.familiar,
        warning=d.warning,
        scan_sharpness=None if d.scan_sharpness is None else round(d.scan_sharpness, 3),
    )


def to_report(
    analysis: Analysis, *, anonymize: bool = False, seed: str | None = None
) -> AnalysisReport:
    """Build the JSON report model of an analysis.

    With ``anonymize`` the patient block is left out, the source path becomes
    ``<de-identified SOP Instance UID><suffix>`` (a keyed hash of the path for an image
    without one: ``Deidentifier.source_name``), and the source's Study, Series and SOP
    Instance UIDs are replaced as the de-identified SR and GSPS replace them
    (:class:`calcscope.reports.dicom_source.Deidentifier` under ``seed``).
    """
    calcs = _calcifications(analysis)
    detected = analysis.detected
    detected_ids = {c.id for c in detected}
    n_macro = sum(1 for c in detected if c.kind.value == "macro")
    return AnalysisReport(
        source=_source(analysis, anonymize=anonymize, seed=seed),
        patient=_patient(analysis, anonymize=anonymize),
        settings=_settings(analysis.config),
        model=None
        if analysis.model is None
        else ModelInfo(name=analysis.model.name, sha256=analysis.model.sha256),
        breast_area_mm2=round(analysis.breast_area_mm2, 1),
        nipple_line=_nipple_line(analysis),
        domain=_domain(analysis),
        assessment=_assessment(analysis.assessment),
        n_calcifications=len(detected),
        n_macrocalcifications=n_macro,
        n_microcalcifications=len(detected) - n_macro,
        n_possible_calcifications=len(calcs) - len(detected),
        calcifications=calcs,
        clusters=[_cluster(f, detected_ids) for f in analysis.clusters],
        macro_findings=[_macro(r) for r in analysis.macros],
        timings_s={k: round(v, 4) for k, v in analysis.timings_s.items()},
    )


def load_report(path: str | Path) -> AnalysisReport:
    """Read a JSON report written by calcscope (any earlier 1.x schema version).

    Raises
    ------
    ReportError
        When the file cannot be read, is not JSON, or does not follow the schema; the
        message names the file.
    """
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ReportError(f"cannot read the report ({exc.strerror or exc})", str(p)) from exc
    try:
        return AnalysisReport.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "(document)"
        raise ReportError(
            f"not a calcscope analysis report ({exc.error_count()} problem(s); "
            f"first: {where}: {first.get('msg')})",
            str(p),
        ) from exc


def write_json(
    analysis: Analysis, path: str | Path, *, anonymize: bool = False, seed: str | None = None
) -> Path:
    """Write the JSON report (atomically); ``anonymize`` and ``seed`` as :func:`to_report`."""
    report = to_report(analysis, anonymize=anonymize, seed=seed)
    text = json.dumps(report.model_dump(mode="json"), indent=1)
    return write_atomic(path, text.encode("utf-8"))


_CATEGORY_BGR = {
    Category.C1: (0, 200, 0),
    Category.C2: (0, 200, 0),
    Category.C3: (0, 220, 220),
    Category.C0: (0, 165, 255),
    Category.C4A: (0, 100, 255),
    Category.C4B: (0, 0, 255),
    Category.C4C: (0, 0, 230),
    Category.C5: (200, 0, 255),
}


def render_overlay(analysis: Analysis, *, max_side_px: int | None = None) -> np.ndarray:
    """The image in grey with calcifications outlined and findings boxed and numbered.

    Returns an RGB uint8 array. Micro-calcifications are outlined in cyan, macro in
    yellow; clusters and macro findings get a box coloured by category with a label
    such as ``C1 BI-RADS 4B``. ``max_side_px`` shrinks large images (marks are drawn on
    the shrunk image, with a minimum size so that tiny specks stay visible).
    """
    pix = analysis.mammogram.pixels
    scale = 1.0
    if max_side_px and max(pix.shape) > max_side_px:
        scale = max_side_px / max(pix.shape)
    small = pix
    if scale != 1.0:  # shrink first: the 8-bit conversion then runs on the small copy
        small = cv2.resize(
            pix.astype(np.float32, copy=False),
            (int(pix.shape[1] * scale), int(pix.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
    grey = (np.clip(small, 0, 1) * 255).astype(np.uint8)
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    thick = max(1, int(round(max(img.shape) / 1500)))
    in_finding = {i for f in analysis.clusters for i in f.cluster.member_ids}
    op = analysis.config.detect.operating_score
    for c in analysis.calcifications:
        if c.score < op and c.id not in in_finding:
            continue  # possible calcifications below the operating point are not drawn
        colour = (0, 255, 255) if c.kind.value == "macro" else (255, 255, 0)
        pts = (c.contour_rc[:, ::-1].astype(np.float64) * scale).round().astype(np.int32)
        if len(pts) >= 3 and c.max_diameter_mm / analysis.mammogram.pixel_mm * scale >= 4:
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], True, colour, 1, cv2.LINE_AA)
        else:
            centre = (int(c.center_rc[1] * scale), int(c.center_rc[0] * scale))
            cv2.circle(img, centre, max(3, thick * 3), colour, 1, cv2.LINE_AA)
    font_scale = max(0.5, max(img.shape) / 2500)

    def box(bbox: tuple[int, int, int, int], label: str, colour: tuple[int, int, int]) -> None:
        r0, c0, r1, c1 = (int(v * scale) for v in bbox)
        pad = max(6, thick * 6)
        p0, p1 = (c0 - pad, r0 - pad), (c1 + pad, r1 + pad)
        cv2.rectangle(img, p0, p1, colour, thick + 1)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        org = (max(0, p0[0]), max(th + 2, p0[1] - 4))
        cv2.rectangle(img, (org[0], org[1] - th - 2), (org[0] + tw, org[1] + 2), (0, 0, 0), -1)
        cv2.putText(
            img, label, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thick, cv2.LINE_AA
        )

    for f in analysis.clusters:
        cat = f.assessment.category
        box(f.cluster.bbox_rc, f"C{f.cluster.id} BI-RADS {cat.value}", _CATEGORY_BGR[cat])
    by_id = {c.id: c for c in analysis.calcifications}
    for r in analysis.macros:
        boxes = np.array([by_id[i].bbox_rc for i in r.finding.member_ids])
        bbox = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        box(bbox, f"M{r.finding.id} {r.finding.pattern.value}", _CATEGORY_BGR[Category.C2])
    rgb: np.ndarray = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return rgb


OVERLAY_MAX_SIDE_PX = 2048
"""Default long side (pixels) of the overlay PNG: enough to see every mark; the viewer
shows the image itself at full resolution."""


def overlay_png(analysis: Analysis, *, max_side_px: int | None = OVERLAY_MAX_SIDE_PX) -> bytes:
    """The overlay encoded as PNG (zlib level 1: noisy film compresses little better at
    level 6, at four times the cost), shrunk to ``max_side_px`` on its long
    side (pixels; ``None`` keeps the image's size)."""
    rgb = render_overlay(analysis, max_side_px=max_side_px)
    ok, buf = cv2.imencode(
        ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    if not ok:  # pragma: no cover - OpenCV failure
        raise OSError("could not encode the overlay PNG")
    return buf.tobytes()


def write_overlay(
    analysis: Analysis, path: str | Path, *, max_side_px: int | None = OVERLAY_MAX_SIDE_PX
) -> Path:
    """Write the overlay as PNG (atomically)."""
    return write_atomic(path, overlay_png(analysis, max_side_px=max_side_px))
