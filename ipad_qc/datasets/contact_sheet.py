"""Contact sheets of a data set: one row per class with mask outlines, and synthetic beside real photos.

Looking at a few dozen samples catches what no statistic does: a flare that lands on a wall, moiré
too faint to see, a mask that is offset from its artifact. The comparison sheet puts each class's
synthetic samples next to real photos of that class (a labelled folder such as ``realdev``), whole
and as 1:1 crops, because realism is judged at the pixel scale moiré and ghosts live at. The sheets
are the first thing to open after ``ipad-qc synth``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.datasets.manifest import Sample

_GREEN, _WHITE, _GREY, _BACKGROUND = (60, 220, 60), (255, 255, 255), (170, 170, 170), (32, 32, 32)
_ACCENT = (90, 170, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LABEL_WIDTH, _TITLE_HEIGHT, _CAPTION_HEIGHT, _PAD = 120, 34, 16, 6


def _spread(items: Sequence[Sample], count: int) -> list[Sample]:
    """Up to ``count`` items evenly spaced over the list (so every split and photo gets a chance)."""
    if len(items) <= count:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def _read(path: Path, flags: int) -> np.ndarray:
    pixels = cv2.imdecode(np.fromfile(path, np.uint8), flags)
    if pixels is None:
        raise OSError(f"{path}: unreadable image")
    return pixels


def thumbnail(root: Path, sample: Sample, size: int, *, crop: bool = False) -> np.ndarray:
    """The sample at ``size`` x ``size`` (BGR) with its mask's outline drawn in green; with ``crop``, its
    central ``size`` x ``size`` pixels at 1:1 instead (no outline: the pixels are what is judged)."""
    pixels = _read(root / sample.image, cv2.IMREAD_COLOR)
    if crop:
        return _centre(pixels, size)
    thumb = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)
    if sample.mask:
        mask = cv2.resize(_read(root / sample.mask, cv2.IMREAD_GRAYSCALE), (size, size),
                          interpolation=cv2.INTER_AREA)
        contours, _ = cv2.findContours((mask >= 128).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(thumb, contours, -1, _GREEN, 1, cv2.LINE_AA)
    return thumb


def _centre(pixels: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window at 1:1 (padded when the image is smaller)."""
    height, width = pixels.shape[:2]
    y0, x0 = max(0, (height - size) // 2), max(0, (width - size) // 2)
    window = pixels[y0:y0 + size, x0:x0 + size]
    out = np.full((size, size, 3), _BACKGROUND, np.uint8)
    out[: window.shape[0], : window.shape[1]] = window
    return out


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: tuple[int, int, int],
          thickness: int = 1) -> None:
    cv2.putText(canvas, text, origin, _FONT, scale, colour, thickness, cv2.LINE_AA)


def write_contact_sheet(root: str | os.PathLike[str], samples: Sequence[Sample], path: str | os.PathLike[str],
                        per_class: int = 6, size: int = 160) -> Path:
    """Write a JPEG grid: a row per class present in ``samples`` (in class order), ``per_class`` columns."""
    root, path = Path(root), Path(path)
    rows = [(label, [s for s in samples if s.label == label]) for label in CLASS_NAMES]
    rows = [(label, items) for label, items in rows if items]
    cell_w, cell_h = size + _PAD, size + _CAPTION_HEIGHT + _PAD
    width = _LABEL_WIDTH + per_class * cell_w + _PAD
    canvas = np.full((_TITLE_HEIGHT + len(rows) * cell_h + _PAD, width, 3), _BACKGROUND, np.uint8)
    _text(canvas, f"{len(samples)} samples (green: mask outline)", (_PAD + 4, 23), 0.6, _WHITE)
    for row, (label, items) in enumerate(rows):
        top = _TITLE_HEIGHT + row * cell_h
        _text(canvas, label, (_PAD + 4, top + size // 2), 0.7, _WHITE, 2)
        _text(canvas, f"{len(items)} samples", (_PAD + 4, top + size // 2 + 22), 0.45, _GREY)
        for column, sample in enumerate(_spread(items, per_class)):
            left = _LABEL_WIDTH + column * cell_w
            canvas[top:top + size, left:left + size] = thumbnail(root, sample, size)
            caption = f"{sample.split} {Path(sample.image).stem[-12:]}"
            _text(canvas, caption, (left + 2, top + size + _CAPTION_HEIGHT - 4), 0.38, _GREY)
    if not cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f"{path}: could not write the contact sheet")
    return path


def write_comparison_sheet(root: str | os.PathLike[str], samples: Sequence[Sample], real_root: str | os.PathLike[str],
                           real: Sequence[Sample], path: str | os.PathLike[str], per_side: int = 4,
                           size: int = 192) -> Path:
    """Write a JPEG with two rows per class: synthetic samples (left, outlined masks) beside real photos
    of that class (right), whole; then the same images as central 1:1 crops."""
    root, real_root, path = Path(root), Path(real_root), Path(path)
    labels = [label for label in CLASS_NAMES if any(s.label == label for s in samples)]
    cell = size + _PAD
    width = _LABEL_WIDTH + 2 * per_side * cell + 3 * _PAD
    row_h = size + _PAD
    canvas = np.full((_TITLE_HEIGHT + len(labels) * (2 * row_h + _CAPTION_HEIGHT) + _PAD, width, 3),
                     _BACKGROUND, np.uint8)
    _text(canvas, f"synthetic ({root.name})  |  real ({real_root.name}); lower row: 1:1 centre crops",
          (_PAD + 4, 23), 0.6, _WHITE)
    top = _TITLE_HEIGHT
    for label in labels:
        _text(canvas, label, (_PAD + 4, top + size // 2), 0.7, _WHITE, 2)
        sides = ((root, _spread([s for s in samples if s.label == label], per_side), _LABEL_WIDTH),
                 (real_root, _spread([s for s in real if s.label == label], per_side),
                  _LABEL_WIDTH + per_side * cell + 2 * _PAD))
        for base, items, left in sides:
            for column, sample in enumerate(items):
                x = left + column * cell
                canvas[top:top + size, x:x + size] = thumbnail(base, sample, size)
                canvas[top + row_h:top + row_h + size, x:x + size] = thumbnail(base, sample, size, crop=True)
        separator = _LABEL_WIDTH + per_side * cell + _PAD // 2
        cv2.line(canvas, (separator, top), (separator, top + 2 * row_h), _ACCENT, 2)
        top += 2 * row_h + _CAPTION_HEIGHT
    if not cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f"{path}: could not write the comparison sheet")
    return path
