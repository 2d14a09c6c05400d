"""Overlapping tiles and the way back from per-tile values to a pixel map.

The moiré and ghosting tests are local spectral tests: they look at one window at a time. Tiles
overlap by half so that every pixel is seen by up to four windows, which keeps an artifact that
straddles a tile border from falling between two half-empty windows.
"""

from __future__ import annotations

import cv2
import numpy as np


def hann2d(size: int) -> np.ndarray:
    """Separable Hann window: suppresses the spectral leakage of the tile border."""
    window = np.hanning(size + 2)[1:-1].astype(np.float32)
    return np.outer(window, window)


def tiles(plane: np.ndarray, size: int) -> np.ndarray:
    """Tiles of ``size`` px with a stride of ``size // 2``, shape ``(rows, cols, size, size)``.

    The plane is reflect-padded to a whole number of strides, so the last tiles cover the border.
    """
    stride = size // 2
    height, width = plane.shape
    pad_y = _padding(height, size, stride)
    pad_x = _padding(width, size, stride)
    padded = np.pad(plane, ((0, pad_y), (0, pad_x)), mode="reflect")
    view = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    return view[::stride, ::stride]


def _padding(length: int, size: int, stride: int) -> int:
    covered = max(length, size)
    return covered - length + (-(covered - size)) % stride


def tile_map(values: np.ndarray, size: int, shape: tuple[int, int]) -> np.ndarray:
    """Per-tile ``values`` (rows, cols) to a smooth float32 map of ``shape``.

    Each stride cell takes the mean of the tiles that cover it; the cell grid is then interpolated
    bilinearly, cell centres landing on their pixels.
    """
    stride = size // 2
    rows, cols = values.shape
    total = np.zeros((rows + 1, cols + 1), np.float32)
    count = np.zeros_like(total)
    for dy in (0, 1):
        for dx in (0, 1):
            total[dy : dy + rows, dx : dx + cols] += values
            count[dy : dy + rows, dx : dx + cols] += 1
    cells = total / count
    full = cv2.resize(cells, ((cols + 1) * stride, (rows + 1) * stride), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(full[: shape[0], : shape[1]])
