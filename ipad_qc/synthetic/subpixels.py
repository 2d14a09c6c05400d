"""What a camera records of a display's sub-pixel grid, computed in closed form at the output resolution.

A stripe display's pixel is three vertical R, G, B stripes (each ``duty`` of a third of the pixel
wide, in the display's ``order``) over a black matrix that leaves ``row_fill`` of the pixel's height
lit. Seen by a camera, display coordinates ``(u, v)`` are a smooth function of the sensor position, so
around every pixel the grid is a sum of plane waves: the Fourier series of the stripe and row
profiles, harmonic ``(k, l)`` having the local frequency ``f = k ∇u + l ∇v`` (cycles per sensor
pixel). Each wave is

1. filtered by the lens (Gaussian point spread ``blur``) and the pixel's square ``aperture``;
2. sampled by the Bayer sites of each colour: a site lattice of period 2 turns frequency ``f`` into
   ``f + n`` for the half-integer offsets ``n``, with weights set by where that colour's sites sit;
3. interpolated by bilinear demosaicing (its kernels' transfer at the folded frequency ``ν``);
4. optionally downscaled by an integer ``zoom`` (the photo saved, or looked at, smaller than the
   sensor): a resampling filter that passes only ``|ν| ≲ 1 / (2 zoom)``.

The result is evaluated directly on the output pixels, so a 12-megapixel sensor seen at 512 px costs
no more than a 512 px one, and nothing is supersampled: pitches of 0.4 px and 3 px are equally exact.
What survives is exactly the aliasing a camera shows: slow, coloured, curved beat bands where a
harmonic folds to near zero frequency, and the fine screen-door texture when ``zoom`` is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ipad_qc.synthetic.sensor import BAYER_LAYOUTS

#: Harmonics of the stripe (u) and row (v) profiles; higher ones are negligible after any real lens.
_HARMONICS_U, _HARMONICS_V = 5, 3
_NEGLIGIBLE = 1e-2  # a 1 % modulation of the light is below any visibility threshold
_COARSE = 8  # the gains are computed on a grid this many times coarser than the output
_OFFSETS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5))  # Bayer site lattice folds, (x, y)
_SITES = ((0, 0), (1, 0), (0, 1), (1, 1))  # (x, y) of the 2 x 2 block, in BAYER_LAYOUTS order (row by row)


@dataclass(frozen=True)
class SubpixelGrid:
    """A stripe display's pixel: stripe order, lit fraction of each stripe and of the pixel's height."""

    order: tuple[int, int, int] = (0, 1, 2)  # display colour of the left, middle and right stripe
    duty: float = 0.8
    row_fill: float = 0.85

    def stripe_centres(self) -> np.ndarray:
        """Centre of each colour's stripe (R, G, B) within the pixel, in pixel units."""
        centres = np.empty(3)
        for position, colour in enumerate(self.order):
            centres[colour] = (position + 0.5) / 3
        return centres


def transfer(fx: np.ndarray, fy: np.ndarray, blur: float, aperture: float) -> np.ndarray:
    """Modulation transfer of a Gaussian lens blur times a square pixel aperture at frequency ``(fx, fy)``."""
    return np.sinc(aperture * fx) * np.sinc(aperture * fy) * np.exp(-2 * np.pi**2 * blur**2 * (fx * fx + fy * fy))


def site_weights(layout: str) -> np.ndarray:
    """``(3, 4)`` weights α of each colour's site indicator on the four lattice folds ``_OFFSETS``.

    The indicator of colour ``q``'s sites is ``Σ_n α[q, n] · exp(2πi n·x)``; α is real because the
    folds are half-integer.
    """
    alpha = np.zeros((3, 4))
    for site, colour in zip(_SITES, BAYER_LAYOUTS[layout], strict=True):
        for index, offset in enumerate(_OFFSETS):
            alpha[colour, index] += 0.25 * np.cos(2 * np.pi * (offset[0] * site[0] + offset[1] * site[1]))
    return alpha


def demosaic_transfer(colour: int, nu_x: np.ndarray, nu_y: np.ndarray) -> np.ndarray:
    """Transfer of bilinear demosaicing for one colour: tent kernels for R and B, the cross kernel for G."""
    if colour == 1:
        return 1 + 0.5 * (np.cos(2 * np.pi * nu_x) + np.cos(2 * np.pi * nu_y))
    return (1 + np.cos(2 * np.pi * nu_x)) * (1 + np.cos(2 * np.pi * nu_y))


def _fold(frequency: np.ndarray) -> np.ndarray:
    return frequency - np.round(frequency)


