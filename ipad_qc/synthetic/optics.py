"""Shared physics of the synthesisers: light, blur and the rule that decides an artifact's mask.

Every synthesiser returns a :class:`Synthesis`: the image with the artifact, its *reference* (the
same capture without the artifact: the alias-free screen, the scene without flare, the burst fused
with nothing moving) and the mask of where the two differ *visibly*. Pixels outside the mask differ
from the reference by at most the synthesiser's visibility threshold; nothing is cut at the mask's
edge (a hard cut would draw a seam that no real photo has).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class Synthesis:
    """``image`` with one artifact, the artifact-free ``reference``, the bool ``mask`` and the drawn ``params``."""

    image: np.ndarray
    reference: np.ndarray
    mask: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (the IEC 61966-2-1 curve)."""
    image = np.clip(image, 0, 1).astype(np.float32)
    return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)


def to_display(linear: np.ndarray) -> np.ndarray:
    """Linear light to sRGB-encoded values, clipped like a sensor at full well."""
    linear = np.clip(linear, 0, 1).astype(np.float32)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055).astype(np.float32)


def luma(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of a float RGB image: what "bright" means for sources, skies and screens."""
    return (image @ _LUMA).astype(np.float32)


def pick(rng: np.random.Generator, value: float | None, low: float, high: float) -> float:
    """``value``, or a uniform draw from ``[low, high]`` when it is ``None``."""
    return float(rng.uniform(low, high)) if value is None else float(value)


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that leaves the image alone for a negligible ``sigma``; borders are reflected."""
    if sigma < 0.05:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def disc_kernel(radius: float) -> np.ndarray:
    """Normalised, anti-aliased disc: the defocus blur of a circular aperture."""
    size = int(np.ceil(radius)) * 2 + 3
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) - size // 2
    kernel = np.clip(radius + 0.5 - np.hypot(xs, ys), 0, 1)
    return (kernel / kernel.sum()).astype(np.float32)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus every region it encloses (a clipped lamp inside its glare, a dark fringe inside moiré)."""
    count, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | (~np.isin(labels, border) & (labels > 0))


def visible_mask(image: np.ndarray, reference: np.ndarray, visibility: float, close: int = 0,
                 within: np.ndarray | None = None) -> np.ndarray:
    """Where ``image`` departs from ``reference`` by more than ``visibility`` in any channel.

    The set is closed with a ``close``-pixel disc (so the bands of one fringe pattern or the two
    edges of one ghost make one region) and its holes are filled; ``within`` bounds the closing
    (a screen's fringes never spill onto its bezel). The result always contains every pixel that
    changed by more than ``visibility``: outside it, image and reference agree to that tolerance.
    """
    changed = np.abs(image.astype(np.float32) - reference).max(axis=2) > visibility
    mask = changed
    if close > 1 and changed.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close, close))
        mask = cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
        if within is not None:
            mask &= within
        mask = fill_holes(mask) | changed
    return mask
