"""Seeded synthesis of photo artifacts as cameras make them, on real or procedural clean images.

* :mod:`.moire`: a photo of a screen, from the display's sub-pixels through lens, Bayer sampling and
  demosaicing (:mod:`.subpixels`, :mod:`.sensor`), full-frame or a screen in the scene (:mod:`.screens`);
* :mod:`.flare`: glare, streaks and ghosts from a plausible light, in linear light;
* :mod:`.ghosting`: a synthetic burst of the photo fused without de-ghosting;
* :mod:`.negatives`: clean hard negatives; :mod:`.capture`: the tail every sample goes through;
* :mod:`.survey`: what a photo offers (lights, sky, night); :mod:`.scenes`: procedural clean scenes.

Every function draws from a ``numpy.random.Generator``, so a seed reproduces every byte. The
physical synthesisers return a :class:`Synthesis` (image, reference, mask, parameters). The simple
``add_*`` functions and ``make_case`` are the frozen procedural benchmark of the ``classic`` detector
and the removal hooks (:mod:`.benchmark`), kept as they were so their figures stay comparable.
"""

from __future__ import annotations

import numpy as np

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.io.types import DecodedImage, ImageMeta
from ipad_qc.synthetic.benchmark import add_flare, add_ghosting, add_moire, blend_eq1
from ipad_qc.synthetic.capture import CaptureTail, TailSettings
from ipad_qc.synthetic.flare import lens_flare
from ipad_qc.synthetic.ghosting import fused_burst
from ipad_qc.synthetic.moire import screen_capture, screen_in_scene, screen_moire
from ipad_qc.synthetic.negatives import hard_negative
from ipad_qc.synthetic.optics import Synthesis
from ipad_qc.synthetic.scenes import clean_scene
from ipad_qc.synthetic.survey import NoPlausibleSite

__all__ = [
    "CaptureTail",
    "NoPlausibleSite",
    "Synthesis",
    "TailSettings",
    "add_flare",
    "add_ghosting",
    "add_moire",
    "as_decoded",
    "blend_eq1",
    "clean_scene",
    "fused_burst",
    "hard_negative",
    "lens_flare",
    "make_case",
    "screen_capture",
    "screen_in_scene",
    "screen_moire",
]

#: ``make_case``'s artifacts: the frozen procedural benchmark (see :mod:`.benchmark` for why).
_CASES = {"ghosting": add_ghosting, "flare": add_flare, "moire": add_moire}


def make_case(
    kind: str, rng: np.random.Generator, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """One case of the procedural benchmark: ``(float32 RGB image, bool mask, label)``; the mask is empty
    for ``clean``. The same seed gives the same bytes in every version (:mod:`.benchmark`)."""
    if kind not in CLASS_NAMES:
        raise ValueError(f"unknown case kind {kind!r}; choose from {', '.join(CLASS_NAMES)}")
    scene = clean_scene(rng, width, height)
    if kind == CLASS_NAMES[0]:
        return scene, np.zeros((height, width), bool), kind
    image, mask = _CASES[kind](scene, rng)
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
