"""Recorded CBIS-DDSM descriptors: parsing, the CSV reader and writer, the evaluation."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from calcscope.errors import InputError, UnreadableFileError
from calcscope.evaluation.recorded_descriptors import (
    CALC_TYPE_TOKENS,
    OUTPUT_COLUMNS,
    DescriptorEvaluation,
    assess_cbis_csv,
    evaluate_assessments,
    format_evaluation,
    parse_calc_type,
    parse_distribution,
    read_cbis_calc_csv,
    roc_auc,
    weighted_kappa,
)
from calcscope.model import Distribution as D
from calcscope.model import Morphology as M
from calcscope.reading.assess import Category, assess_descriptors

# every calc type token of the CBIS-DDSM calcification tables
TOKENS = [
    ("AMORPHOUS", M.AMORPHOUS),
    ("PLEOMORPHIC", M.FINE_PLEOMORPHIC),
    ("FINE_LINEAR_BRANCHING", M.FINE_LINEAR_BRANCHING),
    ("PUNCTATE", M.PUNCTATE),
    ("ROUND_AND_REGULAR", M.ROUND),
    ("LUCENT_CENTER", M.LUCENT_CENTERED),
    ("LUCENT_CENTERED", M.LUCENT_CENTERED),
    ("VASCULAR", M.VASCULAR),
    ("COARSE", M.COARSE_POPCORN),
    ("DYSTROPHIC", M.DYSTROPHIC),
    ("EGGSHELL", M.RIM_EGGSHELL),
    ("MILK_OF_CALCIUM", M.MILK_OF_CALCIUM),
    ("SKIN", M.SKIN),
    ("LARGE_RODLIKE", M.LARGE_ROD_LIKE),
    ("SUTURE", M.SUTURE),
]


@pytest.mark.parametrize(("token", "morph"), TOKENS)
def test_every_calc_type_token(token, morph):
    assert parse_calc_type(token) == (morph,)
    assert parse_calc_type(f" {token.lower()} ") == (morph,)
    assert CALC_TYPE_TOKENS[token] is morph


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PLEOMORPHIC-FINE_LINEAR_BRANCHING", (M.FINE_PLEOMORPHIC, M.FINE_LINEAR_BRANCHING)),
        (
            "ROUND_AND_REGULAR-LUCENT_CENTER-PUNCTATE",
            (M.ROUND, M.LUCENT_CENTERED, M.PUNCTATE),
        ),
        (
            "VASCULAR-COARSE-LUCENT_CENTER-ROUND_AND_REGULAR-PUNCTATE",
            (M.VASCULAR, M.COARSE_POPCORN, M.LUCENT_CENTERED, M.ROUND, M.PUNCTATE),
        ),
        ("PLEOMORPHIC-PLEOMORPHIC", (M.FINE_PLEOMORPHIC,)),
        ("LUCENT_CENTER-LUCENT_CENTERED", (M.LUCENT_CENTERED,)),
        ("NA", ()),
        ("", ()),
        (None, ()),
    ],
)
def test_compound_calc_types(value, expected):
    assert parse_calc_type(value) == expected


def test_unknown_calc_type():
    with pytest.raises(ValueError, match="BOGUS"):
        parse_calc_type("PLEOMORPHIC-BOGUS")
    assert parse_calc_type("PLEOMORPHIC-BOGUS", strict=False) == (M.FINE_PLEOMORPHIC,)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("CLUSTERED", D.GROUPED),
        ("DIFFUSELY_SCATTERED", D.DIFFUSE),
        ("REGIONAL", D.REGIONAL),
        ("LINEAR", D.LINEAR),
        ("SEGMENTAL", D.SEGMENTAL),
        ("CLUSTERED-LINEAR", D.LINEAR),
        ("CLUSTERED-SEGMENTAL", D.SEGMENTAL),
        ("LINEAR-SEGMENTAL", D.LINEAR),
        ("REGIONAL-REGIONAL", D.REGIONAL),
        ("DIFFUSELY_SCATTERED-CLUSTERED", D.GROUPED),
        ("NA", None),
        ("", None),
    ],
)
def test_distributions(value, expected):
    assert parse_distribution(value) is expected


def test_unknown_distribution():
    with pytest.raises(ValueError, match="SPIRAL"):
        parse_distribution("SPIRAL")
    assert parse_distribution("SPIRAL", strict=False) is None


HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,"
    "abnormality type,calc type,calc distribution,assessment,pathology,subtlety,"
    "image file path,cropped image file path,ROI mask file path"
)


def _row(pid: str, abn: int, ctype: str, dist: str, assessment: str, path: str) -> str:
    # the cropped image path holds a newline inside its quotes, as in the real table
    return (
        f"{pid},2,LEFT,CC,{abn},calcification,{ctype},{dist},{assessment},{path},3,"
        f'Calc-Training_{pid}/1.dcm,"Calc-Training_{pid}/000000.dcm\n",'
        f"Calc-Training_{pid}/000001.dcm"
    )


SMALL = [
    _row("P_00001", 1, "AMORPHOUS", "CLUSTERED", "4", "MALIGNANT"),
    _row("P_00002", 1, "LUCENT_CENTER", "NA", "2", "BENIGN_WITHOUT_CALLBACK"),
    _row("P_00002", 2, "ROUND_AND_REGULAR-LUCENT_CENTERED", "NA", "2", "BENIGN_WITHOUT_CALLBACK"),
    _row("P_00003", 1, "PLEOMORPHIC-FINE_LINEAR_BRANCHING", "CLUSTERED-LINEAR", "5", "MALIGNANT"),
    _row("P_00004", 1, "NA", "REGIONAL", "0", "BENIGN"),
    _row("P_00005", 1, "VASCULAR", "NA", "2", "BENIGN_WITHOUT_CALLBACK"),
    _row("P_00006", 1, "PUNCTATE", "SEGMENTAL", "4", "BENIGN"),
]

# the first nine columns of descriptor_assessment.csv for the rows above
EXPECTED = [
    ["P_00001", "1", "MALIGNANT", "4", "AMORPHOUS", "CLUSTERED", "4B", "0.3470", "biopsy"],
    [
        "P_00002",
        "1",
        "BENIGN_WITHOUT_CALLBACK",
        "2",
        "LUCENT_CENTER",
        "NA",
        "2",
        "0.0020",
        "routine_screening",
    ],
    [
        "P_00002",
        "2",
        "BENIGN_WITHOUT_CALLBACK",
        "2",
        "ROUND_AND_REGULAR-LUCENT_CENTERED",
        "NA",
        "2",
        "0.0020",
        "routine_screening",
    ],
    [
        "P_00003",
        "1",
        "MALIGNANT",
        "5",
        "PLEOMORPHIC-FINE_LINEAR_BRANCHING",
        "CLUSTERED-LINEAR",
        "4C",
        "0.9081",
        "biopsy",
    ],
    [
        "P_00004",
        "1",
        "BENIGN",
        "0",
        "NA",
        "REGIONAL",
        "0",
        "0.3938",
        "diagnostic_mammography_spot_compression_magnification",
    ],
    [
        "P_00005",
        "1",
        "BENIGN_WITHOUT_CALLBACK",
        "2",
        "VASCULAR",
        "NA",
        "2",
        "0.0010",
        "routine_screening",
    ],
    ["P_00006", "1", "BENIGN", "4", "PUNCTATE", "SEGMENTAL", "4B", "0.2422", "biopsy"],
]


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    p = tmp_path / "calc.csv"
    p.write_bytes(("\r\n".join([HEADER, *SMALL]) + "\r\n").encode())
    return p


def test_small_csv_quirks_and_output(small_csv: Path, tmp_path: Path):
    rows = read_cbis_calc_csv(small_csv)
    assert len(rows) == 7
    assert rows[1].morphologies == rows[2].morphologies[1:] == (M.LUCENT_CENTERED,)
    assert rows[4].morphologies == () and rows[1].distribution is None

    out = tmp_path / "out"
    ev = assess_cbis_csv(small_csv, out)
    assert ev.output_csv == out / "descriptor_assessment.csv"
    with ev.output_csv.open(newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert tuple(table[0]) == OUTPUT_COLUMNS
    assert [r[:9] for r in table[1:]] == EXPECTED
    for row, r in zip(rows, table[1:], strict=True):
        assert r[9] == assess_descriptors(row.morphologies, row.distribution).reason
    assert "casting calcifications filling a duct" in table[4][9]

    assert ev.n == 7 and ev.n_malignant == 2 and ev.n_patients == 6
    assert ev.auc == pytest.approx(0.9)  # the undescribed benign finding outranks amorphous
    assert ev.recorded_auc == pytest.approx(0.95)
    assert ev.rate_of("4C").n_malignant == 1
    assert ev.rate_of("4B").n == 2
    assert ev.rate_of("5") is None
    assert [c.category for c in ev.per_recorded] == ["2", "0", "4", "5"]
    assert ev.warnings == ()


def test_unknown_tokens_are_reported_not_fatal(tmp_path: Path):
    p = tmp_path / "calc.csv"
    rows = [
        _row("P_1", 1, "PLEOMORPHIC-WEIRD", "CLUSTERED", "4", "MALIGNANT"),
        _row("P_2", 1, "VASCULAR", "ODD", "2", "BENIGN"),
    ]
    p.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    ev = assess_cbis_csv(p, tmp_path / "out")
    assert len(ev.warnings) == 2
    assert "WEIRD" in ev.warnings[0] and "ODD" in ev.warnings[1]
    assert "2 warning(s)" in format_evaluation(ev)


def test_reader_errors(tmp_path: Path):
    with pytest.raises(UnreadableFileError):
        read_cbis_calc_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,calc type\nP_1,AMORPHOUS\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing column"):
        read_cbis_calc_csv(bad)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(
        HEADER + "\n" + _row("P_1", 1, "AMORPHOUS", "CLUSTERED", "4", "UNKNOWN") + "\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="pathology"):
        read_cbis_calc_csv(wrong)


def test_kappa_is_one_when_we_agree(small_csv: Path):
    rows = read_cbis_calc_csv(small_csv)
    same = []
    for r in rows:
        cat = {"4": "4B"}.get(r.recorded_assessment, r.recorded_assessment)
        a = assess_descriptors(r.morphologies, r.distribution)
        same.append(type(a)(Category(cat), a.likelihood, a.follow_up, a.rules))
    ev = evaluate_assessments(rows, same)
    assert ev.kappa == pytest.approx(1.0)


# --- the real table (skips when ../shared/data is absent) ---------------------------------


@pytest.fixture(scope="module")
def cbis(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> DescriptorEvaluation:
    csv_path = shared_data / "cbis-ddsm" / "calc_case_description_train_set.csv"
    if not csv_path.is_file():
        pytest.skip(f"{csv_path} not found")
    return assess_cbis_csv(csv_path, tmp_path_factory.mktemp("cbis"))


def test_every_real_value_parses(shared_data: Path):
    rows = read_cbis_calc_csv(shared_data / "cbis-ddsm" / "calc_case_description_train_set.csv")
    for r in rows:
        parse_calc_type(r.calc_type)  # strict: raises on an unknown token
        parse_distribution(r.calc_distribution)


def test_real_table(cbis: DescriptorEvaluation):
    assert cbis.n == 1546
    assert cbis.warnings == ()
    with cbis.output_csv.open(newline="", encoding="utf-8") as fh:
        assert sum(1 for _ in csv.reader(fh)) == 1547
    assert cbis.auc >= 0.75
    assert cbis.auc >= cbis.recorded_auc - 0.02
    assert cbis.kappa > 0.2
    assert cbis.monotonic(min_rows=20)
    # benign (category 2) findings are essentially never malignant
    assert cbis.rate_of("2").rate <= 0.01
    # the figures of the hand-written AUC and kappa that scikit-learn replaced
    assert cbis.kappa == pytest.approx(0.7257738511632761, abs=1e-9)
    assert cbis.auc == pytest.approx(0.8284313725490197, abs=1e-9)
    assert cbis.recorded_auc == pytest.approx(0.8117854364799812, abs=1e-9)
    text = format_evaluation(cbis)
    assert "kappa" in text and "ROC AUC" in text


def test_small_table_figures_are_those_of_the_hand_written_metrics(small_csv: Path):
    # kappa, AUC and recorded AUC that the hand-written metrics (before scikit-learn) gave
    rows = read_cbis_calc_csv(small_csv)
    ev = evaluate_assessments(
        rows, [assess_descriptors(r.morphologies, r.distribution) for r in rows]
    )
    assert (ev.n, ev.n_malignant) == (7, 2)
    assert ev.kappa == pytest.approx(72 / 79, abs=1e-9)
    assert ev.auc == pytest.approx(0.9, abs=1e-9)
    assert ev.recorded_auc == pytest.approx(0.95, abs=1e-9)


def test_undefined_kappa_is_nan_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kappa = weighted_kappa(["a", "a"], ["a", "a"], ("a", "b"))
    assert kappa != kappa  # NaN: one label throughout


def test_auc_and_kappa_by_hand():
    # 2 malignant, 3 benign: pairs won 5 of 6, one tie -> (5 + 0.5) / 6
    assert roc_auc([1, 1, 0, 0, 0], [0.9, 0.5, 0.5, 0.1, 0.2]) == pytest.approx(5.5 / 6)
    assert roc_auc([1, 1], [0.1, 0.2]) != roc_auc([1, 1], [0.1, 0.2])  # NaN: one class
    labels = ("a", "b", "c")
    assert weighted_kappa(["a", "b", "c"], ["a", "b", "c"], labels) == pytest.approx(1.0)
    # observed [[0,1],[1,0]] on two labels: kappa = 1 - 2/1 = -1
    assert weighted_kappa(["a", "b"], ["b", "a"], labels[:2]) == pytest.approx(-1.0)
    # linear weights: a near miss costs less than a far one
    near = weighted_kappa(["a", "b", "c", "c"], ["a", "b", "b", "c"], labels)
    far = weighted_kappa(["a", "b", "c", "c"], ["a", "b", "a", "c"], labels)
    assert near > far
