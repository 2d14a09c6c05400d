"""``deghost``: replace the semi-transparent duplicates that multi-frame fusion leaves inside the ghost mask.

With **reference frames** of the burst (``references`` in the routing policy), each is aligned to
the image (ECC, translation, fitted outside the ghost mask) and brought to the image's tones by a
per-channel quantile mapping fitted on the same pixels (brackets at other exposures included).
When the mask leaves too little outside it (a shaken camera ghosts everything), the fit uses the
whole window and each frame is judged on the half of it that it matches best. The frame that then
matches the image best is the anchor: the ghost-free picture shows the moving subject where that
frame has it. Its pixels replace the image's where the two differ by more than alignment error
explains (a duplicate, a half-transparent subject), so what the fusion got right elsewhere in the
mask is kept. The hook declines when no frame matches the image, e.g. frames of another scene.

**Without references** the ghost is modelled as the image plus a shifted, weaker copy of itself,
``y = (1 - w) x + w x(p - d)`` (the "ghosting cue" of double-image reflection removal). The
duplicate's displacement ``d`` is the strongest off-centre peak of the autocorrelation of the
masked Laplacian, beyond its central lobe; its sign and weight ``w`` are those that best cancel
the echo at ``d`` and ``2d``, and three quarters of that weight is used (under-correcting leaves a
fainter ghost, over-correcting adds a negative one). The inverse is the convergent series
``x = (y - w x(p - d)) / (1 - w)``, iterated inside the mask only. The model only fits a whole
region that moved as one, so the hook declines unless the echo is strong (``min_echo``) and the
inversion at least halves it without raising the echo at ``2d``; a fused burst of independently
moving people fails that check and is left alone rather than made worse.

Either way the result fades in over the feather band inside the mask's edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ipad_qc.io.types import DecodedImage
from ipad_qc.routing.api import Declined, RepairRequest, to_float
from ipad_qc_plugins._common import bounding_box, disc, feather, feather_width, paste, smoothstep

VERSION = "2.0"
_ITERATIONS = 12
_WEIGHTS = np.linspace(0.05, 0.45, 9)  # ghost weights tried by the single-image path
_SAFETY = 0.75  # share of the best-cancelling weight that is applied
_MISMATCH = 0.08  # mean absolute difference (display) above which no reference matches the image
_EXPLAINED = (1.5, 3.0)  # difference / expected alignment error at which replacement starts / is complete
_SEARCH_SIDE = 1024  # long side of the copy the single-image search runs on
_FEATHER = 0.02  # a duplicate has sharp edges: a wide fade would leave half of it at the mask's edge


class Deghost:
    """Reference-based replacement, or single-image ghost-cue inversion; see the module docstring."""

    name = "deghost"
    artifact = "ghosting"
    version = VERSION
    #: Feather band, as a share of the long side: the correction fades in over it inside the mask's edge.
    feather_share = _FEATHER

    def __init__(self, max_shift: float = 0.04, min_echo: float = 0.3) -> None:
        if not 0 < max_shift < 0.5:
            raise ValueError(f"max_shift must be a fraction of the long side in (0, 0.5), got {max_shift}")
        if not 0 < min_echo < 1:
            raise ValueError(f"min_echo (duplicate's share of the edge energy) must be in (0, 1), got {min_echo}")
        self.max_shift, self.min_echo = float(max_shift), float(min_echo)

    def repair(self, request: RepairRequest) -> np.ndarray | Declined:
        mask, pixels = request.mask, request.image.pixels
        reach = max(4, int(self.max_shift * max(mask.shape)))
        window = bounding_box(mask, reach)
        display, inside = to_float(pixels[window]), mask[window]
        references = [to_float(r.pixels)[window] for r in _same_size(request.references, pixels.shape)]
        if references:
            outcome = _from_references(display, inside, references)
        else:
            outcome = _invert_ghost_cue(display, inside, reach, self.min_echo)
        if isinstance(outcome, Declined):
            return outcome
        fixed, weight = outcome
        weight *= feather(inside, feather_width(mask.shape, self.feather_share))
        return paste(pixels, mask, window, display, fixed, weight)


def _same_size(references: Sequence[DecodedImage], shape: tuple[int, ...]) -> list[DecodedImage]:
    return [reference for reference in references if reference.pixels.shape == shape]


# --- with reference frames --------------------------------------------------------------------


def _from_references(window: np.ndarray, inside: np.ndarray,
                     references: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | Declined:
    """The anchor frame, aligned and tone-matched, and where it should replace the image (weight 0..1)."""
    whole = (~inside).mean() < 0.05
    fit = np.ones(inside.shape, bool) if whole else ~inside
    matched = [_match_tones(_align(window, reference, fit), window, fit) for reference in references]
    agree = [fit] * len(matched)
    if whole:  # nothing outside the mask is ghost-free: judge each frame on the half of the window it matches best
        differences = [np.abs(frame - window).max(axis=2) for frame in matched]
        agree = [difference <= np.median(difference) for difference in differences]
    errors = [float(np.abs(frame - window)[where].mean()) for frame, where in zip(matched, agree, strict=True)]
    best = int(np.argmin(errors))
    if errors[best] > _MISMATCH:
        return Declined(f"no reference frame matches the image outside the ghost mask "
                        f"(best mean difference {errors[best]:.3f}, limit {_MISMATCH})")
    return matched[best], _replacement(matched[best], window, agree[best]) * inside


def _replacement(anchor: np.ndarray, window: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Where the anchor should replace the image (0..1): where they differ more than alignment error explains.

    Even a well-aligned frame differs from the image a little, most at edges (sub-pixel shifts,
    resampling). That error is modelled on the ``fit`` pixels, which hold no ghost (when the mask
    leaves too little outside it, the half of the window that agrees best), as a constant plus a
    multiple of the local gradient; inside the mask a pixel is replaced where the difference
    is 1.5 to 3 times what the model expects, and the region is grown a little, because a
    half-transparent duplicate fades out at its rim.
    """
    difference = cv2.GaussianBlur(np.abs(anchor - window).max(axis=2), (0, 0), 1.5)
    grey = cv2.cvtColor(window, cv2.COLOR_RGB2GRAY)
    gradient = cv2.GaussianBlur(np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, scale=0.125),
                                         cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)), (0, 0), 1.5)
    design = np.stack([np.ones(int(fit.sum()), np.float32), gradient[fit]], axis=1)
    (floor, slope), *_ = np.linalg.lstsq(design, difference[fit], rcond=None)
    expected = max(float(floor), 1e-3) + max(float(slope), 0.0) * gradient
    grow = max(1, int(0.01 * max(window.shape[:2])))
    replace = cv2.GaussianBlur(cv2.dilate(smoothstep(difference / expected, *_EXPLAINED), disc(grow)), (0, 0), grow)
    return np.clip(replace, 0.0, 1.0)


