"""A synthetic follow-up: a prior and a current four-view exam of one woman
(``calcscope phantom --exam DIR --follow-up``).

Both exams share the ``PatientID``; their ``StudyDate`` are two years apart and their
``StudyInstanceUID`` differ. The current exam is positioned and compressed differently:
each view's breast is drawn anew (another outline, nipple and pectoral muscle), every
cluster lies :data:`COMPRESSION` times farther from the nipple and a few degrees off its
prior direction (:data:`ROTATION_DEG`), so that it moves by several millimetres on the
images. Three clusters, each on both views of its breast:

* ``growing`` (left breast, upper outer): more calcifications over a larger extent now;
* ``stable`` (right breast, upper outer): the same number and extent;
* ``new`` (left breast, lower inner): in the current exam only.

``truth.json`` says where each cluster lies in each exam and the change expected.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calcscope.exam.pairing import clock_face
from calcscope.files import write_atomic
from calcscope.model import Distribution, Laterality, Morphology, View
from calcscope.phantom.anatomy import EDGE_MARGIN_MM
from calcscope.phantom.exam import _nipple_frame, write_views
from calcscope.phantom.mammogram import ClusterSpec, make_phantom
from calcscope.phantom.truth import Phantom

__all__ = [
    "FollowUpCluster",
    "FollowUpPhantom",
    "CLUSTERS",
    "COMPRESSION",
    "ROTATION_DEG",
    "PRIOR_DATE",
    "CURRENT_DATE",
    "make_follow_up",
    "write_follow_up_phantom",
]

COMPRESSION = 1.08
"""Current distance from the nipple / prior distance (another compression)."""
ROTATION_DEG = (6.0, -5.0)
"""Current minus prior angle off the nipple line on the CC and the MLO view (degrees)."""
PRIOR_DATE, CURRENT_DATE = "20220520", "20240520"


@dataclass(frozen=True)
class FollowUpCluster:
    """One cluster of the follow-up: where, what, and how many in each exam (0: absent)."""

    name: str
    laterality: Laterality
    morphology: Morphology
    fraction: float  # of the breast depth from the nipple (prior)
    angles_deg: tuple[float, float]  # off the nipple line towards outer (CC), upper (MLO)
    n_prior: int
    n_current: int
    radius_prior_mm: float
    radius_current_mm: float
    change: str  # expected: "increased", "stable", "new"


CLUSTERS = (
    FollowUpCluster(
        "growing", Laterality.LEFT, Morphology.FINE_PLEOMORPHIC, 0.55, (45.0, 30.0),
        6, 18, 2.5, 6.5, "increased",
    ),
    FollowUpCluster(
        "stable", Laterality.RIGHT, Morphology.FINE_PLEOMORPHIC, 0.45, (45.0, 30.0),
        10, 10, 4.0, 4.0, "stable",
    ),
    FollowUpCluster(
        "new", Laterality.LEFT, Morphology.FINE_PLEOMORPHIC, 0.35, (-40.0, -35.0),
        0, 10, 4.0, 4.0, "new",
    ),
)  # fmt: skip
"""The three clusters (their members are drawn anew in each exam)."""


@dataclass(frozen=True)
class Placed:
    """A cluster's place in one exam: distance and offsets (mm), centre per view (rc)."""

    distance_mm: float
    outer_mm: float
    upper_mm: float
    centers_rc: dict[View, tuple[float, float]]


@dataclass(frozen=True)
class FollowUpPhantom:
    """The two exams' views and where each cluster lies in each (None: absent)."""

    prior: dict[tuple[Laterality, View], Phantom]
    current: dict[tuple[Laterality, View], Phantom]
    places: dict[str, tuple[Placed | None, Placed | None]]


Frames = dict[View, tuple[Any, np.ndarray, np.ndarray, np.ndarray]]
"""Per view: the breast, its nipple (mm), the unit vectors back and up (see _nipple_frame)."""


def _place(
    frames: Frames, d_mm: float, angles_deg: tuple[float, float], spacing_mm: float
) -> Placed:
    offs = {View.CC: d_mm * math.sin(math.radians(angles_deg[0]))}
    offs[View.MLO] = d_mm * math.sin(math.radians(angles_deg[1]))
    centers = {}
    for v, (anat, nipple, back, up) in frames.items():
        along = math.sqrt(d_mm**2 - offs[v] ** 2)
        rc = (nipple + along * back + offs[v] * up) / spacing_mm
        if anat.allowed(float(rc[0]), float(rc[1])) <= EDGE_MARGIN_MM + 4.0:
            raise ValueError("no room for the follow-up's clusters; use a larger shape")
        centers[v] = (float(rc[0]), float(rc[1]))
    return Placed(round(d_mm, 1), round(offs[View.CC], 1), round(offs[View.MLO], 1), centers)


def _both(
    frames: dict[str, Frames], cl: FollowUpCluster, d_mm: float, spacing_mm: float
) -> tuple[Placed | None, Placed]:
    """The cluster's place in the prior exam (None when absent) and the current one,
    nearer the nipple where the breasts leave no room at ``d_mm``."""
    now_angles = (cl.angles_deg[0] + ROTATION_DEG[0], cl.angles_deg[1] + ROTATION_DEG[1])
    for scale in (1.0, 0.85, 0.7, 0.55, 0.4):
        d = d_mm * scale
        try:
            before = _place(frames["prior"], d, cl.angles_deg, spacing_mm) if cl.n_prior else None
            return before, _place(frames["current"], d * COMPRESSION, now_angles, spacing_mm)
        except ValueError:
            continue
    raise ValueError("no room for the follow-up's clusters; use a larger shape")


