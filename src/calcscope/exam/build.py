"""Read the images of an exam together: pair the views of each breast, assess each
breast and the exam.

Rules (BI-RADS atlas, 5th ed.):

* a finding seen on the CC and the MLO view of a breast at about the same distance from
  the nipple (:func:`calcscope.exam.pairing.pair_views`) is one finding, with its quadrant
  and clock face (:func:`calcscope.exam.pairing.clock_face`) and the worse of the two
  views' assessments; seen on both views it is more certain (``score`` combines both:
  ``1 - (1 - a)(1 - b)``);
* a suspicious cluster (category 3, 4A or 4B) seen on one view only is recalled for
  additional views: BI-RADS 0, diagnostic mammography with spot compression or
  magnification, as a screening finding seen on one view is (the atlas's "finding seen
  on only one view"); categories 4C and 5 stand, their features decide them;
* a breast's category is its most concerning finding's (1 without findings); the exam's
  is the highest breast category, with its follow-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from calcscope.exam.model import BreastReading, Exam, ExamFinding, ExamImage, FindingKind, ViewLink
from calcscope.exam.pairing import SUBAREOLAR_MM, ViewFinding, clock_face, pair_views
from calcscope.exam.views import ViewRole
from calcscope.model import Laterality, Morphology
from calcscope.reading.assess import (
    Assessment,
    Category,
    FollowUp,
    RuleHit,
    assess_image,
)

__all__ = [
    "build_exam",
    "assign_roles",
    "finding_assessment",
    "exam_assessment",
    "ONE_VIEW_RECALL",
]

ONE_VIEW_RECALL = frozenset({Category.C3, Category.C4A, Category.C4B})
"""Categories of a cluster that, seen on one view only, become 0 (additional views)."""
_SIDE = {Laterality.LEFT: "left breast", Laterality.RIGHT: "right breast"}


def _assessment_of(f: ViewFinding) -> Assessment:
    cat = Category(f.category)
    follow = FollowUp(f.follow_up) if f.follow_up else _follow_up(cat)
    rules = (RuleHit("view", f.reason),) if f.reason else ()
    return Assessment(cat, float(f.likelihood), follow, rules)


def _follow_up(cat: Category) -> FollowUp:
    if cat is Category.C0:
        return FollowUp.ADDITIONAL_IMAGING
    if cat is Category.C3:
        return FollowUp.SHORT_INTERVAL
    if cat.rank >= Category.C4A.rank:
        return FollowUp.BIOPSY
    return FollowUp.ROUTINE


def finding_assessment(
    view_assessment: Assessment, kind: FindingKind, seen_on: str, missing: str
) -> Assessment:
    """The exam assessment of a finding seen on one view only (``seen_on``, e.g. "CC"),
    ``missing`` saying why the other view does not show it."""
    note = f"seen on the {seen_on} view only ({missing})"
    cat = view_assessment.category
    if kind is FindingKind.CLUSTER and cat in ONE_VIEW_RECALL:
        hit = RuleHit(
            "one_view_only",
            f"{note}: additional views (spot compression / magnification) to confirm it "
            f"before any decision (BI-RADS {cat.value} on this view alone)",
        )
        rules = (*view_assessment.rules, hit)
        return Assessment(
            Category.C0, view_assessment.likelihood, FollowUp.ADDITIONAL_IMAGING, rules
        )
    if kind is FindingKind.CLUSTER and cat.rank > Category.C0.rank:
        hit = RuleHit("one_view_only", f"{note}; its features decide the category")
    else:
        hit = RuleHit("one_view_only", note)
    return Assessment(
        cat, view_assessment.likelihood, view_assessment.follow_up, (*view_assessment.rules, hit)
    )


def _description(f: ViewFinding) -> str:
    try:
        label = Morphology(f.morphology).label
    except ValueError:
        label = f.morphology.replace("_", " ")
    if f.kind == FindingKind.MACRO.value:
        return f"{label} calcification (typically benign)"
    count = f"{f.n_calcifications} " if f.n_calcifications else ""
    dist = f", {f.distribution} distribution" if f.distribution else ""
    return f"{count}{label} calcifications{dist}"


def _link(img: ExamImage, f: ViewFinding) -> ViewLink:
    return ViewLink(
        image=img.key,
        sop_instance_uid=img.sop_instance_uid,
        finding_id=f.finding_id,
        view=img.view.view.value if img.view.view is not None else None,
        nipple_distance_mm=f.nipple_distance_mm,
    )


def _most(a: float | None, b: float | None) -> float | None:
    """The larger of two per-view sizes in mm (None where neither view tells it)."""
    known = [x for x in (a, b) if x is not None]
    return round(max(known), 1) if known else None


def _pair(
    fid: int, lat: Laterality, cc: tuple[ExamImage, ViewFinding], mlo: tuple[ExamImage, ViewFinding]
) -> ExamFinding:
    (ci, a), (mi, b) = cc, mlo
    quadrant, hour = clock_face(lat, a.offset_mm, b.offset_mm)
    distance = round((a.nipple_distance_mm + b.nipple_distance_mm) / 2, 1)
    if quadrant == "central" and distance <= SUBAREOLAR_MM:
        quadrant = "subareolar"
    worse = max((a, b), key=lambda f: (Category(f.category).rank, f.likelihood))
    base = _assessment_of(worse)
    hit = RuleHit(
        "both_views",
        f"seen on both the CC and MLO views ({a.nipple_distance_mm:.0f} and "
        f"{b.nipple_distance_mm:.0f} mm from the nipple): {quadrant}"
        + (f", {hour} o'clock" if hour else ""),
    )
    sa, sb = a.score if a.score is not None else 0.5, b.score if b.score is not None else 0.5
    return ExamFinding(
        id=fid,
        laterality=lat,
        kind=FindingKind(a.kind),
        views={ViewRole.CC: _link(ci, a), ViewRole.MLO: _link(mi, b)},
        distance_from_nipple_mm=distance,
        quadrant=quadrant,
        clock=f"{hour} o'clock" if hour else None,
        depth=a.depth or b.depth,
        description=_description(worse),
        assessment=Assessment(base.category, base.likelihood, base.follow_up, (*base.rules, hit)),
        score=round(1.0 - (1.0 - sa) * (1.0 - sb), 4),
        morphology=worse.morphology,
        distribution=worse.distribution,
        n_calcifications=max(
            (n for n in (a.n_calcifications, b.n_calcifications) if n is not None), default=None
        ),
        extent_mm=_most(a.extent_mm, b.extent_mm),
    )


def _single(
    fid: int, lat: Laterality | None, role: ViewRole, img: ExamImage, f: ViewFinding, other: bool
) -> ExamFinding:
    other_role = "MLO" if role is ViewRole.CC else "CC"
    missing = (
        f"not found on the {other_role} view"
        if other
        else f"no {other_role} view of this breast in the exam"
    )
    kind = FindingKind(f.kind)
    return ExamFinding(
        id=fid,
        laterality=lat,
        kind=kind,
        views={role: _link(img, f)},
        distance_from_nipple_mm=(
            round(f.nipple_distance_mm, 1) if f.nipple_distance_mm == f.nipple_distance_mm else None
        ),
        quadrant=f.half,  # one view tells a half only (or central)
        clock=None,
        depth=f.depth,
        description=_description(f),
        assessment=finding_assessment(_assessment_of(f), kind, img.view.label, missing),
        score=round(f.score if f.score is not None else 0.5, 4),
        morphology=f.morphology,
        distribution=f.distribution,
        n_calcifications=f.n_calcifications,
        extent_mm=None if f.extent_mm is None else round(f.extent_mm, 1),
    )


def assign_roles(images: Sequence[ExamImage]) -> dict[str, ViewRole]:
    """The part each image plays: per breast the best CC-role image (CC before XCCL) is
    the CC, the best MLO-role image (MLO before ML, LM) the MLO; every other image (a
    spot or magnification view, a second CC, a view of unknown side) is additional."""
    roles: dict[str, ViewRole] = {}
    chosen: dict[tuple[Laterality | None, ViewRole], ExamImage] = {}
    for img in images:
        role = img.view.standard_role
        roles[img.key] = ViewRole.ADDITIONAL
        if role in (ViewRole.CC, ViewRole.MLO) and img.laterality is not None:
            best = chosen.get((img.laterality, role))
            if best is None or img.view.preference < best.view.preference:
                chosen[(img.laterality, role)] = img
    for (_, role), img in chosen.items():
        roles[img.key] = role
    return roles


def _breast(
    lat: Laterality, images: Sequence[ExamImage], roles: dict[str, ViewRole], first_id: int
) -> BreastReading:
    mine = [i for i in images if i.laterality is lat]
    by_role = {roles[i.key]: i for i in mine if roles[i.key] is not ViewRole.ADDITIONAL}
    cc, mlo = by_role.get(ViewRole.CC), by_role.get(ViewRole.MLO)
    findings: list[ExamFinding] = []
    paired: set[tuple[str, int, str]] = set()
    if cc is not None and mlo is not None:
        for kind in FindingKind:
            a = [
                f
                for f in cc.findings
                if f.kind == kind.value and f.nipple_distance_mm == f.nipple_distance_mm
            ]
            b = [
                f
                for f in mlo.findings
                if f.kind == kind.value and f.nipple_distance_mm == f.nipple_distance_mm
            ]
            for fa, fb in pair_views(a, b):
                findings.append(_pair(first_id + len(findings), lat, (cc, fa), (mlo, fb)))
                paired |= {
                    (cc.key, fa.finding_id, kind.value),
                    (mlo.key, fb.finding_id, kind.value),
                }
    for role, img, other in ((ViewRole.CC, cc, mlo), (ViewRole.MLO, mlo, cc)):
        if img is None:
            continue
        for f in img.findings:
            if (img.key, f.finding_id, f.kind) not in paired:
                fid = first_id + len(findings)
                findings.append(_single(fid, lat, role, img, f, other is not None))
    assessment = assess_image([f.assessment for f in findings]) if by_role else None
    return BreastReading(lat, tuple(i.key for i in mine), tuple(findings), assessment)


def exam_assessment(
    breasts: Mapping[Laterality, BreastReading], unplaced: Sequence[ExamFinding]
) -> Assessment:
    """The highest breast category (and its follow-up), negative when nothing was found."""
    candidates = [(f"{_SIDE[lat]}", b.assessment) for lat, b in breasts.items() if b.assessment]
    candidates += [("breast of unknown side", f.assessment) for f in unplaced]
    if not candidates:
        return assess_image([])
    side, worst = max(candidates, key=lambda c: (c[1].category.rank, c[1].likelihood))
    hit = RuleHit(
        "highest_breast",
        f"highest breast category: {side}, BI-RADS {worst.category.value} ({worst.category.label})",
    )
    return Assessment(worst.category, worst.likelihood, worst.follow_up, (hit,))


def build_exam(
    images: Sequence[ExamImage],
    *,
    exam_id: str,
    name: str | None = None,
    study_instance_uid: str | None = None,
    patient_id: str | None = None,
    study_date: str | None = None,
    issuer_of_patient_id: str | None = None,
) -> Exam:
    """Read the images of one exam together (see the module docstring).

    Parameters
    ----------
    images
        Every analysed image of the exam with its findings.
    exam_id, name
        The exam's identity and file-name safe name (default: ``exam_id``).
    study_instance_uid, patient_id, study_date
        The study's identity (``patient_id`` None when de-identified).
    issuer_of_patient_id
        Who issued ``patient_id`` (None: unknown); exams of one id from two issuers are
        two patients' (:mod:`calcscope.exam.priors`).
    """
    roles = assign_roles(images)
    breasts: dict[Laterality, BreastReading] = {}
    next_id = 1
    for lat in (Laterality.RIGHT, Laterality.LEFT):
        breasts[lat] = _breast(lat, images, roles, next_id)
        next_id += len(breasts[lat].findings)
    unplaced: list[ExamFinding] = []
    for img in images:
        if img.laterality is None:
            for f in img.findings:
                role = img.view.standard_role or ViewRole.ADDITIONAL
                unplaced.append(_single(next_id, None, role, img, f, False))
                next_id += 1
    return Exam(
        exam_id=exam_id,
        name=name or exam_id,
        study_instance_uid=study_instance_uid,
        patient_id=patient_id,
        study_date=study_date,
        images=tuple(images),
        roles=roles,
        breasts=breasts,
        unplaced=tuple(unplaced),
        assessment=exam_assessment(breasts, unplaced),
        issuer_of_patient_id=issuer_of_patient_id,
    )
