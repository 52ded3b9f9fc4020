"""A synthetic four-view screening exam with known truth (``calcscope phantom --exam``).

Four DICOM MG images of one study (one ``StudyInstanceUID``, ``PatientID`` and
``StudyDate``): right and left CC and MLO, each with ``ImageLaterality``,
``ViewPosition`` and ``ViewCodeSequence``, and ``PatientOrientation`` as a scanner writes
it for the phantom's display (DICOM PS3.3 C.8.11.7, PS3.17 "Mammography"): the first
value the direction of increasing column, the second of increasing row. The phantom
draws a right breast with its nipple pointing right and the left breast mirrored, the
image top lateral on a CC view and superior on an MLO view, so a right CC is ``A\\L``, a
right MLO ``A\\FL``, a left CC ``P\\R`` and a left MLO ``P\\FR``.

One breast holds a cluster placed consistently on both its views: the same distance from
the nipple and the same quadrant (outer / inner on the CC view, upper / lower on the MLO
view), measured from the posterior nipple line (perpendicular to the pectoral muscle on
the MLO view, BI-RADS atlas) as :func:`calcscope.reading.location.nipple_line` draws it
on the view without the cluster; the other breast holds no calcification.
The truth (``truth.json``) says which cluster lies on which views, its quadrant and clock.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from calcscope.exam.pairing import clock_face
from calcscope.files import atomic_path, write_atomic
from calcscope.model import Distribution, Laterality, Morphology, View
from calcscope.phantom.anatomy import EDGE_MARGIN_MM, breast_geometry
from calcscope.phantom.mammogram import ClusterSpec, make_phantom
from calcscope.phantom.truth import Phantom

__all__ = [
    "ExamPhantom",
    "ExamTruth",
    "PATIENT_ORIENTATION",
    "make_exam",
    "write_exam_phantom",
    "write_views",
]

PATIENT_ORIENTATION = {
    (Laterality.RIGHT, View.CC): "A\\L",
    (Laterality.RIGHT, View.MLO): "A\\FL",
    (Laterality.LEFT, View.CC): "P\\R",
    (Laterality.LEFT, View.MLO): "P\\FR",
}
"""PatientOrientation of the phantom's views (rows direction \\ columns direction)."""


@dataclass(frozen=True)
class ExamTruth:
    """Where the exam's cluster lies."""

    laterality: Laterality
    morphology: Morphology
    distance_from_nipple_mm: float
    outer_mm: float  # + outer (CC view)
    upper_mm: float  # + upper (MLO view)
    quadrant: str
    clock: str | None
    centers_rc: dict[View, tuple[float, float]]  # in each view of its breast


@dataclass(frozen=True)
class ExamPhantom:
    """The four views and the truth."""

    views: dict[tuple[Laterality, View], Phantom]
    truth: ExamTruth


