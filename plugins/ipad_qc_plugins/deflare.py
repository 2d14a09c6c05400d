"""``deflare``: remove the veiling glow and the streaks of lens flare inside the flare mask, without seams.

Flare is light added by the lens (scattering, diffraction, inter-reflections), so it is removed in
linear light by subtraction, in two parts that follow the flare's own shape:

* **veil**: a smooth glow that falls off with the distance to the light source and lifts every
  pixel near it, dark ones included. Its radial profile is the dark floor of each ring around the
  source (the local-minimum envelope, eroded then blurred), made non-increasing outwards, above
  the scene's own floor just outside the mask. A detector's mask rarely contains the whole glow,
  so only the glow **in excess of its level at the mask's edge** is removed (that level is
  interpolated across the mask from its edge): the repaired region then meets the untouched glow
  outside at the same brightness. The profile is estimated on a copy at most 512 px across (a
  veil has no fine detail) and scaled back.
* **streaks**: diffraction spikes are thin lines running radially from the source. A pixel is on a
  streak when it is brighter than its neighbours across the radial direction while its neighbours
  along it are bright too; that excess is subtracted, at full resolution.

The correction fades in over the feather band inside the mask's edge, and out again towards
clipping: near-saturated pixels (the lamp, the sun) hold no measurable veil, and a lamp with its
glow removed is still a lamp, so the weight falls smoothly with brightness instead of a hard-edged
"keep the source" region. The hook declines an image where the correction would be negligible.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.routing.api import Declined, RepairRequest, to_float
from ipad_qc_plugins._common import (
    FEATHER,
    bounding_box,
    disc,
    feather,
    feather_width,
    paste,
    smoothstep,
    to_display,
    to_linear,
)

VERSION = "2.0"
_FLOOR = 5  # percentile that stands for "the dark floor" of a ring
_SATURATED = 0.9  # linear luminance of the light source (display ~0.95): no correction there
_HIGHLIGHT = 0.35  # linear luminance where the correction starts fading towards the source
_WORK_SIDE = 512  # long side of the copy the veil is estimated on
_NEGLIGIBLE = 1.0 / 255  # mean display change inside the mask below which the hook declines


class Deflare:
    """Mask-guided veil and streak removal; see the module docstring."""

    name = "deflare"
    artifact = "flare"
    version = VERSION
    #: Feather band, as a share of the long side: the correction fades in over it inside the mask's edge.
    feather_share = FEATHER

    def __init__(self, strength: float = 1.0, keep_source: bool = True) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, got {strength}")
        self.strength, self.keep_source = float(strength), bool(keep_source)

    def repair(self, request: RepairRequest) -> np.ndarray | Declined:
        mask, pixels = request.mask, request.image.pixels
        scale = max(4, int(0.012 * np.hypot(*mask.shape)))
        window = bounding_box(mask, 4 * scale)
        display = to_float(pixels[window])
        linear, inside = to_linear(display), mask[window]
        if inside.all():
            return Declined("the mask covers the whole image: nothing outside it shows the scene without flare")
        veil, source = _veil(linear, inside, scale)
        cleaned = _remove_streaks(linear - veil, source, scale)
        weight = self.strength * feather(inside, feather_width(mask.shape, self.feather_share))
        if self.keep_source:
            weight *= 1.0 - smoothstep(cv2.GaussianBlur(linear.mean(axis=2), (0, 0), 1.5), _HIGHLIGHT, _SATURATED)
        repaired = to_display(linear - (linear - cleaned) * weight[..., None])
        if float(np.abs(repaired - display)[inside].mean()) < _NEGLIGIBLE:
            return Declined("no veil or streaks above the glow at the mask's edge")
        return paste(pixels, mask, window, display, repaired, inside.astype(np.float32))


def _veil(linear: np.ndarray, inside: np.ndarray, scale: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The glow to subtract (linear RGB, window size) and the source's (x, y), from a copy at most 512 px across."""
    factor = min(1.0, _WORK_SIDE / max(inside.shape))
    small = cv2.resize(linear, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else linear
    small_inside = cv2.resize(inside.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    small_scale = max(2, int(round(scale * factor)))
    source = _source(small, small_inside)
    profile = _radial_veil(small, small_inside, source, small_scale)
    excess = np.maximum(profile - _edge_level(profile, small_inside, small_scale), 0.0) * small_inside[..., None]
    veil = cv2.resize(excess, linear.shape[1::-1], interpolation=cv2.INTER_LINEAR) if factor < 1 else excess
    return veil, (source[0] / factor, source[1] / factor)


def _source(linear: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """(x, y) of the brightest smoothed spot in the mask: the origin of the glow and the streaks."""
    luminance = cv2.GaussianBlur(linear.mean(axis=2), (0, 0), 3) * inside
    y, x = np.unravel_index(int(np.argmax(luminance)), luminance.shape)
    return float(x), float(y)


def _radial_veil(linear: np.ndarray, inside: np.ndarray, source: tuple[float, float], scale: int) -> np.ndarray:
    """Radial glow profile: the dark floor of each ring around the source, made non-increasing outwards.

    Glare falls off with the distance to the source, so the veil at radius r is at most the darkest
    level found at any smaller radius; the floor of the ring just outside the mask is the scene's own.
    """
    envelope = cv2.erode(linear, disc(scale))
    height, width = inside.shape
    ys, xs = np.mgrid[0:height, 0:width]
    ring = (np.hypot(xs - source[0], ys - source[1]) / scale).astype(np.int32)
    border = (cv2.dilate(inside.astype(np.uint8), disc(scale)) > 0) & ~inside
    base = np.percentile(envelope[border], _FLOOR, axis=0) if border.any() else np.zeros(3, np.float32)
    profile = np.zeros((ring.max() + 1, 3), np.float32)
    for index in np.unique(ring[inside]):
        profile[index] = np.percentile(envelope[inside & (ring == index)], _FLOOR, axis=0)
    profile = np.maximum(np.minimum.accumulate(np.where(profile > 0, profile, np.inf), axis=0) - base, 0.0)
    profile[~np.isfinite(profile)] = 0.0
    return cv2.GaussianBlur(profile[ring], (0, 0), scale / 2)


def _edge_level(veil: np.ndarray, inside: np.ndarray, scale: int) -> np.ndarray:
    """The veil's values on the mask's edge, interpolated smoothly across the mask (normalised convolution)."""
    edge = (inside & ~(cv2.erode(inside.astype(np.uint8), disc(1)) > 0)).astype(np.float32)
    sigma = max(float(scale), 0.1 * max(inside.shape))
    weight = cv2.GaussianBlur(edge, (0, 0), sigma)[..., None]
    return cv2.GaussianBlur(veil * edge[..., None], (0, 0), sigma) / np.maximum(weight, 1e-6)


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


def create(**options: object) -> Deflare:
    """Entry point of the ``deflare`` hook (``ipad_qc.removal_hooks``)."""
    return Deflare(**options)
