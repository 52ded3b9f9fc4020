"""``calcscope train``: small sets made here in each format (mini-MIAS Info.txt,
CBIS-DDSM CSV with ROI mask PNGs, INbreast XML), trained quickly; the card, ``--model``
in analyze and its report, refusals of tampered or mismatched models, bad input."""

from __future__ import annotations

import json
import os
import plistlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from calcscope.config import Config
from calcscope.detection.model_card import ModelCard, read_card, write_card
from calcscope.errors import ConfigError
from calcscope.evaluation.training import TrainOptions, train_model
from calcscope.evaluation.training_set import TrainingDataError, read_training_set
from calcscope.model import Distribution, Morphology
from calcscope.phantom.mammogram import ClusterSpec, make_phantom

SHAPE = (500, 400)  # 100 x 80 mm at 0.2 mm: tiny, quick
FAST = TrainOptions(
    spacing_mm=0.2,
    ensemble=2,
    insertions=1,
    rounds=8,
    phantoms=0,
    workers=1,
    extra_params={"min_data_in_leaf": 3},
)


def _image(seed: int, with_cluster: bool) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """8-bit phantom and its cluster circles ``(row, col, radius_px)``."""
    clusters = [ClusterSpec(Morphology.PUNCTATE, Distribution.GROUPED, 10)] if with_cluster else []
    ph = make_phantom(
        seed=seed, spacing_mm=0.2, shape=SHAPE, clusters=clusters, macros=[], n_singles=1
    )
    img = np.clip(ph.mammogram.pixels * 255 + 0.5, 0, 255).astype(np.uint8)
    return img, [(*c.center_rc, c.radius_mm / 0.2) for c in ph.truth.clusters]


def _mias_set(root: Path, n: int = 6, calc: tuple[int, ...] = (1, 3, 5)) -> tuple[Path, Path]:
    images = root / "images"
    images.mkdir(parents=True)
    rows = ["MIAS header line", ""]
    for k in range(1, n + 1):
        img, circles = _image(k, k in calc)
        cv2.imwrite(str(images / f"mdb{k:03d}.pgm"), img)
        if circles:
            for r, c, rad in circles:
                rows.append(f"mdb{k:03d} G CALC B {c:.0f} {SHAPE[0] - 1 - r:.0f} {rad + 3:.0f}")
        else:
            rows.append(f"mdb{k:03d} F NORM ")
    (root / "Info.txt").write_text("\n".join(rows) + "\nfooter\n")
    return images, root / "Info.txt"


@pytest.fixture(scope="module")
def mias_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("mias")
    images, info = _mias_set(root)
    out = root / "model"
    train_model("mias", images, info, out, FAST)
    return images, info, out


def test_mias_model_card(mias_model: tuple[Path, Path, Path]) -> None:
    from calcscope.about import __version__
    from calcscope.detection.features import Candidates

    images, _, out = mias_model
    card = read_card(out)
    assert card.name == "model" and card.calcscope_version == __version__
    assert card.features == list(Candidates.FEATURE_NAMES)
    assert len(card.weights) == 2 and all((out / w).is_file() for w in card.weights)
    data = card.data[0]
    assert (data.format, data.folder, data.acquisition) == ("mias", "images", "film")
    assert data.n_images == 6 and data.n_women == 3  # mdb001/mdb002 are one woman
    assert data.n_clusters == 3 and data.spacings_mm == [0.2]
    assert data.n_positive_candidates > 0 and data.n_inserted_positives > 0
    assert card.training.rounds == 8 and card.training.seed == 7
    assert card.cross_validation is None
    assert "--format mias" in (card.rebuild or "")
    assert len(card.sha256) == 64
    op = card.operating_point  # calibrated on the training images (no --cv)
    assert op is not None and "in-sample" in op.source and op.target_fp_per_image == 1.0
    assert 0.1 <= op.cluster_score <= 1.0
    assert op.fp_per_image is not None and op.fp_per_image <= 1.0


