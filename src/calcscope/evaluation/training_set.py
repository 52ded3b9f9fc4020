"""A training set for ``calcscope train``: images paired with their ground truth, read by
the same readers that ``calcscope evaluate`` uses (:mod:`calcscope.evaluation.truth`),
with the checks that make a bad set fail early and clearly."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from calcscope.errors import InputError
from calcscope.evaluation.truth import (
    ImageTruth,
    read_cbis_ddsm,
    read_inbreast_xml,
    read_mias,
)

__all__ = [
    "SetFormat",
    "TrainingDataError",
    "TrainingSet",
    "cbis_image_key",
    "mias_woman",
    "read_training_set",
]


class TrainingDataError(InputError):
    """The training set cannot be used as given (the message says why and what to do)."""


class SetFormat(enum.StrEnum):
    """Layouts of the public sets ``calcscope train`` reads."""

    MIAS = "mias"
    CBIS_DDSM = "cbis-ddsm"
    INBREAST = "inbreast"

    @property
    def acquisition(self) -> str:
        """``"film"`` (digitised) or ``"digital"``."""
        return "digital" if self is SetFormat.INBREAST else "film"


@dataclass(frozen=True)
class TrainingSet:
    """Images and truth of one set.

    Attributes
    ----------
    format : SetFormat
    images_dir : Path
    paths : dict of str to Path
        Image id -> image file, sorted by id.
    truth : dict of str to ImageTruth
        Image id -> its truth (normal images have no clusters).
    woman : dict of str to str
        Image id -> patient (woman) id, for splits that keep a woman's images together.
    masks : dict of str to tuple of Path
        CBIS-DDSM: image id -> its ROI mask files (checked against the image's size when
        it is read).
    """

    format: SetFormat
    images_dir: Path
    paths: dict[str, Path]
    truth: dict[str, ImageTruth]
    woman: dict[str, str]
    masks: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    truth_path: Path = Path()

    @property
    def n_located_clusters(self) -> int:
        """Ground-truth clusters with a location, on images not excluded."""
        return sum(
            sum(c.center_rc is not None for c in t.clusters)
            for t in self.truth.values()
            if t.excluded_reason is None
        )


def _images(folder: Path) -> list[Path]:
    from calcscope.imaging.io import find_images

    if not folder.is_dir():
        raise TrainingDataError(f"{folder}: not a folder of images")
    images = find_images([folder])
    if not images:
        raise TrainingDataError(f"{folder}: no images found")
    return images


def _missing_error(kind: str, names: Iterable[str], folder: Path) -> TrainingDataError:
    names = sorted(names)
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return TrainingDataError(
        f"the truth names {len(names)} {kind} not in {folder}: {shown}; add them, or give "
        "a truth file trimmed to the images you have"
    )


def mias_woman(image_id: str) -> str:
    """mini-MIAS pairs consecutive images (mdb001 and mdb002) of one woman."""
    return f"w{(int(image_id[3:]) + 1) // 2:03d}"


def _read_mias(images_dir: Path, truth_path: Path) -> TrainingSet:
    paths = {p.stem: p for p in _images(images_dir) if p.stem[:3] == "mdb" and p.stem[3:].isdigit()}
    if not paths:
        raise TrainingDataError(f"{images_dir}: no mini-MIAS images (mdbNNN.pgm)")
    from calcscope.imaging.io import read_image

    first = next(iter(sorted(paths.values())))
    size_px = read_image(first, spacing_mm=0.2).shape[0]  # the file's origin is bottom-left
    truth = read_mias(truth_path, sorted(paths), size_px=size_px)
    woman = {k: mias_woman(k) for k in paths}
    return TrainingSet(SetFormat.MIAS, images_dir, dict(sorted(paths.items())), truth, woman)


def _inbreast_parts(path: Path) -> tuple[str, str]:
    """(image id, patient id) from an INbreast name ``<id>_<patient>_MG_R_CC_ANON``."""
    parts = path.stem.split("_")
    return parts[0], parts[1] if len(parts) > 1 else parts[0]


def _read_inbreast(images_dir: Path, truth_path: Path) -> TrainingSet:
    images = _images(images_dir)
    paths = {_inbreast_parts(p)[0]: p for p in images}
    woman = {_inbreast_parts(p)[0]: _inbreast_parts(p)[1] for p in images}
    xml_dir = truth_path if truth_path.is_dir() else truth_path.parent
    xmls = [truth_path] if truth_path.is_file() else sorted(xml_dir.glob("*.xml"))
    if not xmls:
        raise TrainingDataError(f"{truth_path}: no INbreast XML files")
    by_id = {x.stem.split("_")[0]: x for x in xmls}
    missing = set(by_id) - set(paths)
    if missing:
        raise _missing_error("images", missing, images_dir)
    truth = {
        k: read_inbreast_xml(by_id[k], image_id=k)
        if k in by_id
        else ImageTruth(k, (), (), False, (), None, None)
        for k in paths
    }
    return TrainingSet(SetFormat.INBREAST, images_dir, dict(sorted(paths.items())), truth, woman)


def _cbis_image(images_dir: Path, rel: str, image_id: str, by_stem: dict[str, Path]) -> Path | None:
    direct = images_dir / rel
    if rel and direct.is_file():
        return direct
    return by_stem.get(image_id)


def cbis_image_key(path: Path) -> str:
    """Image id of a CBIS-DDSM file: the series folder of a TCIA download
    (``Calc-Training_P_00005_RIGHT_CC/.../1-1.dcm``) or the file name stem."""
    return path.parent.parent.parent.name if path.name == "1-1.dcm" else path.stem


def _read_cbis(images_dir: Path, truth_path: Path) -> TrainingSet:
    images = _images(images_dir)
    by_stem = {cbis_image_key(p): p for p in images}
    findings = read_cbis_ddsm(truth_path)
    paths: dict[str, Path] = {}
    masks: dict[str, list[Path]] = {}
    woman: dict[str, str] = {}
    missing_images: set[str] = set()
    missing_masks: set[str] = set()
    for f in findings:
        img = _cbis_image(images_dir, f.image_file_path, f.image_id, by_stem)
        if img is None:
            missing_images.add(f.image_id)
            continue
        paths[f.image_id] = img
        woman[f.image_id] = f.patient_id
        mask = images_dir / f.roi_mask_file_path
        if not f.roi_mask_file_path or not mask.is_file():
            missing_masks.add(f.roi_mask_file_path or f"(no mask path for {f.image_id})")
            continue
        masks.setdefault(f.image_id, []).append(mask)
    if missing_images:
        raise _missing_error("images", missing_images, images_dir)
    if missing_masks:
        raise _missing_error("ROI masks", missing_masks, images_dir)
    listed = {p.resolve() for ms in masks.values() for p in ms}
    for p in images:  # images in the folder that the CSV does not list are normal
        key = cbis_image_key(p)
        if key not in paths and p.resolve() not in listed:
            paths[key] = p
            woman[key] = key.rsplit("_", 2)[0] if key.count("_") >= 2 else key
    # the circles come from the masks, read with the image (their size is checked there)
    truth = {
        k: ImageTruth(
            k, (), (), bool(masks.get(k)), ("calcification",) if k in masks else (), None, None
        )
        for k in paths
    }
    return TrainingSet(
        SetFormat.CBIS_DDSM,
        images_dir,
        dict(sorted(paths.items())),
        truth,
        woman,
        {k: tuple(v) for k, v in masks.items()},
    )


def read_training_set(fmt: SetFormat | str, images_dir: Path, truth_path: Path) -> TrainingSet:
    """Read a set's images and ground truth and check them.

    Parameters
    ----------
    fmt : SetFormat or str
        ``mias`` (``truth_path`` = ``Info.txt``; every image needs a row, the file may
        list more images), ``inbreast`` (a folder of ``<id>.xml``, or one XML; images
        ``<id>_<patient>_*.dcm``; images without XML are normal) or ``cbis-ddsm`` (a
        case-description CSV whose image and ROI mask paths are relative to
        ``images_dir``, or images named ``<patient>_<side>_<view>``; images the CSV does
        not list are normal).
    images_dir, truth_path : Path

    Raises
    ------
    TrainingDataError
        No images; truth naming images (or masks) not in the folder; no located
        calcification cluster anywhere (a set with no positives).
    """
    fmt = SetFormat(fmt)
    images_dir, truth_path = Path(images_dir), Path(truth_path)
    if not truth_path.exists():
        raise TrainingDataError(f"{truth_path}: truth file not found")
    reader = {
        SetFormat.MIAS: _read_mias,
        SetFormat.INBREAST: _read_inbreast,
        SetFormat.CBIS_DDSM: _read_cbis,
    }[fmt]
    ts = replace(reader(images_dir, truth_path), truth_path=truth_path)
    if ts.n_located_clusters == 0 and not ts.masks:
        raise TrainingDataError(
            f"no positives: no image of {images_dir} has a located calcification cluster in "
            f"{truth_path.name}, so there is nothing to learn calcifications from"
        )
    return ts
