"""``deghost``: suppress the semi-transparent duplicate that multi-frame fusion leaves inside the ghost mask.

With **reference frames** of the burst (``references`` in the routing policy), each is aligned to
the image (ECC, translation, fitted on pixels outside the ghost mask), brought to the image's
exposure (per-channel gain and offset, fitted outside the mask as well) and the best-matching one,
or the median of three or more, replaces the masked pixels: the real scene is in those frames.

**Without references** the ghost is modelled as the image plus a shifted, weaker copy of itself,
``y = (1 - w) x + w x(p - d)`` (the "ghosting cue" of double-image reflection removal). The offset
``d`` is the strongest off-centre peak of the autocorrelation of the masked Laplacian, and the weight
``w`` is the ``weight`` option (a conservative 0.2: under-correcting leaves a fainter ghost, over-
correcting adds a negative one). The inverse is the convergent series ``x = (y - w x(p - d)) / (1 - w)``,
iterated inside the mask only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ipad_qc.io.types import DecodedImage
from ipad_qc.routing.api import RepairRequest, confine_to_mask, to_float
from ipad_qc_plugins._common import bounding_box

VERSION = "1.0"
_ITERATIONS = 12


class Deghost:
    """Reference-based replacement, or single-image ghost-cue inversion; see the module docstring."""

    name = "deghost"
    artifact = "ghosting"
    version = VERSION

    def __init__(self, max_shift: float = 0.04, weight: float = 0.2) -> None:
        if not 0 < max_shift < 0.5:
            raise ValueError(f"max_shift must be a fraction of the long side in (0, 0.5), got {max_shift}")
        if not 0 < weight < 0.5:
            raise ValueError(f"weight (share of the ghost copy) must be in (0, 0.5), got {weight}")
        self.max_shift, self.weight = float(max_shift), float(weight)

    def repair(self, request: RepairRequest) -> np.ndarray | None:
        mask, pixels = request.mask, request.image.pixels
        reach = max(4, int(self.max_shift * max(mask.shape)))
        rows, cols = bounding_box(mask, reach)
        window, inside = to_float(pixels[rows, cols]), mask[rows, cols]
        if request.references:
            fixed = _from_references(window, inside, [to_float(r.pixels)[rows, cols] for r in _same_size(
                request.references, pixels.shape)])
        else:
            fixed = _invert_ghost_cue(window, inside, reach, self.weight)
        if fixed is None:
            return None
        repaired = to_float(pixels)
        repaired[rows, cols] = fixed
        return confine_to_mask(pixels, repaired, mask)


def _same_size(references: Sequence[DecodedImage], shape: tuple[int, ...]) -> list[DecodedImage]:
    return [reference for reference in references if reference.pixels.shape == shape]


# --- with reference frames --------------------------------------------------------------------


def _from_references(window: np.ndarray, inside: np.ndarray, references: list[np.ndarray]) -> np.ndarray | None:
    """Masked pixels from aligned, exposure-matched reference frames."""
    outside = ~inside
    if not references or outside.sum() < 64:
        return None
    matched = [_match(window, _align(window, reference, outside), outside) for reference in references]
    errors = [float(np.mean((m[outside] - window[outside]) ** 2)) for m in matched]
    chosen = np.median(np.stack(matched), axis=0) if len(matched) >= 3 else matched[int(np.argmin(errors))]
    return np.where(inside[..., None], chosen, window)


def _align(window: np.ndarray, reference: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """``reference`` translated onto ``window`` (ECC on grey, fitted outside the mask); unmoved if ECC fails."""
    warp = np.eye(2, 3, dtype=np.float32)
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (window, reference)]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
    try:
        _, warp = cv2.findTransformECC(grey[0], grey[1], warp, cv2.MOTION_TRANSLATION, criteria,
                                       outside.astype(np.uint8), 5)
    except cv2.error:
        return reference
    size = window.shape[1::-1]
    return cv2.warpAffine(reference, warp, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _match(window: np.ndarray, reference: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Per-channel least-squares gain and offset that bring ``reference`` to ``window``'s exposure."""
    matched = np.empty_like(reference)
    for channel in range(3):
        ref, target = reference[..., channel][outside], window[..., channel][outside]
        gain, offset = np.polyfit(ref, target, 1) if ref.std() > 1e-4 else (1.0, float(target.mean() - ref.mean()))
        matched[..., channel] = gain * reference[..., channel] + offset
    return np.clip(matched, 0.0, 1.0)


# --- single image -----------------------------------------------------------------------------


def _invert_ghost_cue(window: np.ndarray, inside: np.ndarray, reach: int, weight: float) -> np.ndarray | None:
    """Estimate the duplicate's offset and invert ``y = (1 - w) x + w x(p - d)`` in the mask.

    Which of the two copies is the ghost is decided by the echo left at the offset: inverting the
    right one cancels it, the wrong one only moves it. ``None`` when neither reduces the echo.
    """
    offset = _ghost_offset(window, inside, reach)
    if offset is None:
        return None
    candidates = [_invert(window, inside, (sign * offset[0], sign * offset[1]), weight) for sign in (1, -1)]
    echoes = [_echo(candidate, inside, offset) for candidate in candidates]
    best = int(np.argmin(echoes))
    return candidates[best] if echoes[best] < _echo(window, inside, offset) else None


def _echo(image: np.ndarray, inside: np.ndarray, offset: tuple[int, int]) -> float:
    """Normalised correlation of the masked Laplacian with itself shifted by ``offset``: the duplicate's trace."""
    edges = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F) * inside
    shifted = np.roll(edges, (offset[1], offset[0]), axis=(0, 1))
    return abs(float((edges * shifted).sum())) / (float((edges * edges).sum()) + 1e-12)


def _ghost_offset(window: np.ndarray, inside: np.ndarray, reach: int) -> tuple[int, int] | None:
    """(dx, dy) of the strongest off-centre autocorrelation peak of the masked Laplacian."""
    grey = cv2.cvtColor(window, cv2.COLOR_RGB2GRAY)
    edges = cv2.Laplacian(grey, cv2.CV_32F) * cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2)
    spectrum = np.fft.rfft2(edges)
    correlation = np.fft.fftshift(np.fft.irfft2(spectrum * np.conj(spectrum), s=edges.shape))
    cy, cx = correlation.shape[0] // 2, correlation.shape[1] // 2
    ys, xs = np.mgrid[-cy:correlation.shape[0] - cy, -cx:correlation.shape[1] - cx]
    radius = np.hypot(xs, ys)
    candidates = np.where((radius >= 3) & (radius <= reach), correlation, -np.inf)
    index = np.unravel_index(int(np.argmax(candidates)), candidates.shape)
    if not np.isfinite(candidates[index]) or candidates[index] <= 0:
        return None
    return int(xs[index]), int(ys[index])


def _invert(window: np.ndarray, inside: np.ndarray, offset: tuple[int, int], weight: float) -> np.ndarray:
    matrix = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    size = window.shape[1::-1]
    estimate = window.copy()
    for _ in range(_ITERATIONS):
        shifted = cv2.warpAffine(estimate, matrix, size, borderMode=cv2.BORDER_REFLECT)
        estimate = np.where(inside[..., None], (window - weight * shifted) / (1.0 - weight), window)
    return np.clip(estimate, 0.0, 1.0)


def create(**options: object) -> Deghost:
    """Entry point of the ``deghost`` hook (``ipad_qc.removal_hooks``)."""
    return Deghost(**options)
