"""``load_image``: one call that turns any supported photo into RGB pixels plus metadata.

The loader checks the file, picks the decoder from the content (or the extension, for RAW),
and finishes every format the same way: downscale to the hint in the stored orientation (the
cheapest place), then turn the pixels upright and describe the source in :class:`ImageMeta`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ipad_qc.io.formats import extension_format, is_raw_format, sniff_format
from ipad_qc.io.heif import decode_heif
from ipad_qc.io.orientation import apply_orientation, oriented_size
from ipad_qc.io.pixels import as_rgb, shrink_to
from ipad_qc.io.raster import decode_raster
from ipad_qc.io.raw import RAW_MODES, decode_raw
from ipad_qc.io.stored import StoredPixels
from ipad_qc.io.tiff import decode_tiff
from ipad_qc.io.types import DecodedImage, DecodeError, DecodeHint, ImageMeta

_SNIFF_BYTES = 16


def load_image(
    path: str | os.PathLike[str],
    hint: DecodeHint | None = None,
    raw_mode: str = "preview",
    allow_partial: bool = False,
) -> DecodedImage:
    """Decode an image file to upright RGB pixels at the resolution ``hint`` asks for.

    ``hint=None`` decodes at full resolution; otherwise the result has ``hint.target_size`` of the
    upright original (never upscaled), obtained as cheaply as the format allows (JPEG DCT scaling,
    RAW preview or half-size demosaic). ``raw_mode`` is one of ``RAW_MODES``. ``allow_partial``
    accepts truncated JPEGs with a warning in ``meta.warnings`` instead of failing.

    Raises :class:`DecodeError` (naming the file and the reason) for anything that is not a
    decodable image; the file is only ever opened for reading.
    """
    if raw_mode not in RAW_MODES:
        raise ValueError(f"raw_mode must be one of {RAW_MODES}, got {raw_mode!r}")
    name = os.fspath(path)
    fmt, notes = _identify(name)
    try:
        stored = _decode(name, fmt, hint, raw_mode, allow_partial)
    except DecodeError:
        raise
    except Exception as exc:  # a scan of thousands of files must not die on one decoder's surprise
        raise DecodeError(name, f"{fmt} decoder failed ({type(exc).__name__}: {exc})") from exc
    stored.warnings[:0] = notes
    return _finish(name, fmt, stored, hint)


def _identify(path: str) -> tuple[str, list[str]]:
    """Format to decode ``path`` as, plus a warning when content and extension disagree."""
    _check_regular_file(path)
    expected = extension_format(path)
    if expected is None:
        suffix = Path(path).suffix or "(none)"
        raise DecodeError(path, f"not a supported image type (extension {suffix})")
    head = _read_head(path)
    if is_raw_format(expected):
        return expected, []
    actual = sniff_format(head)
    if actual is None:
        raise DecodeError(path, f"not a {expected.upper()} file: content matches no supported image format")
    if actual != expected:
        return actual, [f"content is {actual.upper()} although the extension says {expected.upper()}"]
    return actual, []


def _check_regular_file(path: str) -> None:
    """Fail early, with a plain reason, for paths that are missing or not files."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise DecodeError(path, "file not found") from exc
    except OSError as exc:
        raise DecodeError(path, f"cannot access file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(mode):
        raise DecodeError(path, "is a directory, not an image file")
    if not stat.S_ISREG(mode):
        raise DecodeError(path, "not a regular file")


def _read_head(path: str) -> bytes:
    """First bytes of the file (enough to recognise every format); rejects unreadable or empty files."""
    try:
        with open(path, "rb") as file:
            head = file.read(_SNIFF_BYTES)
    except PermissionError as exc:
        raise DecodeError(path, "permission denied") from exc
    except OSError as exc:
        raise DecodeError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if not head:
        raise DecodeError(path, "empty file (0 bytes)")
    return head


def _decode(path: str, fmt: str, hint: DecodeHint | None, raw_mode: str, allow_partial: bool) -> StoredPixels:
    """Run the decoder for ``fmt``."""
    if is_raw_format(fmt):
        return decode_raw(path, hint, raw_mode)
    if fmt == "tiff":
        return decode_tiff(path, hint)
    if fmt == "heif":
        return decode_heif(path)
    return decode_raster(path, Path(path).read_bytes(), fmt, hint, allow_partial)


def _finish(path: str, fmt: str, stored: StoredPixels, hint: DecodeHint | None) -> DecodedImage:
    """Downscale to the hint, make RGB, turn upright and describe the source: the same for every format."""
    full = (stored.width, stored.height)
    pixels = shrink_to(stored.pixels, hint.target_size(*full) if hint else full)
    resized = pixels.shape[1::-1] != full
    mode = "resized" if stored.mode == "full" and resized else stored.mode
    width, height = oriented_size(stored.width, stored.height, stored.orientation)
    meta = ImageMeta(
        path=path,
        width=width,
        height=height,
        bit_depth=stored.bit_depth,
        format=fmt,
        decode_mode=mode,
        orientation=stored.orientation,
        warnings=tuple(stored.warnings),
    )
    return DecodedImage(apply_orientation(as_rgb(pixels, bgr=stored.bgr), stored.orientation), meta)
