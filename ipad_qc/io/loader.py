"""``load_image``: one call that turns any supported photo into RGB pixels plus metadata.

The loader checks the file, picks the decoder from the content (or the extension, for RAW),
and finishes every format the same way: downscale to the hint in the stored orientation (the
cheapest place), then turn the pixels upright and describe the source in :class:`ImageMeta`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ipad_qc.io.budget import DEFAULT_MAX_PIXELS
from ipad_qc.io.files import NotRegularFileError, open_regular
from ipad_qc.io.formats import extension_format, is_raw_format, sniff_format
from ipad_qc.io.heif import decode_heif
from ipad_qc.io.orientation import apply_orientation, oriented_size
from ipad_qc.io.pixels import as_rgb, shrink_to
from ipad_qc.io.raster import RASTER_FORMATS, decode_raster
from ipad_qc.io.raster import check_budget as check_raster_budget
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
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> DecodedImage:
    """Decode an image file to upright RGB pixels at the resolution ``hint`` asks for.

    ``hint=None`` decodes at full resolution; otherwise the result has ``hint.target_size`` of the
    upright original (never upscaled), obtained as cheaply as the format allows (JPEG DCT scaling,
    RAW preview or half-size demosaic), or down to ``hint.least_size`` when a reduced decode lands
    there (see ``DecodeHint.slack``). ``raw_mode`` is one of ``RAW_MODES``. ``allow_partial``
    accepts truncated or damaged JPEGs with a warning in ``meta.warnings`` instead of failing.
    ``max_pixels`` is the decode budget: a larger picture (by its header) is refused before it is
    decoded, as is a file whose size cannot hold the picture its header claims (``None``: no limit).

    Raises :class:`DecodeError` (naming the file and the reason) for anything that is not a
    decodable image; the file is only ever opened for reading.
    """
    if raw_mode not in RAW_MODES:
        raise ValueError(f"raw_mode must be one of {RAW_MODES}, got {raw_mode!r}")
    name = os.fspath(path)
    fmt, notes = _identify(name)
    try:
        stored = _decode(name, fmt, hint, raw_mode, allow_partial, max_pixels)
    except DecodeError:
        raise
    except Exception as exc:  # a scan of thousands of files must not die on one decoder's surprise
        raise DecodeError(name, f"{fmt} decoder failed ({type(exc).__name__}: {exc})") from exc
    stored.warnings[:0] = notes
    return _finish(name, fmt, stored, hint)


def check_budget(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Raise :class:`DecodeError` now for a JPEG/PNG/BMP/WebP whose header fails the decode budget
    (:mod:`ipad_qc.io.budget`), reading only its header: a scan calls this before hashing a file, so a
    sparse 2 GB "JPEG" costs a few reads, not a pass over 2 GB. Other formats are checked by their
    decoders, and anything else wrong is left to :func:`load_image` to report."""
    name = os.fspath(path)
    fmt, _ = _identify(name)
    if fmt in RASTER_FORMATS:
        check_raster_budget(name, fmt, max_pixels)


def _identify(path: str) -> tuple[str, list[str]]:
    """Format to decode ``path`` as, plus a warning when content and extension disagree."""
    head = _read_head(path)
    expected = extension_format(path)
    if expected is None:
        suffix = Path(path).suffix or "(none)"
        raise DecodeError(path, f"not a supported image type (extension {suffix})")
    if is_raw_format(expected):
        return expected, []
    actual = sniff_format(head)
    if actual is None:
        raise DecodeError(path, f"not a {expected.upper()} file: content matches no supported image format")
    if actual != expected:
        return actual, [f"content is {actual.upper()} although the extension says {expected.upper()}"]
    return actual, []


def _read_head(path: str) -> bytes:
    """First bytes of a regular file (enough to recognise every format); rejects missing, unreadable,
    empty and non-regular files (FIFOs, devices: opened without blocking, never read)."""
    try:
        with open_regular(path) as (fd, _):
            head = os.read(fd, _SNIFF_BYTES)
    except FileNotFoundError as exc:
        raise DecodeError(path, "file not found") from exc
    except IsADirectoryError as exc:
        raise DecodeError(path, "is a directory, not an image file") from exc
    except NotRegularFileError as exc:
        raise DecodeError(path, f"is {exc}") from exc
    except PermissionError as exc:
        raise DecodeError(path, "permission denied") from exc
    except OSError as exc:
        raise DecodeError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if not head:
        raise DecodeError(path, "empty file (0 bytes)")
    return head


def _decode(path: str, fmt: str, hint: DecodeHint | None, raw_mode: str, allow_partial: bool,
            max_pixels: int | None) -> StoredPixels:
    """Run the decoder for ``fmt``."""
    if is_raw_format(fmt):
        return decode_raw(path, hint, raw_mode, max_pixels)
    if fmt == "tiff":
        return decode_tiff(path, hint, max_pixels)
    if fmt == "heif":
        return decode_heif(path, max_pixels)
    return decode_raster(path, fmt, hint, allow_partial, max_pixels)


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
