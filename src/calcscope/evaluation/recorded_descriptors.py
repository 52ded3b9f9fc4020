"""Recorded BI-RADS descriptors: parse them, assess them, compare with the radiologists.

The CBIS-DDSM calcification table (Sawyer-Lee R et al., The Cancer Imaging Archive, 2016;
CC BY 3.0) records, per calcification finding and image, the radiologist's morphology
("calc type"), distribution, BI-RADS assessment and the pathology. This module runs those
recorded descriptors through :func:`calcscope.reading.assess.assess_descriptors`, the same rules
that assess clusters found on images, and measures the agreement:

* ``kappa``: linearly weighted Cohen's kappa between our category and the recorded
  assessment on the ordinal scale of concern ``1 < 2 < 3 < 0 < 4 < 5`` (the order of
  :attr:`calcscope.reading.assess.Category.rank`: category 0, "needs additional imaging", sits
  between probably benign and suspicious). Our 4A, 4B and 4C count as 4 because the
  recorded DDSM assessments have no subcategories.
* ``auc``: ROC AUC of our likelihood of malignancy against pathology (MALIGNANT = 1,
  BENIGN and BENIGN_WITHOUT_CALLBACK = 0); ``recorded_auc``: the same for the recorded
  assessment, scored on the same ordinal scale, on the same rows.
* the malignancy rate per category, ours and recorded.

CSV quirks handled: CRLF line ends, newlines inside quoted path fields (read with the
:mod:`csv` module and ``newline=""``), compound values joined with ``-``
(``PLEOMORPHIC-FINE_LINEAR_BRANCHING``), both ``LUCENT_CENTER`` and ``LUCENT_CENTERED``,
and ``NA`` for a missing value.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from calcscope.errors import InputError, UnreadableFileError
from calcscope.model import Distribution, Morphology
from calcscope.reading.assess import Assessment, AssessThresholds, Category, assess_descriptors

__all__ = [
    "CALC_TYPE_TOKENS",
    "DISTRIBUTION_TOKENS",
    "DescriptorRow",
    "CategoryRate",
    "DescriptorEvaluation",
    "parse_calc_type",
    "parse_distribution",
    "read_cbis_calc_csv",
    "assess_row",
    "evaluate_assessments",
    "roc_auc",
    "weighted_kappa",
    "assess_cbis_csv",
    "format_evaluation",
    "OUTPUT_COLUMNS",
    "CONCERN_ORDER",
]

#: CBIS-DDSM / DDSM calc type tokens and their BI-RADS 5th edition morphology. DDSM used
#: the BI-RADS lexicon of its time (1990s): "pleomorphic" is today's fine pleomorphic,
#: "coarse" the typically benign coarse or popcorn-like type (not the suspicious coarse
#: heterogeneous one), "round and regular" is round, "lucent center" lucent-centred.
#: A few 5th-edition spellings are accepted as well.
CALC_TYPE_TOKENS: dict[str, Morphology] = {
    "AMORPHOUS": Morphology.AMORPHOUS,
    "PLEOMORPHIC": Morphology.FINE_PLEOMORPHIC,
    "FINE_PLEOMORPHIC": Morphology.FINE_PLEOMORPHIC,
    "FINE_LINEAR_BRANCHING": Morphology.FINE_LINEAR_BRANCHING,
    "FINE_LINEAR": Morphology.FINE_LINEAR,
    "COARSE_HETEROGENEOUS": Morphology.COARSE_HETEROGENEOUS,
    "PUNCTATE": Morphology.PUNCTATE,
    "ROUND_AND_REGULAR": Morphology.ROUND,
    "ROUND": Morphology.ROUND,
    "LUCENT_CENTER": Morphology.LUCENT_CENTERED,
    "LUCENT_CENTERED": Morphology.LUCENT_CENTERED,
    "VASCULAR": Morphology.VASCULAR,
    "COARSE": Morphology.COARSE_POPCORN,
    "POPCORN": Morphology.COARSE_POPCORN,
    "DYSTROPHIC": Morphology.DYSTROPHIC,
    "EGGSHELL": Morphology.RIM_EGGSHELL,
    "RIM": Morphology.RIM_EGGSHELL,
    "MILK_OF_CALCIUM": Morphology.MILK_OF_CALCIUM,
    "SKIN": Morphology.SKIN,
    "LARGE_RODLIKE": Morphology.LARGE_ROD_LIKE,
    "LARGE_ROD_LIKE": Morphology.LARGE_ROD_LIKE,
    "SUTURE": Morphology.SUTURE,
}

#: CBIS-DDSM calc distribution tokens. BI-RADS 5th edition renamed "clustered" to
#: "grouped"; DDSM's "diffusely scattered" is today's "diffuse".
DISTRIBUTION_TOKENS: dict[str, Distribution] = {
    "CLUSTERED": Distribution.GROUPED,
    "GROUPED": Distribution.GROUPED,
    "DIFFUSELY_SCATTERED": Distribution.DIFFUSE,
    "DIFFUSE": Distribution.DIFFUSE,
    "SCATTERED": Distribution.DIFFUSE,
    "REGIONAL": Distribution.REGIONAL,
    "LINEAR": Distribution.LINEAR,
    "SEGMENTAL": Distribution.SEGMENTAL,
}

#: Distributions from least to most suspicious (BI-RADS atlas; Bent et al. AJR 2010:
#: diffuse ~0 %, regional ~10 %, grouped ~31 %, segmental and linear ~60 % malignant;
#: linear is ranked above segmental as in Liberman et al. AJR 1998 for fine-linear
#: casting in one duct). A compound value keeps the most suspicious.
_DISTRIBUTION_ORDER = (
    Distribution.DIFFUSE,
    Distribution.REGIONAL,
    Distribution.GROUPED,
    Distribution.SEGMENTAL,
    Distribution.LINEAR,
)

_MISSING = {"", "NA", "N/A", "NAN", "NONE"}

#: Ordinal scale of concern used for kappa and for the AUC of recorded assessments.
CONCERN_ORDER: tuple[str, ...] = ("1", "2", "3", "0", "4", "5")

#: Columns of ``descriptor_assessment.csv``, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "abnormality_id",
    "pathology",
    "recorded_assessment",
    "calc_type",
    "calc_distribution",
    "category",
    "likelihood",
    "follow_up",
    "reason",
)

_PATHOLOGY_MALIGNANT = {"MALIGNANT": True, "BENIGN": False, "BENIGN_WITHOUT_CALLBACK": False}


def _tokens(s: str | None) -> list[str]:
    text = (s or "").strip().upper().replace(" ", "_")
    if text in _MISSING:
        return []
    return [t for t in (p.strip() for p in text.split("-")) if t and t not in _MISSING]


def parse_calc_type(s: str | None, *, strict: bool = True) -> tuple[Morphology, ...]:
    """Morphologies of a CBIS-DDSM "calc type" value, distinct, in recorded order.

    ``"PLEOMORPHIC-FINE_LINEAR_BRANCHING"`` gives ``(FINE_PLEOMORPHIC,
    FINE_LINEAR_BRANCHING)``; ``"NA"`` or an empty value gives ``()``. An unknown token
    raises :class:`ValueError`, or is skipped when ``strict`` is false.
    """
    out: list[Morphology] = []
    for tok in _tokens(s):
        m = CALC_TYPE_TOKENS.get(tok)
        if m is None:
            if strict:
                raise ValueError(f"unknown calc type {tok!r} in {s!r}")
            continue
        if m not in out:
            out.append(m)
    return tuple(out)


def parse_distribution(s: str | None, *, strict: bool = True) -> Distribution | None:
    """BI-RADS distribution of a CBIS-DDSM "calc distribution" value.

    ``CLUSTERED`` is "grouped" (BI-RADS 5th ed.); a compound such as
    ``"CLUSTERED-LINEAR"`` gives the most suspicious of its parts (linear); ``"NA"``
    gives ``None``. An unknown token raises :class:`ValueError`, or is skipped when
    ``strict`` is false.
    """
    found: list[Distribution] = []
    for tok in _tokens(s):
        d = DISTRIBUTION_TOKENS.get(tok)
        if d is None:
            if strict:
                raise ValueError(f"unknown calc distribution {tok!r} in {s!r}")
            continue
        found.append(d)
    if not found:
        return None
    return max(found, key=_DISTRIBUTION_ORDER.index)


@dataclass(frozen=True)
class DescriptorRow:
    """One recorded calcification finding (one row of the CBIS-DDSM table)."""

    patient_id: str
    abnormality_id: str
    pathology: str
    recorded_assessment: str
    calc_type: str
    calc_distribution: str
    morphologies: tuple[Morphology, ...]
    distribution: Distribution | None
    warnings: tuple[str, ...] = ()

    @property
    def malignant(self) -> bool:
        return _PATHOLOGY_MALIGNANT[self.pathology]


_REQUIRED = (
    "patient_id",
    "abnormality id",
    "calc type",
    "calc distribution",
    "assessment",
    "pathology",
)


def read_cbis_calc_csv(csv_path: str | Path) -> list[DescriptorRow]:
    """Read a CBIS-DDSM calcification description CSV into :class:`DescriptorRow` s.

    Raises
    ------
    UnreadableFileError
        The file is missing or not readable text.
    InputError
        A required column is missing, or a pathology is not one of BENIGN,
        BENIGN_WITHOUT_CALLBACK, MALIGNANT.
    """
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise InputError(
                    f"not a CBIS-DDSM calcification table: missing column(s) {missing}",
                    str(path),
                )
            reader.fieldnames = header
            raw = list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFileError(f"cannot read the CSV: {exc}", str(path)) from exc
    rows = []
    for i, r in enumerate(raw, start=2):
        pathology = (r["pathology"] or "").strip().upper()
        if pathology not in _PATHOLOGY_MALIGNANT:
            raise InputError(
                f"row {i}: pathology {r['pathology']!r} is not one of "
                f"{sorted(_PATHOLOGY_MALIGNANT)}",
                str(path),
            )
        calc_type = (r["calc type"] or "").strip()
        calc_dist = (r["calc distribution"] or "").strip()
        warnings = [
            f"row {i}: unknown calc type {t!r} ignored"
            for t in _tokens(calc_type)
            if t not in CALC_TYPE_TOKENS
        ] + [
            f"row {i}: unknown calc distribution {t!r} ignored"
            for t in _tokens(calc_dist)
            if t not in DISTRIBUTION_TOKENS
        ]
        rows.append(
            DescriptorRow(
                patient_id=(r["patient_id"] or "").strip(),
                abnormality_id=(r["abnormality id"] or "").strip(),
                pathology=pathology,
                recorded_assessment=(r["assessment"] or "").strip(),
                calc_type=calc_type,
                calc_distribution=calc_dist,
                morphologies=parse_calc_type(calc_type, strict=False),
                distribution=parse_distribution(calc_dist, strict=False),
                warnings=tuple(warnings),
            )
        )
    return rows


def assess_row(row: DescriptorRow, thresholds: AssessThresholds | None = None) -> Assessment:
    """Assess one recorded finding with the image pipeline's rules."""
    return assess_descriptors(row.morphologies, row.distribution, thresholds=thresholds)


