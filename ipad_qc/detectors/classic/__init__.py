"""The weight-free ``classic`` detector: one physical test per artifact, real masks, no training.

It works on a fresh machine with no model weights and serves as the default detector and as a
baseline for IPAD-CLIP. Each artifact has its own module with the physics in its docstring:
:mod:`.moire` (coloured beats in local chroma spectra), :mod:`.flare` (radial veiling glare around a
compact source) and :mod:`.ghosting` (displaced semi-transparent duplicate edges). Each yields a
probability map; the image-level evidence of a class is the mean of its map over the most
suspicious ``TOP_AREA`` of the image, passed through a per-class logistic calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.detectors.base import Detection, argmax_label, scores_from_evidence
from ipad_qc.detectors.classic.flare import flare_map
from ipad_qc.detectors.classic.ghosting import ghosting_map
from ipad_qc.detectors.classic.moire import moire_map
from ipad_qc.io.types import DecodedImage, DecodeHint

__all__ = ["ClassicDetector", "create"]

#: Bumped whenever the algorithm or a constant changes, so stored results are recomputed.
VERSION = "1.3.1"
#: Analysis long side. Moiré beats and ghost offsets must survive the downscale (a 12-MP frame
#: shrinks 4x, keeping beats of >= ~8 px and ghosts of >= ~12 px at full size) while the two
#: tile-FFT tests stay within ~0.2 s on one core.
ANALYSIS_SIDE = 1024
#: The tests analyse whatever size they get, so a JPEG's 1/4 DCT decode of a 12 MP frame (1000 px)
#: stands instead of a 1/2 decode and a resize: a third less decode time (1.3.1).
DECODE_SLACK = 0.05
#: Share of the image whose mean map value is the image-level evidence: small enough that a small
#: artifact counts fully, large enough that one noisy tile does not.
TOP_AREA = 0.02
#: Per-class logistic calibration (slope, offset) of the top-area mean into a probability. Set from real
#: captures, where the labels are: the offsets put the 50 % point above what the clean photos of
#: ``../shared/realdev`` and ``../shared/clean-corpus`` reach (their 90th percentile) and below the
#: median of the real artifact photos; ghosting is deliberately conservative (its evidence is weak on
#: real fusions, see :mod:`.ghosting`), so that clean photos are not sent to deghosting.
CALIBRATION: dict[str, tuple[float, float]] = {
    "ghosting": (10.0, -6.0),
    "flare": (8.0, -6.0),
    "moire": (12.0, -6.0),
}


def _top_area_mean(values: np.ndarray, share: float = TOP_AREA) -> float:
    flat = values.ravel()
    count = max(1, int(flat.size * share))
    return float(np.partition(flat, flat.size - count)[flat.size - count :].mean())


def _calibrate(name: str, value: float) -> float:
    slope, offset = CALIBRATION[name]
    return float(1.0 / (1.0 + np.exp(-(slope * value + offset))))


class ClassicDetector:
    """Physics-based artifact detector (see the module docstring). Stateless and thread-safe."""

    name = "classic"

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        self.threshold = threshold
        self.decode_hint = DecodeHint(long_side=ANALYSIS_SIDE, slack=DECODE_SLACK)

    def settings(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "analysis_side": ANALYSIS_SIDE,
            "threshold": self.threshold,
            "top_area": TOP_AREA,
            "calibration": {name: list(pair) for name, pair in CALIBRATION.items()},
        }

    def detect(self, images: Sequence[DecodedImage]) -> list[Detection]:
        return [self._detect_one(image) for image in images]

    def class_maps(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """Per-artifact probability maps of a float32 RGB image at analysis resolution."""
        return {"ghosting": ghosting_map(rgb), "flare": flare_map(rgb), "moire": moire_map(rgb)}

    def _detect_one(self, image: DecodedImage) -> Detection:
        rgb = _analysis_pixels(image)
        maps = self.class_maps(rgb)
        evidence = {name: _calibrate(name, _top_area_mean(maps[name])) for name in ARTIFACT_CLASSES}
        scores = scores_from_evidence(evidence)
        probability = np.maximum.reduce([maps[name] for name in ARTIFACT_CLASSES])
        return Detection(
            scores=scores,
            label=argmax_label(scores),
            probability=probability,
            original_size=(image.meta.width, image.meta.height),
            threshold=self.threshold,
            class_maps=maps,
        )


def _analysis_pixels(image: DecodedImage) -> np.ndarray:
    """Float RGB with a long side of at most ``ANALYSIS_SIDE`` (decoders usually already did this)."""
    rgb = image.to_float()
    height, width = rgb.shape[:2]
    scale = ANALYSIS_SIDE / max(height, width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb


#: ``device`` values the factory accepts: this is CPU code, and "auto" resolves to the CPU.
DEVICES = ("cpu", "auto")


def create(device: str = "cpu", **options: Any) -> ClassicDetector:
    """Entry-point factory. The detector runs on the CPU; any other ``device`` is refused rather than
    silently ignored, so a user who asked for a GPU knows they did not get one."""
    if device not in DEVICES:
        raise ValueError(f"the classic detector runs on the CPU; use --device cpu or auto (got {device!r})")
    return ClassicDetector(**options)
