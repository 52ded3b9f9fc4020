"""Per-candidate features: the :class:`Candidates` table, measured for all objects at once
with label-indexed reductions, and the context features (local texture, crowding)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from calcscope.detection.candidates import BandStack, ObjectLabels, TopHat, TopHatMarks, filter_at
from calcscope.detection.labels import SparseLabels

__all__ = [
    "Candidates",
    "context_features",
    "empty_candidates",
    "measure_candidates",
    "subset_candidates",
]


@dataclass(frozen=True)
class Candidates:
    """Feature table of every candidate (one entry per candidate in each array)."""

    label: np.ndarray  # label id in the component image
    center_rc: np.ndarray  # (n, 2) float
    bbox_rc: np.ndarray  # (n, 4) int: row0, col0, row1, col1
    peak_cnr: np.ndarray
    band_cnr: np.ndarray  # (n, n_bands) peak CNR per band
    tophat_z: np.ndarray  # peak top-hat residual / its robust sigma
    contrast: np.ndarray  # peak - base of the top-hat residual, image units
    area_mm2: np.ndarray  # half-maximum area
    diameter_mm: np.ndarray  # equivalent-circle diameter of the half-maximum area
    major_mm: np.ndarray  # second-moment major axis length
    minor_mm: np.ndarray
    mean_intensity: np.ndarray  # local tissue brightness (background estimate)
    local_rms: np.ndarray  # rms of the finest band's CNR within about 2 mm (texture, grain)
    neighbours: np.ndarray  # other candidates within 5 mm
    score: np.ndarray
    pixel_mm: float = 0.1

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def feature_matrix(self) -> np.ndarray:
        """Features as an ``(n, k)`` float32 matrix, columns in :attr:`FEATURE_NAMES`."""
        return np.column_stack(
            [
                self.peak_cnr,
                *self.band_cnr.T,
                self.tophat_z,
                self.contrast,
                self.area_mm2,
                self.diameter_mm,
                self.major_mm,
                self.minor_mm,
                1.0 - self.minor_mm / np.maximum(self.major_mm, 1e-6),
                self.mean_intensity,
                self.local_rms,
                self.peak_cnr / np.maximum(self.local_rms, 0.1),
                self.neighbours,
                np.full(self.label.shape, self.pixel_mm),
            ]
        ).astype(np.float32)

    FEATURE_NAMES = (
        "peak_cnr",
        "band0_cnr",
        "band1_cnr",
        "band2_cnr",
        "tophat_z",
        "contrast",
        "area_mm2",
        "diameter_mm",
        "major_mm",
        "minor_mm",
        "elongation",
        "mean_intensity",
        "local_rms",
        "local_cnr",
        "neighbours",
        "pixel_mm",
    )


def _bincount(lab: np.ndarray, weights: np.ndarray, m: int) -> np.ndarray:
    """Sum of ``weights`` per label 1..m."""
    return np.bincount(lab, weights, minlength=m + 1)[1:]


def _axes_mm(
    lab: np.ndarray,
    rows_all: np.ndarray,
    cols_all: np.ndarray,
    half_px: np.ndarray,
    spacing_mm: tuple[float, float],
    pixel_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Major and minor axis lengths (mm) from the second moments of each object's pixels
    (``lab`` at ``rows_all``, ``cols_all``; ``half_px`` pixels each)."""
    m = half_px.size
    hw = np.ones(lab.shape, dtype=np.float64)
    n_half = np.maximum(half_px, 1.0)
    mr = _bincount(lab, hw * rows_all, m) / n_half
    mc = _bincount(lab, hw * cols_all, m) / n_half
    dr = (rows_all - mr[lab - 1]) * spacing_mm[0]
    dc = (cols_all - mc[lab - 1]) * spacing_mm[1]
    srr = _bincount(lab, hw * dr * dr, m) / n_half
    scc = _bincount(lab, hw * dc * dc, m) / n_half
    src = _bincount(lab, hw * dr * dc, m) / n_half
    # pixel footprint adds 1/12 px^2 of variance per axis
    pix2 = pixel_mm**2 / 12.0
    tr = srr + scc + 2 * pix2
    det = (srr + pix2) * (scc + pix2) - src**2
    disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0.0))
    major_mm = 4.0 * np.sqrt(np.maximum(tr / 2 + disc, 0.0))
    minor_mm = 4.0 * np.sqrt(np.maximum(tr / 2 - disc, 0.0))
    return major_mm, minor_mm


def _bboxes(stats: np.ndarray) -> np.ndarray:
    """``(n, 4)`` boxes (row0, col0, row1, col1) from OpenCV component statistics."""
    return np.column_stack(
        [
            stats[:, cv2.CC_STAT_TOP],
            stats[:, cv2.CC_STAT_LEFT],
            stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT],
            stats[:, cv2.CC_STAT_LEFT] + stats[:, cv2.CC_STAT_WIDTH],
        ]
    ).astype(np.int64)


