"""How good a repair is against a clean reference: PSNR, SSIM and a seam measure.

PSNR alone rewards any darkening of a bright glow, so repairs are also judged by SSIM (structure,
Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, per channel, averaged)
and by the **seam measure**: the mean gradient energy, in a band of 3 px either side of the mask's
boundary, of the image's difference to the clean picture. A repair that stops abruptly at the
mask's edge (a veil subtracted up to it, a darkened disk, a pasted patch) makes that difference
jump there, so the measure rises above the original's. It is taken on the difference, not on the
image itself, because a good repair restores contrast: on the real flare pairs the clean frame
has up to three times the input's gradient energy along the mask's edge, and even the clean frame
pasted in with a feather raises the image's own band energy by up to 10 %. The image's own band
energy is kept beside it (``edge``) for reference.

All images are float RGB in [0, 1] (display values); regions are bool masks of the same size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5
_C1, _C2 = 0.01**2, 0.03**2
#: Half-width (pixels) of the band along a mask's boundary where seams are measured.
SEAM_BAND = 3


def psnr(result: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR (dB) of ``result`` against ``truth``, over ``region`` when given, else the whole image."""
    difference = result.astype(np.float64) - truth
    error = float(np.mean(difference[region] ** 2 if region is not None else difference**2))
    return 10.0 * np.log10(1.0 / max(error, 1e-12))


def ssim_map(result: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (averaged over the channels) of two images of the same shape."""
    def blur(values: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(values, (_SSIM_WINDOW, _SSIM_WINDOW), _SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    a, b = result.astype(np.float32), truth.astype(np.float32)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    covariance = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + _C1) * (2 * covariance + _C2)) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
    return value.mean(axis=2) if value.ndim == 3 else value


def ssim(result: np.ndarray, truth: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean SSIM over ``region`` when given, else the whole image."""
    values = ssim_map(result, truth)
    return float(values[region].mean() if region is not None else values.mean())


def boundary_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance to the mask's boundary: positive inside, negative outside (image borders are no boundary)."""
    mask8 = mask.astype(np.uint8)
    if not mask8.any() or mask8.all():
        return np.full(mask.shape, np.inf if mask8.any() else -np.inf, np.float32)
    inside = cv2.distanceTransform(mask8, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - mask8, cv2.DIST_L2, 5)
    return np.where(mask, inside - 0.5, 0.5 - outside).astype(np.float32)


def seam_energy(image: np.ndarray, mask: np.ndarray, reference: np.ndarray | None = None,
                half_width: int = SEAM_BAND) -> float:
    """Mean squared luminance gradient within ``half_width`` of the mask's boundary, of ``image - reference``.

    With the clean ``reference`` this is the seam measure: how abruptly the difference to the
    clean picture changes at the mask's edge. Without it, the image's own gradient energy there.
    0.0 when the mask has no boundary (empty, or the whole image).
    """
    band = np.abs(boundary_distance(mask)) <= half_width
    if not band.any():
        return 0.0
    values = image.astype(np.float32) if reference is None else (image - reference).astype(np.float32)
    luma = cv2.cvtColor(values, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return float(np.mean((gx * gx + gy * gy)[band]))


@dataclass(frozen=True)
class RepairScore:
    """One repair judged against the clean image: before (the input) and after (the hook's output)."""

    psnr: tuple[float, float]
    psnr_region: tuple[float, float]
    ssim: tuple[float, float]
    ssim_region: tuple[float, float]
    seam: tuple[float, float]  # gradient energy of the difference to the clean image along the mask's edge
    edge: tuple[float, float]  # the image's own gradient energy along the mask's edge

    @property
    def seam_ratio(self) -> float:
        """Seam measure after / before (1.0 when there is no boundary)."""
        return self.seam[1] / self.seam[0] if self.seam[0] > 0 else 1.0

    @property
    def edge_ratio(self) -> float:
        return self.edge[1] / self.edge[0] if self.edge[0] > 0 else 1.0


def score(before: np.ndarray, after: np.ndarray, truth: np.ndarray, region: np.ndarray,
          mask: np.ndarray) -> RepairScore:
    """Judge ``after`` against ``before``: PSNR/SSIM over the image and the artifact ``region``, seams along ``mask``.

    ``region`` is where the artifact really is (an oracle mask); ``mask`` is what the hook was given.
    """
    def both(measure: Callable[[np.ndarray], float]) -> tuple[float, float]:
        return measure(before), measure(after)

    return RepairScore(
        psnr=both(lambda image: psnr(image, truth)),
        psnr_region=both(lambda image: psnr(image, truth, region)),
        ssim=both(lambda image: ssim(image, truth)),
        ssim_region=both(lambda image: ssim(image, truth, region)),
        seam=both(lambda image: seam_energy(image, mask, truth)),
        edge=both(lambda image: seam_energy(image, mask)),
    )