def _align(window: np.ndarray, reference: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """``reference`` translated onto ``window`` (ECC on grey, fitted on ``fit``); unmoved if ECC fails."""
    warp = np.eye(2, 3, dtype=np.float32)
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (window, reference)]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
    try:
        _, warp = cv2.findTransformECC(grey[0], grey[1], warp, cv2.MOTION_TRANSLATION, criteria,
                                       fit.astype(np.uint8), 5)
    except cv2.error:
        return reference
    size = window.shape[1::-1]
    return cv2.warpAffine(reference, warp, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def _match_tones(reference: np.ndarray, window: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """``reference`` brought to ``window``'s exposure and tone curve, per channel, from the pixels in ``fit``.

    Within the range those pixels cover, quantiles are mapped onto quantiles (a bracket's tone
    curve is not linear); beyond it, e.g. a subject brighter than anything in the background, the
    curve goes on with the slope of the least-squares line, instead of clipping to the last level.
    """
    levels = np.linspace(0.0, 1.0, 257)
    matched = np.empty_like(reference)
    for channel in range(3):
        have, want = reference[..., channel][fit], window[..., channel][fit]
        source = np.maximum.accumulate(np.quantile(have, levels) + levels * 1e-6)  # strictly increasing
        target = np.quantile(want, levels)
        spread = float(have.var())
        slope = max(float(np.mean((have - have.mean()) * (want - want.mean()))) / spread, 0.0) if spread > 1e-8 else 1.0
        values = reference[..., channel]
        mapped = np.interp(values, source, target)
        mapped = np.where(values < source[0], target[0] + slope * (values - source[0]), mapped)
        matched[..., channel] = np.where(values > source[-1], target[-1] + slope * (values - source[-1]), mapped)
    return np.clip(matched, 0.0, 1.0)


# --- single image -----------------------------------------------------------------------------


def _invert_ghost_cue(window: np.ndarray, inside: np.ndarray, reach: int,
                      min_echo: float) -> tuple[np.ndarray, np.ndarray] | Declined:
    """Estimate the duplicate on a copy at most 1024 px across, then invert ``y = (1 - w) x + w x(p - d)``."""
    factor = min(1.0, _SEARCH_SIDE / max(inside.shape))
    small = cv2.resize(window, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else window
    small_inside = cv2.resize(inside.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    offset = _ghost_offset(small, small_inside, max(4, int(reach * factor)))
    strength = 0.0 if offset is None else _echo(small, small_inside, offset)
    if offset is None or strength < min_echo:
        return Declined(f"no clear duplicate in the mask (echo {strength:.2f}, needs {min_echo:.2f})")
    double = (2 * offset[0], 2 * offset[1])
    trials = [(sign, weight) for sign in (1, -1) for weight in _WEIGHTS]
    scores = [_echo(candidate, small_inside, offset) + _echo(candidate, small_inside, double)
              for candidate in (_invert(small, small_inside, (s * offset[0], s * offset[1]), w) for s, w in trials)]
    sign, weight = trials[int(np.argmin(scores))]
    weight *= _SAFETY
    check = _invert(small, small_inside, (sign * offset[0], sign * offset[1]), weight)
    before, after = _echo(small, small_inside, offset), _echo(check, small_inside, offset)
    double_before, double_after = _echo(small, small_inside, double), _echo(check, small_inside, double)
    if after > 0.5 * before or double_after > double_before:
        return Declined(f"inverting a duplicate at {offset} px does not remove it (echo at d {before:.2f} -> "
                        f"{after:.2f}, at 2d {double_before:.2f} -> {double_after:.2f}): not one shifted copy")
    full = (sign * offset[0] / factor, sign * offset[1] / factor)
    return _invert(window, inside, full, weight), inside.astype(np.float32)


def _echo(image: np.ndarray, inside: np.ndarray, offset: tuple[int, int]) -> float:
    """Normalised correlation of the masked Laplacian with itself shifted by ``offset``: the duplicate's trace."""
    edges = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F) * inside
    shifted = np.roll(edges, (offset[1], offset[0]), axis=(0, 1))
    return abs(float((edges * shifted).sum())) / (float((edges * edges).sum()) + 1e-12)


def _ghost_offset(window: np.ndarray, inside: np.ndarray, reach: int) -> tuple[int, int] | None:
    """(dx, dy) of the strongest autocorrelation peak of the smoothed, masked Laplacian beyond its central lobe.

    Smoothing makes the peak easy to find; whether it is a duplicate is judged afterwards with the
    sharp :func:`_echo`, which fine periodic texture (blinds, brick) does not fool as easily.
    """
    grey = cv2.GaussianBlur(cv2.cvtColor(window, cv2.COLOR_RGB2GRAY), (0, 0), 1.0)
    edges = cv2.Laplacian(grey, cv2.CV_32F) * cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 2)
    spectrum = np.fft.rfft2(edges)
    correlation = np.fft.fftshift(np.fft.irfft2(spectrum * np.conj(spectrum), s=edges.shape)).astype(np.float32)
    correlation /= max(float(correlation.max()), 1e-12)
    cy, cx = correlation.shape[0] // 2, correlation.shape[1] // 2
    ys, xs = np.mgrid[-cy:correlation.shape[0] - cy, -cx:correlation.shape[1] - cx]
    _, lobes = cv2.connectedComponents((correlation > 0.25).astype(np.uint8))
    peaks = (correlation >= cv2.dilate(correlation, np.ones((5, 5), np.uint8))) & (lobes != lobes[cy, cx])
    peaks &= np.hypot(xs, ys) <= reach
    if not peaks.any():
        return None
    index = np.unravel_index(int(np.argmax(np.where(peaks, correlation, -np.inf))), correlation.shape)
    return int(xs[index]), int(ys[index])


def _invert(window: np.ndarray, inside: np.ndarray, offset: tuple[float, float], weight: float) -> np.ndarray:
    matrix = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    size = window.shape[1::-1]
    estimate = window.copy()
    for _ in range(_ITERATIONS):
        shifted = cv2.warpAffine(estimate, matrix, size, borderMode=cv2.BORDER_REFLECT)
        estimate = np.where(inside[..., None], (window - np.float32(weight) * shifted) / np.float32(1.0 - weight),
                            window)
    return np.clip(estimate, 0.0, 1.0)


def create(**options: object) -> Deghost:
    """Entry point of the ``deghost`` hook (``ipad_qc.removal_hooks``)."""
    return Deghost(**options)
