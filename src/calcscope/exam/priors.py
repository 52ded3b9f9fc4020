"""Which prior exam each exam of a run is compared with.

Exams of one patient (the same ``PatientID`` from the same issuer: exams whose
``IssuerOfPatientID`` both give and differ are two patients', whatever their ids; one
without an issuer is taken as the same patient's) are read in date order; each is compared
with the latest earlier one (:func:`calcscope.exam.compare.compare_exams`), which was
itself compared with the one before it, so that a group unchanged over several exams
carries the date since which it has been stable (two years of stability can rest on the
exam before the prior). Priors named explicitly (``calcscope analyze --prior``) join the
candidates of every exam of the same patient (or where either patient is unknown, as in
de-identified exams); an explicit prior of unknown date is taken only when nothing dated
is earlier.
"""

from __future__ import annotations

from collections.abc import Sequence

from calcscope.exam.compare import (
    MatchConfig,
    PriorExam,
    compare_exams,
    no_comparison,
    prior_from_exam,
)
from calcscope.exam.follow_up import FollowUpRules
from calcscope.exam.model import Exam

__all__ = ["compare_with_priors", "choose_prior", "same_issuer"]


def same_issuer(a: str | None, b: str | None) -> bool:
    """Whether two issuers of patient ids can be one: equal, or either unknown."""
    return a is None or b is None or a == b


def _same_patient(exam: Exam, prior: PriorExam, explicit: bool) -> bool:
    if not same_issuer(exam.issuer_of_patient_id, prior.issuer_of_patient_id):
        return False
    a, b = exam.patient_id, prior.patient_id
    if a is not None and b is not None:
        return a == b
    return explicit


def choose_prior(exam: Exam, candidates: Sequence[tuple[PriorExam, bool]]) -> PriorExam | None:
    """The latest candidate of the same patient taken before ``exam``; ``candidates`` are
    (prior, named explicitly) pairs. Dates are DICOM YYYYMMDD strings."""
    dated: list[PriorExam] = []
    undated: list[PriorExam] = []
    for prior, explicit in candidates:
        if prior.exam_id == exam.exam_id or (
            prior.study_instance_uid is not None
            and prior.study_instance_uid == exam.study_instance_uid
        ):
            continue
        if not _same_patient(exam, prior, explicit):
            continue
        if prior.study_date and exam.study_date:
            if prior.study_date < exam.study_date:
                dated.append(prior)
        elif explicit:
            undated.append(prior)
    if dated:
        return max(dated, key=lambda p: p.study_date or "")
    return undated[0] if undated else None


def compare_with_priors(
    exams: Sequence[Exam],
    priors: Sequence[PriorExam] = (),
    *,
    explicit: frozenset[str] = frozenset(),
    config: MatchConfig | None = None,
    rules: FollowUpRules | None = None,
) -> list[Exam]:
    """Every exam compared with its prior (see the module docstring), in the order given.

    Parameters
    ----------
    exams
        The exams read in this run.
    priors
        Prior exams read from earlier documents (named explicitly).
    explicit
        Ids of ``exams`` that were named as priors (their images given with ``--prior``).
    """
    order = sorted(range(len(exams)), key=lambda k: (exams[k].study_date or "", k))
    done: dict[int, Exam] = {}
    for k in order:
        exam = exams[k]
        candidates = [(p, True) for p in priors]
        candidates += [(prior_from_exam(e), e.exam_id in explicit) for e in done.values()]
        prior = choose_prior(exam, candidates)
        if prior is None:
            done[k] = no_comparison(exam, rules)
        else:
            done[k] = compare_exams(exam, prior, config, rules)
    return [done[k] for k in range(len(exams))]