def _shrink(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, width // _COARSE), max(1, height // _COARSE))
    return cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def _assemble(folds: list[tuple[int, np.ndarray]], height: int, width: int, zoom: int) -> tuple[np.ndarray, ...]:
    """Σ_n exp(2πi n·x) · gain_n at every pixel, as (real, imaginary) ``(H, W, 3)`` arrays.

    ``exp(2πi n·x)`` is ±1 and depends only on the parity of the sensor pixel ``x`` (always even when
    ``zoom`` is), so the folds are summed on the coarse grid once per parity class and each class is
    interpolated onto its own quarter of the pixels.
    """
    classes = [(0, 0)] if zoom % 2 == 0 else [(0, 0), (1, 0), (0, 1), (1, 1)]
    real, imag = np.empty((height, width, 3), np.float32), np.empty((height, width, 3), np.float32)
    for px, py in classes:
        total = sum(gain * (-1.0) ** round(2 * (_OFFSETS[index][0] * px + _OFFSETS[index][1] * py))
                    for index, gain in folds)
        step = 1 if len(classes) == 1 else 2
        rows, cols = slice(py, None, step), slice(px, None, step)
        shape = real[rows, cols].shape
        pair = cv2.resize(np.concatenate([total.real, total.imag], axis=-1).astype(np.float32),
                          (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        real[rows, cols], imag[rows, cols] = pair[..., :3], pair[..., 3:]
    return real, imag


def _fold_gains(fx: np.ndarray, fy: np.ndarray, blur: float, aperture: float, zoom: int,
                alpha: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Per lattice fold worth computing, the ``(h, w, 3)`` complex gain of each colour on the coarse grid.

    The gain of fold ``n`` is lens and aperture transfer x site weight x demosaic transfer x the
    resampling filter, all at the folded frequency ``ν``, times the phase that moves the block
    average to the block's centre. Folds whose gain never reaches ``_NEGLIGIBLE`` are dropped.
    """
    lens = transfer(fx, fy, blur, aperture)
    if np.abs(lens).max() < _NEGLIGIBLE:
        return []
    resample = 2 * np.pi**2 * (0.6 * zoom) ** 2 if zoom > 1 else 0.0  # Gaussian of σ = 0.6 zoom sensor px
    folds = []
    for index, offset in enumerate(_OFFSETS):
        nu_x, nu_y = _fold(fx + offset[0]), _fold(fy + offset[1])
        common = lens * np.exp(-resample * (nu_x * nu_x + nu_y * nu_y) + 1j * np.pi * (zoom - 1) * (nu_x + nu_y))
        gain = np.stack([alpha[c, index] * demosaic_transfer(c, nu_x, nu_y) * common for c in range(3)], axis=-1)
        if np.abs(gain).max() >= _NEGLIGIBLE:
            folds.append((index, gain))
    return folds


def grid_residual(light: np.ndarray, u: np.ndarray, v: np.ndarray, grid: SubpixelGrid, *, response: np.ndarray,
                  layout: str, blur: float, aperture: float, zoom: int) -> np.ndarray:
    """The grid's contribution to the demosaiced camera RGB (linear, H x W x 3) at the output pixels.

    ``light`` (H x W x 3) is the displayed image's linear light per display primary, as if the grid
    were its average; ``u, v`` are display coordinates at each output pixel's first sensor pixel
    (the top-left of its ``zoom`` x ``zoom`` block); ``response`` is the sensor's 3 x 3 spectral
    response (rows: filters). Adding the result to ``light @ response.T`` gives the capture.

    Only the carrier ``exp(2πi (k u + l v))`` and the site parities need every pixel; the gains
    depend on the local frequency, which the view changes smoothly, so they are computed on a grid
    ``_COARSE`` times coarser and interpolated.
    """
    height, width = u.shape
    du_y, du_x = (_shrink(g / zoom) for g in np.gradient(u))
    dv_y, dv_x = (_shrink(g / zoom) for g in np.gradient(v))
    alpha = site_weights(layout)
    stripe, centres = grid.duty / 3, grid.stripe_centres()
    phase_u, phase_v = np.exp(2j * np.pi * u).astype(np.complex64), np.exp(2j * np.pi * v).astype(np.complex64)
    rows = {0: np.ones_like(phase_v)}
    for m in range(1, _HARMONICS_V + 1):
        rows[m] = rows[m - 1] * phase_v
        rows[-m] = np.conj(rows[m])
    light = light.astype(np.float32)
    residual = np.zeros((height, width, 3), np.float32)
    columns = np.ones_like(phase_u)
    for k in range(_HARMONICS_U + 1):
        if k:
            columns = columns * phase_u
        for m in range(-_HARMONICS_V, _HARMONICS_V + 1):
            if k == 0 and m <= 0:
                continue  # (0, 0) is the mean light; (-k, -m) is the conjugate of (k, m)
            row = np.sinc(m * grid.row_fill) * (-1.0) ** m  # b_l / b_0 of a lit band centred in the pixel
            amplitude = np.sinc(k * stripe) * np.exp(-2j * np.pi * k * centres) * row  # a_k(c) b_l / (a_0 b_0)
            if np.abs(amplitude).max() < _NEGLIGIBLE:
                continue
            folds = _fold_gains(k * du_x + m * dv_x, k * du_y + m * dv_y, blur, aperture, zoom, alpha)
            if not folds:
                continue
            mixing = response * amplitude[None, :]  # filter x display colour, complex
            light_re = cv2.transform(light, mixing.real.astype(np.float32))
            light_im = cv2.transform(light, mixing.imag.astype(np.float32))
            carrier = columns * rows[m]
            carrier_re, carrier_im = carrier.real[..., None], carrier.imag[..., None]
            wave_re = 2 * (light_re * carrier_re - light_im * carrier_im)
            wave_im = 2 * (light_re * carrier_im + light_im * carrier_re)
            gain_re, gain_im = _assemble(folds, height, width, zoom)
            residual += wave_re * gain_re - wave_im * gain_im
    return residual
