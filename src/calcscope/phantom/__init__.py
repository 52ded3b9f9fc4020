"""Synthetic mammograms with known truth: the demo image, the tests' phantoms, and real
tissue with clusters inserted (:func:`insert_clusters`)."""

from calcscope.phantom.dome_specks import insert_dome_clusters
from calcscope.phantom.mammogram import (
    CLUSTER_MORPHOLOGIES,
    MACRO_PATTERNS,
    ClusterSpec,
    Phantom,
    PhantomTruth,
    TrueCalcification,
    TrueCluster,
    TrueMacro,
    full_field_shape,
    insert_clusters,
    make_phantom,
    phantom_summary,
    truth_to_dict,
)
from calcscope.phantom.real_film import (
    BENCHMARK_PIECE_MM,
    CALC_FREE_FILMS,
    insert_benchmark_clusters,
)

__all__ = [
    "TrueCalcification",
    "TrueCluster",
    "TrueMacro",
    "PhantomTruth",
    "Phantom",
    "ClusterSpec",
    "CLUSTER_MORPHOLOGIES",
    "MACRO_PATTERNS",
    "make_phantom",
    "insert_clusters",
    "insert_benchmark_clusters",
    "insert_dome_clusters",
    "CALC_FREE_FILMS",
    "BENCHMARK_PIECE_MM",
    "truth_to_dict",
    "full_field_shape",
    "phantom_summary",
]
