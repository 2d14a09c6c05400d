"""The detector protocol: what the scanner needs from any artifact detector.

A detector turns a batch of decoded images into one :class:`Detection` each. The scanner never
knows which model is behind it, so the weight-free ``classic`` detector, IPAD-CLIP and any third
party's detector plug in the same way (see :mod:`ipad_qc.detectors.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.io.types import DecodedImage, DecodeHint


@dataclass
class Detection:
    """The verdict on one image.

    Maps are kept at the detector's analysis resolution, because a batch of 100-megapixel maps
    would not fit in memory; :meth:`probability_map` and :meth:`mask` give them at the original
    image size on demand. ``class_maps`` (optional) holds one probability map per artifact class,
    so later steps can send each class's own region to its removal hook.
    """

    scores: dict[str, float]
    label: str
    probability: np.ndarray
    original_size: tuple[int, int]
    threshold: float = 0.5
    class_maps: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        missing = set(CLASS_NAMES) - set(self.scores)
        if missing:
            raise ValueError(f"detection lacks scores for {sorted(missing)}")
        total = sum(self.scores.values())
        if not np.isclose(total, 1.0, atol=1e-4):
            raise ValueError(f"class scores must sum to 1, got {total:.6f}")
        if self.label not in CLASS_NAMES:
            raise ValueError(f"unknown label {self.label!r}")
        if self.probability.ndim != 2:
            raise ValueError("probability map must be 2-D")

    @property
    def is_clean(self) -> bool:
        return self.label == CLASS_NAMES[0]

    def low_res_mask(self) -> np.ndarray:
        """Binary mask at analysis resolution; all-zero for a clean verdict (the paper's convention)."""
        if self.is_clean:
            return np.zeros(self.probability.shape, dtype=bool)
        return self.probability >= self.threshold

    @property
    def mask_fraction(self) -> float:
        """Fraction of the image covered by the mask."""
        return float(self.low_res_mask().mean())

    def probability_map(self) -> np.ndarray:
        """Artifact probability (float32, [0, 1]) at the original image size."""
        width, height = self.original_size
        return cv2.resize(self.probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)

    def mask_image(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The mask as 8-bit 0/255 at the original size (the form it is written in), or at ``size``
        (width, height), e.g. a report overlay's, which then matches the full-size mask scaled down.

        The map is resized as 8-bit and thresholded in place, which gives smooth mask edges while
        keeping a 100-megapixel mask at 100 MB rather than 400 MB of float32 or two 8-bit copies.
        """
        width, height = size or self.original_size
        if self.is_clean:
            return np.zeros((height, width), dtype=np.uint8)
        quantised = np.clip(self.probability * 255.0 + 0.5, 0, 255).astype(np.uint8)
        upsampled = cv2.resize(quantised, (width, height), interpolation=cv2.INTER_LINEAR)
        level = max(1, int(round(self.threshold * 255.0)))
        return cv2.threshold(upsampled, level - 1, 255, cv2.THRESH_BINARY, dst=upsampled)[1]  # in place: one copy

    def mask(self) -> np.ndarray:
        """Binary artifact mask (bool) at the original image size."""
        return self.mask_image() > 0


def scores_from_evidence(evidence: Mapping[str, float]) -> dict[str, float]:
    """Turn independent per-artifact probabilities into four scores that sum to 1.

    ``clean`` is the probability that no artifact is present (the product of ``1 - p_k``); the
    remaining mass is shared between the artifact classes in proportion to their evidence.
    """
    values = {name: float(np.clip(evidence.get(name, 0.0), 0.0, 1.0)) for name in ARTIFACT_CLASSES}
    clean = float(np.prod([1.0 - p for p in values.values()]))
    total = sum(values.values())
    scores = {CLASS_NAMES[0]: clean}
    for name, p in values.items():
        scores[name] = (1.0 - clean) * (p / total) if total > 0 else 0.0
    if total == 0:
        scores[CLASS_NAMES[0]] = 1.0
    return scores


def argmax_label(scores: Mapping[str, float]) -> str:
    """The class with the highest score (ties go to the earlier class, i.e. to ``clean``)."""
    return max(CLASS_NAMES, key=lambda name: (scores[name], -CLASS_NAMES.index(name)))


def label_with_thresholds(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> str:
    """Label from calibrated per-class thresholds: the highest-scoring artifact class whose score
    reaches its threshold, else ``clean``. Without thresholds this is :func:`argmax_label`."""
    if not thresholds:
        return argmax_label(scores)
    flagged = [name for name in ARTIFACT_CLASSES if name in thresholds and scores[name] >= thresholds[name]]
    return max(flagged, key=lambda name: scores[name]) if flagged else CLASS_NAMES[0]


@runtime_checkable
class Detector(Protocol):
    """What the scanner calls. Implementations are created by a registered factory."""

    #: Registered name, written into every result row.
    name: str
    #: Resolution the detector works at; decoders use it to skip work.
    decode_hint: DecodeHint

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable configuration. A change of settings makes a re-scan redo files."""
        ...

    def detect(self, images: Sequence[DecodedImage]) -> list[Detection]:
        """One :class:`Detection` per image, in order."""
        ...
