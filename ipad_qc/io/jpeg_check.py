"""Is a JPEG complete? Answered from the marker structure, without decoding the picture.

libjpeg decodes a damaged JPEG "successfully": missing data becomes grey blocks, with at most a
warning on stderr that OpenCV does not pass on. A QC verdict on such a picture is meaningless, so
truncation is detected here from two facts of the format:

* entropy-coded data can never contain the bytes FF D9, so a file without FF D9 after its first
  scan ended before the end-of-image marker (an interrupted copy or download);
* with a restart interval (DRI, used by most cameras), a sequential scan holds exactly one RSTn
  marker per interval, so missing RST markers mean missing image data even when the file still
  ends with an end-of-image marker (data lost in the middle of the stream).

Searching from the first scan rather than from the end of the file matters: the EXIF thumbnail
before the scan and multi-picture or motion-photo data after the main image carry their own
FF D9 bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

_EOI = 0xD9
_RST0 = 0xD0  # RST0..RST7 are D0..D7: equal to D0 once the low three bits are masked off
_NO_LENGTH_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn stand alone
_SEQUENTIAL_HUFFMAN_FRAMES = frozenset({0xC0, 0xC1})  # baseline and extended sequential
_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn (not DHT, JPG, DAC)

TRUNCATED_REASON = "truncated JPEG: data ends before the end-of-image marker"


@dataclass(frozen=True)
class _ScanLayout:
    """What the headers before the first scan say about the entropy-coded data that follows."""

    scan_start: int
    sequential: bool
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  # (horizontal, vertical) factor per frame component
    scan_components: int
    restart_interval: int


def truncation_reason(data: bytes) -> str | None:
    """Why the JPEG in ``data`` is incomplete, or ``None`` when its structure is intact.

    Files whose headers cannot be followed up to the first scan are left to the decoder, which
    cannot decode them either.
    """
    layout = _read_layout(data)
    if layout is None:
        return None
    codes = _marker_codes(data, layout.scan_start)
    ends = np.flatnonzero(codes == _EOI)
    if ends.size == 0:
        return TRUNCATED_REASON
    expected = _expected_restart_markers(layout)
    if expected:
        found = int(np.count_nonzero((codes[: ends[0]] & 0xF8) == _RST0))
        if found < expected:
            return (
                f"truncated JPEG: image data is missing ({found + 1} of {expected + 1} "
                "restart intervals present)"
            )
    return None


def _marker_codes(data: bytes, start: int) -> np.ndarray:
    """The byte after every FF from ``start`` on: 00 for stuffing, D0..D7 for RSTn, D9 for EOI.

    One vectorised pass (about 1.5 GB/s) instead of a Python-level scan of the entropy data.
    """
    if start >= len(data) - 1:  # the scan header itself is cut off
        return np.empty(0, np.uint8)
    tail = np.frombuffer(data, np.uint8, offset=start)
    return tail[1:][tail[:-1] == 0xFF]


def _segments(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(marker, segment, end offset) of each marker segment from SOI on, up to and including SOS."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _NO_LENGTH_MARKERS:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield marker, data[pos + 4 : pos + 2 + length], pos + 2 + length
        if marker == 0xDA:
            return
        pos += 2 + length


def frame_size(handle: BinaryIO) -> tuple[int, int, bool] | None:
    """(width, height, Huffman-coded) from the frame header of the JPEG file ``handle``, or ``None``.

    Reads only segment headers and seeks past their bodies (EXIF, ICC, depth maps in extended XMP
    can take megabytes before the frame header), so a picture is sized before the file is read.
    """
    handle.seek(2)
    while True:
        head = handle.read(4)
        if len(head) < 4 or head[0] != 0xFF:
            return None
        marker = head[1]
        if marker == 0xFF:  # fill byte before a marker
            handle.seek(-3, 1)
            continue
        if marker in _NO_LENGTH_MARKERS:
            handle.seek(-2, 1)
            continue
        length = int.from_bytes(head[2:4], "big")
        if marker in _FRAME_MARKERS:
            segment = handle.read(5)
            if len(segment) < 5:
                return None
            return int.from_bytes(segment[3:5], "big"), int.from_bytes(segment[1:3], "big"), marker < 0xC8
        if marker == 0xDA or length < 2:
            return None
        handle.seek(length - 2, 1)


def _read_layout(data: bytes) -> _ScanLayout | None:
    """Walk the marker segments from SOI to the first SOS; ``None`` if they do not lead there."""
    frame, frame_marker, restart_interval = b"", 0, 0
    for marker, segment, end in _segments(data):
        if marker in _FRAME_MARKERS:
            frame, frame_marker = segment, marker
        elif marker == 0xDD and len(segment) >= 2:
            restart_interval = int.from_bytes(segment[:2], "big")
        elif marker == 0xDA:
            return _layout(frame, frame_marker, restart_interval, segment, end)
    return None


def _layout(
    frame: bytes, frame_marker: int, restart_interval: int, scan_header: bytes, scan_start: int
) -> _ScanLayout | None:
    """Decode the SOF and SOS segment fields the restart-marker count depends on."""
    if len(frame) < 6 or len(frame) < 6 + 3 * frame[5] or not scan_header:
        return None
    factors = frame[7 : 6 + 3 * frame[5] : 3]  # one byte per component: H in the high, V in the low nibble
    sampling = tuple((byte >> 4, byte & 0x0F) for byte in factors)
    return _ScanLayout(
        scan_start=scan_start,
        sequential=frame_marker in _SEQUENTIAL_HUFFMAN_FRAMES,
        width=int.from_bytes(frame[3:5], "big"),
        height=int.from_bytes(frame[1:3], "big"),
        sampling=sampling,
        scan_components=scan_header[0],
        restart_interval=restart_interval,
    )


def _expected_restart_markers(layout: _ScanLayout) -> int:
    """RST markers a complete first scan holds; 0 when that cannot be known from the headers.

    Only a sequential scan that covers every component at once (or a greyscale image) has a
    predictable MCU count; progressive or per-component scans are not checked this way.
    """
    frame_components = len(layout.sampling)
    if not (layout.sequential and layout.restart_interval and layout.width and layout.height):
        return 0
    if frame_components == 0 or layout.scan_components != frame_components:
        return 0
    if frame_components == 1:
        mcu_width = mcu_height = 8
    else:
        mcu_width = 8 * max(h for h, _ in layout.sampling)
        mcu_height = 8 * max(v for _, v in layout.sampling)
    if mcu_width == 0 or mcu_height == 0:
        return 0
    mcus = -(-layout.width // mcu_width) * -(-layout.height // mcu_height)
    return -(-mcus // layout.restart_interval) - 1
