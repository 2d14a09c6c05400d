"""Image-processing pieces the built-in hooks share."""

from __future__ import annotations

import numpy as np

GAMMA = 2.2


def to_linear(display: np.ndarray) -> np.ndarray:
    """Display values to linear light: light adds linearly, so veils and ghosts are removed there."""
    return np.power(np.clip(display, 0.0, 1.0), GAMMA, dtype=np.float32)


def to_display(linear: np.ndarray) -> np.ndarray:
    return np.power(np.clip(linear, 0.0, 1.0), 1.0 / GAMMA, dtype=np.float32)


def bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Slices of the mask's bounding box grown by ``margin`` pixels: hooks only process that window."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return (slice(max(0, ys.min() - margin), min(height, ys.max() + margin + 1)),
            slice(max(0, xs.min() - margin), min(width, xs.max() + margin + 1)))
