"""BI-RADS assessment rules: table-driven cases, band edges, image-level worst finding."""

from __future__ import annotations

import itertools

import pytest

from calcscope.model import Distribution as D
from calcscope.model import Morphology as M
from calcscope.reading.assess import (
    DISTRIBUTION_LR,
    MORPHOLOGY_PPV,
    Assessment,
    AssessThresholds,
    Category,
    FollowUp,
    LikelihoodModel,
    RuleHit,
    assess_benign_macro,
    assess_descriptors,
    assess_image,
    category_from_likelihood,
)

CLEARLY_BENIGN = [
    M.SKIN,
    M.VASCULAR,
    M.COARSE_POPCORN,
    M.LARGE_ROD_LIKE,
    M.RIM_EGGSHELL,
    M.LUCENT_CENTERED,
    M.DYSTROPHIC,
    M.MILK_OF_CALCIUM,
    M.SUTURE,
]
DISTRIBUTIONS = [None, *D]


def rule_names(a: Assessment) -> list[str]:
    return [r.rule for r in a.rules]


# (morphologies, distribution, allowed categories, follow-up, a rule that must fire,
#  words its reason must hold)
CASES = [
    pytest.param(
        (M.FINE_LINEAR_BRANCHING,),
        D.LINEAR,
        {Category.C4C, Category.C5},
        FollowUp.BIOPSY,
        "classic_malignant",
        "casting calcifications filling a duct",
        id="fine-linear-branching-linear",
    ),
    pytest.param(
        (M.FINE_LINEAR,),
        D.SEGMENTAL,
        {Category.C4C, Category.C5},
        FollowUp.BIOPSY,
        "classic_malignant",
        "segmental distribution",
        id="fine-linear-segmental",
    ),
    pytest.param(
        (M.FINE_PLEOMORPHIC, M.FINE_LINEAR_BRANCHING),
        D.SEGMENTAL,
        {Category.C4C, Category.C5},
        FollowUp.BIOPSY,
        "mixed_suspicious",
        "more than one suspicious form",
        id="pleomorphic-and-branching",
    ),
    pytest.param(
        (M.AMORPHOUS,),
        D.GROUPED,
        {Category.C4A, Category.C4B},
        FollowUp.BIOPSY,
        "morphology",
        "amorphous calcifications, a suspicious form",
        id="amorphous-grouped",
    ),
    pytest.param(
        (M.FINE_PLEOMORPHIC,),
        D.GROUPED,
        {Category.C4B},
        FollowUp.BIOPSY,
        "morphology",
        "fine pleomorphic",
        id="pleomorphic-grouped",
    ),
    pytest.param(
        (M.AMORPHOUS, M.PUNCTATE),
        D.GROUPED,
        {Category.C4A, Category.C4B},
        FollowUp.BIOPSY,
        "benign_companion",
        "lower concern",
        id="amorphous-with-punctate",
    ),
    # Literature (atlas): an isolated group of punctate calcifications is probably
    # benign. CBIS-DDSM disagrees (15 of 58 grouped punctate findings malignant), and
    # the fitted table follows it: suspicious, biopsy. See assess.MORPHOLOGY_PPV.
    pytest.param(
        (M.PUNCTATE,),
        D.GROUPED,
        {Category.C4A, Category.C4B},
        FollowUp.BIOPSY,
        "morphology",
        "not reliably so when grouped",
        id="punctate-grouped",
    ),
    pytest.param(
        (M.PUNCTATE,),
        D.DIFFUSE,
        {Category.C2},
        FollowUp.ROUTINE,
        "diffuse_benign",
        "diffuse punctate calcifications are benign",
        id="punctate-diffuse",
    ),
    pytest.param(
        (M.ROUND,),
        D.GROUPED,
        {Category.C3},
        FollowUp.SHORT_INTERVAL,
        "morphology",
        "round calcifications, a typically benign form",
        id="round-grouped",
    ),
    pytest.param(
        (M.ROUND,),
        D.LINEAR,
        {Category.C3},
        FollowUp.SHORT_INTERVAL,
        "round_probably_benign",
        "at most probably benign",
        id="round-linear",
    ),
    pytest.param(
        (M.VASCULAR,),
        None,
        {Category.C2},
        FollowUp.ROUTINE,
        "typically_benign",
        "vascular calcifications",
        id="vascular",
    ),
    pytest.param(
        (M.VASCULAR,),
        D.LINEAR,
        {Category.C2},
        FollowUp.ROUTINE,
        "typically_benign",
        "whatever their distribution",
        id="vascular-linear",
    ),
    pytest.param(
        (M.ROUND, M.LUCENT_CENTERED, M.PUNCTATE),
        D.GROUPED,
        {Category.C2},
        FollowUp.ROUTINE,
        "typically_benign",
        "lucent-centred calcifications (with round and punctate)",
        id="lucent-with-round-punctate",
    ),
    pytest.param(
        (),
        D.REGIONAL,
        {Category.C0},
        FollowUp.ADDITIONAL_IMAGING,
        "no_morphology",
        "magnification views",
        id="no-morphology",
    ),
]