def _nipple_frame(
    seed: int, shape: tuple[int, int], spacing_mm: float, view: View
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """The breast (RIGHT frame) of a view and its posterior nipple line as the reader
    finds it: the anatomy, the nipple (mm), the unit vector back to the chest wall and
    the one towards the image top (outer on a CC view, upper on an MLO view), in mm."""
    from calcscope.config import Config
    from calcscope.imaging.preprocess import preprocess
    from calcscope.reading.location import nipple_line

    rng = np.random.default_rng(seed)
    anat, _, _ = breast_geometry(rng, shape[0], shape[1], spacing_mm, view.is_oblique_or_lateral)
    empty = make_phantom(
        seed=seed,
        spacing_mm=spacing_mm,
        shape=shape,
        laterality=Laterality.RIGHT,
        view=view,
        clusters=[],
        macros=[],
        n_singles=0,
    ).mammogram
    line = nipple_line(empty, preprocess(empty, Config().preprocess))
    if line is None:
        nipple = np.array(anat.nipple_rc) * spacing_mm
        back = np.array([0.0, -1.0])
    else:
        nipple = np.array(line.nipple_rc) * spacing_mm
        back = np.array(line.direction_rc) / np.linalg.norm(line.direction_rc)
    up = np.array([-back[1], back[0]])
    return anat, nipple, back, (-up if up[0] > 0 else up)


def _place(
    seeds: dict[View, int],
    shape: tuple[int, int],
    spacing_mm: float,
    fraction: float,
    angles_deg: tuple[float, float],
) -> tuple[float, float, float, dict[View, tuple[float, float]]]:
    """Distance from the nipple and offsets (mm) and the RIGHT-frame centre on each view
    of a cluster ``fraction`` of the breast depth from the nipple, ``angles_deg`` off the
    posterior nipple line towards outer (CC view) and upper (MLO view)."""
    frames = {v: _nipple_frame(s, shape, spacing_mm, v) for v, s in seeds.items()}
    depth_mm = min(f[1][1] for f in frames.values())
    for scale in (1.0, 0.85, 0.7, 0.55, 0.4):
        d = fraction * depth_mm * scale
        offs = {View.CC: d * math.sin(math.radians(angles_deg[0]))}
        offs[View.MLO] = d * math.sin(math.radians(angles_deg[1]))
        centers = {}
        for v, (_, nipple, back, up) in frames.items():
            along = math.sqrt(d**2 - offs[v] ** 2)
            rc = (nipple + along * back + offs[v] * up) / spacing_mm
            centers[v] = (float(rc[0]), float(rc[1]))
        if all(frames[v][0].allowed(*c) > EDGE_MARGIN_MM + 4.0 for v, c in centers.items()):
            return d, offs[View.CC], offs[View.MLO], centers
    raise ValueError("no room for the exam's cluster; use a larger shape")


def make_exam(
    *,
    seed: int = 0,
    spacing_mm: float = 0.1,
    shape: tuple[int, int] | None = (1600, 1300),
    laterality: Laterality = Laterality.LEFT,
    morphology: Morphology = Morphology.FINE_PLEOMORPHIC,
    n: int = 10,
    angles_deg: tuple[float, float] = (50.0, 25.0),
) -> ExamPhantom:
    """A four-view exam: a cluster of ``n`` ``morphology`` calcifications on both views of
    the ``laterality`` breast, ``angles_deg`` off the nipple line towards outer (CC view)
    and upper (MLO view): upper outer quadrant, 2 o'clock on the left breast (10 on the
    right) for the default; nothing in the other breast. ``shape=None`` gives the full
    field at ``spacing_mm``."""
    from calcscope.phantom.anatomy import full_field_shape

    lat = Laterality(laterality)
    rows, cols = full_field_shape(spacing_mm) if shape is None else shape
    seeds = {View.CC: seed * 4 + 1, View.MLO: seed * 4 + 2}
    d, outer, upper, centers = _place(seeds, (rows, cols), spacing_mm, 0.45, angles_deg)
    views: dict[tuple[Laterality, View], Phantom] = {}
    true_centers: dict[View, tuple[float, float]] = {}
    for side in (Laterality.RIGHT, Laterality.LEFT):
        for view in (View.CC, View.MLO):
            clusters: list[ClusterSpec] = []
            if side is lat:
                r, c = centers[view]
                c = cols - 1 - c if side is Laterality.LEFT else c
                true_centers[view] = (r, c)
                clusters = [ClusterSpec(morphology, Distribution.GROUPED, n, center_rc=(r, c))]
            views[(side, view)] = make_phantom(
                seed=seeds[view],
                spacing_mm=spacing_mm,
                shape=(rows, cols),
                laterality=side,
                view=view,
                clusters=clusters,
                macros=[],
                n_singles=0,
            )
    quadrant, hour = clock_face(lat, outer, upper)
    truth = ExamTruth(
        laterality=lat,
        morphology=morphology,
        distance_from_nipple_mm=round(d, 1),
        outer_mm=round(outer, 1),
        upper_mm=round(upper, 1),
        quadrant=quadrant,
        clock=f"{hour} o'clock" if hour else None,
        centers_rc=true_centers,
    )
    return ExamPhantom(views, truth)


def truth_dict(exam: ExamPhantom, files: dict[tuple[Laterality, View], str]) -> dict[str, Any]:
    """The truth as JSON: the cluster, the files of the views it is on, the clean breast."""
    t = exam.truth
    clean = Laterality.RIGHT if t.laterality is Laterality.LEFT else Laterality.LEFT
    return {
        "cluster": {
            "laterality": t.laterality.value,
            "morphology": t.morphology.value,
            "views": {
                v.value: {"file": files[(t.laterality, v)], "center_rc": list(t.centers_rc[v])}
                for v in (View.CC, View.MLO)
            },
            "distance_from_nipple_mm": t.distance_from_nipple_mm,
            "outer_mm": t.outer_mm,
            "upper_mm": t.upper_mm,
            "quadrant": t.quadrant,
            "clock": t.clock,
        },
        "clean_breast": clean.value,
        "files": {f"{lat.value}{v.value}": name for (lat, v), name in files.items()},
    }


def write_views(
    out: Path,
    views: dict[tuple[Laterality, View], Phantom],
    study: str,
    date: str,
    patient: str,
) -> dict[tuple[Laterality, View], Path]:
    """Write the views of one study as DICOM MG files ``<L|R><view>.dcm`` into ``out``
    (``study``: StudyInstanceUID, ``date``: StudyDate YYYYMMDD)."""
    from calcscope.imaging.write import write_image

    out.mkdir(parents=True, exist_ok=True)
    files: dict[tuple[Laterality, View], Path] = {}
    for k, ((lat, view), ph) in enumerate(sorted(views.items())):
        path = out / f"{lat.value}{view.value}.dcm"
        write_image(ph.mammogram, path)
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study, date, "093000"
        ds.SeriesDate = ds.ContentDate = date
        ds.PatientID, ds.PatientName = patient, "PHANTOM^EXAM"
        ds.PatientOrientation = PATIENT_ORIENTATION[(lat, view)].split("\\")
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = f"{lat.value} {view.value}"
        with atomic_path(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        files[(lat, view)] = path
    return files


def write_exam_phantom(
    out_dir: str | Path, *, seed: int = 0, spacing_mm: float = 0.1, **kwargs: Any
) -> tuple[dict[tuple[Laterality, View], Path], Path]:
    """Write the exam of :func:`make_exam` as four DICOM files of one study and
    ``truth.json`` into ``out_dir``; returns the files and the truth's path."""
    from pydicom.uid import generate_uid

    out = Path(out_dir)
    exam = make_exam(seed=seed, spacing_mm=spacing_mm, **kwargs)
    files = write_views(out, exam.views, generate_uid(), "20240315", f"CALCSCOPE-EXAM-{seed}")
    truth = truth_dict(exam, {key: p.name for key, p in files.items()})
    truth_path = write_atomic(out / "truth.json", json.dumps(truth, indent=1) + "\n")
    return files, truth_path
