"""Synthetic (artifact, clean ground truth, mask) triples for measuring removal hooks.

Flare and moiré come from :mod:`ipad_qc.synthetic` on a clean scene, which is the ground truth.
The synthetic ghosting generator returns no ground truth, so ghosting pairs are built here: an
opaque object on a clean scene is the truth, and the ghosted image is the plain average a fusion
without de-ghosting makes of two or three frames in which the object moved. The first frame of the
burst, at another exposure and slightly shaken, is returned as a reference frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ipad_qc.synthetic import add_flare, add_moire, clean_scene

PAIR_KINDS = ("flare", "moire", "ghosting")


@dataclass
class Pair:
    """``image`` with an artifact, its ``truth`` and the artifact ``mask``; float32 RGB in [0, 1]."""

    kind: str
    image: np.ndarray
    truth: np.ndarray
    mask: np.ndarray
    reference: np.ndarray | None = None


def make_pair(kind: str, rng: np.random.Generator, width: int = 320, height: int = 240) -> Pair:
    """One pair of ``kind`` (``flare``, ``moire`` or ``ghosting``)."""
    scene = clean_scene(rng, width, height)
    if kind == "flare":
        return Pair(kind, *_with_truth(add_flare(scene, rng), scene))
    if kind == "moire":
        return Pair(kind, *_with_truth(add_moire(scene, rng), scene))
    if kind == "ghosting":
        return _ghost_pair(scene, rng)
    raise ValueError(f"unknown pair kind {kind!r}; choose from {', '.join(PAIR_KINDS)}")


def _with_truth(result: tuple[np.ndarray, np.ndarray], scene: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image, mask = result
    return image, scene, mask


def _ghost_pair(scene: np.ndarray, rng: np.random.Generator) -> Pair:
    height, width = scene.shape[:2]
    size = min(width, height) * rng.uniform(0.15, 0.3)
    centre = (rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height)
    colour = tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))
    step = rng.uniform(0.01, 0.03) * max(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    frames = int(rng.integers(2, 4))
    weights = rng.dirichlet(np.full(frames, 4.0)).astype(np.float32)
    weights = np.sort(weights)[::-1]  # the reference frame weighs most, as in exposure fusion
    layers = [_object(scene, centre, size, colour, k * step * np.cos(angle), k * step * np.sin(angle))
              for k in range(frames)]
    truth = layers[0]
    image = sum(w * layer for w, layer in zip(weights, layers, strict=True)).astype(np.float32)
    mask = cv2.dilate((np.abs(image - truth).max(axis=2) > 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    shaken = cv2.warpAffine(truth, np.float32([[1, 0, 0.6], [0, 1, -0.4]]), (width, height),
                            borderMode=cv2.BORDER_REFLECT)
    reference = np.clip(shaken * rng.uniform(0.6, 0.9) + 0.02, 0, 1).astype(np.float32)
    return Pair("ghosting", image, truth, mask, reference)


def _object(scene: np.ndarray, centre: tuple[float, float], size: float, colour: tuple[float, ...],
            dx: float, dy: float) -> np.ndarray:
    """The scene with a striped ellipse (edges inside and out, like a person or a car) at ``centre + (dx, dy)``."""
    image = scene.copy()
    cx, cy = int(round(centre[0] + dx)), int(round(centre[1] + dy))
    axes = (int(size * 0.6), int(size * 0.9))
    cv2.ellipse(image, (cx, cy), axes, 20, 0, 360, colour, -1, cv2.LINE_AA)
    dark = tuple(0.4 * c for c in colour)
    cv2.ellipse(image, (cx, cy), (axes[0] // 2, axes[1] // 3), 20, 0, 360, dark, -1, cv2.LINE_AA)
    cv2.line(image, (cx - axes[0], cy), (cx + axes[0], cy), (0.95, 0.95, 0.95), 2, cv2.LINE_AA)
    return np.clip(image, 0, 1).astype(np.float32)
