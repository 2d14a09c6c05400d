"""The colour sensor behind a Bayer filter array: where each colour's sites are, and how its filters overlap.

:mod:`.subpixels` needs both to compute what the sensor records of a display's sub-pixel grid: the
site layout decides on which lattice each colour samples the light (and so how the grid aliases), the
filters' overlap how much of each display primary each site sees.
"""

from __future__ import annotations

import numpy as np

#: Colour (0 R, 1 G, 2 B) of the top-left 2 x 2 block of sites, row by row.
BAYER_LAYOUTS: dict[str, tuple[int, int, int, int]] = {
    "RGGB": (0, 1, 1, 2), "BGGR": (2, 1, 1, 0), "GRBG": (1, 0, 2, 1), "GBRG": (1, 2, 0, 1),
}


def crosstalk(rng: np.random.Generator) -> np.ndarray:
    """3 x 3 spectral response (rows: R, G, B filters; columns: light of the display's R, G, B primaries).

    Real filters overlap: the red filter passes some green light, the green filter some of both. The
    rows are normalised so a white screen gives equal responses (the camera's white balance); the
    camera's colour matrix is its inverse.
    """
    leak = rng.uniform(0.04, 0.2, (3, 3))
    response = np.eye(3) + leak * (1 - np.eye(3)) * np.array([[1, 1, 0.3], [1, 1, 1], [0.3, 1, 1]])
    return (response / response.sum(axis=1, keepdims=True)).astype(np.float32)