@dataclass(frozen=True)
class CategoryRate:
    """Malignancy among the findings of one category."""

    category: str
    n: int
    n_malignant: int

    @property
    def rate(self) -> float:
        return self.n_malignant / self.n if self.n else float("nan")


@dataclass(frozen=True)
class DescriptorEvaluation:
    """Agreement of our assessment of recorded descriptors with radiologists and pathology.

    ``per_category`` lists our categories in order of concern (2, 3, 0, 4A, 4B, 4C, 5),
    ``per_recorded`` the recorded assessments (2, 3, 0, 4, 5); empty categories are left
    out.
    """

    n: int
    n_malignant: int
    n_patients: int
    kappa: float
    auc: float
    recorded_auc: float
    per_category: tuple[CategoryRate, ...]
    per_recorded: tuple[CategoryRate, ...]
    output_csv: Path | None = None
    warnings: tuple[str, ...] = ()

    def rate_of(self, category: str) -> CategoryRate | None:
        """Our category's malignancy rate, ``None`` when no row has it."""
        return next((c for c in self.per_category if c.category == category), None)

    def monotonic(self, *, min_rows: int = 20) -> bool:
        """True when malignancy rises with our likelihood categories (2, 3, 4A, 4B, 4C, 5).

        Category 0 (incomplete) is not a likelihood band and is left out; so are
        categories with fewer than ``min_rows`` rows.
        """
        rates = [
            c.rate for c in self.per_category if c.category != Category.C0.value and c.n >= min_rows
        ]
        return all(a <= b for a, b in zip(rates, rates[1:], strict=False))


