"""Fit and cross-validate the likelihood tables of ``calcscope.reading.assess`` on CBIS-DDSM.

Usage::

    python scripts/calibrate_descriptors.py \
        [--csv ../shared/data/cbis-ddsm/calc_case_description_train_set.csv] \
        [--figures figures.md] [--folds 5] [--seed 0]

What it does
------------
The likelihood of malignancy of a finding is a sum of log-odds terms (see the module
docstring of :mod:`calcscope.reading.assess`)::

    logit p = logit MORPHOLOGY_PPV[most suspicious form] + log DISTRIBUTION_LR[distribution]
              + log MIXED_SUSPICIOUS_OR  (two or more different suspicious forms)
              + log BENIGN_COMPANION_OR  (typically benign forms beside it)
              + log DUCTAL_CASTING_OR    (fine linear forms in a linear/segmental distribution)

Ten of these numbers are fitted: the grouped likelihood of punctate, amorphous, fine
pleomorphic and fine linear branching forms, the four non-grouped distribution
multipliers, and the mixed-suspicious and benign-companion multipliers.
``DUCTAL_CASTING_OR`` stays at 1: fitted, it came out below 1 (the fine linear form and
the ductal distribution say the same thing twice) without improving the cross-validated
AUC, so the rule only names the classic picture. The fit is a logistic regression with an L2 penalty
pulling every number towards its literature prior (``LITERATURE_*`` in ``assess.py``);
the penalty weight is chosen by grouped cross-validation on the training part. Other
forms keep their literature values (the typically benign forms are capped at category 3
by a rule anyway). Rows enter the fit when their most suspicious form is a fitted one and
a distribution is recorded (a missing distribution is *not* used as evidence: in
CBIS-DDSM it marks findings the radiologist already called benign).

Figures are reported twice:

* cross-validated: 5-fold cross-validation grouped by patient (a woman's findings are
  all in one fold), stratified by pathology; every finding is assessed by tables fitted
  on the other folds, through :func:`calcscope.reading.assess.assess_descriptors` itself;
* full data: the tables in ``assess.py`` (fitted on all rows, rounded), on all rows.

It also prints the table lines for ``assess.py``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.model_selection import StratifiedGroupKFold

from calcscope.evaluation.recorded_descriptors import (
    CategoryRate,
    DescriptorEvaluation,
    DescriptorRow,
    evaluate_assessments,
    read_cbis_calc_csv,
    roc_auc,
)
from calcscope.model import Distribution, Morphology
from calcscope.reading.assess import (
    LITERATURE_DISTRIBUTION_LR,
    LITERATURE_MORPHOLOGY_PPV,
    Assessment,
    LikelihoodModel,
    assess_descriptors,
)

DEFAULT_CSV = (
    Path(__file__).resolve().parents[2]
    / "shared/data/cbis-ddsm/calc_case_description_train_set.csv"
)

FITTED_MORPHS = (
    Morphology.PUNCTATE,
    Morphology.AMORPHOUS,
    Morphology.FINE_PLEOMORPHIC,
    Morphology.FINE_LINEAR_BRANCHING,
)
FITTED_DISTS = (
    Distribution.DIFFUSE,
    Distribution.REGIONAL,
    Distribution.LINEAR,
    Distribution.SEGMENTAL,
)
MODIFIERS = ("mixed_suspicious_or", "benign_companion_or")
MODIFIER_PRIOR = {"mixed_suspicious_or": 1.0, "benign_companion_or": 0.1}
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def names() -> list[str]:
    return (
        [f"ppv:{m.name}" for m in FITTED_MORPHS]
        + [f"lr:{d.name}" for d in FITTED_DISTS]
        + list(MODIFIERS)
    )


def prior_theta() -> np.ndarray:
    return np.array(
        [logit(LITERATURE_MORPHOLOGY_PPV[m]) for m in FITTED_MORPHS]
        + [math.log(LITERATURE_DISTRIBUTION_LR[d]) for d in FITTED_DISTS]
        + [math.log(MODIFIER_PRIOR[k]) for k in MODIFIERS]
    )


def worst_form(ms: Sequence[Morphology]) -> Morphology:
    # the literature order; the fit is checked to keep it (see check_order)
    return max(ms, key=lambda m: LITERATURE_MORPHOLOGY_PPV[m])


def in_fit(r: DescriptorRow) -> bool:
    if not r.morphologies or r.distribution is None:
        return False
    if worst_form(r.morphologies) not in FITTED_MORPHS:
        return False
    # rows whose likelihood a benign override sets (diffuse_benign, benign_form)
    if all(m.typically_benign for m in r.morphologies):
        plain = {Morphology.PUNCTATE, Morphology.ROUND}
        if r.distribution is Distribution.DIFFUSE or not set(r.morphologies) <= plain:
            return False
    return True


def design(rows: Sequence[DescriptorRow]) -> np.ndarray:
    """One row per finding, one column per fitted number: 1 where its term applies."""
    x = np.zeros((len(rows), len(names())))
    nm, nd = len(FITTED_MORPHS), len(FITTED_DISTS)
    for i, r in enumerate(rows):
        ms = r.morphologies
        w = worst_form(ms)
        x[i, FITTED_MORPHS.index(w)] = 1
        if r.distribution in FITTED_DISTS:
            x[i, nm + FITTED_DISTS.index(r.distribution)] = 1
        if sum(not m.typically_benign for m in ms) >= 2:
            x[i, nm + nd] = 1
        if any(m.typically_benign and m is not w for m in ms):
            x[i, nm + nd + 1] = 1
    return x


def fit(x: np.ndarray, y: np.ndarray, lam: float, free: np.ndarray | None = None) -> np.ndarray:
    """Penalised logistic regression: mean log-loss + lam/n * |theta - prior|^2."""
    theta0 = prior_theta()
    free = np.ones(len(theta0), bool) if free is None else free
    n = len(y)

    def loss(t_free: np.ndarray) -> tuple[float, np.ndarray]:
        theta = theta0.copy()
        theta[free] = t_free
        z = x @ theta
        p = 1 / (1 + np.exp(-z))
        ll = np.logaddexp(0, z) - y * z
        d = theta - theta0
        val = ll.sum() / n + lam / n * (d @ d)
        g = x.T @ (p - y) / n + 2 * lam / n * d
        return float(val), g[free]

    res = minimize(loss, theta0[free], jac=True, method="L-BFGS-B")
    theta = theta0.copy()
    theta[free] = res.x
    return theta


def model_from(theta: np.ndarray, *, rounded: bool = False) -> LikelihoodModel:
    nm, nd = len(FITTED_MORPHS), len(FITTED_DISTS)

    def sig(z: float) -> float:
        v = 1 / (1 + math.exp(-z))
        return round(v, 3) if rounded else v

    def ex(z: float) -> float:
        v = math.exp(z)
        return float(f"{v:.2g}") if rounded else v

    ppv = dict(LITERATURE_MORPHOLOGY_PPV)
    for i, m in enumerate(FITTED_MORPHS):
        ppv[m] = sig(theta[i])
    # coarse heterogeneous: amorphous times the literature odds ratio of the two;
    # fine linear: the same BI-RADS 5th edition descriptor as fine linear branching
    lit = LITERATURE_MORPHOLOGY_PPV
    ch = (
        theta[FITTED_MORPHS.index(Morphology.AMORPHOUS)]
        + logit(lit[Morphology.COARSE_HETEROGENEOUS])
        - logit(lit[Morphology.AMORPHOUS])
    )
    ppv[Morphology.COARSE_HETEROGENEOUS] = sig(ch)
    ppv[Morphology.FINE_LINEAR] = ppv[Morphology.FINE_LINEAR_BRANCHING]
    lr = dict(LITERATURE_DISTRIBUTION_LR)
    for j, d in enumerate(FITTED_DISTS):
        lr[d] = ex(theta[nm + j])
    mods = {k: ex(theta[nm + nd + k_i]) for k_i, k in enumerate(MODIFIERS)}
    return LikelihoodModel(morphology_ppv=ppv, distribution_lr=lr, ductal_casting_or=1.0, **mods)


def check_order(model: LikelihoodModel) -> None:
    order = sorted(LITERATURE_MORPHOLOGY_PPV, key=LITERATURE_MORPHOLOGY_PPV.__getitem__)
    vals = [model.morphology_ppv[m] for m in order]
    if any(a > b for a, b in zip(vals, vals[1:], strict=False)):
        print("warning: the fit changed the order of suspicion of the forms", file=sys.stderr)


def choose_lambda(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> float:
    """The penalty weight with the least grouped-CV log-loss on these rows."""
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    splits = list(cv.split(x, y, groups))
    best, best_loss = LAMBDAS[0], math.inf
    for lam in LAMBDAS:
        tot = 0.0
        for tr, te in splits:
            th = fit(x[tr], y[tr], lam)
            z = x[te] @ th
            tot += float((np.logaddexp(0, z) - y[te] * z).sum())
        if tot < best_loss:
            best, best_loss = lam, tot
    return best


@dataclass
class Variant:
    name: str
    free: np.ndarray | None  # which numbers are fitted; None: all; empty: literature only


def cross_validate(
    rows: list[DescriptorRow], variant: Variant, folds: int, seed: int
) -> tuple[DescriptorEvaluation, list[float], list[Assessment]]:
    y_all = np.array([r.malignant for r in rows], float)
    groups = np.array([r.patient_id for r in rows])
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out: list[Assessment | None] = [None] * len(rows)
    fold_auc = []
    for tr, te in cv.split(np.zeros(len(rows)), y_all, groups):
        train = [rows[i] for i in tr if in_fit(rows[i])]
        if variant.free is not None and not variant.free.any():
            model = LikelihoodModel.literature()
        else:
            x = design(train)
            y = np.array([r.malignant for r in train], float)
            g = np.array([r.patient_id for r in train])
            lam = choose_lambda(x, y, g, seed)
            model = model_from(fit(x, y, lam, variant.free), rounded=True)
        test = [rows[i] for i in te]
        a = [assess_descriptors(r.morphologies, r.distribution, model=model) for r in test]
        for i, ai in zip(te, a, strict=True):
            out[i] = ai
        fold_auc.append(evaluate_assessments(test, a).auc)
    done = [a for a in out if a is not None]
    return evaluate_assessments(rows, done), fold_auc, done


def per_category_md(ev: DescriptorEvaluation) -> str:
    return ", ".join(f"{c.category}: {c.n_malignant}/{c.n} ({c.rate:.1%})" for c in ev.per_category)


def table_lines(model: LikelihoodModel, lam: float) -> str:
    lit = LITERATURE_MORPHOLOGY_PPV
    lines = [f"# fitted with penalty weight {lam:g}"]
    for m in FITTED_MORPHS:
        lines.append(
            f"    Morphology.{m.name}: {model.morphology_ppv[m]:.3f},"
            f"  # fitted (literature {lit[m]:.1%})"
        )
    lines.append(
        f"    Morphology.COARSE_HETEROGENEOUS: "
        f"{model.morphology_ppv[Morphology.COARSE_HETEROGENEOUS]:.3f},"
    )
    for d in FITTED_DISTS:
        lines.append(
            f"    Distribution.{d.name}: {model.distribution_lr[d]:.2g},"
            f"  # fitted (literature {LITERATURE_DISTRIBUTION_LR[d]:g})"
        )
    for k in MODIFIERS:
        lines.append(f"{k.upper()} = {getattr(model, k):.2g}  # prior {MODIFIER_PRIOR[k]:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--figures", type=Path, help="write the figures (Markdown) here")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rows = read_cbis_calc_csv(args.csv)
    fit_rows = [r for r in rows if in_fit(r)]
    x = design(fit_rows)
    y = np.array([r.malignant for r in fit_rows], float)
    g = np.array([r.patient_id for r in fit_rows])
    lam = choose_lambda(x, y, g, args.seed)
    full = model_from(fit(x, y, lam), rounded=True)
    check_order(full)
    print("== tables fitted on all rows (paste into assess.py) ==")
    print(table_lines(full, lam))

    k = len(names())
    nm = len(FITTED_MORPHS) + len(FITTED_DISTS)
    recal = np.zeros(k, bool)
    recal[:nm] = True
    variants = [
        Variant("literature priors only", np.zeros(k, bool)),
        Variant("morphology and distribution fitted, no modifiers", recal),
        Variant("all 10 numbers fitted (the rules in assess.py)", None),
    ]
    md = [
        "| likelihood tables | kappa | our AUC | recorded AUC | per-fold AUC |",
        "|---|---|---|---|---|",
    ]
    cv_final: DescriptorEvaluation | None = None
    for v in variants:
        ev, fold_auc, _ = cross_validate(rows, v, args.folds, args.seed)
        md.append(
            f"| {v.name} | {ev.kappa:.3f} | {ev.auc:.3f} | {ev.recorded_auc:.3f} | "
            f"{np.mean(fold_auc):.3f} ± {np.std(fold_auc):.3f} |"
        )
        cv_final = ev
        print(f"\n== cross-validated: {v.name} ==")
        print(f"kappa {ev.kappa:.3f}  AUC {ev.auc:.3f}  recorded AUC {ev.recorded_auc:.3f}")
        print(per_category_md(ev))
    assert cv_final is not None

    # the module's own tables, on all rows
    module_model = LikelihoodModel()
    same = (
        all(abs(module_model.morphology_ppv[m] - full.morphology_ppv[m]) < 1e-9 for m in Morphology)
        and all(abs(getattr(module_model, k_) - getattr(full, k_)) < 1e-9 for k_ in MODIFIERS)
        and all(
            abs(module_model.distribution_lr[d] - full.distribution_lr[d]) < 1e-9
            for d in Distribution
        )
    )
    if not same:
        print(
            "\nnote: assess.py's tables differ from this fit; paste the lines above",
            file=sys.stderr,
        )
    a_full = [assess_descriptors(r.morphologies, r.distribution) for r in rows]
    ev_full = evaluate_assessments(rows, a_full)
    print("\n== full data, assess.py tables ==")
    print(f"kappa {ev_full.kappa:.3f}  AUC {ev_full.auc:.3f}  recorded {ev_full.recorded_auc:.3f}")
    print(per_category_md(ev_full))

    other = [
        (sd, cross_validate(rows, variants[-1], args.folds, sd)[0])
        for sd in (args.seed + 1, args.seed + 2)
    ]
    figures = _figures_md(args, rows, md, cv_final, ev_full, other)
    print("\n" + figures)
    if args.figures:
        args.figures.write_text(figures, encoding="utf-8")
    return 0


def _cell(c: CategoryRate | None) -> str:
    return "none" if c is None else f"{c.n_malignant}/{c.n} ({c.rate:.1%})"


def _cat_table(cv: DescriptorEvaluation, full: DescriptorEvaluation) -> list[str]:
    rec = {c.category: c for c in full.per_recorded}
    lines = [
        "| category | ours, cross-validated | ours, full data | radiologists (recorded) |",
        "|---|---|---|---|",
    ]
    for cat in ("2", "3", "0", "4A", "4B", "4C", "5"):
        if cat.startswith("4"):
            rec_cell = f"{_cell(rec.get('4'))}, all of 4" if cat == "4A" else "(in 4)"
        else:
            rec_cell = _cell(rec.get(cat))
        lines.append(
            f"| {cat} | {_cell(cv.rate_of(cat))} | {_cell(full.rate_of(cat))} | {rec_cell} |"
        )
    return lines


def _figures_md(
    args: argparse.Namespace,
    rows: list[DescriptorRow],
    md: list[str],
    cv: DescriptorEvaluation,
    full: DescriptorEvaluation,
    other_seeds: list[tuple[int, DescriptorEvaluation]],
) -> str:
    n_pat = len({r.patient_id for r in rows})
    y = [r.malignant for r in rows]
    numeric = roc_auc(y, [float(r.recorded_assessment[:1]) for r in rows])
    seeds = ", ".join(f"{e.auc:.3f} (seed {s})" for s, e in other_seeds)
    parts = [
        "### Assessment rules against radiologists' calls (CBIS-DDSM descriptors)",
        "",
        "Data: CBIS-DDSM calcification training set (Sawyer-Lee R et al., The Cancer Imaging "
        f"Archive 2016, CC BY 3.0): {len(rows)} findings (one row per finding and view), "
        f"{sum(y)} malignant, {n_pat} women. Our category and likelihood come from the "
        "recorded calc type and distribution only, through `calcscope.reading.assess`. "
        f"Cross-validated: {args.folds}-fold, grouped by patient, stratified by pathology "
        f"(seed {args.seed}); each finding is assessed with tables fitted on the other folds. "
        "Kappa: linearly weighted, scale of concern 1 < 2 < 3 < 0 < 4 < 5 (our 4A/4B/4C = 4). "
        "AUC: malignant vs benign (BENIGN and BENIGN_WITHOUT_CALLBACK); the recorded "
        "assessment is scored on the same scale of concern (on the plain 0-5 scale, with 0 "
        f"lowest, its AUC is {numeric:.3f}).",
        "",
        *md,
        "",
        f"Other fold seeds, final tables, cross-validated AUC: {seeds}.",
        "",
        f"Full data (tables in `assess.py`, fitted on all rows): kappa {full.kappa:.3f}, "
        f"our AUC {full.auc:.3f}, recorded AUC {full.recorded_auc:.3f}.",
        "",
        "Malignancy per category (malignant / findings):",
        "",
        *_cat_table(cv, full),
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
