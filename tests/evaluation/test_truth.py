"""Tests of calcscope.evaluation.truth on small files made here and real ones in ../shared/data."""

from __future__ import annotations

import plistlib
from pathlib import Path

import numpy as np
import pytest

from calcscope.errors import InputError, UnreadableFileError
from calcscope.evaluation.truth import (
    MIAS_KNOWN_OFF_BREAST,
    MIAS_NO_COORDINATES_REASON,
    OFF_BREAST_REASON,
    CbisFinding,
    ImageTruth,
    TruthCluster,
    cbis_truth_from_masks,
    mark_off_breast,
    read_cbis_ddsm,
    read_inbreast_xml,
    read_mias,
)
from calcscope.model import Laterality, View

# ---------------------------------------------------------------------------------------
# mini-MIAS
# ---------------------------------------------------------------------------------------

# The quirks of the real file: a text header mentioning the columns, a footer, trailing
# spaces, NORM rows with a trailing space, other classes, a class row without
# coordinates (mdb059), *NOTE 3* rows with and without a trailing space, and several
# rows for one image.
MIAS_INFO = (
    "              MAMMOGRAPHIC IMAGE ANALYSIS SOCIETY\n"
    "3rd column: Class of abnormality present:\n"
    "                CALC - Calcification\n"
    "                NORM - Normal\n"
    "   Coordinate system origin is the bottom-left corner.\n"
    "=================================================================\n"
    "\n"
    "mdb001 G CIRC B 535 425 197\n"
    "mdb006 F NORM \n"
    "mdb059 F CIRC B\n"
    "mdb211 G CALC M 680 327 13\n"
    "mdb212 G CALC B 687 882 3\n"
    "mdb216 D CALC M *NOTE 3* \n"
    "mdb226 D CALC B 287 610 7\n"
    "mdb226 D CALC B 329 550 25\n"
    "mdb226 D CALC B 531 721 8   \n"
    "mdb245 F CALC M *NOTE 3*\n"
    "mdb300 F MISC B 240 263 20\n"
    "mdb300 F CALC M 100 100 30\n"
    "\n"
    "=================================================================\n"
)


@pytest.fixture
def info_txt(tmp_path: Path) -> Path:
    path = tmp_path / "Info.txt"
    path.write_text(MIAS_INFO, encoding="ascii")
    return path


def test_mias_parses_only_data_rows(info_txt: Path) -> None:
    truth = read_mias(info_txt)
    assert list(truth) == [
        "mdb001",
        "mdb006",
        "mdb059",
        "mdb211",
        "mdb212",
        "mdb216",
        "mdb226",
        "mdb245",
        "mdb300",
    ]
    assert all(isinstance(t, ImageTruth) for t in truth.values())


def test_mias_origin_is_bottom_left(info_txt: Path) -> None:
    t = read_mias(info_txt)["mdb211"]
    assert t.has_calcification
    assert t.excluded_reason is None
    assert t.spacing_mm == 0.2
    assert t.tissue == "G"
    (c,) = t.clusters
    assert c == TruthCluster(
        image_id="mdb211",
        center_rc=(1023.0 - 327.0, 680.0),
        radius_mm=pytest.approx(13 * 0.2),
        radius_px=13.0,
        severity="malignant",
        label="CALC",
    )


def test_mias_size_and_spacing_parameters(info_txt: Path) -> None:
    (c,) = read_mias(info_txt, ["mdb211"], size_px=512, spacing_mm=0.4)["mdb211"].clusters
    assert c.center_rc == (511.0 - 327.0, 680.0)
    assert c.radius_mm == pytest.approx(13 * 0.4)


def test_mias_several_rows_give_several_clusters(info_txt: Path) -> None:
    t = read_mias(info_txt)["mdb226"]
    assert [c.center_rc for c in t.clusters] == [(413.0, 287.0), (473.0, 329.0), (302.0, 531.0)]
    assert [c.radius_px for c in t.clusters] == [7.0, 25.0, 8.0]
    assert {c.severity for c in t.clusters} == {"benign"}
    assert t.abnormal_classes == ("CALC",)


@pytest.mark.parametrize("ref", ["mdb216", "mdb245"])
def test_mias_note_3_is_an_image_level_label(info_txt: Path, ref: str) -> None:
    t = read_mias(info_txt)[ref]
    assert t.has_calcification
    assert t.clusters == ()
    assert t.excluded_reason == MIAS_NO_COORDINATES_REASON


def test_mias_other_classes_are_not_clusters(info_txt: Path) -> None:
    truth = read_mias(info_txt)
    for ref in ("mdb001", "mdb059"):
        assert truth[ref].clusters == ()
        assert not truth[ref].has_calcification
        assert truth[ref].abnormal_classes == ("CIRC",)
        assert truth[ref].excluded_reason is None
    mixed = truth["mdb300"]
    assert mixed.abnormal_classes == ("MISC", "CALC")
    assert [c.center_rc for c in mixed.clusters] == [(923.0, 100.0)]


