"""Moiré: colour beats of a screen's sub-pixel grid against the camera's colour filter array.

Physics: when a camera photographs a display, the screen's R, G and B sub-pixels (a grid finer
than or close to the sensor's Bayer lattice) alias into low-frequency "beat" patterns (Section
3.1). Because the three sub-pixel colours sit at different positions, each colour channel beats
with its own phase, so the fringes are *coloured*: the rainbow bands and the fine colour lattice
of real screen photos, after the phone's demosaicing, denoising and JPEG. Two properties set this
apart from anything a natural scene puts in front of the lens:

* the beat is *narrow-band*: a few isolated peaks in the local spectrum, where natural content
  falls off smoothly as ~1/f² (so an f²-whitened spectrum is flat for natural content and spiky
  for a beat);
* the peaks are in *chroma that luma does not explain*. Colourful textures (brick, fabric, a
  striped shirt) also have periodic chroma, but there the colour follows the pattern: two paints
  mixed in varying proportions give chroma that is a multiple of luma, tile by tile. Each channel
  of a beat has its own phase, so its chroma is not a multiple of luma.

The feature of a tile is therefore the peakiness (``log(max / mean)``) of the f²-whitened power of
Cr and Cb after the best fit ``chroma ≈ k · luma`` is removed from each (Parseval: the fit is an
inner product over the tile's spectrum). It was chosen by measuring on real captures (screen photos
against their own digital sources, night shots, facades, fabrics): luma peakiness and raw chroma
energy, the earlier features, rank real screen photos barely above chance; this one does not.

Beats live at many scales (a fine colour lattice a few pixels across, bands tens of pixels wide),
so tiles of 64 px are examined at the analysis size and at half of it, and a tile's evidence is
the larger of the two. The band stops at 0.3 cycles/px: the finest frequencies are where JPEG
chroma subsampling and demosaicing act.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import fft

from ipad_qc.detectors.classic._tiles import hann2d, tile_map, tiles

TILE = 64
BAND = (0.02, 0.3)
#: Scales at which the tiles are taken, as fractions of the analysis size.
SCALES = (1.0, 0.5)
#: Logistic calibration (slope, peakiness at which a tile is 50 % moiré).
SLOPE, MIDPOINT = 6.0, 4.45


def _band() -> tuple[np.ndarray, np.ndarray]:
    fy = np.fft.fftfreq(TILE)[:, None]
    fx = np.fft.rfftfreq(TILE)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    band = (radius > BAND[0]) & (radius < BAND[1])
    return band, (radius[band] ** 2).astype(np.float32)


_BAND, _WHITENING = _band()
_WINDOW = hann2d(TILE)


def _spectra(planes: np.ndarray) -> np.ndarray:
    """Band-limited complex spectra of all tiles of each plane of (channels, H, W): (channels, rows, cols, bins).

    All tiles of all channels go through one ``scipy.fft.rfft2`` call (single-threaded; several times
    faster than NumPy's FFT on such batches).
    """
    patches = np.stack([tiles(plane, TILE) for plane in planes])
    patches = (patches - patches.mean(axis=(-2, -1), keepdims=True)) * _WINDOW
    return fft.rfft2(patches)[..., _BAND]


def _unexplained(chroma: np.ndarray, luma: np.ndarray, luma_energy: np.ndarray) -> np.ndarray:
    """A chroma tile's spectrum minus its least-squares fit ``k · luma`` (k complex per tile)."""
    k = np.sum(chroma * np.conj(luma), axis=-1) / (luma_energy + 1e-12)
    return chroma - k[..., None] * luma


def moire_peakiness(rgb: np.ndarray) -> np.ndarray:
    """Per-tile log peakiness of the luma-unexplained, f²-whitened chroma power, shape (rows, cols)."""
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2YCrCb)
    luma, red, blue = _spectra(np.moveaxis(ycc, -1, 0))
    luma_energy = np.sum(luma.real**2 + luma.imag**2, axis=-1)
    power = sum(np.abs(_unexplained(chroma, luma, luma_energy)) ** 2 for chroma in (red, blue))
    white = power * _WHITENING
    return np.log(white.max(axis=-1) / (white.mean(axis=-1) + 1e-12) + 1e-12).astype(np.float32)


def _probability(peakiness: np.ndarray) -> np.ndarray:
    logit = np.clip(SLOPE * (peakiness - MIDPOINT), -30.0, 30.0)
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def moire_map(rgb: np.ndarray) -> np.ndarray:
    """Moiré probability map at the size of ``rgb`` (float32 RGB in [0, 1]): the larger of the scales."""
    height, width = rgb.shape[:2]
    result = np.zeros((height, width), np.float32)
    for scale in SCALES:
        plane = rgb
        if scale != 1.0:
            size = (max(TILE, round(width * scale)), max(TILE, round(height * scale)))
            plane = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        probability = tile_map(_probability(moire_peakiness(plane)), TILE, plane.shape[:2])
        if scale != 1.0:
            probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        np.maximum(result, probability, out=result)
    return result