@pytest.mark.parametrize(("morphs", "dist", "cats", "follow_up", "rule", "words"), CASES)
def test_rules(morphs, dist, cats, follow_up, rule, words):
    a = assess_descriptors(morphs, dist)
    assert a.category in cats, a.reason
    assert a.follow_up is follow_up
    hit = next(r for r in a.rules if r.rule == rule)
    assert words in hit.reason
    assert a.rules[-1].rule == "category"
    assert f"BI-RADS {a.category.value}" in a.rules[-1].reason


@pytest.mark.parametrize(("morph", "dist"), list(itertools.product(CLEARLY_BENIGN, DISTRIBUTIONS)))
def test_typically_benign_forms_are_benign_whatever_the_distribution(morph, dist):
    a = assess_descriptors([morph], dist)
    assert a.category is Category.C2
    assert a.follow_up is FollowUp.ROUTINE
    assert a.likelihood <= AssessThresholds().benign_max


@pytest.mark.parametrize(("morph", "dist"), list(itertools.product(list(M), DISTRIBUTIONS)))
def test_every_outcome_says_why(morph, dist):
    a = assess_descriptors([morph], dist)
    assert len(a.rules) >= 2  # at least one finding rule and the category line
    assert all(isinstance(r, RuleHit) and r.rule and r.reason for r in a.rules)
    assert a.reason
    assert 0.0 <= a.likelihood <= 1.0
    if not morph.typically_benign:
        assert a.category.rank >= Category.C4A.rank
    else:
        assert a.category in (Category.C2, Category.C3) or morph is M.PUNCTATE


@pytest.mark.parametrize("morph", [m for m in M if not m.typically_benign])
def test_ductal_distributions_raise_and_diffuse_lowers(morph):
    grouped = assess_descriptors([morph], D.GROUPED).likelihood
    assert assess_descriptors([morph], D.LINEAR).likelihood > grouped
    assert assess_descriptors([morph], D.SEGMENTAL).likelihood > grouped
    assert assess_descriptors([morph], D.DIFFUSE).likelihood < grouped


def test_suspicious_forms_rise_in_the_atlas_order():
    order = [M.COARSE_HETEROGENEOUS, M.AMORPHOUS, M.FINE_PLEOMORPHIC, M.FINE_LINEAR_BRANCHING]
    ps = [MORPHOLOGY_PPV[m] for m in order]
    assert ps == sorted(ps)
    assert MORPHOLOGY_PPV[M.FINE_LINEAR] == MORPHOLOGY_PPV[M.FINE_LINEAR_BRANCHING]
    assert set(MORPHOLOGY_PPV) == set(M)
    assert set(DISTRIBUTION_LR) == set(D)
    assert DISTRIBUTION_LR[D.GROUPED] == 1.0


def test_compound_takes_the_most_suspicious_and_ignores_repeats():
    a = assess_descriptors([M.PUNCTATE, M.FINE_LINEAR_BRANCHING], D.GROUPED)
    assert "fine linear branching calcifications (with punctate)" in a.rules[0].reason
    once = assess_descriptors([M.FINE_PLEOMORPHIC], D.GROUPED)
    twice = assess_descriptors([M.FINE_PLEOMORPHIC, M.FINE_PLEOMORPHIC], D.GROUPED)
    assert once == twice


