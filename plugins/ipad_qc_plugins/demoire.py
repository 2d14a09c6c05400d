"""``demoire``: suppress the spurious periodic and colour-banded components inside the moiré mask.

Moiré is aliasing: a fine periodic structure (a screen's sub-pixel grid, fabric) folded by the
sensor into coarse beat patterns, which show up as

* **isolated peaks in the spectrum** of the luminance, far above the smooth 1/f spectrum of natural
  content. Each peak is brought down to the local spectral level (a median over its frequency
  neighbourhood), keeping the phase, so content at those frequencies survives; and
* **colour bands**: the three colour filters sample the pattern at different places, so the beats
  differ per channel and appear as false chroma. The chroma (YCrCb) inside the mask is smoothed
  with a normalised blur, which does not pull in colours from outside the mask.

Luminance detail is left alone except at the peaks, which is why sharp edges on the screen survive.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.routing.api import RepairRequest, confine_to_mask, to_float
from ipad_qc_plugins._common import bounding_box

VERSION = "1.0"


class Demoire:
    """Spectral notch on luminance plus chroma smoothing inside the mask; see the module docstring."""

    name = "demoire"
    artifact = "moire"
    version = VERSION

    def __init__(self, peak_ratio: float = 6.0, chroma_sigma: float = 8.0) -> None:
        if peak_ratio <= 1.0 or chroma_sigma <= 0:
            raise ValueError("peak_ratio must be > 1 and chroma_sigma > 0")
        self.peak_ratio, self.chroma_sigma = float(peak_ratio), float(chroma_sigma)

    def repair(self, request: RepairRequest) -> np.ndarray | None:
        mask, pixels = request.mask, request.image.pixels
        rows, cols = bounding_box(mask, 8)
        window, inside = to_float(pixels[rows, cols]), mask[rows, cols]
        ycrcb = cv2.cvtColor(window, cv2.COLOR_RGB2YCrCb)
        ycrcb[..., 0] = self._notch(ycrcb[..., 0], inside)
        ycrcb[..., 1:] = _masked_blur(ycrcb[..., 1:], inside, self.chroma_sigma)
        repaired = to_float(pixels)
        repaired[rows, cols] = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
        return confine_to_mask(pixels, repaired, mask)

    def _notch(self, luma: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """Bring spectral peaks of the masked luminance down to their neighbourhood's median magnitude."""
        mean = float(luma[inside].mean())
        taper = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2.0)
        spectrum = np.fft.fft2((luma - mean) * taper)
        magnitude = np.abs(spectrum).astype(np.float32)
        local = _median_filter(magnitude, 7)
        peaks = magnitude > self.peak_ratio * local
        fy, fx = np.meshgrid(np.fft.fftfreq(luma.shape[0]), np.fft.fftfreq(luma.shape[1]), indexing="ij")
        peaks &= np.hypot(fx * luma.shape[1], fy * luma.shape[0]) > 2  # keep the image's coarse layout
        scale = np.where(peaks, local / np.maximum(magnitude, 1e-12), 1.0)
        removed = np.real(np.fft.ifft2(spectrum * (1.0 - scale))).astype(np.float32)
        return luma - removed * inside / np.maximum(taper, 1e-3)


def _median_filter(magnitude: np.ndarray, size: int) -> np.ndarray:
    """Median over a ``size`` window of an fft-ordered magnitude (wrapping, as frequencies do)."""
    pad = size // 2
    shifted = np.fft.fftshift(magnitude)
    padded = cv2.copyMakeBorder(shifted, pad, pad, pad, pad, cv2.BORDER_WRAP)
    compressed = np.log1p(padded * 1e3).astype(np.float32)  # medianBlur needs 8-bit for big windows
    low, high = float(compressed.min()), float(compressed.max())
    quantised = np.round((compressed - low) / max(high - low, 1e-9) * 255).astype(np.uint8)
    median = cv2.medianBlur(quantised, size)[pad:-pad, pad:-pad].astype(np.float32)
    return np.fft.ifftshift(np.expm1(median / 255 * (high - low) + low) / 1e3)


def _masked_blur(values: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``values`` using only pixels inside the mask (normalised convolution)."""
    weight = inside.astype(np.float32)
    blurred = cv2.GaussianBlur(values * weight[..., None], (0, 0), sigma)
    norm = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    return np.where(inside[..., None], blurred / np.maximum(norm, 1e-6), values)


def create(**options: object) -> Demoire:
    """Entry point of the ``demoire`` hook (``ipad_qc.removal_hooks``)."""
    return Demoire(**options)
