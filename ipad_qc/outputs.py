"""Files a scan writes into its run folder: mask PNGs, probability-map PNGs, CSV and JSONL exports.

Every file is written through :func:`ipad_qc.runfolder.atomic_write` (a temporary name unique to the
writer, renamed into place), so a scan killed mid-write never leaves a half-written PNG or CSV that a
later step would trust, and two writer threads never share a temporary file.

Masks and maps mirror the scanned tree (``masks/<path>.png``). :func:`output_relpath` keeps that
mapping one-to-one whatever the names: a folder named like a mask (``x.png.png/`` beside ``x.png``)
gets a ``~`` appended, and a name too long for the file system once ``.png`` is added is shortened
with a hash. The row records the path actually written, so readers never recompute it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.detectors.base import Detection
from ipad_qc.io.types import DecodeHint
from ipad_qc.png import encode_bilevel_png, encode_png
from ipad_qc.runfolder import atomic_write
from ipad_qc.store import RESULT_COLUMNS

MASK_DIR = "masks"
MAP_DIR = "maps"
THUMB_DIR = "thumbs"
THUMB_SIDE = 256  # report table thumbnails: ~10 KB JPEGs, small enough to embed thousands in one page
VIEW_SIDE = 1024  # report large view, made only for flagged images
CSV_NAME = "results.csv"
JSONL_NAME = "results.jsonl"
NAME_MAX = 255  # bytes in one file name on every common file system
#: Report overlay colours (RGB), the class colours of the page.
OVERLAY_COLOURS: dict[str, tuple[int, int, int]] = {
    "ghosting": (255, 64, 64), "flare": (255, 170, 0), "moire": (40, 150, 255),
}
_FILL_ALPHA = 0.35
_OUTPUT_SUFFIX = ".png"
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _fits(name: str, suffix: str = "") -> str:
    """``name + suffix``, with the name cut and a hash of it added when the result exceeds NAME_MAX bytes."""
    if len(os.fsencode(name + suffix)) <= NAME_MAX:
        return name + suffix
    digest = hashlib.blake2b(os.fsencode(name), digest_size=8).hexdigest()
    tail = f"~{digest}{suffix}"
    keep = name
    while len(os.fsencode(keep + tail)) > NAME_MAX:
        keep = keep[:-1]
    return keep + tail


def output_relpath(folder: str, image_relpath: str) -> str:
    """Where the ``.png`` output of ``image_relpath`` goes under ``folder`` (``masks`` or ``maps``).

    One-to-one for every tree: file outputs always end in ``.png``, folder names that end in ``.png``
    (any case) or ``~`` get one more ``~``, so no folder can take a file output's name.
    """
    *folders, name = image_relpath.split("/")
    escaped = [_fits(part + "~" if part.lower().endswith(_OUTPUT_SUFFIX) or part.endswith("~") else part)
               for part in folders]
    return "/".join([folder, *escaped, _fits(name, _OUTPUT_SUFFIX)])


def write_mask(run_dir: Path, image_relpath: str, detection: Detection) -> str:
    """Binary mask at the original image size as a 1-bit PNG (OpenCV reads it as 0/255, Pillow as mode
    "1"); returns its path relative to the run folder.

    Clean verdicts have an all-zero mask by definition, so no file is written and "" is returned.
    """
    if detection.is_clean:
        return ""
    relpath = output_relpath(MASK_DIR, image_relpath)
    atomic_write(run_dir / relpath, encode_bilevel_png(detection.mask_image()))
    return relpath


def _quantised(plane: np.ndarray) -> np.ndarray:
    """A [0, 1] float map as 8-bit, rounded: values below 0 (and NaN) become 0, above 1 become 255.
    Two OpenCV passes, five times faster than the NumPy expression with its float temporaries."""
    positive = cv2.threshold(np.asarray(plane, np.float32), 0.0, 0.0, cv2.THRESH_TOZERO)[1]
    return cv2.convertScaleAbs(positive, alpha=255.0)


def write_probability_map(run_dir: Path, image_relpath: str, detection: Detection) -> str:
    """Per-class probability maps at analysis resolution as one 8-bit PNG.

    Channels are red = ghosting, green = flare, blue = moiré (grey when the detector gives only the
    combined map). Reports use it for heat-map overlays; it is small because it is low-resolution.
    """
    if detection.class_maps:
        planes = [detection.class_maps.get(name) for name in ARTIFACT_CLASSES]
        empty = np.zeros(detection.probability.shape, np.uint8)
        pixels = cv2.merge([empty if plane is None else _quantised(plane) for plane in planes])
    else:
        pixels = _quantised(detection.probability)
    relpath = output_relpath(MAP_DIR, image_relpath)
    atomic_write(run_dir / relpath, encode_png(pixels))
    return relpath


def thumbnail_name(content_hash: str, side: int) -> str:
    """Thumbnails are named by content, so a renamed or copied file reuses them."""
    return f"{content_hash}-{side}.jpg"


def write_thumbnails(folder: Path, content_hash: str, pixels: np.ndarray, sides: Iterable[int]) -> None:
    """JPEG thumbnails of RGB ``pixels`` (8 or 16 bit) with a long side of at most each of ``sides``.

    The scanner calls this with the image it has just decoded for detection, so the report does not
    decode every original a second time; the report calls it for images the scan did not cover.
    """
    rgb = (pixels >> 8).astype(np.uint8) if pixels.dtype == np.uint16 else pixels
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    height, width = bgr.shape[:2]
    for side in sides:
        scale = min(1.0, side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA) if size != (width, height) else bgr
        ok, encoded = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, 82])
        if not ok:
            raise OSError(f"cannot encode the thumbnail of {content_hash}")
        atomic_write(folder / thumbnail_name(content_hash, side), encoded.tobytes())


def overlay_stem(content_hash: str, settings_hash: str, label: str | None) -> str:
    """The name stem of a mask's report overlays. A mask is a function of the original's content, the
    scan's settings and the label, so these name it: every scan of the same file with the same
    settings, by any engine, names its overlays alike, and other settings give other names."""
    key = f"{content_hash}|{settings_hash}|{label}"
    return hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()


def overlay_name(stem: str, side: int) -> str:
    return f"{stem}-{side}.png"


def overlay_pixels(mask: np.ndarray, size: tuple[int, int], label: str | None) -> np.ndarray:
    """RGBA overlay of a 0/255 mask (any resolution) at ``size``: translucent fill plus an opaque
    outline, in the class colour. 8-bit OpenCV passes throughout, a quarter of the time of float maths."""
    small = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    binary = cv2.threshold(small, 127, 255, cv2.THRESH_BINARY)[1]
    outline = cv2.morphologyEx(binary, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    alpha = cv2.max(cv2.convertScaleAbs(small, alpha=_FILL_ALPHA), outline)
    planes = [np.full_like(small, value) for value in OVERLAY_COLOURS.get(label or "", (255, 255, 255))]
    return cv2.merge([*planes, alpha])


def write_overlays(folder: Path, stem: str, mask: np.ndarray, full_size: tuple[int, int], label: str | None,
                   sides: Iterable[int]) -> None:
    """The report's mask overlays, one per side (long side at most ``side`` of the ``full_size``
    original), from a 0/255 mask at any resolution: the scan passes the mask at the largest
    overlay's size (:meth:`Detection.mask_image`), so a 100-megapixel mask is never read back."""
    for side in sides:
        size = DecodeHint(long_side=side).target_size(*full_size)
        atomic_write(folder / overlay_name(stem, side), encode_png(overlay_pixels(mask, size, label)))


def formula_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) behind a ``'``;
    numbers and everything else unchanged. File names and messages are data, never formulas."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_cell(value: Any) -> Any:
    """A value as a ``results.csv`` cell: floats to 6 significant digits, ``None`` empty, text formula-safe."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else formula_safe(value)


def write_exports(run_dir: Path, rows: Iterable[Mapping[str, Any]]) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.jsonl`` (same rows, same columns) from the database rows."""
    rows = list(rows)
    columns = list(RESULT_COLUMNS)
    csv_path, jsonl_path = run_dir / CSV_NAME, run_dir / JSONL_NAME

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(name)) for name in columns])
    atomic_write(csv_path, buffer.getvalue().encode("utf-8"))

    lines = [json.dumps({name: row.get(name) for name in columns}, ensure_ascii=False) for row in rows]
    atomic_write(jsonl_path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
    return csv_path, jsonl_path
