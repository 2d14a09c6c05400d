"""Moiré: aliasing beats of a periodic screen pattern against the sensor lattice.

Physics: a screen's sub-pixel grid is finer than the sensor's (colour) sampling lattice, so its
energy folds back to a low "beat" frequency (Section 3.1). Two things set the result apart from a
natural image, whose local power spectrum falls off smoothly as ~1/f²:

* *isolated peaks* at mid frequencies — whitening the spectrum by f² makes a natural tile roughly
  flat and a beat tile spiky;
* *chroma energy*: the R, G and B sub-pixels are offset, so each channel beats with a different
  phase and the bands are coloured (rainbow moiré), while natural textures are mostly luminance.

A regular but properly sampled texture (brick, stripes) has peaks, and when it is colourful it
has chroma energy too — but there the colour follows the pattern: a mix of two paints gives
chroma that is a multiple of luma. Beats are different, because each channel beats with its own
phase, so the chroma they carry is *not* a multiple of luma. The chroma feature is therefore the
band energy of Cb and Cr left after the best fit ``chroma ≈ k · luma`` in each tile. A colourful
object edge has such energy but no peaks, so it takes both. Each 64-px tile (50 % overlap,
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
#: Logistic weights for (luma peakiness, log unexplained chroma energy) and the bias, fitted once on synthetic
#: tiles (the ``benchmarks/bench_classic.py`` data, seed 1; seed 2 held out) and frozen.
WEIGHTS = np.array([0.81, 0.45], np.float32)
BIAS = -7.46

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _band_radius() -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(TILE)[:, None]
    fx = np.fft.rfftfreq(TILE)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    band = (radius > BAND[0]) & (radius < BAND[1])
    return band, radius[band].astype(np.float32)


def _spectra(plane: np.ndarray, window: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Band-limited complex spectra of all tiles of ``plane``: shape (rows, cols, bins)."""
    patches = tiles(plane, TILE)
    patches = (patches - patches.mean(axis=(2, 3), keepdims=True)) * window
    return np.fft.rfft2(patches)[..., band]


def _peakiness(power: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    """log(max / mean) of the f²-whitened spectrum: ~1 for 1/f content, large for isolated peaks."""
    white = power * whitening
    return np.log(white.max(axis=-1) / (white.mean(axis=-1) + 1e-12) + 1e-12)


def _unexplained_energy(chroma: np.ndarray, luma: np.ndarray, luma_energy: np.ndarray) -> np.ndarray:
    """Band energy of a chroma plane left after the best fit ``chroma ≈ k · luma`` (Parseval: the
    inner product of two tiles is the real part of the sum of ``C · conj(Y)`` over the bins)."""
    cross = np.real(np.sum(chroma * np.conj(luma), axis=-1))
    return np.sum(np.abs(chroma) ** 2, axis=-1) - cross**2 / (luma_energy + 1e-12)


def moire_features(rgb: np.ndarray) -> np.ndarray:
    """Per-tile (luma peakiness, log chroma energy not explained by luma), shape (rows, cols, 2)."""
    band, radius = _band_radius()
    window = hann2d(TILE)
    luma = rgb @ _LUMA
    luma_spectra = _spectra(luma, window, band)
    luma_power = np.abs(luma_spectra) ** 2
    luma_energy = luma_power.sum(axis=-1)
    chroma = sum(
        _unexplained_energy(_spectra(rgb[..., channel] - luma, window, band), luma_spectra, luma_energy)
        for channel in (0, 2)
    )
    peaks = _peakiness(luma_power, radius**2)
    return np.stack([peaks, np.log(np.maximum(chroma, 0) + 1e-6)], axis=-1)


def moire_map(rgb: np.ndarray) -> np.ndarray:
    """Moiré probability map at the size of ``rgb`` (float32 RGB in [0, 1])."""
    logits = moire_features(rgb) @ WEIGHTS + BIAS
    probability = 1.0 / (1.0 + np.exp(-logits))
    return tile_map(probability.astype(np.float32), TILE, rgb.shape[:2])
