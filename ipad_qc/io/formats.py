"""Which files are images, and what format a file really holds.

Scans walk folders that also hold sidecars (XMP, WAV, MOV), so the extension decides whether a
file is an image at all. Camera-tuning folders are full of files saved under the wrong
extension (a PNG named ``.jpg``), so for non-RAW files the first bytes decide which decoder runs.
RAW formats are mostly TIFF containers and cannot be told apart by their first bytes, so for
them the extension is trusted.
"""

from __future__ import annotations

import os
from pathlib import Path

# Extension (lower case, with dot) -> short format name reported in ``ImageMeta.format``.
_RASTER_FORMATS: dict[str, str] = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".jfif": "jpeg",
    ".png": "png",
    ".bmp": "bmp",
    ".dib": "bmp",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".heic": "heif",
    ".heif": "heif",
    ".hif": "heif",
}

RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3fr", ".arw", ".bay", ".cap", ".cr2", ".cr3", ".crw", ".cs1", ".dc2", ".dcr", ".dcs", ".dng",
        ".drf", ".erf", ".fff", ".gpr", ".iiq", ".k25", ".kc2", ".kdc", ".mdc", ".mef", ".mfw", ".mos",
        ".mrw", ".nef", ".nrw", ".orf", ".ori", ".pef", ".ptx", ".pxn", ".raf", ".raw", ".rw2", ".rwl",
        ".rwz", ".sr2", ".srf", ".srw", ".x3f",
    }
)  # fmt: skip

IMAGE_EXTENSIONS: frozenset[str] = frozenset(_RASTER_FORMATS) | RAW_EXTENSIONS

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic TIFF and BigTIFF


def extension_format(path: str | os.PathLike[str]) -> str | None:
    """Format name the extension promises (``jpeg``, ``tiff``, ``nef`` ...), or ``None`` if not an image."""
    suffix = Path(path).suffix.lower()
    if suffix in RAW_EXTENSIONS:
        return suffix[1:]
    return _RASTER_FORMATS.get(suffix)


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True when the extension (any case) is one that :func:`ipad_qc.io.load_image` decodes."""
    return extension_format(path) is not None


def is_raw_format(fmt: str) -> bool:
    """True for the format names that RAW files get (the extension without its dot)."""
    return f".{fmt}" in RAW_EXTENSIONS


def sniff_format(head: bytes) -> str | None:
    """Format of a non-RAW file from its first 16 bytes, or ``None`` if no supported signature matches."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if head[4:8] == b"ftyp":
        return "heif"
    return None
