"""BI-RADS assessment and follow-up: every outcome with the rules that fired and why.

The rules work on *descriptors* (morphology, distribution, number, confidence), so the
same code assesses a cluster found on an image and a radiologist's recorded description
(``calcscope evaluate --format cbis-ddsm`` without images).

Sources
-------
* Categories, their likelihood bands and management: ACR BI-RADS Atlas, 5th edition,
  2013 (category 3: <= 2 % malignant, short-interval follow-up at 6 months; 4A > 2 to
  <= 10 %; 4B > 10 to <= 50 %; 4C > 50 to < 95 %; 5: >= 95 %; 0: needs additional
  imaging evaluation, e.g. spot compression and magnification views).
* Positive predictive values per morphology and distribution: Bent CK, Bassett LW,
  D'Orsi CJ, Sayre JW, "The positive predictive value of BI-RADS microcalcification
  descriptors and final assessment categories", AJR 2010;194:1378-1383, and the atlas'
  own figures (amorphous about 21 %, coarse heterogeneous about 13 %, fine pleomorphic
  about 29 %, fine linear or fine-linear branching about 70 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from calcscope.model import Distribution, Morphology

__all__ = [
    "Category",
    "FollowUp",
    "RuleHit",
    "Assessment",
    "AssessThresholds",
    "MORPHOLOGY_PPV",
    "DISTRIBUTION_LR",
    "assess_descriptors",
    "assess_benign_macro",
    "assess_image",
    "category_from_likelihood",
]


class Category(StrEnum):
    """BI-RADS assessment category (5th edition)."""

    C0 = "0"
    C1 = "1"
    C2 = "2"
    C3 = "3"
    C4A = "4A"
    C4B = "4B"
    C4C = "4C"
    C5 = "5"

    @property
    def rank(self) -> int:
        """Order of concern: 1 < 2 < 3 < 0 < 4A < 4B < 4C < 5."""
        return _RANK[self]

    @property
    def label(self) -> str:
        return _CATEGORY_LABEL[self]


_RANK = {
    Category.C1: 0,
    Category.C2: 1,
    Category.C3: 2,
    Category.C0: 3,
    Category.C4A: 4,
    Category.C4B: 5,
    Category.C4C: 6,
    Category.C5: 7,
}

_CATEGORY_LABEL = {
    Category.C0: "incomplete: needs additional imaging evaluation",
    Category.C1: "negative",
    Category.C2: "benign",
    Category.C3: "probably benign",
    Category.C4A: "suspicious, low suspicion for malignancy",
    Category.C4B: "suspicious, moderate suspicion for malignancy",
    Category.C4C: "suspicious, high suspicion for malignancy",
    Category.C5: "highly suggestive of malignancy",
}


class FollowUp(StrEnum):
    """Recommended management."""

    ROUTINE = "routine_screening"
    SHORT_INTERVAL = "mammogram_in_6_months"
    ADDITIONAL_IMAGING = "diagnostic_mammography_spot_compression_magnification"
    BIOPSY = "biopsy"

    @property
    def label(self) -> str:
        return _FOLLOWUP_LABEL[self]


_FOLLOWUP_LABEL = {
    FollowUp.ROUTINE: "nothing beyond routine screening",
    FollowUp.SHORT_INTERVAL: "another mammogram in 6 months",
    FollowUp.ADDITIONAL_IMAGING: "diagnostic mammography with spot compression / magnification",
    FollowUp.BIOPSY: "biopsy",
}

_FOLLOWUP_OF = {
    Category.C0: FollowUp.ADDITIONAL_IMAGING,
    Category.C1: FollowUp.ROUTINE,
    Category.C2: FollowUp.ROUTINE,
    Category.C3: FollowUp.SHORT_INTERVAL,
    Category.C4A: FollowUp.BIOPSY,
    Category.C4B: FollowUp.BIOPSY,
    Category.C4C: FollowUp.BIOPSY,
    Category.C5: FollowUp.BIOPSY,
}


@dataclass(frozen=True)
class RuleHit:
    """One rule that fired: its name and the reason in a radiologist's words."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Assessment:
    category: Category
    likelihood: float  # of malignancy, 0-1
    follow_up: FollowUp
    rules: tuple[RuleHit, ...]

    @property
    def reason(self) -> str:
        return "; ".join(r.reason for r in self.rules)


