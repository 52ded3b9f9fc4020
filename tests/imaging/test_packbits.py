"""The compiled PackBits walk (calcscope.imaging._packbits, built at install) returns exactly
what the pure-Python walk returns, on random and on adversarial segments; without it the
Python walk checks RLE frames, refusing the same corrupt ones."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calcscope.imaging import codec_checks
from calcscope.imaging.codec_checks import rle_frame_problem

_packbits = pytest.importorskip(
    "calcscope.imaging._packbits", reason="the compiled walk is not built here"
)


def _both(data: bytes, start: int, end: int, need: int, cols: int) -> tuple[object, object]:
    return (
        _packbits.count(data, start, end, need, cols),
        codec_checks._packbits_count_py(data, start, end, need, cols),
    )


#: One PackBits run: a literal run of 1-128 bytes, a repeat of 2-128, or the no-op 128.
_run = st.one_of(
    st.binary(min_size=1, max_size=128).map(lambda b: bytes([len(b) - 1]) + b),
    st.tuples(st.integers(2, 128), st.integers(0, 255)).map(lambda t: bytes([257 - t[0], t[1]])),
    st.just(b"\x80"),
)


@st.composite
def _segments(draw: st.DrawFn) -> tuple[bytes, int, int, int, int]:
    """A segment of valid runs, maybe cut anywhere (mid-literal too), inside other bytes,
    with a row length and a need that the runs may reach mid-run, exactly, or never."""
    body = b"".join(draw(st.lists(_run, max_size=40)))
    body = body[: draw(st.integers(0, len(body)))]  # cut: maybe mid-run
    head = draw(st.binary(max_size=8))
    data = head + body + draw(st.binary(max_size=8))
    # need around what the runs can make (a repeat of 2 bytes makes up to 128)
    need = draw(st.integers(0, 64 * len(body) + 2))
    cols = draw(st.integers(1, 300))
    return data, len(head), len(head) + len(body), need, cols


@st.composite
def _row_segments(draw: st.DrawFn) -> tuple[bytes, int, int, int, int]:
    """A segment encoded row by row as an encoder writes it (no run crosses a row end),
    then maybe one byte changed (a flipped control byte shifts the rest)."""
    cols, rows = draw(st.integers(1, 200)), draw(st.integers(1, 6))
    out = bytearray()
    for _ in range(rows):
        left = cols
        while left:
            n = draw(st.integers(1, min(left, 128)))
            if n >= 2 and draw(st.booleans()):
                out += bytes([257 - n, draw(st.integers(0, 255))])
            else:
                out += bytes([n - 1]) + draw(st.binary(min_size=n, max_size=n))
            left -= n
    if out and draw(st.booleans()):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    need = rows * cols + draw(st.integers(-cols, cols))
    return bytes(out), 0, len(out), need, cols


@settings(max_examples=300, deadline=None)
@given(_row_segments())
def test_compiled_walk_agrees_on_row_by_row_segments(
    case: tuple[bytes, int, int, int, int],
) -> None:
    c, py = _both(*case)
    assert c == py


@settings(max_examples=400, deadline=None)
@given(_segments())
def test_compiled_walk_agrees_on_structured_segments(
    case: tuple[bytes, int, int, int, int],
) -> None:
    c, py = _both(*case)
    assert c == py


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=600),
    st.integers(0, 700),
    st.integers(0, 700),
    st.integers(-5, 3000),
    st.integers(-3, 400),
)
def test_compiled_walk_agrees_on_random_bytes(
    data: bytes, start: int, end: int, need: int, cols: int
) -> None:
    start, end = min(start, len(data)), min(end, len(data))
    c, py = _both(data, start, end, need, cols)
    assert c == py


@pytest.mark.parametrize(
    ("data", "need", "cols", "expected"),
    [
        (b"", 10, 5, (0, 0, None)),  # empty data
        (b"\x80" * 7, 10, 5, (0, 7, None)),  # only no-ops
        (b"\x80\x80\xfe\x07\x80\xfe\x07", 6, 3, (6, 7, None)),  # no-ops between runs
        (b"\x03abcd\x03ef", 10, 4, (6, 8, None)),  # a literal run cut by the end
        (b"\xfd\x01\x02abc", 10, 5, (7, 6, 4)),  # the 2nd run crosses the end of row 1
        (b"\xfb\x00\xfb\x00", 8, 5, (12, 4, 0)),  # need reached mid-run; crosses row 1
        (b"\xfb\x00\xfb\x00", 12, 6, (12, 4, None)),  # rows of 6: no run crosses
        (b"\x81\x00\x81\x00", 128, 128, (128, 2, None)),  # need reached: the rest unread
        (b"\x00a\x00b", 0, 1, (0, 0, None)),  # nothing needed
    ],
)
def test_compiled_and_python_walks_on_adversarial_segments(
    data: bytes, need: int, cols: int, expected: tuple[int, int, int | None]
) -> None:
    c, py = _both(data, 0, len(data), need, cols)
    assert c == py == expected


def test_out_of_range_segments_go_to_the_python_walk() -> None:
    data = b"\x01ab\xfe\x07"
    with pytest.raises(IndexError):
        _packbits.count(data, 0, len(data) + 1, 10, 5)
    # the wrapper never hands the compiled walk what it cannot index: the Python result
    assert codec_checks._packbits_count(data, -2, len(data), 10, 5) == (
        codec_checks._packbits_count_py(data, -2, len(data), 10, 5)
    )
    assert codec_checks._packbits_count(data, 0, 3, 2**50, 5) == (2, 3, None)


def _frame(segments: list[bytes]) -> bytes:
    offsets, at = [], 64
    for s in segments:
        offsets.append(at)
        at += len(s)
    header = struct.pack("<16I", len(segments), *offsets, *([0] * (15 - len(segments))))
    return header + b"".join(segments)


@pytest.mark.parametrize("compiled", [True, False])
def test_rle_frames_refused_alike_by_both_walks(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not compiled:
        monkeypatch.setattr(codec_checks, "_packbits", None)
    rows, cols = 4, 6
    row = b"\xfb\x07"  # one row: 6 times 7
    assert rle_frame_problem(_frame([row * rows]), rows, cols, 1) is None
    # rows 2-3 as runs of 5 and 7 bytes: the second crosses the end of row 2
    across = row + b"\xfc\x07\xfa\x07" + row
    assert "crosses the end of row 2," in (rle_frame_problem(_frame([across]), rows, cols, 1) or "")
    short = row * (rows - 1)
    assert "decodes to 18 bytes, not 24" in (
        rle_frame_problem(_frame([short]), rows, cols, 1) or ""
    )
    extra = row * rows + b"\x00\x00\x00"
    assert "3 bytes after its image" in (rle_frame_problem(_frame([extra]), rows, cols, 1) or "")
