"""Ghosting: semi-transparent duplicates of edges, displaced by the motion between fused frames.

Physics: fusing frames in which an object moved leaves every edge of that object present several
times, each copy partly transparent, all displaced by the same vector ``d`` (Section 3.1). In the
autocorrelation of the signed gradient field of a window, such a pair of copies is a secondary
peak at ``d`` with a dip at ``d/2`` between it and the origin. Two look-alikes are ruled out by
the test ``A(d) − |A(d/2)| − |A(2d)|`` (autocorrelation normalised to ``A(0) = 1``):

* a straight edge gives a ridge *through* the origin, so ``A(d/2) ≥ A(d)`` along it: no dip;
* a periodic texture gives a lattice, ``A(2d) ≈ A(d)``, and for a pure tone
  ``|cos(φ/2)| ≥ cos φ``, so the score is never positive;
* a thin bar's two edges have opposite signs, so ``A(d) < 0``;
* a regular texture of several tones (a 2-D lattice, a non-sinusoidal pattern) can pass that test
  at some ``d``, but then also at other, unrelated displacements (its other lattice vectors). A
  ghost is *one* displacement shared by all the duplicated edges of the tile, so its test passes
  only at ``±d`` (and at the lags within ``UNIQUE_RADIUS`` px of it: the peak's own width, or the
  duplicate ridge of a straight edge). The tile's score is therefore the margin of the best
  displacement over the best *unrelated* one; on the synthetic benchmark this uniqueness term is
  what separates ghosts from clean textures (image AUROC vs clean ~0.5 without it).

The signed gradients are kept (not the magnitude) for exactly that last reason. Each 64-px tile
(50 % overlap, Hann window) gets that margin over displacements of 3–16 px; the autocorrelation
of all tiles is one batched ``rfft2``/``irfft2`` (``scipy.fft``: several times faster than NumPy's on
these batches, and single-threaded, so decode workers and the detector never oversubscribe the
cores). A logistic of that margin gives the probability.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import fft

from ipad_qc.detectors.classic._tiles import hann2d, tile_map, tiles

TILE = 64
#: Displacements searched, in pixels (Chebyshev radius). Beyond ``TILE // 4`` the lag ``2d`` would
#: wrap around the circular autocorrelation.
MIN_SHIFT, MAX_SHIFT = 3, TILE // 4
#: Lags within this Chebyshev distance of ``±d`` belong to the same duplicate (peak width, ridge).
UNIQUE_RADIUS = 2
#: Logistic weights for (duplicate margin, log edge energy) and the bias, fitted on synthetic tiles
#: (the ``benchmarks/bench_classic.py`` data, seed 1; seed 2 held out) and frozen. The edge energy
#: gets no weight: the look-alikes that survive the margin (moiré, fine regular textures) are the
#: *most* energetic tiles, so rewarding energy turned moiré into ghosting; flat, noisy tiles need no
#: energy gate either, since noise has no secondary peak and its margin is about zero.
#: (The bias absorbs the dropped energy term at a typical ghost tile's energy, ``e^-5.8``.)
WEIGHTS = np.array([23.9, 0.0], np.float32)
BIAS = -3.2

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _lags() -> tuple[np.ndarray, ...]:
    """Flat indices into a TILE x TILE autocorrelation of the lags d, d/2 and 2d (one half-plane)."""
    oy, ox = np.mgrid[-MAX_SHIFT : MAX_SHIFT + 1, -MAX_SHIFT : MAX_SHIFT + 1]
    keep = (np.maximum(abs(oy), abs(ox)) >= MIN_SHIFT) & ((oy > 0) | ((oy == 0) & (ox > 0)))
    dy, dx = oy[keep], ox[keep]
    half_y, half_x = np.round(dy / 2).astype(int), np.round(dx / 2).astype(int)
    flat = [(y % TILE) * TILE + (x % TILE) for y, x in ((dy, dx), (half_y, half_x), (2 * dy, 2 * dx))]
    return tuple(flat)


def _related() -> np.ndarray:
    """(lags, lags) bool: lag j lies within ``UNIQUE_RADIUS`` of lag i or of its mirror ``-i``."""
    oy, ox = np.mgrid[-MAX_SHIFT : MAX_SHIFT + 1, -MAX_SHIFT : MAX_SHIFT + 1]
    keep = (np.maximum(abs(oy), abs(ox)) >= MIN_SHIFT) & ((oy > 0) | ((oy == 0) & (ox > 0)))
    dy, dx = oy[keep], ox[keep]
    same = np.maximum(abs(dy[:, None] - dy), abs(dx[:, None] - dx)) <= UNIQUE_RADIUS
    mirror = np.maximum(abs(dy[:, None] + dy), abs(dx[:, None] + dx)) <= UNIQUE_RADIUS
    return same | mirror


_RELATED = _related()


def ghosting_features(rgb: np.ndarray) -> np.ndarray:
    """Per-tile (duplicate-edge score, log edge energy), shape (rows, cols, 2)."""
    luma = rgb @ _LUMA
    window = hann2d(TILE)
    gradients = np.stack([tiles(cv2.Sobel(luma, cv2.CV_32F, 1, 0), TILE),
                          tiles(cv2.Sobel(luma, cv2.CV_32F, 0, 1), TILE)]) * window
    spectra = fft.rfft2(gradients)
    power = (spectra.real**2 + spectra.imag**2).sum(axis=0)
    acf = fft.irfft2(power, s=(TILE, TILE))
    energy = acf[..., 0, 0]
    acf = acf.reshape(*acf.shape[:2], -1) / (energy[..., None] + 1e-12)
    at_d, at_half, at_double = (acf[..., index] for index in _lags())
    scores = at_d - np.abs(at_half) - np.abs(at_double)
    best = scores.argmax(axis=-1)
    score = np.take_along_axis(scores, best[..., None], axis=-1)[..., 0]
    unrelated = np.where(_RELATED[best], -np.inf, scores).max(axis=-1)
    score = score - np.maximum(unrelated, 0.0)
    return np.stack([score, np.log(energy / TILE**2 + 1e-8)], axis=-1)


def ghosting_map(rgb: np.ndarray) -> np.ndarray:
    """Ghosting probability map at the size of ``rgb`` (float32 RGB in [0, 1])."""
    logits = ghosting_features(rgb) @ WEIGHTS + BIAS
    probability = 1.0 / (1.0 + np.exp(-logits))
    return tile_map(probability.astype(np.float32), TILE, rgb.shape[:2])
