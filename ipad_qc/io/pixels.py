"""Array helpers shared by the decoders: channel layout and memory-bounded downscaling."""

from __future__ import annotations

import cv2
import numpy as np


def as_rgb(pixels: np.ndarray, *, bgr: bool) -> np.ndarray:
    """H x W x 3 RGB from grey, grey+alpha, 3- or 4-channel pixels; alpha and extra channels dropped.

    ``bgr`` says the colour channels come in OpenCV's BGR order.
    """
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    channels = pixels.shape[2]
    if channels <= 2:
        return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if bgr else pixels
    if channels == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return np.ascontiguousarray(pixels[:, :, :3])  # RGB + extra samples: only TIFF has those


def shrink_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (width, height) with area averaging, in the array's own dtype.

    Never upscales: if the pixels are already smaller than ``size`` in either direction they are
    returned unchanged (a caller asking for more than the source has gets the source). Working in
    uint8/uint16 keeps a 100-megapixel resize from needing a float copy of the image.
    """
    height, width = pixels.shape[:2]
    if (width, height) == size or width < size[0] or height < size[1]:
        return pixels
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def box_reduce(rows: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks (partial blocks at the right and bottom edges averaged
    over what they hold, as libjpeg's DCT scaling does), in the array's own dtype."""
    height, width = rows.shape[:2]
    full_h, full_w = height // factor * factor, width // factor * factor
    out = np.empty((-(-height // factor), -(-width // factor), *rows.shape[2:]), rows.dtype)
    if full_h and full_w:  # OpenCV's area resize is an exact block mean for an integer factor
        out[: height // factor, : width // factor] = cv2.resize(
            rows[:full_h, :full_w], (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    if full_w < width and full_h:
        edge = rows[:full_h, full_w:].reshape(height // factor, factor, width - full_w, *rows.shape[2:])
        out[: height // factor, -1] = _mean(edge, (1, 2), rows.dtype)
    if full_h < height and full_w:
        edge = rows[full_h:, :full_w].reshape(height - full_h, width // factor, factor, *rows.shape[2:])
        out[-1, : width // factor] = _mean(edge, (0, 2), rows.dtype)
    if full_h < height and full_w < width:
        out[-1, -1] = _mean(rows[full_h:, full_w:], (0, 1), rows.dtype)
    return out


def _mean(values: np.ndarray, axes: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    mean = values.mean(axis=axes, dtype=np.float64)
    return np.rint(mean).astype(dtype) if np.issubdtype(dtype, np.integer) else mean.astype(dtype)


class BoxReducer:
    """Reduces an image by an integer ``factor`` from its rows, given top to bottom in chunks of any
    height, holding one band of rows at a time: a decoder that produces rows (TIFF strips) then never
    needs the full-size image in memory."""

    def __init__(self, height: int, row_shape: tuple[int, ...], dtype: np.dtype, factor: int,
                 band_bytes: int = 16 << 20) -> None:
        self.factor = factor
        row_bytes = int(np.prod(row_shape)) * np.dtype(dtype).itemsize
        self.band = np.empty((factor * max(1, band_bytes // (factor * row_bytes)), *row_shape), dtype)
        self.filled = 0
        self.out = np.empty((-(-height // factor), -(-row_shape[0] // factor), *row_shape[1:]), dtype)
        self.done = 0

    def add(self, rows: np.ndarray) -> None:
        """The next rows of the image (``len(rows)`` of them, each of the row shape)."""
        if self.filled:
            take = min(len(rows), len(self.band) - self.filled)
            self.band[self.filled : self.filled + take] = rows[:take]
            self.filled += take
            rows = rows[take:]
            if self.filled < len(self.band):
                return
            self._emit(self.band)
            self.filled = 0
        whole = len(rows) // self.factor * self.factor
        if whole:  # reduced where they are: no copy
            self._emit(rows[:whole])
        rest = len(rows) - whole
        self.band[:rest] = rows[whole:]
        self.filled = rest

    def result(self) -> np.ndarray:
        """The reduced image, once every row was added."""
        if self.filled:
            self._emit(self.band[: self.filled])
            self.filled = 0
        if self.done != len(self.out):
            raise ValueError(f"{self.done * self.factor} rows given, the image has more")
        return self.out

    def _emit(self, rows: np.ndarray) -> None:
        reduced = box_reduce(rows, self.factor)
        self.out[self.done : self.done + len(reduced)] = reduced
        self.done += len(reduced)