def test_analyze_with_model_names_it(mias_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import calcscope
    from calcscope.apps.cli import main
    from calcscope.reports.schema import to_report

    images, _, out = mias_model
    card = read_card(out)
    a = calcscope.analyze(images / "mdb001.pgm", spacing_mm=0.2, model=out)
    report = to_report(a)
    assert report.model is not None
    assert (report.model.name, report.model.sha256) == (card.name, card.sha256)
    shipped = to_report(calcscope.analyze(images / "mdb001.pgm", spacing_mm=0.2)).model
    assert shipped is not None and shipped.name == "candidates-v2"
    rc = main(["analyze", str(images / "mdb003.pgm"), "--spacing-mm", "0.2", "--model", str(out),
               "--out", str(tmp_path), "--no-overlay"])  # fmt: skip
    assert rc == 0
    doc = json.loads((tmp_path / "mdb003.json").read_text())
    assert doc["model"] == {"name": card.name, "sha256": card.sha256}


def test_tampered_or_mismatched_model_is_refused(
    mias_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import shutil

    import calcscope
    from calcscope.apps.cli import main

    images, _, out = mias_model
    bad = tmp_path / "bad"
    shutil.copytree(out, bad, ignore=shutil.ignore_patterns(".cache"))
    weights = bad / read_card(bad).weights[0]
    weights.write_text(weights.read_text().replace("num_leaves", "num_leaves ", 1))
    with pytest.raises(ConfigError, match="hash mismatch"):
        read_card(bad)
    shutil.copy(out / weights.name, weights)
    card = read_card(bad)
    write_card(bad, card.model_copy(update={"features": card.features[::-1]}))
    with pytest.raises(ConfigError, match="features version .*refusing"):
        calcscope.analyze(images / "mdb001.pgm", spacing_mm=0.2, model=bad)
    rc = main(["analyze", str(images / "mdb001.pgm"), "--spacing-mm", "0.2", "--model", str(bad),
               "--out", str(tmp_path / "o")])  # fmt: skip
    assert rc == 2 and not (tmp_path / "o" / "mdb001.json").exists()
    with pytest.raises(ConfigError, match="not a calcscope model folder"):
        read_card(tmp_path)


def test_base_model_continues_boosting(mias_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import lightgbm as lgb

    images, info, base = mias_model
    opts = TrainOptions(**{**FAST.__dict__, "base": base, "cache_dir": base / ".cache"})
    card = train_model("mias", images, info, tmp_path / "more", opts).card
    base_card = read_card(base)
    assert card.training.base == f"{base_card.name} {base_card.sha256}"
    assert card.training.base_method is not None and "init_model" in card.training.base_method
    assert len(card.data) == 2  # the base's data and the new
    booster = lgb.Booster(model_file=str(tmp_path / "more" / card.weights[0]))
    assert booster.num_trees() == 16  # 8 of the base + 8 new


def test_cross_validation_by_woman(mias_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    images, info, base = mias_model
    opts = TrainOptions(**{**FAST.__dict__, "cv_folds": 3, "cache_dir": base / ".cache"})
    card = train_model("mias", images, info, tmp_path / "cv", opts).card
    cv = card.cross_validation
    assert cv is not None and cv.folds == 3 and "woman" in cv.split
    assert cv.n_images == 6 and cv.n_true_clusters == 3
    assert [p.fp_per_image for p in cv.points] == [0.25, 0.5, 1.0, 2.0]
    assert all(0.0 <= p.sensitivity <= 1.0 for p in cv.points)
    op = card.operating_point  # calibrated on the held-out images
    assert op is not None and "cross-validated" in op.source
    assert op.fp_per_image is not None and op.fp_per_image <= 1.0


def test_interrupted_run_resumes(mias_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    images, info, base = mias_model
    cache = tmp_path / "cache"
    import shutil

    shutil.copytree(base / ".cache", cache)
    (cache / "tables" / "mdb002.npz").unlink()  # the run stopped before this image
    (cache / "LOCK").write_text("999999999")  # its process is gone
    said: list[str] = []
    seen: list[tuple[str, int, int]] = []
    opts = TrainOptions(**{**FAST.__dict__, "cache_dir": cache})
    train_model(
        "mias", images, info, tmp_path / "m", opts, say=said.append,
        progress=lambda w, d, n: seen.append((w, d, n)),
    )  # fmt: skip
    assert any("resuming an interrupted run: 5 image tables" in s for s in said)
    assert (cache / "tables" / "mdb002.npz").is_file() and not (cache / "LOCK").exists()
    assert ("tables", 6, 6) in seen
    (cache / "LOCK").write_text(str(os.getppid()))  # a live run holds the cache
    with pytest.raises(TrainingDataError, match="another training run"):
        train_model("mias", images, info, tmp_path / "m2", opts)


def test_mias_without_positives_is_refused(tmp_path: Path) -> None:
    images, info = _mias_set(tmp_path, n=2, calc=())
    with pytest.raises(TrainingDataError, match="no positives"):
        train_model("mias", images, info, tmp_path / "m", FAST)


# --- CBIS-DDSM -----------------------------------------------------------------------

_CBIS_HEADER = (
    "patient_id,breast density,left or right breast,image view,abnormality id,"
    "abnormality type,calc type,calc distribution,assessment,pathology,subtlety,"
    "image file path,cropped image file path,ROI mask file path\n"
)


def _cbis_set(root: Path, mask_shape: tuple[int, int] = SHAPE) -> tuple[Path, Path]:
    images = root / "images"
    (images / "masks").mkdir(parents=True)
    rows = []
    for k in range(4):
        img, circles = _image(10 + k, k % 2 == 0)
        side = "LEFT" if k % 2 else "RIGHT"
        name = f"P_{k // 2:05d}_{side}_CC"
        cv2.imwrite(str(images / f"{name}.png"), img)
        for r, c, rad in circles:
            mask = np.zeros(mask_shape, np.uint8)
            cv2.circle(mask, (int(c), int(r)), int(rad) + 2, 255, -1)
            cv2.imwrite(str(images / "masks" / f"{name}_1.png"), mask)
            rows.append(
                f"P_{k // 2:05d},2,{side},CC,1,calcification,PLEOMORPHIC,CLUSTERED,4,"
                f"MALIGNANT,3,{name}.png,masks/{name}_crop.png,masks/{name}_1.png\n"
            )
    csv = root / "calc.csv"
    csv.write_text(_CBIS_HEADER + "".join(rows))
    return images, csv


def test_cbis_ddsm_with_roi_masks(tmp_path: Path) -> None:
    images, csv = _cbis_set(tmp_path)
    ts = read_training_set("cbis-ddsm", images, csv)
    assert sorted(ts.paths) == [f"P_0000{i // 2}_{s}_CC" for i, s in
                                enumerate(["LEFT", "RIGHT", "LEFT", "RIGHT"])]  # fmt: skip
    assert all(p.parent == images for p in ts.paths.values())
    card = train_model("cbis-ddsm", images, csv, tmp_path / "m", FAST).card
    data = card.data[0]
    assert (data.format, data.acquisition, data.n_images, data.n_women) == (
        "cbis-ddsm", "film", 4, 2,
    )  # fmt: skip
    assert data.n_clusters == 2 and data.n_positive_candidates > 0


def test_cbis_mask_of_wrong_size_is_refused(tmp_path: Path) -> None:
    images, csv = _cbis_set(tmp_path, mask_shape=(100, 80))
    with pytest.raises(TrainingDataError, match="ROI mask .* is 100 x 80 pixels"):
        train_model("cbis-ddsm", images, csv, tmp_path / "m", FAST)


def test_cbis_truth_naming_missing_images_is_refused(tmp_path: Path) -> None:
    images, csv = _cbis_set(tmp_path)
    (images / "P_00001_RIGHT_CC.png").unlink()
    with pytest.raises(TrainingDataError, match="names 1 images not in .*P_00001_RIGHT_CC"):
        read_training_set("cbis-ddsm", images, csv)


# --- INbreast -------------------------------------------------------------------------


def _inbreast_xml(path: Path, circles: list[tuple[float, float, float]]) -> None:
    rois = []
    for r, c, rad in circles:
        pts = [f"({c + rad * np.cos(t):.1f}, {r + rad * np.sin(t):.1f})"
               for t in np.linspace(0, 2 * np.pi, 12, endpoint=False)]  # fmt: skip
        rois.append({"Name": "Cluster", "Point_px": pts, "NumberOfPoints": len(pts)})
        rois.append({"Name": "Calcification", "Point_px": [f"({c:.1f}, {r:.1f})"]})
    with path.open("wb") as fh:
        plistlib.dump({"Images": [{"ImageIndex": 0, "ROIs": rois}]}, fh)


def _inbreast_set(root: Path, spacings: tuple[float, ...] = ()) -> tuple[Path, Path]:
    from calcscope.imaging.io import from_array
    from calcscope.imaging.write import write_image

    images, xml = root / "images", root / "xml"
    images.mkdir(parents=True)
    xml.mkdir()
    for k in range(4):
        img, circles = _image(20 + k, k in (0, 2))
        stem = f"{5000 + k}_pat{k // 2}_MG_{'L' if k % 2 else 'R'}_CC_ANON"
        if spacings:
            m = from_array(img.astype(np.float32) / 255, spacings[k % len(spacings)])
            write_image(m, images / f"{stem}.dcm")
        else:
            cv2.imwrite(str(images / f"{stem}.png"), img)
        if circles:
            _inbreast_xml(xml / f"{5000 + k}.xml", circles)
    return images, xml


def test_inbreast_xml(tmp_path: Path) -> None:
    images, xml = _inbreast_set(tmp_path)
    card = train_model("inbreast", images, xml, tmp_path / "m", FAST).card
    data = card.data[0]
    assert (data.format, data.acquisition, data.n_images, data.n_women) == (
        "inbreast", "digital", 4, 2,
    )  # fmt: skip
    assert data.n_clusters == 2 and data.n_calcifications == 2


def test_inbreast_truth_naming_missing_images_is_refused(tmp_path: Path) -> None:
    images, xml = _inbreast_set(tmp_path)
    _inbreast_xml(xml / "9999.xml", [(100.0, 100.0, 10.0)])
    with pytest.raises(TrainingDataError, match="names 1 images not in .*9999"):
        train_model("inbreast", images, xml, tmp_path / "m", FAST)


def test_mixed_spacings_need_spacing_mm(tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    images, xml = _inbreast_set(tmp_path, spacings=(0.2, 0.1))
    opts = TrainOptions(**{**FAST.__dict__, "spacing_mm": None})
    with pytest.raises(TrainingDataError, match="mixed pixel spacings: .*--spacing-mm"):
        train_model("inbreast", images, xml, tmp_path / "m", opts)


def test_model_option_reaches_config(mias_model: tuple[Path, Path, Path]) -> None:
    from calcscope.config import with_model

    _, _, out = mias_model
    cfg = with_model(Config(), out)
    assert Path(cfg.detect.model) == out.resolve()
    assert Config().detect.model == "candidates-v2"
    assert isinstance(read_card(out), ModelCard)


def test_evaluate_with_model_redoes_reports_of_another_model(
    mias_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from calcscope.config import with_model
    from calcscope.evaluation.run import evaluate_images

    images, info, out = mias_model
    card = read_card(out)
    evaluate_images("mias", images, info, tmp_path, config=with_model(Config(), out))
    doc = json.loads((tmp_path / "images" / "mdb001.json").read_text())
    assert doc["model"] == {"name": card.name, "sha256": card.sha256}
    evaluate_images("mias", images, info, tmp_path)  # the shipped model: every report redone
    doc = json.loads((tmp_path / "images" / "mdb001.json").read_text())
    assert doc["model"]["name"] == "candidates-v2"


def test_train_command(mias_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from calcscope.apps.cli import main

    images, info, base = mias_model
    common = ["train", "--format", "mias", "--images", str(images), "--truth", str(info)]
    fast = ["--ensemble", "2", "--insertions", "1", "--rounds", "5", "--phantoms", "0"]
    fast += ["--workers", "1"]
    rc = main([*common, "--out", str(tmp_path / "m"), "--cache", str(base / ".cache"), *fast])
    assert rc == 0
    card = read_card(tmp_path / "m")
    assert card.name == "m" and card.training.rounds == 5
    empty, empty_info = _mias_set(tmp_path / "none", n=2, calc=())
    rc = main(["train", "--format", "mias", "--images", str(empty), "--truth", str(empty_info),
               "--out", str(tmp_path / "n"), *fast])  # fmt: skip
    assert rc == 1 and not (tmp_path / "n" / "model.json").exists()
    rc = main([*common, "--out", str(tmp_path / "b"), "--base", str(tmp_path), *fast])
    assert rc == 2  # not a model folder


def test_extra_normals_add_negatives(mias_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    images, info, base = mias_model
    normals = tmp_path / "normals"
    normals.mkdir()
    for k in (40, 41):
        cv2.imwrite(str(normals / f"n{k}.pgm"), _image(k, False)[0])
    opts = TrainOptions(**{**FAST.__dict__, "normals": (normals,), "cache_dir": base / ".cache"})
    card = train_model("mias", images, info, tmp_path / "m", opts).card
    before = read_card(base).data[0]
    assert card.data[0].n_images == before.n_images + 2
    assert card.data[0].n_candidates > before.n_candidates


def test_extra_normals_are_cross_validated(
    mias_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    images, info, base = mias_model
    normals = tmp_path / "more"
    normals.mkdir()
    for k in (41, 42):  # one woman (mdb041/mdb042)
        cv2.imwrite(str(normals / f"mdb{k:03d}.pgm"), _image(k, False)[0])
    opts = TrainOptions(
        **{**FAST.__dict__, "normals": (normals,), "cv_folds": 3, "cache_dir": base / ".cache",
           "cv_dir": tmp_path / "cv", "workers": 2}  # the process pools too
    )  # fmt: skip
    card = train_model("mias", images, info, tmp_path / "m", opts).card
    cv = card.cross_validation
    assert cv is not None and cv.n_images == 8 and cv.n_true_clusters == 3
    assert "2 extra normal images cross-validated" in cv.split
    doc = json.loads((tmp_path / "cv" / "cv_clusters.json").read_text())
    assert set(doc["images"]) >= {"normal:more/mdb041", "normal:more/mdb042", "mdb001"}
    assert (tmp_path / "cv" / "froc_clusters_cv.csv").is_file()
    assert (tmp_path / "cv" / "images" / "mdb001.json").is_file()  # for recluster_lowo.py
    assert f"--normals {normals}" in (card.rebuild or "") and "--cv-out" in (card.rebuild or "")


def test_folds_of_the_set_do_not_depend_on_extra_normals() -> None:
    from calcscope.evaluation.training_cv import fold_women, woman_folds

    women = [f"w{k:03d}" for k in range(1, 54)]
    extra = [f"w{k:03d}" for k in range(100, 166)]
    plain = woman_folds(women, 53, 7)
    mixed = fold_women(women, extra, 53, 7)
    assert len(mixed) == 53 and all(len(f) == 1 for f in plain)
    assert [[w for w in f if w in women] for f in mixed] == plain
    assert sorted(w for f in mixed for w in f if w not in women) == extra  # each once


def test_operating_point_calibration() -> None:
    from calcscope.evaluation.froc import MatchResult, froc_curve
    from calcscope.evaluation.training_cv import calibrate_operating_point

    # 4 images; false clusters at 0.9, 0.7, 0.55, 0.52, 0.3, 0.2; hits at 0.8 and 0.25
    results = [
        MatchResult((0.8,), (0.9, 0.3)),
        MatchResult((0.25,), (0.7,)),
        MatchResult((), (0.55, 0.52)),
        MatchResult((), (0.2,)),
    ]
    op = calibrate_operating_point(froc_curve(results), 1.0, "test")
    assert op.cluster_score == 0.52  # 4 false clusters at 0.52 or more: 1 per image
    assert op.fp_per_image == 1.0 and op.sensitivity == 0.5
    op = calibrate_operating_point(froc_curve(results), 0.5, "test")
    assert op.cluster_score == 0.7 and op.fp_per_image == 0.5
    op = calibrate_operating_point(froc_curve(results), 10.0, "test")
    assert op.cluster_score == 0.2  # the rate is never reached: the lowest score seen
    op = calibrate_operating_point(froc_curve([MatchResult((0.06,), (0.05,))]), 10.0, "test")
    assert op.cluster_score == 0.1  # never below MIN_OPERATING_SCORE


def test_model_operating_point_is_used(mias_model: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    import calcscope
    from calcscope.config import with_model
    from calcscope.detection.model_card import OperatingPoint
    from calcscope.reports.schema import to_report

    images, _, out = mias_model
    mine = tmp_path / "mine"
    shutil.copytree(out, mine, ignore=shutil.ignore_patterns(".cache"))
    card = read_card(mine)
    op = OperatingPoint(cluster_score=0.77, source="test")
    write_card(mine, card.model_copy(update={"operating_point": op}))
    assert with_model(Config(), mine).cluster.operating_score == 0.77
    report = to_report(calcscope.analyze(images / "mdb001.pgm", spacing_mm=0.2, model=mine))
    assert report.settings.cluster_operating_score == 0.77
    write_card(mine, card.model_copy(update={"operating_point": None}))
    assert with_model(Config(), mine).cluster.operating_score == Config().cluster.operating_score


def test_card_without_operating_point_keeps_its_hash(
    mias_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A card written before ``operating_point`` existed (no such key) still reads."""
    import shutil

    _, _, out = mias_model
    old = tmp_path / "old"
    shutil.copytree(out, old, ignore=shutil.ignore_patterns(".cache"))
    card = write_card(old, read_card(old).model_copy(update={"operating_point": None}))
    doc = json.loads((old / "model.json").read_text())
    del doc["operating_point"]
    (old / "model.json").write_text(json.dumps(doc))
    assert read_card(old).sha256 == card.sha256


def test_shipped_card_is_the_train_recipe() -> None:
    """The shipped model folder's card: today's operating point (the config default) and
    the ``calcscope train`` command that rebuilds it, with the command's default recipe."""
    from calcscope.detection.classifier import MODEL_DIR

    card = read_card(MODEL_DIR)
    assert card.operating_point is not None
    assert card.operating_point.cluster_score == Config().cluster.operating_score
    rebuild = card.rebuild or ""
    assert rebuild.startswith("calcscope train --format mias ")
    assert rebuild.endswith("--out src/calcscope/detection/models")
    for flag in ("--ensemble", "--insertions", "--phantoms", "--rounds"):
        assert flag not in rebuild  # the defaults are the shipped recipe
    t = card.training
    d = TrainOptions()
    assert (t.ensemble, t.insertions_per_member, t.phantoms, t.rounds, t.seed) == (
        d.ensemble, d.insertions, d.phantoms, d.rounds, d.seed
    )  # fmt: skip


def test_command_defaults_are_the_recipe() -> None:
    import inspect

    from calcscope.apps.cli_train import train

    params = inspect.signature(train).parameters
    d = TrainOptions()
    for name in ("ensemble", "insertions", "rounds", "phantoms", "workers"):
        assert params[name].default == getattr(d, name), name
    assert params["operating_fp_per_image"].default == d.operating_fp_per_image
