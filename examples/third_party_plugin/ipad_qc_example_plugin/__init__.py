"""A minimal third-party removal hook: soften the flare region with a Gaussian blur.

Not a good deflare: it shows the plugin contract. A hook has ``name``, ``artifact`` (the class it
removes), ``version`` and ``repair(request)``, which returns the repaired pixels or ``None`` to
decline. ``confine_to_mask`` keeps every pixel outside the class's mask exactly as it was.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.routing.api import RepairRequest, confine_to_mask, to_float


class Soften:
    name = "example-soften"
    artifact = "flare"
    version = "0.2.0"

    def __init__(self, sigma: float = 3.0) -> None:
        self.sigma = float(sigma)

    def repair(self, request: RepairRequest) -> np.ndarray | None:
        pixels = request.image.pixels
        blurred = cv2.GaussianBlur(to_float(pixels), (0, 0), self.sigma)
        return confine_to_mask(pixels, blurred, request.mask)


def create(**options: float) -> Soften:
    return Soften(**options)