def test_mias_normal_image(info_txt: Path) -> None:
    t = read_mias(info_txt)["mdb006"]
    assert (t.clusters, t.calcifications, t.abnormal_classes) == ((), (), ())
    assert not t.has_calcification
    assert t.excluded_reason is None


def test_mias_image_ids_select_and_accept_file_names(info_txt: Path, tmp_path: Path) -> None:
    truth = read_mias(info_txt, ["mdb226", "mdb006.pgm", str(tmp_path / "mdb211.pgm")])
    assert list(truth) == ["mdb226", "mdb006", "mdb211"]


def test_mias_unknown_image_id_raises(info_txt: Path) -> None:
    with pytest.raises(InputError, match="mdb999"):
        read_mias(info_txt, ["mdb006", "mdb999"])


def test_mias_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError):
        read_mias(tmp_path / "nope.txt")


def test_mark_off_breast(info_txt: Path) -> None:
    truth = read_mias(info_txt)
    mask = np.zeros((1024, 1024), dtype=bool)
    mask[:, :600] = True  # mdb211 (col 680) and mdb212 (col 687) fall off this "breast"
    mask[600:800, 600:800] = True  # ... but mdb211's centre (696, 680) is on it
    marked = mark_off_breast(truth, {"mdb211": mask, "mdb212": mask, "mdb226": mask})
    assert marked["mdb211"].excluded_reason is None
    assert marked["mdb212"].excluded_reason == OFF_BREAST_REASON
    assert marked["mdb226"].excluded_reason is None  # all three centres on the mask
    assert marked["mdb300"] is truth["mdb300"]  # no mask: unchanged
    assert truth["mdb212"].excluded_reason is None  # input not modified
    assert "mdb212" in MIAS_KNOWN_OFF_BREAST


def test_mark_off_breast_centre_outside_array() -> None:
    t = ImageTruth(
        "x",
        (TruthCluster("x", (5.0, 50.0), None, 3.0, None, "CALC"),),
        (),
        True,
        ("CALC",),
        None,
        0.2,
    )
    marked = mark_off_breast({"x": t}, {"x": np.ones((10, 10), dtype=np.uint8)})
    assert marked["x"].excluded_reason == OFF_BREAST_REASON


MIAS_CALC_IMAGES = (
    "mdb211 mdb212 mdb213 mdb214 mdb216 mdb218 mdb222 mdb226 mdb236 mdb238 mdb241 mdb245 "
    "mdb252 mdb256"
).split()


def test_mias_real_info_txt(shared_data: Path) -> None:
    folder = shared_data / "mini-mias"
    if not (folder / "Info.txt").is_file():
        pytest.skip("mini-MIAS Info.txt not in the shared data")
    images = sorted(p.stem for p in (folder / "images").glob("mdb*.pgm"))
    assert len(images) == 74
    truth = read_mias(folder / "Info.txt", images)
    assert list(truth) == images
    calc = sorted(k for k, t in truth.items() if t.has_calcification)
    assert calc == MIAS_CALC_IMAGES
    assert sum(1 for t in truth.values() if t.abnormal_classes == ()) == 60
    assert len(truth["mdb226"].clusters) == 3
    for ref in ("mdb216", "mdb245"):
        assert truth[ref].clusters == ()
        assert truth[ref].excluded_reason == MIAS_NO_COORDINATES_REASON
    located = [k for k, t in truth.items() if t.clusters]
    assert len(located) == 12
    for t in truth.values():
        for c in t.clusters:
            assert c.center_rc is not None
            assert 0 <= c.center_rc[0] <= 1023 and 0 <= c.center_rc[1] <= 1023
    # the whole file: 322 images
    assert len(read_mias(folder / "Info.txt")) == 322


# ---------------------------------------------------------------------------------------
# CBIS-DDSM
# ---------------------------------------------------------------------------------------

CBIS_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,"
    "abnormality type,calc type,calc distribution,assessment,pathology,subtlety,"
    "image file path,cropped image file path,ROI mask file path"
)
CBIS_ROWS = [
    # a newline inside the quoted cropped path, as in the real file
    "P_00005,3,RIGHT,CC,1,calcification,AMORPHOUS,CLUSTERED,3,MALIGNANT,3,"
    "Calc-Training_P_00005_RIGHT_CC/1.2/1.3/000000.dcm,"
    '"Calc-Training_P_00005_RIGHT_CC_1/1.4/1.5/000001.dcm\n",'
    "Calc-Training_P_00005_RIGHT_CC_1/1.4/1.5/000000.dcm",
    # NA values and a compound type
    "P_00007,4,LEFT,MLO,2,calcification,PLEOMORPHIC-FINE_LINEAR_BRANCHING,NA,NA,"
    "BENIGN_WITHOUT_CALLBACK,5,a.dcm,b.dcm,c.dcm",
    "P_00008,NA,LEFT,CC,1,calcification,NA,DIFFUSELY_SCATTERED,2,BENIGN,NA,d.dcm,e.dcm,f.dcm",
]


