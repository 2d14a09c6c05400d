"""``deflare``: remove the veiling glow and the streaks of lens flare inside the flare mask.

Flare is light added by the lens (scattering, diffraction, inter-reflections), so it is removed in
linear light by subtraction, in two parts:

* **veil**: a smooth additive glow lifts every pixel near the source, dark ones included. The
  local-minimum envelope of the image (erosion, then blur) is therefore raised inside the mask
  compared with what the surroundings predict (the same envelope interpolated from outside the
  mask). The excess is the veil estimate; ``strength`` of it is subtracted.
* **streaks**: diffraction spikes are thin lines running radially from the source. A pixel is on a
  streak when it is brighter than its neighbours across the radial direction while its neighbours
  along it are bright too; that excess is subtracted.

The light source itself (near-saturated pixels and a small margin) is kept as it is: a sun or lamp
with its flare removed is still a sun or lamp.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.routing.api import RepairRequest, confine_to_mask, to_float
from ipad_qc_plugins._common import bounding_box, to_display, to_linear

VERSION = "1.0"
_FLOOR = 5  # percentile that stands for "the dark floor" of a ring
_SATURATED = 0.9  # linear luminance of the light source (display ~0.95)


class Deflare:
    """Mask-guided veil and streak removal; see the module docstring."""

    name = "deflare"
    artifact = "flare"
    version = VERSION

    def __init__(self, strength: float = 1.0, keep_source: bool = True) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}")
        self.strength, self.keep_source = float(strength), bool(keep_source)

    def repair(self, request: RepairRequest) -> np.ndarray | None:
        mask, pixels = request.mask, request.image.pixels
        scale = max(4, int(0.012 * np.hypot(*mask.shape)))
        rows, cols = bounding_box(mask, 4 * scale)
        window, inside = to_linear(to_float(pixels[rows, cols])), mask[rows, cols]
        if inside.all():  # nothing outside the mask to say what the scene looks like without flare
            return None
        source = self._source(window, inside)
        veil = self._veil(window, inside, source, scale)
        cleaned = self._remove_streaks(window - veil, source, scale)
        if self.keep_source:
            keep = cv2.dilate((window.mean(axis=2) >= _SATURATED).astype(np.uint8), _disc(scale // 2)) > 0
            cleaned[keep] = window[keep]
        repaired = to_float(pixels)
        repaired[rows, cols] = to_display(cleaned)
        return confine_to_mask(pixels, repaired, mask)

    def _veil(self, linear: np.ndarray, inside: np.ndarray, source: tuple[float, float], scale: int) -> np.ndarray:
        """Radial glow profile: the dark floor of each ring around the source, made non-increasing outwards.

        Glare falls off with the distance to the source, so the veil at radius r is at most the darkest
        level found at any smaller radius; the floor of the ring just outside the mask is the scene's own.
        """
        envelope = cv2.erode(linear, _disc(scale))
        height, width = inside.shape
        ys, xs = np.mgrid[0:height, 0:width]
        ring = (np.hypot(xs - source[0], ys - source[1]) / scale).astype(np.int32)
        border = (cv2.dilate(inside.astype(np.uint8), _disc(scale)) > 0) & ~inside
        base = np.percentile(envelope[border], _FLOOR, axis=0) if border.any() else np.zeros(3, np.float32)
        profile = np.zeros((ring.max() + 1, 3), np.float32)
        for index in np.unique(ring[inside]):
            profile[index] = np.percentile(envelope[inside & (ring == index)], _FLOOR, axis=0)
        profile = np.maximum(np.minimum.accumulate(np.where(profile > 0, profile, np.inf), axis=0) - base, 0.0)
        profile[~np.isfinite(profile)] = 0.0
        veil = cv2.GaussianBlur(profile[ring], (0, 0), scale / 2)
        return self.strength * veil * inside[..., None]

    @staticmethod
    def _source(linear: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
        """(x, y) of the brightest smoothed spot in the mask: the origin of the streaks."""
        luminance = cv2.GaussianBlur(linear.mean(axis=2), (0, 0), 3) * inside
        y, x = np.unravel_index(int(np.argmax(luminance)), luminance.shape)
        return float(x), float(y)

    @staticmethod
    def _remove_streaks(linear: np.ndarray, source: tuple[float, float], scale: int) -> np.ndarray:
        """Subtract thin radial lines: excess over the neighbours across the ray, where the ray continues."""
        height, width = linear.shape[:2]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        dx, dy = xs - source[0], ys - source[1]
        norm = np.maximum(np.hypot(dx, dy), 1e-3)
        ux, uy = dx / norm, dy / norm
        step = max(2.0, scale / 2)

        def sample(ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
            return cv2.remap(linear, xs + ox, ys + oy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

        across = np.maximum(sample(-uy * step, ux * step), sample(uy * step, -ux * step))
        along = np.minimum(sample(ux * step, uy * step), sample(-ux * step, -uy * step))
        excess = np.clip(np.minimum(linear, along) - across, 0.0, None)
        return np.clip(linear - excess, 0.0, 1.0)


def _disc(radius: int) -> np.ndarray:
    size = 2 * max(1, radius) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def create(**options: object) -> Deflare:
    """Entry point of the ``deflare`` hook (``ipad_qc.removal_hooks``)."""
    return Deflare(**options)