def measure_candidates(
    objects: ObjectLabels,
    bands: BandStack,
    tophat: TopHat | TopHatMarks,
    spacing_mm: tuple[float, float],
    pixel_mm: float,
) -> Candidates:
    """Feature table of every object (context features and scores still zero).

    Centres are weighted by the top-hat residual above each object's minimum; areas and
    axes are those of the object (its half-peak outline). The residual is read from
    ``objects.residual_at`` when it holds it, else from ``tophat`` (a :class:`TopHat`).
    """
    m = objects.count
    labels = objects.labels
    if isinstance(labels, SparseLabels):
        flat_idx, lab = labels.pixels, labels.labels_at
    else:
        flat_idx = np.flatnonzero(labels) if objects.pixels is None else objects.pixels
        lab = labels.ravel()[flat_idx]
    index = np.arange(1, m + 1)

    def per(values: np.ndarray, fn: str) -> np.ndarray:
        return np.asarray(getattr(ndimage, fn)(values, lab, index), dtype=np.float64)

    if objects.residual_at is not None and objects.pixels is not None:
        r_vals = objects.residual_at
    elif isinstance(tophat, TopHat):
        r_vals = tophat.residual.ravel()[flat_idx]
    else:
        raise ValueError("the objects do not hold the residual and the top-hat does not either")
    peak_r = per(r_vals, "maximum")
    base_r = np.maximum(per(r_vals, "minimum"), 0.0)
    weights = np.maximum(r_vals - base_r[lab - 1], 0.0) + 1e-9
    rows_all, cols_all = np.divmod(flat_idx, labels.shape[1])
    wsum = np.maximum(_bincount(lab, weights, m), 1e-12)
    cr = _bincount(lab, weights * rows_all, m) / wsum
    cc = _bincount(lab, weights * cols_all, m) / wsum
    half_px = objects.stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    area_mm2 = half_px * (spacing_mm[0] * spacing_mm[1])
    major_mm, minor_mm = _axes_mm(lab, rows_all, cols_all, half_px, spacing_mm, pixel_mm)
    band_values = np.stack([bands.band_at(k, flat_idx) for k in range(len(bands.noise))])
    return Candidates(
        label=index.astype(np.int32),
        center_rc=np.column_stack([cr, cc]),
        bbox_rc=_bboxes(objects.stats[1:]),
        peak_cnr=per(np.max(band_values, axis=0), "maximum"),  # the CNR map at the objects
        band_cnr=np.column_stack([per(v, "maximum") for v in band_values]),
        tophat_z=per(r_vals * np.float32(1.0 / tophat.sigma), "maximum"),
        contrast=peak_r - base_r,
        area_mm2=area_mm2,
        diameter_mm=2.0 * np.sqrt(area_mm2 / np.pi),
        major_mm=major_mm,
        minor_mm=minor_mm,
        mean_intensity=per(
            bands.background_level.ravel()[flat_idx]
            if objects.background_at is None or objects.pixels is None
            else objects.background_at,
            "mean",
        ),
        local_rms=np.zeros(m),
        neighbours=np.zeros(m),
        score=np.zeros(m),
        pixel_mm=pixel_mm,
    )


def context_features(
    c: Candidates, band0: np.ndarray, pixel_mm: float, spacing_mm: tuple[float, float]
) -> Candidates:
    """``c`` with its context features: local texture (rms of the finest band's CNR
    ``band0`` within about 2 mm) and crowding (candidates within 5 mm). Film grain and
    dense tissue raise the first, clusters the second."""
    if len(c) == 0:
        return c
    k = 2 * max(1, int(round(1.0 / pixel_mm))) + 1
    rows, cols = band0.shape
    rr = np.clip(np.round(c.center_rc[:, 0]).astype(np.int64), 0, rows - 1)
    cc = np.clip(np.round(c.center_rc[:, 1]).astype(np.int64), 0, cols - 1)
    # the mean square in a k x k box, read only at the candidates (tiles around them)
    sq = filter_at(
        band0.shape,
        rr * cols + cc,
        k // 2,
        lambda box: cv2.boxFilter(np.minimum(band0[box], 20.0) ** 2, -1, (k, k)),
    )
    local_rms = np.sqrt(np.maximum(sq, 0.0)).astype(np.float64)
    pts = c.center_rc * np.asarray(spacing_mm)
    tree = cKDTree(pts)
    counts = np.array([len(n) - 1 for n in tree.query_ball_point(pts, r=5.0)], dtype=np.float64)
    return dataclasses.replace(c, local_rms=local_rms, neighbours=counts)


def subset_candidates(c: Candidates, keep: np.ndarray) -> Candidates:
    """The candidates of ``c`` selected by ``keep`` (a bool mask or indices)."""
    fields = {
        f.name: (
            getattr(c, f.name)[keep]
            if isinstance(getattr(c, f.name), np.ndarray)
            else getattr(c, f.name)
        )
        for f in dataclasses.fields(c)
    }
    return Candidates(**fields)


def empty_candidates(n_bands: int) -> Candidates:
    """A table of no candidates with ``n_bands`` band columns."""
    z = np.zeros(0)
    return Candidates(
        label=np.zeros(0, dtype=np.int32),
        center_rc=np.zeros((0, 2)),
        bbox_rc=np.zeros((0, 4), dtype=np.int64),
        peak_cnr=z,
        band_cnr=np.zeros((0, n_bands)),
        tophat_z=z,
        contrast=z,
        area_mm2=z,
        diameter_mm=z,
        major_mm=z,
        minor_mm=z,
        mean_intensity=z,
        local_rms=z,
        neighbours=z,
        score=z,
    )
