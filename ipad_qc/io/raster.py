"""JPEG, PNG, BMP and WebP: header from Pillow, JPEG pixels from libjpeg-turbo, others from OpenCV.

The header gives the stored size, which the decode budget checks (pixel limit, plausible file
size) before the file is read into memory whole. Pillow then reads EXIF
orientation without touching the pixels. JPEGs are decoded by libjpeg-turbo through simplejpeg,
with DCT scaling (1/2, 1/4, 1/8) so a 24-megapixel JPEG is decoded straight to 1/8 size, in
strict mode: libjpeg repairs damaged data silently (grey or smeared blocks, a warning on stderr at
most), and strict mode turns the damage it notices ("premature end of data segment", bad Huffman
codes) into an error naming it, the same pixels as OpenCV's decode otherwise. JPEGs simplejpeg
cannot decode (CMYK, 12-bit) and the other formats go through ``cv2.imdecode``.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from typing import BinaryIO

import cv2
import numpy as np
import simplejpeg
from PIL import BmpImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from ipad_qc.io import orientation as orient
from ipad_qc.io.budget import MAX_IN_MEMORY_BYTES, check_pixels, check_size, header_size
from ipad_qc.io.imread import AS_STORED, imread_into
from ipad_qc.io.imread import supported as imread_supported
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
RASTER_FORMATS = frozenset(_HEADER_READERS)  # what decode_raster decodes
_EXIF_ORIENTATION = 0x0112
_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# libjpeg warnings that do not mean lost picture data (padding after the last block, odd metadata).
_HARMLESS_JPEG_WARNINGS = ("extraneous bytes before marker", "unknown JFIF revision", "Bogus", "Adobe")


@dataclass
class _Header:
    width: int
    height: int
    orientation: int
    warnings: list[str] = field(default_factory=list)


def _check_header(handle: BinaryIO, path: str, fmt: str, max_pixels: int | None, whole: bool = True) -> None:
    file_size = os.fstat(handle.fileno()).st_size
    size = header_size(handle, fmt)
    if size is not None:
        check_size(path, fmt, size, file_size, max_pixels, whole=whole)
    elif whole and file_size > MAX_IN_MEMORY_BYTES:
        raise DecodeError(path, f"corrupt {fmt.upper()}: no picture size in its header, and too large to read "
                                f"({file_size / 2**20:,.0f} MB)")


def check_budget(path: str, fmt: str, max_pixels: int | None) -> None:
    """Raise :class:`DecodeError` when the size the file's header states fails the decode budget
    (:mod:`ipad_qc.io.budget`), reading only the header."""
    with open(path, "rb") as handle:
        _check_header(handle, path, fmt, max_pixels)


def read_file(path: str, fmt: str, max_pixels: int | None) -> bytes:
    """The whole file, once the size its header states passed the decode budget."""
    with open(path, "rb") as handle:
        _check_header(handle, path, fmt, max_pixels)
        handle.seek(0)
        return handle.read()


def decode_raster(path: str, fmt: str, hint: DecodeHint | None, allow_partial: bool,
                  max_pixels: int | None) -> StoredPixels:
    """Decode a JPEG/PNG/BMP/WebP file at the smallest size that satisfies ``hint``."""
    if fmt == "png" and imread_supported():
        return _decode_png(path, max_pixels)
    data = read_file(path, fmt, max_pixels)
    header = read_header(data, fmt)
    notes = header.warnings if header else ["header unreadable by Pillow; orientation assumed 1"]
    if header:
        check_pixels(path, fmt, header.width, header.height, max_pixels)
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
        factor = dct_factor(header.width, header.height, hint.least_size(header.width, header.height))
    if fmt == "jpeg":
        pixels, warning = imdecode_jpeg(path, data, factor, allow_partial=allow_partial)
        notes += [warning] if warning else []
    else:
        pixels = imdecode_stored(path, data, fmt)
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


def read_header(source: bytes | BinaryIO, fmt: str) -> _Header | None:
    """Size and EXIF orientation from the header of a file's bytes or open file; ``None`` if Pillow
    cannot parse it.

    A broken EXIF block is common in files that went through buggy tools; it only costs the
    orientation (1 unless a readable tag says otherwise, with a warning), never the picture.
    Pillow skips what it cannot parse and says so only through ``warnings``, hence the recording.
    """
    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    handle.seek(0)
    with warnings.catch_warnings(record=True) as complaints:
        warnings.simplefilter("always")
        try:
            image = _HEADER_READERS[fmt](handle)
        except Exception:  # any parser failure on untrusted bytes means "no usable header"
            return None
        header = _Header(width=image.width, height=image.height, orientation=1)
        try:
            value = _exif(image, fmt, handle).get(_EXIF_ORIENTATION, 1)
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


def _exif(image: ImageFile.ImageFile, fmt: str, handle: BinaryIO) -> Image.Exif:
    """The EXIF block without decoding pixels. Pillow's PNG reader, not finding an eXIf chunk
    before the image data, decodes the whole picture to look behind it: here the chunks are walked."""
    if fmt != "png" or "exif" in image.info:
        return image.getexif()
    exif = Image.Exif()
    data = _png_chunk(handle, b"eXIf")
    if data:
        exif.load(b"Exif\x00\x00" + data)
    return exif


def _png_chunk(handle: BinaryIO, kind: bytes) -> bytes | None:
    """The data of a PNG's first chunk of type ``kind``, reading only the other chunks' headers."""
    handle.seek(len(_PNG_SIGNATURE))
    while len(head := handle.read(8)) == 8:
        length, found = int.from_bytes(head[:4], "big"), head[4:]
        if found == kind:
            return handle.read(length)
        if found == b"IEND":
            return None
        handle.seek(length + 4, os.SEEK_CUR)  # data and CRC
    return None


def _decode_png(path: str, max_pixels: int | None) -> StoredPixels:
    """A PNG decoded from the file straight into one array of its decoded size (see
    :mod:`ipad_qc.io.imread`): a 100-megapixel 16-bit PNG needs 1.0x its decoded size, not 2.3x.
    OpenCV gives grey as grey, every other colour type as 3 channels, and keeps 16 bits."""
    with open(path, "rb") as handle:
        _check_header(handle, path, "png", max_pixels, whole=False)
        header = read_header(handle, "png")
        pixels = None
        if header:
            check_pixels(path, "png", header.width, header.height, max_pixels)
            handle.seek(24)
            depth, colour = handle.read(2)
            shape = (header.height, header.width) if colour == 0 else (header.height, header.width, 3)
            pixels = imread_into(handle.fileno(), shape, np.uint16 if depth == 16 else np.uint8)
    if pixels is None:
        pixels = imdecode_stored(path, read_file(path, "png", max_pixels), "png")
    notes = header.warnings if header else ["header unreadable by Pillow; orientation assumed 1"]
    height, width = pixels.shape[:2]
    return StoredPixels(pixels, width, height, 16 if pixels.dtype == np.uint16 else 8, "full",
                        header.orientation if header else 1, notes, bgr=True)


def dct_factor(width: int, height: int, target: tuple[int, int]) -> int:
    """Largest libjpeg scale-down (8, 4, 2 or 1) whose output still covers ``target`` (the hint's
    :meth:`~ipad_qc.io.types.DecodeHint.least_size`; the loader resizes a larger result to the target).

    libjpeg rounds scaled sizes up, so a reduction by ``f`` yields ceil(width / f) pixels.
    """
    for factor in (8, 4, 2):
        if -(-width // factor) >= target[0] and -(-height // factor) >= target[1]:
            return factor
    return 1


def imdecode_jpeg(path: str, data: bytes, factor: int, allow_partial: bool = False) -> tuple[np.ndarray, str | None]:
    """BGR pixels of a JPEG (also a RAW file's embedded preview) decoded at 1/``factor`` size, and the
    warning libjpeg gave, if any.

    Damage libjpeg notices (data missing or garbled in the middle of the file) raises
    :class:`DecodeError` unless ``allow_partial``, which decodes what is there with a warning.
    """
    width, height = _jpeg_size(data)
    sizes = {"min_width": -(-width // factor), "min_height": -(-height // factor)} if width else {}
    try:
        return simplejpeg.decode_jpeg(data, "BGR", strict=True, **sizes), None
    except ValueError as exc:
        warning = str(exc)
    try:  # without strict mode only fatal errors raise: what strict mode raised was a warning
        pixels = simplejpeg.decode_jpeg(data, "BGR", strict=False, **sizes)
    except ValueError:  # CMYK, 12-bit or otherwise beyond TurboJPEG: OpenCV's libjpeg may still read it
        return _imdecode(data, _JPEG_REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION, "jpeg", path), None
    if any(text in warning for text in _HARMLESS_JPEG_WARNINGS):
        return pixels, f"libjpeg: {warning}"
    if not allow_partial:
        raise DecodeError(path, f"corrupt JPEG: image data is damaged or missing (libjpeg: {warning})")
    return pixels, f"corrupt JPEG (libjpeg: {warning}); decoded the damaged picture"


def _jpeg_size(data: bytes) -> tuple[int, int]:
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return 0, 0
    return width, height


def imdecode_stored(path: str, data: bytes, fmt: str) -> np.ndarray:
    """Grey or BGR pixels of any format OpenCV reads, at full size, keeping 16-bit and float depth.

    Like every OpenCV decode (OpenCV 5.0), this briefly holds two copies of the decoded image.
    """
    return _imdecode(data, AS_STORED, fmt, path)


def _imdecode(data: bytes, flags: int, fmt: str, path: str) -> np.ndarray:
    """``cv2.imdecode`` that reports failure as a :class:`DecodeError` instead of ``None``."""
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise DecodeError(path, f"corrupt {fmt.upper()} data (OpenCV: {exc.err})") from exc
    if pixels is None:
        raise DecodeError(path, f"corrupt or unsupported {fmt.upper()} data (OpenCV could not decode it)")
    return pixels
