"""Tile pyramids for the web viewer: the image in 256-pixel PNG tiles per zoom level.

Level 0 is the full resolution; level ``k`` halves level ``k - 1`` (OpenCV ``INTER_AREA``,
odd sizes rounded up) until the whole image fits in one tile. Levels are built lazily
and tiles are encoded on request; both are kept in memory under LRU bounds so that a
3328 x 4096 mammogram (about 14 MB at 8 bits, 19 MB with all levels) stays smooth to
zoom and pan and a long session does not grow without limit.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["TILE_PX", "Pyramid", "TileCache", "level_shapes", "to_uint8"]

TILE_PX = 256


def level_shapes(shape_rc: tuple[int, int], tile_px: int = TILE_PX) -> list[tuple[int, int]]:
    """The ``(rows, cols)`` of each level, level 0 first, down to one tile."""
    h, w = int(shape_rc[0]), int(shape_rc[1])
    shapes = [(h, w)]
    while max(h, w) > tile_px:
        h, w = max(1, math.ceil(h / 2)), max(1, math.ceil(w / 2))
        shapes.append((h, w))
    return shapes


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in ``[0, 1]`` (bright = dense) as uint8 for display."""
    if pixels.dtype == np.uint8:
        return pixels
    out: np.ndarray = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return out


class Pyramid:
    """The levels of one image, built on first use.

    Parameters
    ----------
    base
        Level 0: uint8, shape ``(rows, cols)`` (grey) or ``(rows, cols, 3)`` (RGB).
    kind, note
        Where the pixels come from (``"source"`` or ``"overlay"``) and a note for the user.
    """

    def __init__(
        self, base: np.ndarray, *, tile_px: int = TILE_PX, kind: str = "source", note: str = ""
    ) -> None:
        if base.dtype != np.uint8 or base.ndim not in (2, 3):
            raise ValueError("the pyramid base must be a 2-D (or RGB) uint8 array")
        self.tile_px = tile_px
        self.kind = kind
        self.note = note
        self.shapes = level_shapes(base.shape[:2], tile_px)
        self._levels: list[np.ndarray | None] = [base] + [None] * (len(self.shapes) - 1)
        self._lock = threading.Lock()

    @property
    def n_levels(self) -> int:
        return len(self.shapes)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._levels if a is not None)

    def level(self, k: int) -> np.ndarray:
        """The pixels of level ``k`` (building the levels above it if needed)."""
        if not 0 <= k < self.n_levels:
            raise IndexError(f"level {k} outside 0-{self.n_levels - 1}")
        with self._lock:
            for i in range(1, k + 1):
                if self._levels[i] is None:
                    prev = self._levels[i - 1]
                    assert prev is not None
                    h, w = self.shapes[i]
                    self._levels[i] = cv2.resize(prev, (w, h), interpolation=cv2.INTER_AREA)
            out = self._levels[k]
        assert out is not None
        return out

    def n_tiles(self, k: int) -> tuple[int, int]:
        """Tiles of level ``k`` as ``(rows, cols)``."""
        h, w = self.shapes[k]
        return math.ceil(h / self.tile_px), math.ceil(w / self.tile_px)

    def tile(self, k: int, row: int, col: int) -> np.ndarray:
        """The tile at ``(row, col)`` of level ``k``; edge tiles are cut to the image."""
        n_r, n_c = self.n_tiles(k)
        if not (0 <= row < n_r and 0 <= col < n_c):
            raise IndexError(f"tile ({row}, {col}) outside level {k} ({n_r} x {n_c} tiles)")
        t = self.tile_px
        return self.level(k)[row * t : (row + 1) * t, col * t : (col + 1) * t]

    def tile_png(self, k: int, row: int, col: int) -> bytes:
        """The tile encoded as PNG (zlib level 1); an RGB tile without colour (an overlay's
        tile away from every mark) as a grey PNG, a third of the bytes and the time."""
        tile = self.tile(k, row, col)
        if tile.ndim == 3:
            grey = tile[:, :, 0]
            if np.array_equal(grey, tile[:, :, 1]) and np.array_equal(grey, tile[:, :, 2]):
                tile = grey
            else:
                tile = cv2.cvtColor(tile, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(tile), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:  # pragma: no cover - OpenCV failure
            raise OSError("could not encode a tile as PNG")
        return buf.tobytes()


class TileCache:
    """Pyramids of the most recently viewed images and their encoded tiles, LRU-bounded.

    Parameters
    ----------
    max_pyramids
        Images whose pixels stay in memory.
    max_tile_bytes
        Total size of the encoded PNG tiles kept.
    """

    def __init__(self, *, max_pyramids: int = 4, max_tile_bytes: int = 256 * 2**20) -> None:
        self.max_pyramids = max_pyramids
        self.max_tile_bytes = max_tile_bytes
        self._pyramids: OrderedDict[str, Pyramid] = OrderedDict()
        self._tiles: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()
        self._tile_bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def pyramid(self, key: str, load: Callable[[], Pyramid]) -> Pyramid:
        """The pyramid of ``key``, made with ``load()`` on a miss (once, even when asked
        from several threads at the same time)."""
        with self._lock:
            if key in self._pyramids:
                self._pyramids.move_to_end(key)
                return self._pyramids[key]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._pyramids:
                    return self._pyramids[key]
            pyr = load()
            with self._lock:
                self._pyramids[key] = pyr
                self._loading.pop(key, None)
                while len(self._pyramids) > self.max_pyramids:
                    old, _ = self._pyramids.popitem(last=False)
                    self._drop_tiles(old)
            return pyr

    def tile_png(self, key: str, pyr: Pyramid, k: int, row: int, col: int) -> bytes:
        """One encoded tile, from the cache when possible."""
        tkey = (key, k, row, col)
        with self._lock:
            data = self._tiles.get(tkey)
            if data is not None:
                self._tiles.move_to_end(tkey)
                return data
        data = pyr.tile_png(k, row, col)
        with self._lock:
            if tkey not in self._tiles:
                self._tiles[tkey] = data
                self._tile_bytes += len(data)
            while self._tile_bytes > self.max_tile_bytes and self._tiles:
                _, old = self._tiles.popitem(last=False)
                self._tile_bytes -= len(old)
        return data

    def forget(self, key: str) -> None:
        """Drop one image (its pyramid and tiles)."""
        with self._lock:
            self._pyramids.pop(key, None)
            self._drop_tiles(key)

    def _drop_tiles(self, key: str) -> None:
        for tkey in [t for t in self._tiles if t[0] == key]:
            self._tile_bytes -= len(self._tiles.pop(tkey))
