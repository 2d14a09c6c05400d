"""Camera RAW via rawpy (LibRaw): embedded preview, half-size or full demosaic.

Demosaicing dominates a RAW scan, so the default ``preview`` mode uses the camera's embedded
JPEG/bitmap when it is large enough for the hint and shows the same framing as the sensor; the
verdict is then on the camera's rendering, which ``decode_mode`` records. ``half`` lets LibRaw
merge each 2x2 Bayer block (no interpolation, ~4x faster than ``full``).

Truncated files are the common failure in camera folders (interrupted card copies, metadata-only
samples). LibRaw rejects most, but some "decode" to a blank or uninitialised picture, so the file
size is checked against the sensor size before anything is decoded, and the sensor data is
checked for being blank before it is demosaiced.
"""

from __future__ import annotations

import os

import numpy as np
import rawpy

from ipad_qc.io import orientation as orient
from ipad_qc.io.budget import check_pixels
from ipad_qc.io.raster import dct_factor, imdecode_jpeg, read_header
from ipad_qc.io.stored import StoredPixels
from ipad_qc.io.types import DecodeError, DecodeHint

RAW_MODES: tuple[str, ...] = ("preview", "half", "full")

# RAW codecs do not get below ~2 bits per sensor pixel (the real files here: 1.9 to 34 bits);
# the metadata-only stubs have 0.01 to 0.02. An eighth of that floor (0.25 bit) leaves room for
# dark, heavily compressed lossy DNGs.
_MIN_BYTES_PER_PIXEL = 1 / 32
_ASPECT_TOLERANCE = 0.02  # previews cropped to another aspect ratio show a different picture
_MIN_PLAUSIBLE_WHITE = 1023  # no sensor digitises to fewer than 10 bits: lower levels are bogus
_LIBRAW_ERRORS = (rawpy.LibRawError, rawpy.NotSupportedError)


def decode_raw(path: str, hint: DecodeHint | None, mode: str, max_pixels: int | None = None) -> StoredPixels:
    """Decode a RAW file in ``mode`` (one of :data:`RAW_MODES`), in the sensor's orientation."""
    try:
        with rawpy.imread(path) as raw:
            sizes = raw.sizes  # read before postprocess(), which rewrites them (half size, flip)
            check_pixels(path, "raw", sizes.raw_width, sizes.raw_height, max_pixels)
            _check_file_size(path, sizes)
            if mode == "preview":
                preview, reason = _preview(path, raw, sizes, hint)
                return preview or _demosaic(path, raw, sizes, half=True, label=f"raw-half ({reason})")
            return _demosaic(path, raw, sizes, half=mode == "half", label=f"raw-{mode}")
    except _LIBRAW_ERRORS as exc:
        raise DecodeError(path, f"unsupported or corrupt RAW file (LibRaw: {_libraw_message(exc)})") from exc


def _check_file_size(path: str, sizes: rawpy.ImageSizes) -> None:
    """Reject files far too small to hold the sensor data their metadata describes."""
    samples = sizes.raw_width * sizes.raw_height
    file_size = os.path.getsize(path)
    if file_size < samples * _MIN_BYTES_PER_PIXEL:
        raise DecodeError(
            path,
            f"truncated RAW: sensor data missing (file is {file_size / 1024:.0f} KB, "
            f"its {sizes.raw_width}x{sizes.raw_height} sensor image needs ~{samples * 2 / 2**20:.0f} MB "
            "uncompressed)",
        )


def _preview(
    path: str, raw: rawpy.RawPy, sizes: rawpy.ImageSizes, hint: DecodeHint | None
) -> tuple[StoredPixels | None, str]:
    """The embedded preview if it can stand in for the sensor image, else ``None`` and why not."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None, "no preview"
    except _LIBRAW_ERRORS:  # a damaged preview says nothing about the sensor data
        return None, "preview unreadable"
    is_jpeg = thumb.format == rawpy.ThumbFormat.JPEG
    header = read_header(thumb.data, "jpeg") if is_jpeg else None
    if is_jpeg and header is None:
        return None, "preview unreadable"
    size = (header.width, header.height) if header else (thumb.data.shape[1], thumb.data.shape[0])
    sensor = (sizes.width, sizes.height)
    if abs((size[0] / size[1]) / (sensor[0] / sensor[1]) - 1) > _ASPECT_TOLERANCE:
        return None, "preview framing differs"
    least = hint.least_size(*sensor) if hint else sensor
    if min(size) < min(least):
        return None, "preview too small"
    try:
        pixels = imdecode_jpeg(path, thumb.data, dct_factor(*size, least))[0] if is_jpeg else thumb.data
    except DecodeError:
        return None, "preview unreadable"
    return _stored(sizes, pixels, raw.white_level, "raw-preview", [], bgr=is_jpeg), ""  # bitmaps are RGB


def _demosaic(
    path: str, raw: rawpy.RawPy, sizes: rawpy.ImageSizes, *, half: bool, label: str
) -> StoredPixels:
    """16-bit demosaic with camera white balance, left unrotated for the loader to orient.

    Some files declare a white level below their actual data (the NEF in the shared test data says
    255 and holds values up to 54998); LibRaw would then clip nearly everything to white, so the
    data maximum is used as the saturation level instead.
    """
    sensor = raw.raw_image_visible
    peak = _check_sensor_data(path, sensor)
    options = {"half_size": half, "use_camera_wb": True, "output_bps": 16, "user_flip": 0}
    white = raw.white_level
    notes = []
    if peak > white:
        options["user_sat"] = peak
        notes.append(
            f"sensor data exceeds the declared white level ({peak} > {white}); saturation set to {peak}"
        )
    pixels = raw.postprocess(**options)
    return _stored(sizes, pixels, max(peak, white), label, notes)


def _check_sensor_data(path: str, sensor: np.ndarray) -> int:
    """Reject blank sensor data (what LibRaw returns for some truncated files); return its maximum."""
    low, high = int(sensor.min()), int(sensor.max())
    if low == high:
        raise DecodeError(path, f"truncated RAW: sensor data is blank (every sample is {low})")
    tail_rows = max(1, sensor.shape[0] // 16)
    if not sensor[-tail_rows:].any():
        raise DecodeError(path, f"truncated RAW: the last {tail_rows} rows of sensor data are zero")
    return high


def _stored(
    sizes: rawpy.ImageSizes, pixels: np.ndarray, white: int, mode: str, notes: list[str], bgr: bool = False
) -> StoredPixels:
    """Wrap decoded pixels with the sensor-level facts every RAW mode reports the same way."""
    bits = min(16, white.bit_length()) if white >= _MIN_PLAUSIBLE_WHITE else 16
    orientation = orient.exif_from_libraw_flip(sizes.flip)
    return StoredPixels(pixels, sizes.width, sizes.height, bits, mode, orientation, notes, bgr)


def _libraw_message(exc: Exception) -> str:
    """LibRaw's own words for an error (rawpy passes them as bytes)."""
    detail = exc.args[0] if exc.args else type(exc).__name__
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
