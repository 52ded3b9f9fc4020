"""BI-RADS assessment and follow-up: every outcome with the rules that fired and why.

The rules work on *descriptors* (morphology, distribution, number, confidence), so the
same code assesses a cluster found on an image and a radiologist's recorded description
(``calcscope evaluate --format cbis-ddsm`` without images,
:mod:`calcscope.evaluation.recorded_descriptors`).

How a finding is assessed (each step is one small function below, returning its outcome
and its reason):

0. ``typically_benign``: skin, vascular, coarse, rod-like, rim, lucent-centred,
   dystrophic, milk of calcium or suture forms with nothing suspicious beside them are
   benign whatever their distribution: category 2, and steps 1-6 are skipped.
   ``no_morphology``: none recorded, category 0 (magnification views first).
1. ``morphology``: the most suspicious recorded morphology gives the base likelihood of
   malignancy (:data:`MORPHOLOGY_PPV`, the likelihood of a *grouped* finding of that form).
2. ``distribution``: multiplies the odds (:data:`DISTRIBUTION_LR`, grouped = 1).
3. ``mixed_suspicious``: two or more different suspicious forms (e.g. fine pleomorphic
   with fine linear branching) multiply the odds by :data:`MIXED_SUSPICIOUS_OR`.
4. ``benign_companion``: typically benign forms recorded beside the most suspicious one
   (e.g. amorphous with punctate) multiply the odds by :data:`BENIGN_COMPANION_OR`.
5. ``classic_malignant``: fine linear (branching) calcifications in a linear or segmental
   distribution, the atlas' typical picture of ductal casting, multiply the odds by
   :data:`DUCTAL_CASTING_OR`.
6. The likelihood falls in one BI-RADS band (:class:`AssessThresholds`) which gives the
   category; then the overrides: diffuse round or punctate forms are benign
   (``diffuse_benign``); round forms alone are at most probably benign
   (``round_probably_benign``; punctate ones keep their likelihood); fewer than 3
   benign-looking calcifications are benign (``few_benign``); and a shape that the image
   cannot show sends a suspicious finding to magnification views first
   (``needs_magnification``, category 0).

Sources
-------
* Categories, their likelihood bands and management: ACR BI-RADS Atlas, 5th edition,
  2013 (category 3: <= 2 % malignant, short-interval follow-up at 6 months; 4A > 2 to
  <= 10 %; 4B > 10 to <= 50 %; 4C > 50 to < 95 %; 5: >= 95 %; 0: needs additional
  imaging evaluation, e.g. spot compression and magnification views); the Radiology
  Assistant's summary "BI-RADS for mammography and ultrasound 2013" (Radiology Assistant,
  radiologyassistant.nl) for the typically benign forms and the ductal (linear,
  segmental) distributions.
* Literature priors (:data:`LITERATURE_MORPHOLOGY_PPV`, :data:`LITERATURE_DISTRIBUTION_LR`):
  Bent CK, Bassett LW, D'Orsi CJ, Sayre JW, "The positive predictive value of BI-RADS
  microcalcification descriptors and final assessment categories", AJR 2010;194:1378-1383
  (amorphous about 21 %, coarse heterogeneous about 13 %, fine pleomorphic about 29 %,
  fine linear or fine-linear branching about 70 %; diffuse about 0 %, regional about 10 %,
  grouped about 31 %, linear about 60 %, segmental about 62 %); Burnside ES et al., "Use
  of microcalcification descriptors in BI-RADS 4th edition to stratify risk of
  malignancy", Radiology 2007;242:388-395 (22.8 % malignant among biopsied
  calcifications overall); Kim D, Kim J, Jung HK, Kim S, "Assessment of malignant risk
  stratification for microcalcifications interpreted as amorphous morphology", Eur J
  Radiol 2023;162:110795 (amorphous with coexisting punctate forms 2.8 % vs pure
  amorphous 23.3 % malignant).
* Fitted values: on the CBIS-DDSM calcification training set (Sawyer-Lee R et al., The
  Cancer Imaging Archive 2016, CC BY 3.0; 1,546 findings, 602 women), penalised towards
  the literature priors, by ``scripts/calibrate_descriptors.py``; its grouped
  cross-validation and the resulting figures are in the README. CBIS-DDSM is a
  cancer-enriched set (35 % of its calcification findings are malignant), so the fitted
  likelihoods are those of findings that came to work-up, higher than in screening.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from calcscope.model import Distribution, Morphology
from calcscope.reading.thresholds import AssessThresholds

__all__ = [
    "Category",
    "FollowUp",
    "RuleHit",
    "Assessment",
    "AssessThresholds",
    "LikelihoodModel",
    "MORPHOLOGY_PPV",
    "DISTRIBUTION_LR",
    "LITERATURE_MORPHOLOGY_PPV",
    "LITERATURE_DISTRIBUTION_LR",
    "UNSPECIFIED_PPV",
    "MIXED_SUSPICIOUS_OR",
    "BENIGN_COMPANION_OR",
    "DUCTAL_CASTING_OR",
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


# --- likelihood tables -------------------------------------------------------------------

#: Literature prior: likelihood of malignancy of a grouped finding of each morphology.
#: Suspicious forms: Bent et al. AJR 2010 (fine linear branching: the atlas' "about 70 %"
#: with the branching form a little above it). Typically benign forms: "essentially 0 %"
#: (atlas); round and punctate: under 2 % when isolated and grouped (atlas, category 3 of
#: a group of punctate calcifications).
LITERATURE_MORPHOLOGY_PPV: Mapping[Morphology, float] = {
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

#: Literature prior: odds multiplier of each distribution relative to a grouped one
#: (Bent et al. AJR 2010: diffuse ~0 %, regional ~10 %, grouped ~31 %, linear ~60 %,
#: segmental ~62 %).
LITERATURE_DISTRIBUTION_LR: Mapping[Distribution, float] = {
    Distribution.DIFFUSE: 0.05,
    Distribution.REGIONAL: 0.35,
    Distribution.GROUPED: 1.0,
    Distribution.LINEAR: 4.0,
    Distribution.SEGMENTAL: 5.0,
}

# The tables used. "fitted" = fitted on the CBIS-DDSM calcification training set,
# penalised towards the literature prior above; see scripts/calibrate_descriptors.py,
# which prints these lines.

#: Likelihood of malignancy of a grouped finding of each morphology (the most suspicious
#: recorded one).
MORPHOLOGY_PPV: Mapping[Morphology, float] = {
    **LITERATURE_MORPHOLOGY_PPV,  # typically benign forms, round: literature
    Morphology.PUNCTATE: 0.144,  # fitted (literature 1.5 %)
    Morphology.AMORPHOUS: 0.347,  # fitted (literature 21 %)
    Morphology.COARSE_HETEROGENEOUS: 0.230,  # amorphous x literature odds ratio 13/21 %
    Morphology.FINE_PLEOMORPHIC: 0.483,  # fitted (literature 29 %)
    Morphology.FINE_LINEAR: 0.733,  # = fine linear branching (one BI-RADS 5th ed. term)
    Morphology.FINE_LINEAR_BRANCHING: 0.733,  # fitted (literature 78 %)
}

#: Odds multiplier of each distribution relative to a grouped one. The fit departs most
#: from the literature for "regional": in CBIS-DDSM, suspicious forms recorded as regional
#: were more often malignant than grouped ones (fine pleomorphic: 26 of 32 findings), the
#: opposite of Bent et al.; the penalised fit follows the data, and the reason printed
#: for a regional finding says only "regional distribution" with the change it makes.
DISTRIBUTION_LR: Mapping[Distribution, float] = {
    Distribution.DIFFUSE: 0.11,  # fitted (literature 0.05)
    Distribution.REGIONAL: 2.2,  # fitted (literature 0.35; see below)
    Distribution.GROUPED: 1.0,  # reference
    Distribution.LINEAR: 3.0,  # fitted (literature 4.0)
    Distribution.SEGMENTAL: 1.9,  # fitted (literature 5.0)
}

#: Likelihood of malignancy when no morphology is recorded: calcifications that came to
#: biopsy overall (Burnside et al. Radiology 2007: 22.8 %).
UNSPECIFIED_PPV = 0.228

#: Odds multiplier for two or more different suspicious forms in one finding
#: (heterogeneous, pleomorphic calcifications). Fitted (prior 1).
MIXED_SUSPICIOUS_OR = 1.2

#: Odds multiplier when typically benign forms are recorded beside the most suspicious
#: one. Fitted (prior 0.1: Kim et al. Eur J Radiol 2023, amorphous with coexisting
#: punctate forms 2.8 % vs pure amorphous 23.3 % malignant, odds ratio about 0.1).
BENIGN_COMPANION_OR = 0.43

#: Odds multiplier of fine linear (branching) forms in a linear or segmental distribution,
#: beyond the morphology and the distribution on their own. Literature prior 1, kept:
#: fitted on CBIS-DDSM it came out below 1 (0.35; the casting form and the ductal
#: distribution say the same thing twice) without improving the cross-validated AUC, so
#: the ``classic_malignant`` rule names the picture and adds nothing to the odds.
DUCTAL_CASTING_OR = 1.0


@dataclass(frozen=True)
class LikelihoodModel:
    """The likelihood tables; the defaults are the module's tables above.

    ``scripts/calibrate_descriptors.py`` builds other instances to fit and cross-validate
    them; :meth:`literature` gives the literature priors alone.
    """

    morphology_ppv: Mapping[Morphology, float] = field(default_factory=lambda: dict(MORPHOLOGY_PPV))
    distribution_lr: Mapping[Distribution, float] = field(
        default_factory=lambda: dict(DISTRIBUTION_LR)
    )
    unspecified_ppv: float = UNSPECIFIED_PPV
    mixed_suspicious_or: float = MIXED_SUSPICIOUS_OR
    benign_companion_or: float = BENIGN_COMPANION_OR
    ductal_casting_or: float = DUCTAL_CASTING_OR

    @classmethod
    def literature(cls) -> LikelihoodModel:
        """The literature priors without any fitted value (modifiers at their priors)."""
        return cls(
            morphology_ppv=dict(LITERATURE_MORPHOLOGY_PPV),
            distribution_lr=dict(LITERATURE_DISTRIBUTION_LR),
            unspecified_ppv=UNSPECIFIED_PPV,
            mixed_suspicious_or=1.0,
            benign_companion_or=0.1,
            ductal_casting_or=1.0,
        )


_DEFAULT_MODEL = LikelihoodModel()

_DUCTAL = (Distribution.LINEAR, Distribution.SEGMENTAL)
_CASTING = (Morphology.FINE_LINEAR, Morphology.FINE_LINEAR_BRANCHING)


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


def _times(p: float, factor: float) -> float:
    """``p`` with its odds multiplied by ``factor``."""
    return _prob(_odds(p) * factor)


def _pct(p: float) -> str:
    """A likelihood in words: "48 %", "1.5 %", "0.1 %"."""
    return f"{p:.0%}" if p >= 0.095 else f"{p:.1%}"


def _labels(ms: Sequence[Morphology]) -> str:
    return " and ".join(m.label for m in ms)


# --- rules: each returns its outcome and its reason --------------------------------------


_KIND = {
    Morphology.PUNCTATE: "benign when diffuse, not reliably so when grouped",
    Morphology.ROUND: "a typically benign form",
}

#: Typically benign forms that make a finding benign whatever its distribution (atlas):
#: all of them except round and punctate, which can be suspicious in some patterns.
_CLEARLY_BENIGN = frozenset(
    m for m in Morphology if m.typically_benign and m not in (Morphology.ROUND, Morphology.PUNCTATE)
)


def _rule_morphology(
    morphs: Sequence[Morphology], model: LikelihoodModel
) -> tuple[float, Morphology, RuleHit]:
    """The most suspicious recorded morphology sets the base likelihood."""
    worst = max(morphs, key=lambda m: model.morphology_ppv[m])
    p = model.morphology_ppv[worst]
    kind = _KIND.get(worst, "a typically benign form" if worst.typically_benign else "")
    kind = kind or "a suspicious form"
    others = [m for m in morphs if m is not worst]
    extra = f" (with {_labels(others)})" if others else ""
    return (
        p,
        worst,
        RuleHit(
            "morphology",
            f"{worst.label} calcifications{extra}, {kind}: about {_pct(p)} of grouped ones "
            "are malignant",
        ),
    )


def _rule_distribution(
    dist: Distribution | None, p: float, model: LikelihoodModel
) -> tuple[float, RuleHit | None]:
    """The distribution multiplies the odds: ductal (linear, segmental) raise concern."""
    if dist is None:
        return p, None
    lr = model.distribution_lr[dist]
    q = _times(p, lr)
    if dist in _DUCTAL:
        why = f"{dist.label} distribution, which follows a duct, raises concern"
    elif lr < 1:
        why = f"{dist.label} distribution, more often benign, lowers concern"
    elif lr == 1:
        return q, RuleHit("distribution", f"{dist.label} distribution (the reference)")
    else:
        why = f"{dist.label} distribution"
    return q, RuleHit("distribution", f"{why} ({_pct(p)} -> {_pct(q)})")


def _rule_mixed_suspicious(
    morphs: Sequence[Morphology], p: float, model: LikelihoodModel
) -> tuple[float, RuleHit | None]:
    """Two or more different suspicious forms in one finding raise concern."""
    suspicious = [m for m in morphs if not m.typically_benign]
    if len(suspicious) < 2 or model.mixed_suspicious_or == 1.0:
        return p, None
    q = _times(p, model.mixed_suspicious_or)
    return q, RuleHit(
        "mixed_suspicious",
        f"more than one suspicious form ({_labels(suspicious)}): heterogeneous "
        f"calcifications ({_pct(p)} -> {_pct(q)})",
    )


def _rule_benign_companion(
    morphs: Sequence[Morphology], worst: Morphology, p: float, model: LikelihoodModel
) -> tuple[float, RuleHit | None]:
    """Typically benign forms beside the most suspicious one lower concern."""
    benign = [m for m in morphs if m.typically_benign and m is not worst]
    if not benign or model.benign_companion_or == 1.0:
        return p, None
    q = _times(p, model.benign_companion_or)
    return q, RuleHit(
        "benign_companion",
        f"{worst.label} forms mixed with typically benign {_labels(benign)} calcifications "
        f"lower concern ({_pct(p)} -> {_pct(q)})",
    )


def _rule_classic_malignant(
    morphs: Sequence[Morphology], dist: Distribution | None, p: float, model: LikelihoodModel
) -> tuple[float, RuleHit | None]:
    """Fine-linear (branching) calcifications in a linear or segmental distribution.

    The BI-RADS atlas' typical picture of malignancy: casting calcifications filling a
    duct and its branches (Radiology Assistant; atlas examples of category 5).
    """
    casting = [m for m in _CASTING if m in morphs]
    if not casting or dist not in _DUCTAL:
        return p, None
    q = _times(p, model.ductal_casting_or)
    assert dist is not None
    return q, RuleHit(
        "classic_malignant",
        f"{casting[-1].label} calcifications in a {dist.label} distribution: casting "
        f"calcifications filling a duct, the classic picture of malignancy ({_pct(q)})",
    )


def _rule_no_morphology(
    dist: Distribution | None, model: LikelihoodModel
) -> tuple[float, list[RuleHit]]:
    """No morphology recorded: the form must be seen on magnification views first."""
    p = model.unspecified_ppv
    hits = [
        RuleHit(
            "no_morphology",
            "the form of the calcifications is not described: magnification views are "
            "needed to characterise them before a final assessment",
        )
    ]
    p, dhit = _rule_distribution(dist, p, model)
    if dhit:
        hits.append(dhit)
    return p, hits


def _rule_diffuse_benign(
    morphs: Sequence[Morphology], dist: Distribution | None, p: float, t: AssessThresholds
) -> tuple[float, RuleHit | None]:
    """Diffuse typically benign calcifications (round, punctate) are benign (atlas)."""
    if dist is not Distribution.DIFFUSE or not all(m.typically_benign for m in morphs):
        return p, None
    return min(p, t.benign_max), RuleHit(
        "diffuse_benign", f"diffuse {_labels(morphs)} calcifications are benign"
    )


def _rule_typically_benign(
    morphs: Sequence[Morphology], model: LikelihoodModel, t: AssessThresholds
) -> tuple[float, RuleHit] | None:
    """Skin, vascular, coarse, rod-like, rim, lucent-centred, dystrophic, milk of calcium
    or suture calcifications, with nothing suspicious beside them, are benign whatever
    their distribution (atlas: typically benign; vascular calcifications *are* linear).
    Round or punctate forms beside them do not change that.
    """
    clear = [m for m in morphs if m in _CLEARLY_BENIGN]
    if not clear or not all(m.typically_benign for m in morphs):
        return None
    p = min(max(model.morphology_ppv[m] for m in clear), t.benign_max)
    others = [m for m in morphs if m not in clear]
    extra = f" (with {_labels(others)})" if others else ""
    return p, RuleHit(
        "typically_benign",
        f"{_labels(clear)} calcifications{extra}: typically benign forms, benign whatever "
        f"their distribution (about {_pct(p)} malignant)",
    )


def _rule_round_probably_benign(
    morphs: Sequence[Morphology], p: float, t: AssessThresholds
) -> tuple[float, RuleHit | None]:
    """Round calcifications (without punctate ones) are at most probably benign (atlas).

    Punctate forms keep their likelihood: a group of punctate calcifications that is new,
    increasing, linear or segmental warrants biopsy (atlas; Radiology Assistant).
    """
    if set(morphs) != {Morphology.ROUND} or p <= t.probably_benign_max:
        return p, None
    return t.probably_benign_max, RuleHit(
        "round_probably_benign",
        "round calcifications are typically benign: at most probably benign",
    )


def _likelihood(
    morphs: Sequence[Morphology],
    distribution: Distribution | None,
    mdl: LikelihoodModel,
    t: AssessThresholds,
) -> tuple[float, list[RuleHit]]:
    """Likelihood of malignancy of the (non-empty) ``morphs`` in ``distribution``, and the
    rules that fired: typically benign forms alone, else the most suspicious morphology
    adjusted by each rule in turn."""
    benign = _rule_typically_benign(morphs, mdl, t)
    if benign is not None:
        p, hit = benign
        return p, [hit]
    p, worst, hit = _rule_morphology(morphs, mdl)
    rules = [hit]
    p, h = _rule_distribution(distribution, p, mdl)
    rules += [h] if h else []
    p, h = _rule_mixed_suspicious(morphs, p, mdl)
    rules += [h] if h else []
    p, h = _rule_benign_companion(morphs, worst, p, mdl)
    rules += [h] if h else []
    p, h = _rule_classic_malignant(morphs, distribution, p, mdl)
    rules += [h] if h else []
    p, h = _rule_diffuse_benign(morphs, distribution, p, t)
    rules += [h] if h else []
    p, h = _rule_round_probably_benign(morphs, p, t)
    rules += [h] if h else []
    return p, rules


def _adjusted_category(
    cat: Category,
    morphs: Sequence[Morphology],
    n_calcifications: int | None,
    *,
    morphology_confident: bool,
    detection_confident: bool,
) -> tuple[Category, list[RuleHit]]:
    """The category of the likelihood, adjusted: fewer than 3 benign-looking calcifications
    are benign (2, not 3); a finding of 3 or above whose shape cannot be judged, or whose
    detection is unsure, is 0 (additional imaging first). Returns the rules that fired."""
    rules: list[RuleHit] = []
    all_benign = all(m.typically_benign for m in morphs)
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
    elif not detection_confident and cat.rank >= Category.C3.rank:
        rules.append(
            RuleHit(
                "uncertain_detection",
                "the detector is not sure these specks are calcifications (possible cluster): "
                "diagnostic mammography with magnification views to confirm them first",
            )
        )
        cat = Category.C0
    return cat, rules


def assess_descriptors(
    morphologies: Sequence[Morphology],
    distribution: Distribution | None = None,
    *,
    n_calcifications: int | None = None,
    morphology_confident: bool = True,
    detection_confident: bool = True,
    thresholds: AssessThresholds | None = None,
    model: LikelihoodModel | None = None,
) -> Assessment:
    """Assess one calcification finding from its BI-RADS descriptors.

    Parameters
    ----------
    morphologies
        The recorded morphologies (a compound description such as "pleomorphic and fine
        linear branching" passes both); the most suspicious sets the base likelihood.
        Empty when none was recorded: category 0, magnification views first.
    distribution
        BI-RADS distribution, ``None`` when not recorded.
    n_calcifications
        Number of calcifications in the finding, when known.
    detection_confident
        False when the detector is unsure the finding is real (a low cluster score): a
        finding that would need follow-up is then category 0, confirmation first.
    morphology_confident
        False when the image cannot show the shape (too few pixels per calcification):
        a finding of category 3 or above is then category 0, additional imaging first.
    thresholds
        Likelihood bands of the categories.
    model
        Likelihood tables; the module's tables by default.

    Returns
    -------
    Assessment
        Category, likelihood of malignancy (0-1), follow-up, and the rules that fired.
    """
    t = thresholds or AssessThresholds()
    mdl = model or _DEFAULT_MODEL
    morphs = tuple(dict.fromkeys(morphologies))
    if not morphs:
        p, rules = _rule_no_morphology(distribution, mdl)
        cat = Category.C0
        rules.append(RuleHit("category", f"likelihood {p:.1%}: BI-RADS {cat.value} ({cat.label})"))
        return Assessment(cat, float(p), _FOLLOWUP_OF[cat], tuple(rules))

    p, rules = _likelihood(morphs, distribution, mdl, t)
    cat, adjusted = _adjusted_category(
        category_from_likelihood(p, t),
        morphs,
        n_calcifications,
        morphology_confident=morphology_confident,
        detection_confident=detection_confident,
    )
    rules += adjusted
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
