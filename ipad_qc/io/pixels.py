"""Array helpers shared by the decoders: channel layout and memory-bounded downscaling."""

from __future__ import annotations

import cv2
import numpy as np


def as_rgb(pixels: np.ndarray, *, bgr: bool) -> np.ndarray:
    """H x W x 3 RGB from grey, grey+alpha, 3- or 4-channel pixels; alpha and extra channels dropped.

    ``bgr`` says the colour channels come in OpenCV's BGR order.
    """
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    channels = pixels.shape[2]
    if channels <= 2:
        return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if bgr else pixels
    if channels == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return np.ascontiguousarray(pixels[:, :, :3])  # RGB + extra samples: only TIFF has those


def shrink_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (width, height) with area averaging, in the array's own dtype.

    Never upscales: if the pixels are already smaller than ``size`` in either direction they are
    returned unchanged (a caller asking for more than the source has gets the source). Working in
    uint8/uint16 keeps a 100-megapixel resize from needing a float copy of the image.
    """
    height, width = pixels.shape[:2]
    if (width, height) == size or width < size[0] or height < size[1]:
        return pixels
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