def test_benign_companion_lowers_and_second_suspicious_form_raises():
    alone = assess_descriptors([M.AMORPHOUS], D.GROUPED).likelihood
    assert assess_descriptors([M.AMORPHOUS, M.ROUND], D.GROUPED).likelihood < alone
    assert assess_descriptors([M.AMORPHOUS, M.FINE_PLEOMORPHIC], D.GROUPED).likelihood > (
        assess_descriptors([M.FINE_PLEOMORPHIC], D.GROUPED).likelihood
    )


def test_unconfident_morphology_on_a_suspicious_cluster_needs_magnification():
    a = assess_descriptors([M.FINE_PLEOMORPHIC], D.GROUPED, morphology_confident=False)
    assert a.category is Category.C0
    assert a.follow_up is FollowUp.ADDITIONAL_IMAGING
    assert "needs_magnification" in rule_names(a)
    assert "magnification views" in a.reason
    # a benign finding stays benign
    b = assess_descriptors([M.VASCULAR], D.LINEAR, morphology_confident=False)
    assert b.category is Category.C2


def test_fewer_than_three_round_calcifications_are_benign():
    a = assess_descriptors([M.ROUND], D.GROUPED, n_calcifications=2)
    assert a.category is Category.C2
    assert "few_benign" in rule_names(a)
    assert assess_descriptors([M.ROUND], D.GROUPED, n_calcifications=6).category is Category.C3


def test_literature_model_and_custom_thresholds():
    lit = assess_descriptors([M.AMORPHOUS], D.GROUPED, model=LikelihoodModel.literature())
    assert lit.likelihood == pytest.approx(0.21)
    strict = AssessThresholds(c4b_max=0.2)
    a = assess_descriptors([M.AMORPHOUS], D.GROUPED, thresholds=strict)
    assert a.category is category_from_likelihood(a.likelihood, strict)


@pytest.mark.parametrize(
    ("p", "cat"),
    [
        (0.0, Category.C2),
        (0.005, Category.C2),
        (0.0051, Category.C3),
        (0.02, Category.C3),
        (0.0201, Category.C4A),
        (0.10, Category.C4A),
        (0.1001, Category.C4B),
        (0.50, Category.C4B),
        (0.5001, Category.C4C),
        (0.9499, Category.C4C),
        (0.95, Category.C5),
        (1.0, Category.C5),
    ],
)
def test_category_band_edges(p, cat):
    assert category_from_likelihood(p) is cat


def test_category_rank_order():
    ranked = sorted(Category, key=lambda c: c.rank)
    assert [c.value for c in ranked] == ["1", "2", "3", "0", "4A", "4B", "4C", "5"]
    assert all(c.label for c in Category) and all(f.label for f in FollowUp)


def test_assess_image_picks_the_worst_finding():
    assert assess_image([]).category is Category.C1
    benign = assess_descriptors([M.VASCULAR])
    probably = assess_descriptors([M.ROUND], D.GROUPED)
    incomplete = assess_descriptors([M.FINE_PLEOMORPHIC], morphology_confident=False)
    suspicious = assess_descriptors([M.FINE_LINEAR_BRANCHING], D.LINEAR)
    img = assess_image([benign, suspicious, probably])
    assert img.category is suspicious.category
    assert img.follow_up is FollowUp.BIOPSY
    assert img.rules[0].rule == "worst_finding" and suspicious.reason in img.reason
    # category 0 outranks 3 but not 4A
    assert assess_image([probably, incomplete]).category is Category.C0
    assert assess_image([incomplete, suspicious]).category is suspicious.category
    # within one category the higher likelihood wins
    a = assess_descriptors([M.FINE_PLEOMORPHIC], D.GROUPED)
    b = assess_descriptors([M.AMORPHOUS], D.GROUPED)
    assert a.category is b.category
    assert assess_image([b, a]).likelihood == a.likelihood


def test_benign_macro_pattern():
    a = assess_benign_macro(M.COARSE_POPCORN, ["popcorn-like deposit 4 mm across"])
    assert a.category is Category.C2 and a.follow_up is FollowUp.ROUTINE
    assert a.rules[0].reason == "popcorn-like deposit 4 mm across"
    assert "no biopsy" in a.reason
