"""Shared helpers for scanner and CLI tests: a small deterministic detector and image writers.

The test detector is a real implementation of the Detector protocol with a rule simple enough
that tests can predict its verdicts: bright pixels (> 0.8) are "flare", and an image whose bright
area exceeds 5 % is labelled flare. That keeps scanner tests independent of the classic detector.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ipad_qc.detectors.base import Detection, argmax_label, scores_from_evidence
from ipad_qc.io.types import DecodedImage, DecodeHint


class BrightSpotDetector:
    name = "bright-spot"
    decode_hint = DecodeHint(long_side=256)

    def __init__(self, level: float = 0.8, delay_s: float = 0.0) -> None:
        self.level = level
        self.delay_s = delay_s
        self.calls = 0

    def settings(self) -> dict:
        return {"level": self.level}

    def detect(self, images: Sequence[DecodedImage]) -> list[Detection]:
        self.calls += 1
        time.sleep(self.delay_s)
        results = []
        for image in images:
            grey = image.to_float().mean(axis=2)
            bright = (grey > self.level).astype(np.float32)
            scores = scores_from_evidence({"flare": min(0.9, float(bright.mean()) * 10.0)})
            results.append(Detection(scores=scores, label=argmax_label(scores), probability=bright,
                                     original_size=(image.meta.width, image.meta.height),
                                     class_maps={"flare": bright}))
        return results


def create_bright_spot(device: str = "cpu", **options) -> BrightSpotDetector:
    return BrightSpotDetector(**options)


def write_jpeg(path: Path, width: int = 320, height: int = 240, bright: bool = False, seed: int = 0) -> Path:
    """A noisy dark image; ``bright`` adds a white disc covering ~20 % of it."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(20, 90, size=(height, width, 3), dtype=np.uint8)
    if bright:
        cv2.circle(pixels, (width // 2, height // 2), int(min(width, height) * 0.3), (255, 255, 255), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``: proves a scan modified no original."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def shared_testdata() -> Path | None:
    """The third-party test files (``$IPAD_QC_TESTDATA`` or ``../shared/testdata``), or None."""
    import os

    candidates = [os.environ.get("IPAD_QC_TESTDATA"), Path(__file__).resolve().parents[2] / "shared" / "testdata"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None