def _metrics() -> ModuleType:
    """:mod:`sklearn.metrics`, or an error that names the extra to install."""
    try:
        from sklearn import metrics
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError(
            f"the evaluation needs the 'eval' extra ({exc.name} is missing): "
            "pip install 'calcscope[eval]'"
        ) from exc
    module: ModuleType = metrics  # sklearn has no type information: Any
    return module


def roc_auc(y: Sequence[bool], score: Sequence[float]) -> float:
    """ROC AUC of ``score`` against the labels ``y`` (scikit-learn's ``roc_auc_score``:
    the Mann-Whitney U / (n1 n0), ties counted one half); NaN with one class only."""
    yy = np.asarray(y, bool)
    if yy.all() or not yy.any():
        return float("nan")
    return float(_metrics().roc_auc_score(yy, np.asarray(score, float)))


def weighted_kappa(a: Sequence[str], b: Sequence[str], labels: Sequence[str]) -> float:
    """Cohen's kappa with linear weights ``|i - j|`` over the ordered ``labels``
    (scikit-learn's ``cohen_kappa_score(weights="linear")``); NaN, without a warning, when
    undefined (both raters give one and the same label throughout)."""
    with warnings.catch_warnings():
        # undefined (0 / 0): scikit-learn warns and returns NaN
        warnings.simplefilter("ignore")
        kappa = _metrics().cohen_kappa_score(a, b, labels=list(labels), weights="linear")
    return float(kappa)


