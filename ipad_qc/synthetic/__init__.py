"""Seeded procedural data: clean photo-like scenes and physically synthesised artifacts.

Used by the tests, the benchmarks, the bundled examples and the dataset generator. Everything is a
pure function of a ``numpy.random.Generator``, so a seed reproduces every byte.
"""

from __future__ import annotations

import numpy as np

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.io.types import DecodedImage, ImageMeta
from ipad_qc.synthetic.artifacts import add_flare, add_ghosting, add_moire, blend_eq1
from ipad_qc.synthetic.scenes import clean_scene

__all__ = [
    "add_flare",
    "add_ghosting",
    "add_moire",
    "as_decoded",
    "blend_eq1",
    "clean_scene",
    "make_case",
]

_ADDERS = {"ghosting": add_ghosting, "flare": add_flare, "moire": add_moire}


def make_case(
    kind: str, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """One labelled example: ``(float32 RGB image, bool mask, label)``; the mask is empty for ``clean``."""
    if kind not in CLASS_NAMES:
        raise ValueError(f"unknown case kind {kind!r}; choose from {', '.join(CLASS_NAMES)}")
    scene = clean_scene(rng, width, height)
    if kind == CLASS_NAMES[0]:
        return scene, np.zeros((height, width), bool), kind
    image, mask = _ADDERS[kind](scene, rng)
    return image, mask, kind


def as_decoded(image: np.ndarray, path: str = "synthetic.png", bit_depth: int = 8) -> DecodedImage:
    """Quantise a float image to 8 or 16 bits and wrap it as a decoder would return it."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    peak = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    pixels = np.round(np.clip(image, 0, 1) * peak).astype(dtype)
    height, width = pixels.shape[:2]
    meta = ImageMeta(
        path=path, width=width, height=height, bit_depth=bit_depth, format="synthetic", decode_mode="full"
    )
    return DecodedImage(pixels=pixels, meta=meta)
