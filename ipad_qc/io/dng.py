"""A minimal DNG writer and a Bayer mosaicker, so RAW decoding can be tested without camera files.

:func:`mosaic` turns an ordinary sRGB picture into the Bayer data a simple camera would record
(undoing LibRaw's output gamma and the white balance), and :func:`write_dng` stores such data as
an uncompressed CFA DNG with the tags LibRaw needs to develop it. ``load_image`` on the result
gives back roughly the original picture, which makes RAW tests and the example RAW file possible
without third-party files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tifffile

_CFA_COLOURS = {"R": 0, "G": 1, "B": 2}  # TIFF/EP CFAPattern codes
_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
_D65 = 21  # EXIF LightSource code for CalibrationIlluminant1

# XYZ (D65) -> linear sRGB. A camera whose native channels are linear sRGB scaled by the
# white balance has ColorMatrix1 = diag(neutral) @ this matrix.
_XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)

DEFAULT_NEUTRAL = (0.5, 1.0, 0.7)  # camera response to white: a typical daylight balance


def mosaic(
    rgb: np.ndarray,
    pattern: str = "RGGB",
    black_level: int = 256,
    white_level: int = 4095,
    as_shot_neutral: Sequence[float] = DEFAULT_NEUTRAL,
) -> np.ndarray:
    """Bayer CFA (H x W uint16) that develops back into ``rgb`` (H x W x 3 float in [0, 1]).

    The inverse of a demosaic: display values are linearised with the inverse of the BT.709
    curve that LibRaw applies by default, scaled by the camera's neutral (the inverse of white
    balance), and sampled at each photosite's colour between ``black_level`` and ``white_level``.
    """
    _check_pattern(pattern)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be H x W x 3, got shape {rgb.shape}")
    neutral = np.asarray(as_shot_neutral, dtype=np.float64)
    linear = _bt709_to_linear(np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0))
    camera = linear * (neutral / neutral.max())
    cfa = np.empty(rgb.shape[:2], dtype=np.float64)
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        cfa[dy::2, dx::2] = camera[dy::2, dx::2, _CFA_COLOURS[colour]]
    return np.rint(black_level + cfa * (white_level - black_level)).astype(np.uint16)


def write_dng(
    path: str | os.PathLike[str],
    cfa: np.ndarray,
    pattern: str = "RGGB",
    black_level: int = 256,
    white_level: int = 4095,
    color_matrix: np.ndarray | None = None,
    as_shot_neutral: Sequence[float] = DEFAULT_NEUTRAL,
    orientation: int = 1,
    camera_model: str = "ipad-qc synthetic Bayer camera",
) -> None:
    """Write ``cfa`` (H x W uint16 Bayer data) as an uncompressed DNG that LibRaw develops.

    ``color_matrix`` is DNG's ColorMatrix1 (XYZ to camera, 3 x 3, D65); by default the camera's
    channels are linear sRGB scaled by ``as_shot_neutral``, matching :func:`mosaic`.
    ``orientation`` is the EXIF orientation (1..8) stored in the file.
    """
    _check_pattern(pattern)
    if cfa.ndim != 2 or cfa.dtype != np.uint16:
        raise ValueError(f"cfa must be a 2-D uint16 array, got {cfa.dtype} with shape {cfa.shape}")
    if not 1 <= orientation <= 8:
        raise ValueError(f"orientation must be 1..8, got {orientation}")
    neutral = np.asarray(as_shot_neutral, dtype=np.float64)
    matrix = np.diag(neutral) @ _XYZ_TO_SRGB if color_matrix is None else np.asarray(color_matrix)
    tags = [
        (271, "s", 0, "ipad-qc", True),  # Make
        (272, "s", 0, camera_model, True),  # Model
        (274, "H", 1, orientation, True),  # Orientation
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, bytes(_CFA_COLOURS[c] for c in pattern), True),  # CFAPattern
        (50706, "B", 4, bytes((1, 4, 0, 0)), True),  # DNGVersion
        (50707, "B", 4, bytes((1, 1, 0, 0)), True),  # DNGBackwardVersion
        (50708, "s", 0, camera_model, True),  # UniqueCameraModel
        (50710, "B", 3, bytes((0, 1, 2)), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout: rectangular
        (50713, "H", 2, (1, 1), True),  # BlackLevelRepeatDim
        (50714, "I", 1, black_level, True),  # BlackLevel
        (50717, "I", 1, white_level, True),  # WhiteLevel
        (50721, "2i", 9, _rationals(matrix.ravel()), True),  # ColorMatrix1 (SRATIONAL)
        (50728, "2I", 3, _rationals(neutral), True),  # AsShotNeutral (RATIONAL)
        (50778, "H", 1, _D65, True),  # CalibrationIlluminant1
    ]
    tifffile.imwrite(
        path,
        cfa,
        photometric=tifffile.PHOTOMETRIC.CFA,
        metadata=None,
        software="ipad-qc",
        extratags=tags,
    )


def _check_pattern(pattern: str) -> None:
    if pattern not in _PATTERNS:
        raise ValueError(f"pattern must be one of {_PATTERNS}, got {pattern!r}")


def _bt709_to_linear(values: np.ndarray) -> np.ndarray:
    """Inverse of the BT.709 curve (LibRaw's default ``gamma=(2.222, 4.5)``)."""
    return np.where(values < 0.081, values / 4.5, ((values + 0.099) / 1.099) ** (1 / 0.45))


def _rationals(values: np.ndarray, denominator: int = 1_000_000) -> tuple[int, ...]:
    """Flat (numerator, denominator) pairs, as tifffile expects for RATIONAL/SRATIONAL tags."""
    pairs = [(round(float(v) * denominator), denominator) for v in values]
    return tuple(n for pair in pairs for n in pair)