def _kappa_label(c: str) -> str:
    """Our category on the recorded 0-5 scale: 4A, 4B and 4C count as 4."""
    return "4" if c.startswith("4") else c


def _concern(c: str) -> int:
    return CONCERN_ORDER.index(_kappa_label(c))


def _rates(pairs: Sequence[tuple[str, bool]], order: Sequence[str]) -> tuple[CategoryRate, ...]:
    out = []
    for cat in order:
        flags = [m for c, m in pairs if c == cat]
        if flags:
            out.append(CategoryRate(cat, len(flags), sum(flags)))
    return tuple(out)


_OUR_ORDER = tuple(c.value for c in sorted(Category, key=lambda c: c.rank))


def evaluate_assessments(
    rows: Sequence[DescriptorRow],
    assessments: Sequence[Assessment],
    *,
    output_csv: Path | None = None,
) -> DescriptorEvaluation:
    """Kappa, AUCs and malignancy rates of ``assessments`` of ``rows`` (same order)."""
    if len(rows) != len(assessments):
        raise ValueError("one assessment per row is needed")
    if not rows:
        raise ValueError("no rows to evaluate")
    y = [r.malignant for r in rows]
    ours = [a.category.value for a in assessments]
    recorded = [r.recorded_assessment for r in rows]
    bad = sorted({c for c in recorded if _kappa_label(c) not in CONCERN_ORDER})
    if bad:
        raise InputError(f"recorded assessment(s) {bad} are not BI-RADS 0-5")
    kappa = weighted_kappa(
        [_kappa_label(c) for c in ours], [_kappa_label(c) for c in recorded], CONCERN_ORDER
    )
    auc = roc_auc(y, [a.likelihood for a in assessments])
    rec_auc = roc_auc(y, [_concern(c) for c in recorded])
    return DescriptorEvaluation(
        n=len(rows),
        n_malignant=sum(y),
        n_patients=len({r.patient_id for r in rows}),
        kappa=kappa,
        auc=auc,
        recorded_auc=rec_auc,
        per_category=_rates(list(zip(ours, y, strict=True)), _OUR_ORDER),
        per_recorded=_rates(
            list(zip([_kappa_label(c) for c in recorded], y, strict=True)),
            ("1", "2", "3", "0", "4", "5"),
        ),
        output_csv=output_csv,
        warnings=tuple(w for r in rows for w in r.warnings),
    )


