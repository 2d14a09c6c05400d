"""Each artifact class's own region at full resolution, from what the scan wrote into the run folder.

A hook must get its class's region, not the combined mask: ``masks/<path>.png`` is the union of
every artifact, and a deflare run inside a moiré screen would smear the screen. The per-class
probability maps (``maps/<path>.png``: R ghosting, G flare, B moiré, at analysis resolution) are
upsampled to the image size and thresholded at the routing policy's ``mask_threshold``. A run
scanned with ``--no-maps``, or by a detector without per-class maps (grey map), falls back to the
combined map or mask, which is still correct for single-class images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.outputs import MAP_DIR, MASK_DIR
from ipad_qc.runfolder import UnsafePathError, inside

#: Channel of each class in an OpenCV (BGR) read of a map PNG that is stored as R, G, B.
_BGR_CHANNEL = {name: 2 - index for index, name in enumerate(ARTIFACT_CLASSES)}


class MaskError(Exception):
    """The run folder holds no usable map or mask for an image."""


def _read(run_dir: Path, relpath: str | None, folder: str) -> np.ndarray | None:
    """The PNG a row names in ``folder`` of the run folder; a path leading elsewhere is refused."""
    if not relpath:
        return None
    try:
        path = inside(run_dir, relpath, under=folder)
    except UnsafePathError as exc:
        raise MaskError(f"refused: {exc}") from None
    if not path.is_file():
        return None
    return cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)


def class_region(run_dir: Path, row: Mapping[str, Any], artifact: str, size: tuple[int, int],
                 threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, probability)`` of ``artifact`` at ``size`` (width, height): bool and float32 [0, 1]."""
    probability = _read(run_dir, row.get("map_path"), MAP_DIR)
    if probability is not None and probability.ndim == 3:
        probability = probability[..., _BGR_CHANNEL[artifact]]
    if probability is None:
        probability = _read(run_dir, row.get("mask_path"), MASK_DIR)
    if probability is None:
        raise MaskError("no probability map or mask in the run folder for this image (re-scan it)")
    if probability.ndim == 3:
        probability = probability[..., 0]
    full = cv2.resize(probability, size, interpolation=cv2.INTER_LINEAR)
    mask = full >= max(1, int(round(threshold * 255.0)))
    return mask, full.astype(np.float32) * np.float32(1.0 / 255.0)
