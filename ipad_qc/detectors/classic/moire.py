"""Moiré: aliasing beats of a periodic screen pattern against the sensor lattice.

Physics: a screen's sub-pixel grid is finer than the sensor's (colour) sampling lattice, so its
energy folds back to a low "beat" frequency (Section 3.1). Two things set the result apart from a
natural image, whose local power spectrum falls off smoothly as ~1/f²:

* *isolated peaks* at mid frequencies — whitening the spectrum by f² makes a natural tile roughly
  flat and a beat tile spiky;
* *chroma energy*: the R, G and B sub-pixels are offset, so each channel beats with a different
  phase and the bands are coloured (rainbow moiré), while natural textures are mostly luminance.

A regular but properly sampled texture (brick, stripes) has peaks but little chroma energy, a
colourful object has chroma energy but no peaks, so it takes both. Each 64-px tile (50 % overlap,
Hann window) gets a logistic score of the two log-features; all tiles go through one batched
``rfft2``. The band stops at 0.3 cycles/px: the finest frequencies are where JPEG chroma
subsampling and demosaicing act, and where a downscaled photo keeps nothing, so evidence there
would not transfer to real files.
"""

from __future__ import annotations

import numpy as np

from ipad_qc.detectors.classic._tiles import hann2d, tile_map, tiles

TILE = 64
BAND = (0.02, 0.3)
#: Logistic weights for (luma peakiness, log chroma energy) and the bias, fitted once on synthetic
#: tiles (the ``benchmarks/bench_classic.py`` data, seed 1; seed 2 held out) and frozen.
WEIGHTS = np.array([0.9, 1.5], np.float32)
BIAS = -17.2

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _band_radius() -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(TILE)[:, None]
    fx = np.fft.rfftfreq(TILE)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    band = (radius > BAND[0]) & (radius < BAND[1])
    return band, radius[band].astype(np.float32)


def _power(plane: np.ndarray, window: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Band-limited power spectra of all tiles of ``plane``: shape (rows, cols, bins)."""
    patches = tiles(plane, TILE)
    patches = (patches - patches.mean(axis=(2, 3), keepdims=True)) * window
    return np.abs(np.fft.rfft2(patches)[..., band]) ** 2


def _peakiness(power: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    """log(max / mean) of the f²-whitened spectrum: ~1 for 1/f content, large for isolated peaks."""
    white = power * whitening
    return np.log(white.max(axis=-1) / (white.mean(axis=-1) + 1e-12) + 1e-12)


def moire_features(rgb: np.ndarray) -> np.ndarray:
    """Per-tile (luma peakiness, log chroma energy), shape (rows, cols, 2)."""
    band, radius = _band_radius()
    window = hann2d(TILE)
    luma = rgb @ _LUMA
    luma_power = _power(luma, window, band)
    chroma_power = _power(rgb[..., 2] - luma, window, band) + _power(rgb[..., 0] - luma, window, band)
    peaks = _peakiness(luma_power, radius**2)
    return np.stack([peaks, np.log(chroma_power.sum(axis=-1) + 1e-6)], axis=-1)


def moire_map(rgb: np.ndarray) -> np.ndarray:
    """Moiré probability map at the size of ``rgb`` (float32 RGB in [0, 1])."""
    logits = moire_features(rgb) @ WEIGHTS + BIAS
    probability = 1.0 / (1.0 + np.exp(-logits))
    return tile_map(probability.astype(np.float32), TILE, rgb.shape[:2])
