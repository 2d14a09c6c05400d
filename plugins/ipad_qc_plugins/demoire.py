"""``demoire``: suppress the false colour of a moiré beat pattern inside the moiré mask, without seams.

Moiré is aliasing: a fine periodic structure (a screen's sub-pixel grid, fabric) folded by the
sensor into coarse beats. The three colour filters sample it at different places, so in a camera
photo of a screen the beats are mostly **false colour**: rainbow bands in the chroma (YCrCb)
that have nothing to do with the picture's own edges.

1. **Find the beat**: in the chroma spectrum of the masked region, beats are energy far above
   what the image's own content puts at that spatial frequency. Content is roughly isotropic, so
   its level at each frequency radius is the median over all directions; bins more than
   ``beat_ratio`` times above it, at periods of 3 to 64 px, are the beat. If they hold less than
   ``min_beat`` of the chroma energy in that band, there is no beat to remove and the hook declines.
2. **Remove it, keeping real colour edges**: each chroma channel is replaced by a guided filter of
   itself with the luminance as guide (He et al., 2010), over a window of half the beat's period.
   Inside that window the chroma becomes a linear function of the luminance: colour that follows
   an edge of the picture survives, colour that ripples across flat luminance (the beat) is
   averaged away. Luminance is not touched, so the picture stays as sharp as it was.

The result fades in over the feather band inside the mask's edge.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.routing.api import Declined, RepairRequest, to_float
from ipad_qc_plugins._common import FEATHER, bounding_box, feather, feather_width, paste

VERSION = "2.0"
_PERIODS = (3.0, 64.0)  # beat periods searched for, in pixels
_EPSILON = 1e-3  # guided filter: luminance variance below which a window counts as flat


class Demoire:
    """Beat detection in the chroma spectrum plus luminance-guided chroma filtering; see the module docstring."""

    name = "demoire"
    artifact = "moire"
    version = VERSION
    #: Feather band, as a share of the long side: the correction fades in over it inside the mask's edge.
    feather_share = FEATHER

    def __init__(self, beat_ratio: float = 4.0, min_beat: float = 0.05) -> None:
        if beat_ratio <= 1.0 or not 0.0 <= min_beat < 1.0:
            raise ValueError("beat_ratio must be > 1 and min_beat in [0, 1)")
        self.beat_ratio, self.min_beat = float(beat_ratio), float(min_beat)

    def repair(self, request: RepairRequest) -> np.ndarray | Declined:
        mask, pixels = request.mask, request.image.pixels
        window = bounding_box(mask, 8)
        display, inside = to_float(pixels[window]), mask[window]
        ycrcb = cv2.cvtColor(display, cv2.COLOR_RGB2YCrCb)
        share, period = _beat(ycrcb[..., 1:], inside, self.beat_ratio)
        if share < self.min_beat:
            return Declined(f"no beat pattern in the mask's colour: {share:.1%} of its chroma energy is "
                            f"periodic (needs {self.min_beat:.0%})")
        radius = int(np.clip(round(period / 2), 2, _PERIODS[1] / 2))
        for channel in (1, 2):
            ycrcb[..., channel] = _guided_filter(ycrcb[..., 0], ycrcb[..., channel], radius, _EPSILON)
        repaired = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
        weight = feather(inside, feather_width(mask.shape, self.feather_share))
        return paste(pixels, mask, window, display, repaired, weight)


def _beat(chroma: np.ndarray, inside: np.ndarray, ratio: float) -> tuple[float, float]:
    """(share of the chroma energy at beat periods that lies in beat bins, energy-weighted beat period in px)."""
    height, width = inside.shape
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    frequency = np.hypot(fx, fy)  # cycles per pixel
    band = (frequency >= 1 / _PERIODS[1]) & (frequency <= 1 / _PERIODS[0])
    rings = np.round(frequency * max(height, width)).astype(np.int32)
    taper = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2.0)
    best_share, best_period = 0.0, _PERIODS[1]
    for channel in range(chroma.shape[2]):
        values = chroma[..., channel]
        magnitude = np.abs(np.fft.fft2((values - float(values[inside].mean())) * taper)).astype(np.float32)
        smoothed = np.fft.ifftshift(cv2.GaussianBlur(np.fft.fftshift(magnitude), (3, 3), 0))
        beat = band & (smoothed > ratio * _ring_median(smoothed, rings))
        power = magnitude * magnitude
        share = float(power[beat].sum() / max(float(power[band].sum()), 1e-12))
        if share > best_share and beat.any():
            best_share = share
            best_period = 1.0 / float(np.average(frequency[beat], weights=power[beat] + 1e-12))
    return best_share, best_period


def _ring_median(values: np.ndarray, rings: np.ndarray) -> np.ndarray:
    """Each bin's ring median: the median of ``values`` over all bins at the same frequency radius."""
    order = np.argsort(rings, axis=None, kind="stable")
    sorted_rings, sorted_values = rings.ravel()[order], values.ravel()[order]
    bounds = np.searchsorted(sorted_rings, np.arange(int(rings.max()) + 2))
    medians = np.array([np.median(sorted_values[start:stop]) if stop > start else 0.0
                        for start, stop in zip(bounds[:-1], bounds[1:], strict=True)], np.float32)
    return medians[rings]


def _guided_filter(guide: np.ndarray, values: np.ndarray, radius: int, epsilon: float) -> np.ndarray:
    """He et al.'s guided filter: ``values`` as a local linear function of ``guide`` over (2r+1)^2 windows."""
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(image: np.ndarray) -> np.ndarray:
        return cv2.blur(image, size, borderType=cv2.BORDER_REFLECT)

    guide_mean, values_mean = mean(guide), mean(values)
    gain = (mean(guide * values) - guide_mean * values_mean) / (mean(guide * guide) - guide_mean**2 + epsilon)
    offset = values_mean - gain * guide_mean
    return mean(gain) * guide + mean(offset)


def create(**options: object) -> Demoire:
    """Entry point of the ``demoire`` hook (``ipad_qc.removal_hooks``)."""
    return Demoire(**options)
