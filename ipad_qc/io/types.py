"""Value types of image decoding: what a decode is asked for and what it returns."""

from __future__ import annotations

import math
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

    ``slack`` lets a decoder stop short of that size, by up to this fraction, when its cheapest
    reduced decode lands there: no larger decode and no resize follow. A 4000x3000 JPEG asked for a
    1024 px long side is decoded at 1/2 (2000 px) and resized, 2x the cost of decoding it at 1/4
    (1000 px); with ``slack=0.05`` the 1/4 decode is the result. For a consumer that analyses
    whatever size it gets (within the slack); one that resizes to an exact input anyway gains nothing.
    Formats without reduced decoding (PNG, TIFF) are resized to the target size as before.
    """

    long_side: int | None = None
    short_side: int | None = None
    slack: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.slack < 1.0:
            raise ValueError(f"DecodeHint.slack must lie in [0, 1), got {self.slack}")

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

    def least_size(self, width: int, height: int) -> tuple[int, int]:
        """The smallest (width, height) a reduced decode may deliver as it is: the target size less
        the slack (the target size itself without slack)."""
        target_width, target_height = self.target_size(width, height)
        keep = 1.0 - self.slack
        return max(1, math.ceil(target_width * keep - 1e-9)), max(1, math.ceil(target_height * keep - 1e-9))

    def settings(self) -> dict[str, int | float | None]:
        """The fields that decide the decoded pixels, for a settings hash; ``slack`` only when set, so
        hashes taken before it existed still match."""
        fields = {"long_side": self.long_side, "short_side": self.short_side}
        return {**fields, "slack": self.slack} if self.slack else fields


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
