"""The viewer's tiles (:mod:`calcscope.apps.web.tiles`): cheap to send."""

from __future__ import annotations

import cv2
import numpy as np

from calcscope.apps.web.tiles import Pyramid


def test_overlay_tiles_without_colour_are_grey_pngs() -> None:
    """An RGB overlay's tile away from every mark is sent as a grey PNG (a third of the
    bytes); a tile with a coloured mark stays RGB, its colours intact."""
    grey = (np.arange(512 * 512) % 251).astype(np.uint8).reshape(512, 512)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    rgb[300:310, 300:400] = (255, 255, 0)  # a yellow mark in tile (1, 1)
    pyr = Pyramid(rgb, kind="overlay")
    plain = cv2.imdecode(np.frombuffer(pyr.tile_png(0, 0, 0), np.uint8), cv2.IMREAD_UNCHANGED)
    assert plain.ndim == 2
    np.testing.assert_array_equal(plain, grey[:256, :256])
    marked = cv2.imdecode(np.frombuffer(pyr.tile_png(0, 1, 1), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(marked[:, :, ::-1], rgb[256:, 256:])  # BGR on disk
    assert len(pyr.tile_png(0, 0, 0)) < len(pyr.tile_png(0, 1, 1)) / 2
