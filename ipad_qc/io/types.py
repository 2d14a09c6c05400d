"""Value types of image decoding: what a decode is asked for and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DecodeError(Exception):
    """A file could not be decoded. ``str()`` names the file and the reason in one line."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class DecodeHint:
    """The resolution a consumer needs, so decoders can skip work (DCT scaling, RAW half-size).

    The decoded image is the smallest one (never upscaled) whose long side is at least
    ``long_side`` and whose short side is at least ``short_side``. ``None`` means no constraint;
    both ``None`` means full resolution.
    """

    long_side: int | None = None
    short_side: int | None = None

    def scale_for(self, width: int, height: int) -> float:
        """Scale factor (<= 1) that turns a ``width`` x ``height`` image into the needed size."""
        needs = [1e-9]
        if self.long_side:
            needs.append(self.long_side / max(width, height))
        if self.short_side:
            needs.append(self.short_side / min(width, height))
        if len(needs) == 1:
            return 1.0
        return min(1.0, max(needs))

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the image should have after decoding and resizing."""
        scale = self.scale_for(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class ImageMeta:
    """Facts about the source file, independent of the resolution it was decoded at.

    ``width``/``height`` are the original size *after* EXIF orientation: masks are written at
    this size. ``decode_mode`` says how the pixels were obtained (e.g. ``jpeg-1/4``,
    ``raw-preview``, ``raw-half``) so a user can tell a preview-based verdict from a demosaiced one.
    """

    path: str
    width: int
    height: int
    bit_depth: int
    format: str
    decode_mode: str
    orientation: int = 1
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class DecodedImage:
    """RGB pixels (H x W x 3, ``uint8`` or ``uint16``) plus the metadata of the source file."""

    pixels: np.ndarray
    meta: ImageMeta

    @property
    def size(self) -> tuple[int, int]:
        """Decoded (width, height), which may be smaller than ``meta.width``/``meta.height``."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def to_float(self) -> np.ndarray:
        """Pixels as float32 RGB in [0, 1], whatever the stored bit depth."""
        scale = 65535.0 if self.pixels.dtype == np.uint16 else 255.0
        return self.pixels.astype(np.float32) * np.float32(1.0 / scale)