@pytest.fixture
def cbis_csv(tmp_path: Path) -> Path:
    path = tmp_path / "calc.csv"
    path.write_bytes(("\r\n".join([CBIS_HEADER, *CBIS_ROWS]) + "\r\n").encode("ascii"))
    return path


def test_cbis_reads_quirky_csv(cbis_csv: Path) -> None:
    first, second, third = read_cbis_ddsm(cbis_csv)
    assert first == CbisFinding(
        patient_id="P_00005",
        laterality=Laterality.RIGHT,
        view=View.CC,
        abnormality_id=1,
        abnormality_type="calcification",
        calc_type="AMORPHOUS",
        calc_distribution="CLUSTERED",
        assessment=3,
        pathology="MALIGNANT",
        subtlety=3,
        breast_density=3,
        image_file_path="Calc-Training_P_00005_RIGHT_CC/1.2/1.3/000000.dcm",
        cropped_image_file_path="Calc-Training_P_00005_RIGHT_CC_1/1.4/1.5/000001.dcm",
        roi_mask_file_path="Calc-Training_P_00005_RIGHT_CC_1/1.4/1.5/000000.dcm",
    )
    assert first.image_id == "P_00005_RIGHT_CC"
    assert first.malignant
    assert second.laterality is Laterality.LEFT and second.view is View.MLO
    assert second.calc_type == "PLEOMORPHIC-FINE_LINEAR_BRANCHING"
    assert second.calc_distribution is None
    assert second.assessment is None
    assert second.abnormality_id == 2
    assert not second.malignant
    assert third.calc_type is None
    assert third.breast_density is None and third.subtlety is None
    assert third.roi_mask_file_path == "f.dcm"


def test_cbis_images_dir_joins_paths(cbis_csv: Path, tmp_path: Path) -> None:
    findings = read_cbis_ddsm(cbis_csv, images_dir=tmp_path / "CBIS-DDSM")
    assert findings[2].image_file_path == str(tmp_path / "CBIS-DDSM" / "d.dcm")


def test_cbis_bad_values_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    row = "P_1,3,LEFT,CC,1,calcification,PUNCTATE,CLUSTERED,9,BENIGN,3,a,b,c"
    path.write_text(f"{CBIS_HEADER}\n{CBIS_ROWS[1]}\n{row}\n", encoding="ascii")
    with pytest.raises(InputError, match="line 3.*assessment"):
        read_cbis_ddsm(path)


def test_cbis_wrong_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="ascii")
    with pytest.raises(InputError, match="left_or_right_breast"):
        read_cbis_ddsm(path)
    with pytest.raises(UnreadableFileError):
        read_cbis_ddsm(tmp_path / "missing.csv")


def test_cbis_truth_from_masks(cbis_csv: Path) -> None:
    finding = read_cbis_ddsm(cbis_csv)[0]
    mask = np.zeros((200, 300), dtype=np.uint8)
    rr, cc = np.mgrid[:200, :300]
    mask[(rr - 80) ** 2 + (cc - 150) ** 2 <= 20**2] = 255
    cluster = cbis_truth_from_masks(finding, mask, spacing_mm=0.05)
    assert cluster.image_id == "P_00005_RIGHT_CC"
    assert cluster.center_rc == pytest.approx((80.0, 150.0))
    assert cluster.radius_px == pytest.approx(20.0)
    assert cluster.radius_mm == pytest.approx(1.0)
    assert cluster.severity == "malignant"
    assert cluster.label == "AMORPHOUS"
    with pytest.raises(ValueError, match="empty"):
        cbis_truth_from_masks(finding, np.zeros((5, 5)))