@dataclass(frozen=True)
class AssessThresholds:
    """Likelihood bands of the BI-RADS categories (ACR BI-RADS Atlas, 5th ed., 2013)."""

    benign_max: float = 0.005
    probably_benign_max: float = 0.02
    c4a_max: float = 0.10
    c4b_max: float = 0.50
    c5_min: float = 0.95


#: Likelihood of malignancy of a cluster of each morphology (Bent et al. AJR 2010 and
#: the BI-RADS atlas). Typically benign morphologies are below 0.5 %.
MORPHOLOGY_PPV: dict[Morphology, float] = {
    Morphology.SKIN: 0.001,
    Morphology.VASCULAR: 0.001,
    Morphology.COARSE_POPCORN: 0.001,
    Morphology.LARGE_ROD_LIKE: 0.002,
    Morphology.RIM_EGGSHELL: 0.001,
    Morphology.LUCENT_CENTERED: 0.002,
    Morphology.DYSTROPHIC: 0.003,
    Morphology.MILK_OF_CALCIUM: 0.001,
    Morphology.SUTURE: 0.001,
    Morphology.ROUND: 0.01,
    Morphology.PUNCTATE: 0.015,
    Morphology.AMORPHOUS: 0.21,
    Morphology.COARSE_HETEROGENEOUS: 0.13,
    Morphology.FINE_PLEOMORPHIC: 0.29,
    Morphology.FINE_LINEAR: 0.70,
    Morphology.FINE_LINEAR_BRANCHING: 0.78,
}

#: Odds multipliers of each distribution relative to a grouped one (Bent et al. AJR 2010:
#: PPV diffuse ~0 %, regional ~10 %, grouped ~31 %, linear ~60 %, segmental ~62 %).
DISTRIBUTION_LR: dict[Distribution, float] = {
    Distribution.DIFFUSE: 0.05,
    Distribution.REGIONAL: 0.35,
    Distribution.GROUPED: 1.0,
    Distribution.LINEAR: 4.0,
    Distribution.SEGMENTAL: 5.0,
}


def category_from_likelihood(p: float, t: AssessThresholds | None = None) -> Category:
    """The BI-RADS category whose likelihood band holds ``p``."""
    t = t or AssessThresholds()
    if p <= t.benign_max:
        return Category.C2
    if p <= t.probably_benign_max:
        return Category.C3
    if p <= t.c4a_max:
        return Category.C4A
    if p <= t.c4b_max:
        return Category.C4B
    if p < t.c5_min:
        return Category.C4C
    return Category.C5