def _views(
    seeds: dict[View, int],
    shape: tuple[int, int],
    spacing_mm: float,
    specs: dict[Laterality, list[tuple[Placed, ClusterSpec]]],
) -> dict[tuple[Laterality, View], Phantom]:
    views = {}
    for side in (Laterality.RIGHT, Laterality.LEFT):
        for view in (View.CC, View.MLO):
            clusters = []
            for placed, spec in specs.get(side, []):
                r, c = placed.centers_rc[view]
                c = shape[1] - 1 - c if side is Laterality.LEFT else c
                clusters.append(
                    ClusterSpec(
                        spec.morphology, Distribution.GROUPED, spec.n, (r, c), spec.radius_mm
                    )
                )
            views[(side, view)] = make_phantom(
                seed=seeds[view], spacing_mm=spacing_mm, shape=shape, laterality=side,
                view=view, clusters=clusters, macros=[], n_singles=0,
            )  # fmt: skip
    return views


def _layout(
    base: int, shape: tuple[int, int], spacing_mm: float
) -> tuple[dict[str, dict[View, int]], dict[str, Any], dict[str, Any]]:
    """The anatomy seeds of both exams from ``base`` and every cluster's place (raises
    ValueError where a breast leaves no room)."""
    seeds = {
        "prior": {View.CC: base + 1, View.MLO: base + 2},
        "current": {View.CC: base + 5, View.MLO: base + 6},
    }
    frames = {
        k: {v: _nipple_frame(s, shape, spacing_mm, v) for v, s in sd.items()}
        for k, sd in seeds.items()
    }
    depth_mm = min(f[1][1] for fr in frames.values() for f in fr.values())
    places: dict[str, tuple[Placed | None, Placed | None]] = {}
    specs: dict[str, dict[Laterality, list[tuple[Placed, ClusterSpec]]]] = {
        "prior": {},
        "current": {},
    }
    for cl in CLUSTERS:
        before, now = _both(frames, cl, cl.fraction * depth_mm, spacing_mm)
        places[cl.name] = (before, now)
        for key, placed, n, radius in (
            ("prior", before, cl.n_prior, cl.radius_prior_mm),
            ("current", now, cl.n_current, cl.radius_current_mm),
        ):
            if placed is not None and n:
                spec = ClusterSpec(cl.morphology, Distribution.GROUPED, n, None, radius)
                specs[key].setdefault(cl.laterality, []).append((placed, spec))
    return seeds, places, specs


def make_follow_up(
    *, seed: int = 0, spacing_mm: float = 0.1, shape: tuple[int, int] = (1300, 1100)
) -> FollowUpPhantom:
    """The prior and current exams of :data:`CLUSTERS` (see the module docstring); where
    the seed's breasts leave no room for a cluster, other breasts are drawn (the same seed
    always gives the same exams)."""
    for attempt in range(8):
        try:
            seeds, places, specs = _layout(seed * 8 + 100_000 * attempt, shape, spacing_mm)
            break
        except ValueError:
            continue
    else:
        raise ValueError("no room for the follow-up's clusters; use a larger shape")
    return FollowUpPhantom(
        prior=_views(seeds["prior"], shape, spacing_mm, specs["prior"]),
        current=_views(seeds["current"], shape, spacing_mm, specs["current"]),
        places=places,
    )


def _where(cl: FollowUpCluster, p: Placed | None, n: int, radius: float) -> dict[str, Any] | None:
    if p is None:
        return None
    quadrant, hour = clock_face(cl.laterality, p.outer_mm, p.upper_mm)
    side = cl.laterality.value
    return {
        "n_calcifications": n,
        "radius_mm": radius,
        "distance_from_nipple_mm": p.distance_mm,
        "outer_mm": p.outer_mm,
        "upper_mm": p.upper_mm,
        "quadrant": quadrant,
        "clock": f"{hour} o'clock" if hour else None,
        "views": {
            v.value: {"file": f"{side}{v.value}.dcm", "center_rc": list(p.centers_rc[v])}
            for v in (View.CC, View.MLO)
        },
    }


def write_follow_up_phantom(
    out_dir: str | Path, *, seed: int = 0, spacing_mm: float = 0.1, **kwargs: Any
) -> tuple[Path, Path, Path]:
    """Write the follow-up into ``out_dir``: ``prior/`` and ``current/`` (four DICOM views
    each) and ``truth.json``; returns the two folders and the truth's path."""
    from pydicom.uid import generate_uid

    out = Path(out_dir)
    ph = make_follow_up(seed=seed, spacing_mm=spacing_mm, **kwargs)
    patient = f"CALCSCOPE-FOLLOWUP-{seed}"
    uids = {"prior": generate_uid(), "current": generate_uid()}
    write_views(out / "prior", ph.prior, uids["prior"], PRIOR_DATE, patient)
    write_views(out / "current", ph.current, uids["current"], CURRENT_DATE, patient)
    truth = {
        "patient_id": patient,
        "prior": {"folder": "prior", "study_instance_uid": uids["prior"], "study_date": PRIOR_DATE},
        "current": {
            "folder": "current",
            "study_instance_uid": uids["current"],
            "study_date": CURRENT_DATE,
        },
        "interval_months": 24,
        "positioning": {"compression": COMPRESSION, "rotation_deg": list(ROTATION_DEG)},
        "clusters": [
            {
                "name": cl.name,
                "laterality": cl.laterality.value,
                "morphology": cl.morphology.value,
                "change": cl.change,
                "prior": _where(cl, ph.places[cl.name][0], cl.n_prior, cl.radius_prior_mm),
                "current": _where(cl, ph.places[cl.name][1], cl.n_current, cl.radius_current_mm),
            }
            for cl in CLUSTERS
        ],
    }
    path = write_atomic(out / "truth.json", json.dumps(truth, indent=1) + "\n")
    return out / "prior", out / "current", path
