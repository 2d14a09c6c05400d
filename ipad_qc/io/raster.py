"""JPEG, PNG, BMP and WebP: header from Pillow, pixels from OpenCV.

Pillow reads size and EXIF orientation without touching the pixels; OpenCV decodes, because
libjpeg's DCT scaling (``IMREAD_REDUCED_COLOR_2/4/8``) lets a 24-megapixel JPEG be decoded
straight to 1/8 size at a fraction of the cost. The file is read into memory once and decoded
with ``cv2.imdecode``, which also sidesteps ``cv2.imread``'s trouble with non-ASCII paths.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import BmpImagePlugin, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from ipad_qc.io import orientation as orient
from ipad_qc.io.jpeg_check import TRUNCATED_REASON, truncation_reason
from ipad_qc.io.stored import StoredPixels
from ipad_qc.io.types import DecodeError, DecodeHint

# The plugin classes are used directly because ``Image.open`` refuses images above ~179
# megapixels (its decompression-bomb guard); scans do contain such photos, and only the header
# is read here. OpenCV's own limit (2^30 pixels) still applies to the decode.
_HEADER_READERS: dict[str, type[ImageFile.ImageFile]] = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
}
_EXIF_ORIENTATION = 0x0112
_EOI = b"\xff\xd9"
_JPEG_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# Keep 16-bit depth and grey; alpha is dropped by ANYCOLOR. Orientation is applied by the loader.
_AS_STORED = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION


@dataclass
class _Header:
    width: int
    height: int
    orientation: int
    warnings: list[str] = field(default_factory=list)


def decode_raster(
    path: str, data: bytes, fmt: str, hint: DecodeHint | None, allow_partial: bool
) -> StoredPixels:
    """Decode a JPEG/PNG/BMP/WebP held in ``data`` at the smallest size that satisfies ``hint``."""
    header = read_header(data, fmt)
    notes = header.warnings if header else ["header unreadable by Pillow; orientation assumed 1"]
    if fmt == "jpeg":
        reason = truncation_reason(data)
        if reason and not allow_partial:
            raise DecodeError(path, reason)
        if reason:
            notes.append(f"{reason}; decoded the partial picture")
        if reason == TRUNCATED_REASON:
            data += _EOI  # OpenCV gives up on a missing end marker but decodes up to a premature one
    factor = 1
    if fmt == "jpeg" and header and hint:
        factor = dct_factor(header.width, header.height, hint.target_size(header.width, header.height))
    pixels = imdecode_jpeg(path, data, factor) if fmt == "jpeg" else imdecode_stored(path, data, fmt)
    height, width = pixels.shape[:2]
    return StoredPixels(
        pixels=pixels,
        width=header.width if header else width,
        height=header.height if header else height,
        bit_depth=16 if pixels.dtype == np.uint16 else 8,
        mode=f"jpeg-1/{factor}" if factor > 1 else "full",
        orientation=header.orientation if header else 1,
        warnings=notes,
        bgr=True,
    )


def read_header(data: bytes, fmt: str) -> _Header | None:
    """Size and EXIF orientation from the file header; ``None`` if Pillow cannot parse it.

    A broken EXIF block is common in files that went through buggy tools; it only costs the
    orientation (1 unless a readable tag says otherwise, with a warning), never the picture.
    Pillow skips what it cannot parse and says so only through ``warnings``, hence the recording.
    """
    with warnings.catch_warnings(record=True) as complaints:
        warnings.simplefilter("always")
        try:
            image = _HEADER_READERS[fmt](io.BytesIO(data))
        except Exception:  # any parser failure on untrusted bytes means "no usable header"
            return None
        header = _Header(width=image.width, height=image.height, orientation=1)
        try:
            value = image.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception as exc:  # EXIF parsers fail in many ways on broken blocks
            header.warnings.append(f"EXIF unreadable ({type(exc).__name__}: {exc}); orientation assumed 1")
            return header
    damage = [str(w.message) for w in complaints if issubclass(w.category, UserWarning)]
    if damage:
        header.warnings.append(f"EXIF partly unreadable (Pillow: {damage[0]})")
    if isinstance(value, int) and orient.is_valid(value):
        header.orientation = value
    else:
        header.warnings.append(f"invalid EXIF orientation {value!r}; assumed 1")
    return header


def dct_factor(width: int, height: int, target: tuple[int, int]) -> int:
    """Largest libjpeg scale-down (8, 4, 2 or 1) whose output still covers ``target``.

    libjpeg rounds scaled sizes up, so a reduction by ``f`` yields ceil(width / f) pixels.
    """
    for factor in (8, 4, 2):
        if -(-width // factor) >= target[0] and -(-height // factor) >= target[1]:
            return factor
    return 1


def imdecode_jpeg(path: str, data: bytes, factor: int) -> np.ndarray:
    """BGR pixels of a JPEG (also a RAW file's embedded preview) decoded at 1/``factor`` size."""
    return _imdecode(data, _JPEG_REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION, "jpeg", path)


def imdecode_stored(path: str, data: bytes, fmt: str) -> np.ndarray:
    """Grey or BGR pixels of any format OpenCV reads, at full size, keeping 16-bit and float depth.

    Like every OpenCV decode (OpenCV 5.0), this briefly holds two copies of the decoded image.
    """
    return _imdecode(data, _AS_STORED, fmt, path)


def _imdecode(data: bytes, flags: int, fmt: str, path: str) -> np.ndarray:
    """``cv2.imdecode`` that reports failure as a :class:`DecodeError` instead of ``None``."""
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise DecodeError(path, f"corrupt {fmt.upper()} data (OpenCV: {exc.err})") from exc
    if pixels is None:
        raise DecodeError(path, f"corrupt or unsupported {fmt.upper()} data (OpenCV could not decode it)")
    return pixels
