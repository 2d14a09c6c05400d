"""Write a repaired image in the input's format and bit depth, EXIF kept where the format allows.

| input | written as |
|---|---|
| JPEG, WebP (lossless), HEIF 8-bit | same format, 8-bit, EXIF copied (orientation reset to 1) |
| PNG 8/16-bit, BMP | same format and bit depth |
| TIFF 8/16-bit | TIFF, same bit depth (Deflate) |
| camera RAW, 10/12-bit HEIF | 16-bit TIFF, as ``<name>.<ext>.tiff`` |

Pixels are written upright (the decoder applied the EXIF orientation), so a copied EXIF block gets
orientation 1. Writing goes to a temporary name and is renamed into place, so an interrupted run
never leaves a half-written image that a re-run would take for a finished repair.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import tifffile
from PIL import Image

from ipad_qc.io.formats import extension_format
from ipad_qc.runfolder import atomic_write, inside

REPAIRED_DIR = "repaired"
_PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "heif": "HEIF"}
_PILLOW_OPTIONS = {"jpeg": {"quality": 95, "subsampling": 0}, "webp": {"lossless": True}, "heif": {"quality": 95}}
_OPENCV_FORMATS = {"png": ".png", "bmp": ".bmp"}
_EXIF_ORIENTATION = 0x0112


def output_format(fmt: str, pixels: np.ndarray) -> str:
    """The format a repaired image is written in: the input's, unless it cannot hold the pixels."""
    if fmt in _OPENCV_FORMATS or fmt == "tiff":
        return fmt
    if fmt in _PILLOW_FORMATS and pixels.dtype == np.uint8:
        return fmt
    return "tiff"


def output_relpath(relpath: str, fmt: str) -> str:
    """``repaired/<relpath>``, with an extra extension when the written format differs from the name's."""
    path = PurePosixPath(REPAIRED_DIR) / relpath
    if extension_format(relpath) != fmt:
        path = path.with_name(f"{path.name}.{'jpg' if fmt == 'jpeg' else fmt}")
    return str(path)


def _source_exif(source: Path) -> bytes | None:
    """EXIF of the original with orientation 1, or ``None`` when Pillow finds none (RAW, most PNGs)."""
    try:
        with Image.open(source) as image:
            exif = image.getexif()
    except Exception:  # unreadable by Pillow (RAW, 16-bit TIFF): nothing to copy
        return None
    if not exif:
        return None
    exif[_EXIF_ORIENTATION] = 1
    return exif.tobytes()


def encode(pixels: np.ndarray, fmt: str, source: Path | None = None) -> bytes:
    """Encode RGB ``pixels`` (uint8/uint16) as ``fmt`` (one that :func:`output_format` returned).

    ``source`` is the original file whose EXIF is copied (JPEG, WebP, HEIF).
    """
    if fmt == "tiff":
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, pixels, photometric="rgb", compression="zlib")
        return buffer.getvalue()
    if fmt in _OPENCV_FORMATS:
        ok, data = cv2.imencode(_OPENCV_FORMATS[fmt], cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"OpenCV could not encode {fmt.upper()}")
        return data.tobytes()
    if fmt == "heif":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    exif = _source_exif(source) if source else None
    options = {**_PILLOW_OPTIONS[fmt], **({"exif": exif} if exif else {})}
    Image.fromarray(pixels).save(buffer, _PILLOW_FORMATS[fmt], **options)
    return buffer.getvalue()


def write_repaired(run_dir: Path, relpath: str, fmt: str, pixels: np.ndarray, source: Path) -> str:
    """Write the repaired pixels of ``relpath``; returns the output path relative to the run folder.

    Raises :class:`~ipad_qc.runfolder.UnsafePathError` for a ``relpath`` that would lead out of ``repaired/``.
    """
    written = output_format(fmt, pixels)
    out_rel = output_relpath(relpath, written)
    atomic_write(inside(run_dir, out_rel, under=REPAIRED_DIR), encode(pixels, written, source))
    return out_rel
