"""Image-processing pieces the built-in hooks share: linear light, working windows and feathered blending.

Every built-in hook fades its correction in over a **feather band** inside the mask's edge instead
of cutting it off there: a correction that stops abruptly (a veil subtracted up to the mask edge
and not beyond) leaves a visible step, like the darkened disk around a lamp that the first
``deflare`` drew. Pixels outside the mask never change; inside, the correction's weight rises from
0 at the edge to 1 at :func:`feather_width` pixels in.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.routing.api import confine_to_mask, to_float

GAMMA = 2.2
#: Feather band as a share of the image's long side (at least ``MIN_FEATHER`` pixels).
FEATHER = 0.06
MIN_FEATHER = 4.0


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


def feather_width(shape: tuple[int, ...], share: float = FEATHER) -> float:
    """Width in pixels of the feather band for an image of ``shape``: ``share`` of its long side."""
    return max(MIN_FEATHER, share * max(shape[:2]))


def feather(mask: np.ndarray, width: float) -> np.ndarray:
    """Blend weight of a repair: 0 outside ``mask``, rising smoothly to 1 at ``width`` pixels inside its edge.

    The rise is a :func:`smoothstep` of the distance to the nearest pixel outside the mask, so the
    repaired region meets the untouched surroundings without a step or a kink. ``width`` is capped
    at half the mask's largest inner distance, so a small region still gets its full correction.
    The image border is no edge: a mask that runs off the picture is not faded there. ``mask``
    must be a window that reaches the image border only where the image does.
    """
    if mask.all():
        return np.ones(mask.shape, np.float32)
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1] - 0.5
    return smoothstep(distance, 0.0, min(width, max(1.0, 0.5 * float(distance.max()))))


def smoothstep(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """0 below ``low``, 1 above ``high``, between them the C2 S-curve 6t^5 - 15t^4 + 10t^3.

    Its first and second derivatives vanish at both ends, so a fade made with it starts so gently
    that the first pixels inside a mask change by less than an 8-bit step: no ripple of rounding
    contours is drawn along the mask's edge.
    """
    t = np.clip((values - low) / (high - low), 0.0, 1.0)
    return (t * t * t * (t * (6.0 * t - 15.0) + 10.0)).astype(np.float32)


def paste(pixels: np.ndarray, mask: np.ndarray, window: tuple[slice, slice], before: np.ndarray,
          after: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The full image with ``window`` blended from ``before`` to ``after`` by ``weight``, in ``pixels``' dtype.

    ``before``/``after`` are float RGB of the window; ``weight`` is 0 outside the mask, and the
    original bytes are kept there exactly (:func:`confine_to_mask`).
    """
    repaired = to_float(pixels)
    repaired[window] = before + weight[..., None] * (after - before)
    return confine_to_mask(pixels, repaired, mask)


def disc(radius: int) -> np.ndarray:
    """Elliptical structuring element of ``radius`` pixels (at least 1)."""
    size = 2 * max(1, int(radius)) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
