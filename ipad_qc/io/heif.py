"""HEIF/HEIC (iPhone photos) via the optional pillow-heif package.

libheif applies the container's rotation and mirroring (irot/imir) while decoding, and HEIF
readers must ignore EXIF orientation, so the pixels come out upright and the orientation handed
to the loader is always 1. 10/12-bit images are kept as uint16 (scaled to the full 16-bit range).
"""

from __future__ import annotations

import numpy as np

from ipad_qc.io.budget import check_pixels
from ipad_qc.io.stored import StoredPixels
from ipad_qc.io.types import DecodeError

INSTALL_HINT = "HEIF/HEIC support is not installed: pip install 'ipad-qc[heif]'"


def decode_heif(path: str, max_pixels: int | None = None) -> StoredPixels:
    """Decode the primary image of a HEIF file (RGB or RGBA) at full size, within ``max_pixels``."""
    try:
        import pillow_heif
    except ImportError as exc:
        raise DecodeError(path, INSTALL_HINT) from exc
    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)  # reads the container, not the pixels
        check_pixels(path, "heif", *heif.size, max_pixels)
        pixels = np.ascontiguousarray(np.asarray(heif))
    except (ValueError, RuntimeError, OSError) as exc:
        raise DecodeError(path, f"corrupt or unsupported HEIF ({exc})") from exc
    width, height = heif.size
    return StoredPixels(pixels, width, height, int(heif.info.get("bit_depth", 8)), "full")
