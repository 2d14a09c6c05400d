"""The hand-over from a format decoder to the loader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class StoredPixels:
    """Pixels as stored in the file, before the loader downscales, makes RGB and turns them upright.

    Decoders fill this instead of :class:`~ipad_qc.io.types.DecodedImage` so that resizing to the
    hint, channel layout, orientation and the metadata are done once, in the loader, for every
    format, and in that order: grey-to-RGB expansion and channel swaps then touch only the
    downscaled pixels. ``pixels`` is uint8 or uint16, H x W or H x W x C (grey, grey+alpha, colour,
    colour+alpha; ``bgr`` for OpenCV's channel order), at least the hint's target size when the
    format allows a reduced decode. ``width``/``height`` are the full stored size.
    """

    pixels: np.ndarray
    width: int
    height: int
    bit_depth: int
    mode: str
    orientation: int = 1
    warnings: list[str] = field(default_factory=list)
    bgr: bool = False