def assess_cbis_csv(
    csv_path: str | Path,
    out_dir: str | Path,
    *,
    thresholds: AssessThresholds | None = None,
) -> DescriptorEvaluation:
    """Assess every recorded finding of a CBIS-DDSM calcification CSV.

    Writes ``out_dir/descriptor_assessment.csv`` (columns :data:`OUTPUT_COLUMNS`, one row
    per input row, in input order) and returns the evaluation.
    """
    rows = read_cbis_calc_csv(csv_path)
    assessments = [assess_row(r, thresholds) for r in rows]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "descriptor_assessment.csv"
    tmp = target.with_suffix(".csv.part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(OUTPUT_COLUMNS)
        for r, a in zip(rows, assessments, strict=True):
            w.writerow(
                [
                    r.patient_id,
                    r.abnormality_id,
                    r.pathology,
                    r.recorded_assessment,
                    r.calc_type,
                    r.calc_distribution,
                    a.category.value,
                    f"{a.likelihood:.4f}",
                    a.follow_up.value,
                    a.reason,
                ]
            )
    tmp.replace(target)
    return evaluate_assessments(rows, assessments, output_csv=target)


def format_evaluation(ev: DescriptorEvaluation) -> str:
    """The evaluation as plain text tables (the CLI prints it)."""
    lines = [
        f"findings: {ev.n} ({ev.n_malignant} malignant, {ev.n_patients} patients)",
        f"agreement with the recorded assessment (linearly weighted kappa): {ev.kappa:.3f}",
        f"ROC AUC of our likelihood vs pathology:          {ev.auc:.3f}",
        f"ROC AUC of the recorded assessment vs pathology: {ev.recorded_auc:.3f}",
        "",
        "malignancy per category",
        f"{'':10}{'ours':>21}   {'recorded':>21}",
    ]
    ours = {c.category: c for c in ev.per_category}
    rec = {c.category: c for c in ev.per_recorded}

    def cell(c: CategoryRate | None) -> str:
        if c is None:
            return f"{'-':>21}"
        return f"{c.n_malignant:>5} / {c.n:<5} {c.rate:>7.1%}"

    for cat in ("1", "2", "3", "0", "4", "4A", "4B", "4C", "5"):
        if cat in ours or cat in rec:
            lines.append(f"{cat:10}{cell(ours.get(cat))}   {cell(rec.get(cat))}")
    lines.append("(0 = incomplete, needs imaging; the recorded DDSM assessments have no 4A/4B/4C)")
    if not ev.monotonic():
        lines.append("warning: malignancy does not rise with our category (>= 20 rows each)")
    if ev.warnings:
        lines.append(f"{len(ev.warnings)} warning(s), first: {ev.warnings[0]}")
    if ev.output_csv is not None:
        lines.append(f"per-finding results: {ev.output_csv}")
    return "\n".join(lines)