def _odds(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return p / (1 - p)


def _prob(o: float) -> float:
    return o / (1 + o)


def _rule_morphology(morphs: Sequence[Morphology]) -> tuple[float, RuleHit]:
    """The most suspicious recorded morphology sets the base likelihood."""
    worst = max(morphs, key=lambda m: MORPHOLOGY_PPV[m])
    p = MORPHOLOGY_PPV[worst]
    others = [m.label for m in morphs if m is not worst]
    extra = f" (with {', '.join(others)})" if others else ""
    kind = "typically benign" if worst.typically_benign else "suspicious"
    return p, RuleHit(
        "morphology",
        f"{worst.label} morphology{extra}, {kind}: about {p:.0%} malignant in published series",
    )


def _rule_distribution(dist: Distribution | None, p: float) -> tuple[float, RuleHit | None]:
    if dist is None:
        return p, None
    lr = DISTRIBUTION_LR[dist]
    q = _prob(_odds(p) * lr)
    if lr > 1:
        why = f"{dist.label} distribution, which follows a duct, raises concern"
    elif lr < 1:
        why = f"{dist.label} distribution lowers concern"
    else:
        why = f"{dist.label} distribution"
    return q, RuleHit("distribution", f"{why} (likelihood {p:.0%} -> {q:.0%})")


def _rule_classic_malignant(
    morphs: Sequence[Morphology], dist: Distribution | None
) -> RuleHit | None:
    """Fine-linear (branching) calcifications in a linear or segmental distribution.

    The BI-RADS atlas' typical picture of category 5: casting calcifications filling a
    duct and its branches (Radiology Assistant; atlas examples).
    """
    linear_morph = {Morphology.FINE_LINEAR, Morphology.FINE_LINEAR_BRANCHING} & set(morphs)
    if linear_morph and dist in (Distribution.LINEAR, Distribution.SEGMENTAL):
        m = max(linear_morph, key=lambda x: MORPHOLOGY_PPV[x])
        return RuleHit(
            "classic_malignant",
            f"{m.label} morphology in a {dist.label} distribution: casting calcifications "
            "filling a duct, highly suggestive of malignancy",
        )
    return None


def assess_descriptors(
    morphologies: Sequence[Morphology],
    distribution: Distribution | None = None,
    *,
    n_calcifications: int | None = None,
    morphology_confident: bool = True,
    thresholds: AssessThresholds | None = None,
) -> Assessment:
    """Assess one calcification finding from its BI-RADS descriptors.

    Parameters
    ----------
    morphologies
        One or more morphologies (a compound description such as "pleomorphic and fine
        linear branching" passes both); the most suspicious sets the base likelihood.
    distribution
        BI-RADS distribution, ``None`` when not recorded.
    n_calcifications
        Number of calcifications in the finding, when known.
    morphology_confident
        False when the image cannot show the shape (too few pixels per calcification):
        a suspicious finding is then category 0, additional imaging first.
    """
    t = thresholds or AssessThresholds()
    if not morphologies:
        raise ValueError("at least one morphology is needed")
    p, hit = _rule_morphology(morphologies)
    rules = [hit]
    p, dhit = _rule_distribution(distribution, p)
    if dhit:
        rules.append(dhit)
    classic = _rule_classic_malignant(morphologies, distribution)
    if classic:
        p = max(p, t.c5_min)
        rules.append(classic)
    all_benign = all(m.typically_benign for m in morphologies)
    if all_benign and distribution is Distribution.DIFFUSE:
        rules.append(
            RuleHit("diffuse_benign", "diffuse round or punctate calcifications are benign")
        )
        p = min(p, t.benign_max)
    cat = category_from_likelihood(p, t)
    if all_benign and cat not in (Category.C2, Category.C3):
        cat = Category.C3
    if all_benign and cat is Category.C3 and n_calcifications is not None and n_calcifications < 3:
        cat = Category.C2
        rules.append(RuleHit("few_benign", "fewer than 3 benign-looking calcifications"))
    if not morphology_confident and cat.rank >= Category.C3.rank:
        rules.append(
            RuleHit(
                "needs_magnification",
                "the calcifications are too small for their shape to be judged on this image: "
                "diagnostic magnification views come before any decision",
            )
        )
        cat = Category.C0
    rules.append(RuleHit("category", f"likelihood {p:.1%}: BI-RADS {cat.value} ({cat.label})"))
    return Assessment(
        category=cat, likelihood=float(p), follow_up=_FOLLOWUP_OF[cat], rules=tuple(rules)
    )


def assess_benign_macro(pattern: Morphology, reasons: Sequence[str]) -> Assessment:
    """A recognised benign macro pattern: BI-RADS 2, routine screening."""
    p = MORPHOLOGY_PPV[pattern]
    hits = [RuleHit("benign_pattern", r) for r in reasons]
    hits.append(
        RuleHit(
            "category",
            f"typically benign {pattern.label} calcification: BI-RADS 2 (benign), no biopsy",
        )
    )
    return Assessment(Category.C2, float(p), FollowUp.ROUTINE, tuple(hits))


def assess_image(findings: Sequence[Assessment]) -> Assessment:
    """Image-level assessment: the most concerning finding, or negative when none."""
    if not findings:
        return Assessment(
            Category.C1,
            0.0,
            FollowUp.ROUTINE,
            (RuleHit("negative", "no calcification finding: BI-RADS 1 (negative)"),),
        )
    worst = max(findings, key=lambda a: (a.category.rank, a.likelihood))
    return Assessment(
        worst.category,
        max(a.likelihood for a in findings),
        worst.follow_up,
        (RuleHit("worst_finding", f"most concerning finding: {worst.reason}"),),
    )
