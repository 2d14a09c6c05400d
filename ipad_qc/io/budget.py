"""The decode budget of one file: a pixel limit, and file sizes that agree with what the header says.

Decoders allocate what a header claims. A 124 KB PNG or a 2.7 MB TIFF can claim 50000x50000 pixels
and take gigabytes and half a minute per decode worker; a 689-byte JPEG can claim 65000x65000; a
sparse 2 GB file named ``.jpg`` would be read into memory whole. Before anything is decoded, the
size in the header is checked against :data:`DEFAULT_MAX_PIXELS` (``--max-megapixels``), against
the least bytes its codec can store that many pixels in, and, for files read into memory whole,
against the most bytes such a picture can take. Each failure is one clear error row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

from ipad_qc.io.jpeg_check import frame_size
from ipad_qc.io.types import DecodeError

DEFAULT_MAX_PIXELS = 250_000_000  # 200 MP phone sensors and 150 MP medium format fit; 1-bit bombs do not
#: cv2.imdecode and libjpeg-turbo take buffers of at most 2 GiB - 1.
MAX_IN_MEMORY_BYTES = (1 << 31) - 1
_SLACK_BYTES = 64 << 20  # metadata, embedded previews, motion-photo videos appended to a JPEG
_MAX_BYTES_PER_PIXEL = 32  # float64 RGBA, the widest sample layout any supported format stores


@dataclass(frozen=True)
class StoredSize:
    """A picture's size as its header states it, and how its data is compressed (``None``: no bound
    on the ratio is known, as for RLE bitmaps and WebP)."""

    width: int
    height: int
    codec: str | None = None
    bits_per_pixel: int = 8


def header_size(handle: BinaryIO, fmt: str) -> StoredSize | None:
    """The stored size in the header of a JPEG/PNG/BMP/WebP file, or ``None`` if it cannot be found."""
    if fmt == "jpeg":
        frame = frame_size(handle)
        return None if frame is None else StoredSize(frame[0], frame[1], "jpeg-huffman" if frame[2] else None)
    handle.seek(0)
    head = handle.read(32)
    if fmt == "png" and len(head) >= 26 and head[12:16] == b"IHDR":
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(head[25], 4)
        return StoredSize(int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), "deflate",
                          head[24] * channels)
    if fmt == "bmp" and len(head) >= 30:
        if int.from_bytes(head[14:18], "little") == 12:  # BITMAPCOREHEADER: 16-bit sizes
            return StoredSize(int.from_bytes(head[18:20], "little"), int.from_bytes(head[20:22], "little"))
        return StoredSize(abs(int.from_bytes(head[18:22], "little", signed=True)),
                          abs(int.from_bytes(head[22:26], "little", signed=True)))
    if fmt == "webp" and len(head) >= 30:
        return _webp_size(head)
    return None


def _webp_size(head: bytes) -> StoredSize | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        return StoredSize(1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little"))
    if chunk == b"VP8 ":
        width, height = int.from_bytes(head[26:28], "little"), int.from_bytes(head[28:30], "little")
        return StoredSize(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return StoredSize(1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    return None


def check_pixels(path: str, fmt: str, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse a picture larger than ``max_pixels`` (``None``: no limit) before it is decoded."""
    if max_pixels is not None and width * height > max_pixels:
        raise DecodeError(path, f"{fmt.upper()} of {width}x{height} ({width * height / 1e6:.3g} MP) is above the "
                                f"limit of {max_pixels / 1e6:g} MP per image (--max-megapixels); not decoded")


_BEST_RATIO = {"none": 1, "packbits": 64, "deflate": 1100, "lzw": 1400}


def least_bytes(size: StoredSize) -> int:
    """Fewest bytes the codec can hold the picture in (0 when it cannot be bounded).

    Huffman JPEG: every 8x8 block of a scan costs at least a bit, so even a flat grey progressive
    file needs a bit per block (a factor 2 of margin below that). Deflate (PNG, TIFF) never
    compresses more than 1032:1, LZW about 1300:1, PackBits 64:1; uncompressed data is 1:1.
    """
    pixels = size.width * size.height
    if size.codec == "jpeg-huffman":
        return pixels // 1024
    ratio = _BEST_RATIO.get(size.codec or "")
    return 0 if ratio is None else math.ceil(pixels * size.bits_per_pixel / 8) // ratio


def check_size(path: str, fmt: str, size: StoredSize, file_size: int, max_pixels: int | None,
               whole: bool) -> None:
    """Refuse, before decoding: a picture above ``max_pixels``, a file too small to hold the picture
    its header claims, or (``whole``: it is about to be read into memory) far larger than one can be."""
    width, height = size.width, size.height
    floor = least_bytes(size)
    if file_size < floor:
        raise DecodeError(path, f"header claims {width}x{height} pixels, but the file holds only {file_size:,} bytes "
                                f"(at least {floor:,} needed): damaged or forged {fmt.upper()} header")
    check_pixels(path, fmt, width, height, max_pixels)
    ceiling = min(_SLACK_BYTES + _MAX_BYTES_PER_PIXEL * width * height, MAX_IN_MEMORY_BYTES)
    if whole and file_size > ceiling:
        raise DecodeError(path, f"file is {file_size / 2**20:,.0f} MB, far more than a {width}x{height} {fmt.upper()} "
                                f"can take (at most {ceiling / 2**20:,.0f} MB); not read")


def largest_plausible_file(max_pixels: int | None) -> int | None:
    """Bytes no image within ``max_pixels`` can exceed: larger files fail without being read or hashed."""
    return None if max_pixels is None else _SLACK_BYTES + _MAX_BYTES_PER_PIXEL * max_pixels
