"""PNG encoding for the files a scan writes per image: 1-bit masks and 8-bit probability maps.

A scan writes a probability map for every image and a full-size mask for every flagged one, so
their encoding is a cost per image. OpenCV's encoder (libpng + zlib) spent 20 ms per 12 MP image
on the map and 18 ms on a flagged image's mask, nearly all of it in deflate. Here the rows are
filtered with NumPy and deflated by ISA-L (``isal``), which is four times faster than zlib at
level 1 and compresses these images as well:

- maps (smooth): filter "up" on every row (each byte minus the one above), which is what libpng's
  adaptive filtering picks for them anyway, without trying the other four per row;
- masks (flat regions): 1 bit per pixel, filter "none"; the packed rows take one eighth of the
  mask's size, so a 100-megapixel mask needs 12.5 MB of temporaries.

The files are plain PNGs: every reader (OpenCV, Pillow, browsers) reads them.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from isal import isal_zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_NONE, _FILTER_UP = 0, 2
#: PNG colour types by number of channels: grey, grey + alpha, RGB, RGBA.
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_LEVEL = 1  # ISA-L's fastest level that still matches zlib's level-1 ratio on these images


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: np.ndarray) -> bytes:
    """Signature, header, ``rows`` (each row's filter byte, then its bytes) deflated, end."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)  # deflate, filters, no interlace
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", isal_zlib.compress(rows, _LEVEL)),
                     _chunk(b"IEND", b"")])


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG of ``pixels``: H x W grey, or H x W x C with C = 2, 3, 4 channels in PNG order
    (grey + alpha, RGB, RGBA; OpenCV's BGR must be reversed first)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        raise ValueError(f"encode_png takes H x W (x 2/3/4) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    flat = pixels.reshape(height, width * channels)
    rows = np.empty((height, 1 + width * channels), np.uint8)
    rows[:, 0] = _FILTER_UP
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])  # modulo 256, as the filter is defined
    return _png(width, height, 8, _COLOUR_TYPES[channels], rows)


def encode_bilevel_png(mask: np.ndarray) -> bytes:
    """A 1-bit greyscale PNG of a 2-D mask (nonzero = white), as OpenCV's ``IMWRITE_PNG_BILEVEL``
    writes it: OpenCV reads it back as 0/255, Pillow as mode "1"."""
    if mask.ndim != 2:
        raise ValueError(f"a mask is 2-D, got shape {mask.shape}")
    height, width = mask.shape
    rows = np.empty((height, 1 + (width + 7) // 8), np.uint8)
    rows[:, 0] = _FILTER_NONE
    rows[:, 1:] = np.packbits(mask, axis=1)
    return _png(width, height, 1, 0, rows)