def test_cbis_real_csv(shared_data: Path) -> None:
    path = shared_data / "cbis-ddsm" / "calc_case_description_train_set.csv"
    if not path.is_file():
        pytest.skip("CBIS-DDSM CSV not in the shared data")
    findings = read_cbis_ddsm(path)
    assert len(findings) == 1546
    assert len({f.patient_id for f in findings}) == 602
    assert {f.pathology for f in findings} == {"BENIGN", "BENIGN_WITHOUT_CALLBACK", "MALIGNANT"}
    assert {f.assessment for f in findings} <= {0, 1, 2, 3, 4, 5}
    assert {f.view for f in findings} == {View.CC, View.MLO}
    assert all(f.abnormality_type == "calcification" for f in findings)
    for f in findings:
        for p in (f.image_file_path, f.cropped_image_file_path, f.roi_mask_file_path):
            assert p.endswith(".dcm") and "\n" not in p and "\r" not in p
    assert sum(f.calc_distribution is None for f in findings) == 376
    assert sum(f.calc_type is None for f in findings) == 20
    assert any(f.calc_type == "PLEOMORPHIC-FINE_LINEAR_BRANCHING" for f in findings)
    assert {f.malignant for f in findings} == {True, False}


# ---------------------------------------------------------------------------------------
# INbreast
# ---------------------------------------------------------------------------------------


def _roi(name: str, points_xy: list[tuple[float, float]], center: str | None = None) -> dict:
    roi: dict = {
        "Name": name,
        "NumberOfPoints": len(points_xy),
        "Point_px": [f"({x:.6f}, {y:.6f})" for x, y in points_xy],
        "Point_mm": [f"({x * 0.07:.6f}, {y * 0.07:.6f})" for x, y in points_xy],
        "Type": 15,
    }
    if center is not None:
        roi["Center"] = center
    return roi


@pytest.fixture
def inbreast_xml(tmp_path: Path) -> Path:
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cluster_xy = [(300 + 40 * np.cos(a), 500 + 40 * np.sin(a)) for a in angles]
    outline_xy = [(1000 + 3 * np.cos(a), 2000 + 3 * np.sin(a)) for a in angles[::3]]
    doc = {
        "Images": [
            {
                "ImageIndex": 0,
                "NumberOfROIs": 5,
                "ROIs": [
                    _roi("Calcification", [(120.0, 80.0)], center="(120.000000, 80.000000)"),
                    _roi("Calcification", [(10.0, 20.0), (12.0, 22.0)]),
                    _roi("Calcification", outline_xy, center="(1000.000000, 2000.000000)"),
                    _roi("Cluster", cluster_xy, center="(300.000000, 500.000000)"),
                    _roi("Mass", [(5.0, 5.0), (9.0, 5.0), (9.0, 9.0)]),
                ],
            }
        ]
    }
    path = tmp_path / "20586908.xml"
    with path.open("wb") as fh:
        plistlib.dump(doc, fh, fmt=plistlib.FMT_XML)
    return path


def test_inbreast_reads_calcifications_and_clusters(inbreast_xml: Path) -> None:
    t = read_inbreast_xml(inbreast_xml)
    assert t.image_id == "20586908"
    assert t.has_calcification
    assert t.abnormal_classes == ("Calcification", "Cluster", "Mass")
    assert t.spacing_mm == pytest.approx(0.07)
    single, pair, outlined = t.calcifications
    assert single.center_rc == (80.0, 120.0)  # (x, y) -> (row, col)
    assert single.contour_rc is None
    assert pair.center_rc == (21.0, 11.0)  # no Center: mean of the points
    assert pair.contour_rc is None
    assert outlined.center_rc == (2000.0, 1000.0)
    assert outlined.contour_rc is not None and outlined.contour_rc.shape == (8, 2)
    assert outlined.contour_rc[0] == pytest.approx([2000.0, 1003.0])
    assert not outlined.contour_rc.flags.writeable
    (cluster,) = t.clusters
    assert cluster.center_rc == pytest.approx((500.0, 300.0), abs=0.5)
    assert cluster.radius_px == pytest.approx(40.0, abs=0.5)
    assert cluster.radius_mm == pytest.approx(40 * 0.07, abs=0.05)
    assert cluster.label == "Cluster"
    assert t.excluded_reason is None


def test_inbreast_image_id_and_bad_files(inbreast_xml: Path, tmp_path: Path) -> None:
    assert read_inbreast_xml(inbreast_xml, image_id="case7").image_id == "case7"
    bad = tmp_path / "bad.xml"
    bad.write_text("<html>not a plist</html>", encoding="ascii")
    with pytest.raises(UnreadableFileError):
        read_inbreast_xml(bad)
    other = tmp_path / "other.xml"
    other.write_bytes(plistlib.dumps({"Foo": 1}))
    with pytest.raises(UnreadableFileError, match="Images"):
        read_inbreast_xml(other)


def test_inbreast_without_calcifications(tmp_path: Path) -> None:
    path = tmp_path / "mass.xml"
    path.write_bytes(plistlib.dumps({"Images": [{"ROIs": [_roi("Mass", [(1.0, 2.0)])]}]}))
    t = read_inbreast_xml(path)
    assert not t.has_calcification
    assert t.clusters == () and t.calcifications == ()
    assert t.abnormal_classes == ("Mass",)
