"""Helpers for the routing tests (no tests here): a colour-coded detector and scripted hooks.

The detector's rule is exact, so tests know which image is flagged for what without depending on
any real detector: pure red pixels are ghosting, pure green flare, pure blue moiré. The hooks are
module-level factories so the spawned hook worker can import them; they log every call to a file,
because they run in another process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ipad_qc.detectors.base import Detection, argmax_label, scores_from_evidence
from ipad_qc.io.types import DecodedImage, DecodeHint
from ipad_qc.routing.api import Declined, RepairRequest, confine_to_mask, to_float

COLOURS = {"ghosting": (255, 0, 0), "flare": (0, 255, 0), "moire": (0, 0, 255)}


class ColourCodeDetector:
    name = "colour-code"
    decode_hint = DecodeHint(long_side=96)

    def settings(self) -> dict:
        return {}

    def detect(self, images: Sequence[DecodedImage]) -> list[Detection]:
        results = []
        for image in images:
            pixels = image.pixels.astype(np.int32) * 255 // (65535 if image.pixels.dtype == np.uint16 else 255)
            maps = {name: (np.abs(pixels - np.array(rgb)).max(axis=2) < 40).astype(np.float32)
                    for name, rgb in COLOURS.items()}
            scores = scores_from_evidence({name: min(0.9, float(m.mean()) * 5) for name, m in maps.items()})
            combined = np.maximum.reduce(list(maps.values()))
            results.append(Detection(scores=scores, label=argmax_label(scores), probability=combined,
                                     original_size=(image.meta.width, image.meta.height), class_maps=maps))
        return results


def write_marked(path: Path, classes: Sequence[str] = (), width: int = 120, height: int = 90, seed: int = 0,
                 depth: int = 8) -> Path:
    """A noisy grey image with one coloured square per class (each ~10 % of the area)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 160, size=(height, width, 3)).astype(np.uint8)
    for index, name in enumerate(classes):
        x = 5 + index * (width // 3)
        pixels[20:60, x:x + 30] = COLOURS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    if depth == 16:
        import tifffile

        tifffile.imwrite(path, pixels.astype(np.uint16) * 257, photometric="rgb")
    else:
        ok, data = cv2.imencode(path.suffix, cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        assert ok
        path.write_bytes(data.tobytes())
    return path


class ScriptedHook:
    """Logs each call, then inverts the mask region; raises, hangs or declines on file names containing a word."""

    version = "1"

    def __init__(self, artifact: str, log: str, fail_on: str = "boom", hang_on: str = "hang",
                 decline_on: str = "leave") -> None:
        self.artifact, self.name, self.log = artifact, f"scripted-{artifact}", log
        self.fail_on, self.hang_on, self.decline_on = fail_on, hang_on, decline_on

    def repair(self, request: RepairRequest) -> np.ndarray | Declined:
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(f"{self.artifact} {request.relpath} {int(request.mask.sum())}\n")
        if self.fail_on in request.relpath:
            raise RuntimeError("scripted failure")
        if self.hang_on in request.relpath:
            time.sleep(120)
        if self.decline_on in request.relpath:
            return Declined(f"scripted: {self.decline_on} it alone")
        return confine_to_mask(request.image.pixels, 1.0 - to_float(request.image.pixels), request.mask)


def create_scripted(**options: str) -> ScriptedHook:
    return ScriptedHook(**options)


def create_scripted_moire(**options: str) -> ScriptedHook:
    return ScriptedHook("moire", **options)
