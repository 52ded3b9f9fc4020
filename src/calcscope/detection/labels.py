"""A label image held as its labelled pixels (:class:`SparseLabels`): the objects of the
detector cover a small part of the image, and their outlines read it in small windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SparseLabels"]


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
