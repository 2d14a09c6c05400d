"""EXIF orientation (1..8) applied to pixel arrays.

Every decoder returns pixels as stored in the file and lets this module turn them upright, so
JPEG, PNG, WebP, TIFF, RAW previews and demosaiced RAW all go through one tested code path.
Orientation is applied after downscaling, where it is cheapest.
"""

from __future__ import annotations

import cv2
import numpy as np

# LibRaw's ``sizes.flip`` (dcraw convention) -> the EXIF orientation that means the same turn.
_EXIF_FOR_LIBRAW_FLIP = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}


def is_valid(orientation: int) -> bool:
    """True for the eight orientations EXIF and TIFF define."""
    return 1 <= orientation <= 8


def swaps_axes(orientation: int) -> bool:
    """True for the orientations (5..8) that turn the image by 90 degrees."""
    return orientation >= 5


def oriented_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of a stored ``width`` x ``height`` image once it is shown upright."""
    return (height, width) if swaps_axes(orientation) else (width, height)


def exif_from_libraw_flip(flip: int) -> int:
    """EXIF orientation equivalent to LibRaw's ``sizes.flip``; unknown values mean no turn."""
    return _EXIF_FOR_LIBRAW_FLIP.get(flip, 1)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright. Returns a new contiguous array (or ``pixels`` itself for 1)."""
    if orientation == 2:
        return cv2.flip(pixels, 1)
    if orientation == 3:
        return cv2.rotate(pixels, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(pixels, 0)
    if orientation == 5:
        return cv2.transpose(pixels)
    if orientation == 6:
        return cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(pixels), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return pixels
