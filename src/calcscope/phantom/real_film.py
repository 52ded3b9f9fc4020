"""Clusters inserted into real high-resolution film the way issue 18's benchmark and tests do.

:func:`insert_benchmark_clusters` is the one recipe that ``benchmarks/bench_real_hires.py``,
``benchmarks/measure_scale_cnr.py`` and the real-film tests share (two clusters of 5-12
members in a 2-6 mm disc, pieces 0.15-0.6 mm), and :data:`CALC_FREE_FILMS` the real films
they count false clusters on.
"""

from __future__ import annotations

import numpy as np

from calcscope.model import Mammogram
from calcscope.phantom.mammogram import Phantom, insert_clusters

__all__ = [
    "CALC_FREE_FILMS",
    "BENCHMARK_PIECE_MM",
    "insert_benchmark_clusters",
]

CALC_FREE_FILMS: tuple[str, ...] = (
    "cbis-ddsm-images/Mass-Test_P_00173_LEFT_CC.dcm",
    "cbis-ddsm-images/Mass-Test_P_00173_LEFT_MLO.dcm",
    "cbis-ddsm-images/Mass-Test_P_00173_RIGHT_CC.dcm",
    "cbis-ddsm-images/Mass-Test_P_00173_RIGHT_MLO.dcm",
    "dicom/Mass-Test_P_00820_LEFT_CC.dcm",
)
"""Real high-resolution CBIS-DDSM films without a listed calcification (paths under the shared
data folder, read at 0.05 mm): every cluster reported on them is false."""

BENCHMARK_PIECE_MM: tuple[float, float] = (0.15, 0.6)
"""Size range (mm) of every inserted piece: the microcalcification specks of issue 18's target."""


def insert_benchmark_clusters(
    mammogram: Mammogram,
    region: np.ndarray,
    *,
    seed: int,
    contrast: tuple[float, float],
    piece_mm: tuple[float, float] | None = BENCHMARK_PIECE_MM,
) -> Phantom:
    """Insert the benchmark's two clusters into a real film.

    :func:`calcscope.phantom.insert_clusters` with the real-film benchmark's recipe: two
    clusters of 5-12 members each, in a disc of radius 2-6 mm, every piece ``piece_mm``
    across.

    Parameters
    ----------
    mammogram
        The real image; it is not modified.
    region
        Bool mask, the image's shape: where clusters may lie (the analysable breast).
    seed
        Insertion seed (callers offset it per image, e.g. ``seed + 1000 * image index``).
    contrast
        Range of the cluster level (peak contrast, image units), drawn log-uniformly per
        cluster.
    piece_mm
        Size range of every piece (mm, largest extent); None: the morphologies' own sizes
        (0.1-2 mm).

    Returns
    -------
    Phantom
        The image with the two clusters and their truth.
    """
    return insert_clusters(
        mammogram,
        region,
        seed=seed,
        n_clusters=2,
        members=(5, 12),
        radius_mm=(2.0, 6.0),
        contrast=contrast,
        piece_mm=piece_mm,
    )
