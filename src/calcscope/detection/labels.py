"""Labels of sparse pixel sets: 8-connected components of a set of pixels labelled in
strips (:func:`components_at`), and a label image held as its labelled pixels
(:class:`SparseLabels`): the detector's regions cover a small part of the image, and
their outlines read it in small windows."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = ["SparseLabels", "components_at"]

_STRIP_ROWS = 256
"""Rows per strip of :func:`components_at` (even: strips start on OpenCV's block rows)."""


def components_at(
    pixels: np.ndarray, shape: tuple[int, int], opencv_order: bool = True
) -> tuple[int, np.ndarray]:
    """8-connected components of the pixels ``pixels`` (flat indices, ascending) of an
    image of ``shape``: the label count (the background included) and the label of each
    pixel (int32, 1..count-1).

    The pixels are labelled by ``cv2.connectedComponents`` in strips of
    :data:`_STRIP_ROWS` rows of the box around them, and the strips' components joined
    where they touch, so that no image of the box's size is made. With ``opencv_order``
    the labels are numbered as ``cv2.connectedComponents`` numbers them on the whole
    image (in the raster order of the first 2 x 2 block of each component, blocks counted
    from even rows and columns); else in an order of no meaning, which is cheaper.
    """
    if pixels.size == 0:
        return 1, np.zeros(0, dtype=np.int32)
    cols = shape[1]
    r, c = np.divmod(pixels, cols)
    r0, c0 = int(r[0]) & ~1, int(c.min()) & ~1
    width, last = int(c.max()) + 1 - c0, int(r[-1])
    local = np.empty(pixels.size, dtype=np.int64)
    bounds = np.searchsorted(pixels, np.arange(r0, last + 1 + _STRIP_ROWS, _STRIP_ROWS) * cols)
    ends: list[np.ndarray] = []  # each strip's first and last row of labels
    offset = 0
    for k, s in enumerate(range(r0, last + 1, _STRIP_ROWS)):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        height = min(_STRIP_ROWS, last + 1 - s)
        at = (r[lo:hi] - s) * width + (c[lo:hi] - c0)  # flat indices in the strip
        binary = np.zeros((height, width), dtype=np.uint8)
        binary.ravel()[at] = 1
        n, lab = cv2.connectedComponents(binary, connectivity=8, ltype=cv2.CV_32S)
        local[lo:hi] = lab.ravel()[at]
        local[lo:hi] += offset
        edge = lab[[0, height - 1]]
        ends.append(np.where(edge > 0, edge + offset, 0))
        offset += int(n) - 1
    joins = [_touching(a[1], b[0]) for a, b in zip(ends, ends[1:], strict=False)]
    ea = np.concatenate([np.zeros(0, dtype=np.int64), *(j[0] for j in joins)])
    eb = np.concatenate([np.zeros(0, dtype=np.int64), *(j[1] for j in joins)])
    graph = coo_matrix((np.ones(ea.size, dtype=np.int8), (ea, eb)), shape=(offset + 1, offset + 1))
    count, comp = connected_components(graph, directed=False)
    ids = comp[local]
    if opencv_order:  # rank the components by their first block
        key = ((r - r0) // 2) * ((width + 1) // 2) + (c - c0) // 2
        first = np.full(count, np.iinfo(np.int64).max)
        np.minimum.at(first, ids, key)
    else:
        first = np.arange(count, dtype=np.int64)
    first[comp[0]] = -1  # the background (node 0, joined to nothing) is label 0
    rank = np.empty(count, dtype=np.int32)
    rank[np.argsort(first, kind="stable")] = np.arange(count, dtype=np.int32)
    return int(count), rank[ids]


def _touching(above: np.ndarray, below: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of labels (both above 0) of two adjacent rows that touch (8-connected)."""
    pairs_a, pairs_b = [], []
    for a, b in ((above, below), (above[1:], below[:-1]), (above[:-1], below[1:])):
        hit = (a > 0) & (b > 0)
        pairs_a.append(a[hit])
        pairs_b.append(b[hit])
    return np.concatenate(pairs_a).astype(np.int64), np.concatenate(pairs_b).astype(np.int64)


@dataclass(frozen=True)
class SparseLabels:
    """An int32 label image (0 = none) held as its labelled pixels; windows of it are made
    when read (``labels[rows, cols]`` with two slices, as on the image).

    Attributes
    ----------
    shape : tuple of int
        (rows, cols) of the image.
    pixels : np.ndarray
        Flat indices of the labelled pixels, ascending, each once.
    labels_at : np.ndarray
        The label of each of ``pixels`` (int32, at least 1).
    """

    shape: tuple[int, int]
    pixels: np.ndarray
    labels_at: np.ndarray

    def __getitem__(self, box: tuple[slice, slice]) -> np.ndarray:
        """The label image's window ``box`` (two slices of step 1), a new int32 array."""
        (r0, r1, rs), (c0, c1, cs) = box[0].indices(self.shape[0]), box[1].indices(self.shape[1])
        if rs != 1 or cs != 1:
            raise ValueError("windows of sparse labels take slices of step 1")
        r1, c1 = max(r1, r0), max(c1, c0)
        out = np.zeros((r1 - r0, c1 - c0), dtype=np.int32)
        cols = self.shape[1]
        lo, hi = np.searchsorted(self.pixels, [r0 * cols, r1 * cols])
        r, c = np.divmod(self.pixels[lo:hi], cols)
        inside = (c >= c0) & (c < c1)
        out[r[inside] - r0, c[inside] - c0] = self.labels_at[lo:hi][inside]
        return out

    @classmethod
    def painted(
        cls, shape: tuple[int, int], regions: list[tuple[tuple[slice, slice], np.ndarray]]
    ) -> SparseLabels:
        """The labels of ``regions`` (each a box and its bool patch) painted one after the
        other, numbered from 1 (a later region over an earlier one wins), as
        ``labels[box][patch] = j`` on a zero image would."""
        cols = shape[1]
        flat, labs = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int32)]
        for j, (box, patch) in enumerate(regions, start=1):
            r, c = np.nonzero(patch)
            flat.append((r + box[0].start) * cols + (c + box[1].start))
            labs.append(np.full(r.size, j, dtype=np.int32))
        pixels, labels_at = np.concatenate(flat), np.concatenate(labs)
        # the last write of each pixel: its first occurrence in reverse order
        unique, first = np.unique(pixels[::-1], return_index=True)
        return cls(shape, unique, labels_at[::-1][first])
