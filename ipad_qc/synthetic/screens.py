"""Where a screen is in a photo: a lit screen the photo already shows, or a device placed plausibly.

``find_screen`` looks for the screen a photo already has (a lit monitor or phone: an evenly bright
convex quadrilateral). ``place_device`` puts a monitor, laptop, tablet or phone into a photo that has
none: in the lower part of the frame or mid-frame, tilted a little in perspective, and never over
the sky (a screen floating in the sky is not a photo anyone takes).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from ipad_qc.synthetic.optics import luma
from ipad_qc.synthetic.survey import NoPlausibleSite, sky_mask

#: Devices: (name, width / height of the screen, how often it is drawn).
DEVICES = (("monitor", 16 / 9, 0.35), ("laptop", 16 / 10, 0.25), ("tablet", 4 / 3, 0.2), ("phone", 9 / 19.5, 0.2))


def find_screen(image: np.ndarray, *, min_fraction: float = 0.04, max_fraction: float = 0.8,
                levels: tuple[float, ...] = (0.55, 0.7, 0.85)) -> np.ndarray | None:
    """The largest bright convex quadrilateral (a lit screen, seen in perspective), or ``None``.

    A screen that is on is an emissive, evenly bright region with four straight sides. Candidate
    regions are the luma above each of a few ``levels`` and the bright areas that edges enclose (a
    screen beside a brighter wall or sky merges with it under any global threshold, but its border
    is still an edge). Each region's outer contour hull is simplified with ``approxPolyDP`` and counts
    when it has four corners, its area is within 8 % of the quadrilateral's (so ellipses and ragged
    blobs whose hull happens to simplify to four points are refused), it covers ``min_fraction`` to
    ``max_fraction`` of the image, and at most one corner lies on the image border (bands of sky
    touch it with all four). Corners come back clockwise from top-left.
    """
    lum = cv2.GaussianBlur(luma(image), (0, 0), 1.5)
    height, width = lum.shape
    limits = (min_fraction * lum.size, max_fraction * lum.size)
    best: tuple[float, np.ndarray] | None = None
    for region in _screen_regions(lum, levels, limits[0]):
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            quad = _as_quad(contour, limits, width, height)
            if quad is not None and (best is None or quad[0] > best[0]):
                best = quad
    return None if best is None else best[1]


def _screen_regions(lum: np.ndarray, levels: tuple[float, ...], min_area: float) -> Iterator[np.ndarray]:
    """Binary (uint8) candidate regions for ``find_screen``: thresholded luma, then edge-enclosed areas."""
    for level in levels:
        yield (lum >= level).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    inside = cv2.dilate(cv2.Canny(np.round(lum * 255).astype(np.uint8), 10, 30), kernel) == 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=4)
    mean = np.bincount(labels.ravel(), weights=lum.ravel(), minlength=count) / np.maximum(stats[:, 4], 1)
    for label in np.flatnonzero((stats[:, 4] >= min_area) & (mean >= min(levels))):
        if label:  # label 0 is the edges; grow the area back over the pixel the edge dilation took
            yield cv2.dilate((labels == label).astype(np.uint8), kernel)


def _as_quad(contour: np.ndarray, limits: tuple[float, float], width: int,
             height: int) -> tuple[float, np.ndarray] | None:
    """``(area, corners)`` when ``contour`` is a screen-like quadrilateral (see ``find_screen``)."""
    area = cv2.contourArea(contour)
    if not limits[0] <= area <= limits[1]:
        return None
    hull = cv2.convexHull(contour)
    corners = cv2.approxPolyDP(hull, 0.03 * cv2.arcLength(hull, True), True).reshape(-1, 2).astype(np.float32)
    if len(corners) != 4:
        return None
    quad_area = cv2.contourArea(corners)
    on_border = (corners.min(axis=1) <= 2) | (corners[:, 0] >= width - 3) | (corners[:, 1] >= height - 3)
    if abs(area - quad_area) > 0.08 * quad_area or on_border.sum() > 1:
        return None
    return quad_area, clockwise_from_top_left(corners)


def clockwise_from_top_left(corners: np.ndarray) -> np.ndarray:
    """Sort corners by angle around their centre (clockwise on screen, y pointing down), top-left first."""
    offset = corners - corners.mean(axis=0)
    ordered = corners[np.argsort(np.arctan2(offset[:, 1], offset[:, 0]))]
    return np.roll(ordered, -int(np.argmin(ordered.sum(axis=1))), axis=0)


def device_quad(rng: np.random.Generator, height: int, width: int, coverage: float,
                aspect: float) -> np.ndarray:
    """Corners (4 x 2, clockwise from top-left) of a screen of ``aspect`` covering ``coverage`` of the
    frame, tilted in perspective, centred low or mid-frame (held, or standing on a desk)."""
    area = coverage * height * width
    screen_w, screen_h = np.sqrt(area * aspect), np.sqrt(area / aspect)
    scale = min(1.0, 0.9 * width / screen_w, 0.9 * height / screen_h)
    screen_w, screen_h = screen_w * scale, screen_h * scale
    angle = rng.normal(0, 0.08)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * [screen_w / 2, screen_h / 2]
    corners = corners * (1 + rng.uniform(-0.08, 0.08, (4, 1)))  # keystone: the screen is not square-on
    corners = corners @ rotation.T
    low, high = -corners.min(axis=0), np.array([width, height]) - corners.max(axis=0)
    high = np.maximum(high, low + 1)
    centre = [rng.uniform(low[0], high[0]), rng.uniform(max(low[1], 0.35 * height), max(high[1], 0.35 * height + 1))]
    return (corners + centre).astype(np.float32)


def place_device(image: np.ndarray, rng: np.random.Generator, coverage: tuple[float, float] = (0.08, 0.35),
                 tries: int = 12) -> tuple[np.ndarray, str]:
    """A device screen quad that stays off the sky: ``(corners, device name)``.

    Raises :class:`NoPlausibleSite` when every drawn position overlaps the sky by more than 2 %.
    """
    height, width = image.shape[:2]
    sky = sky_mask(image)
    weights = np.array([weight for _, _, weight in DEVICES])
    for _ in range(tries):
        name, aspect, _ = DEVICES[int(rng.choice(len(DEVICES), p=weights / weights.sum()))]
        if rng.random() < 0.3 and name != "phone":
            aspect = 1 / aspect  # a portrait monitor or tablet
        quad = device_quad(rng, height, width, float(rng.uniform(*coverage)), aspect)
        canvas = np.zeros((height, width), np.uint8)
        cv2.fillPoly(canvas, [np.round(quad).astype(np.int32)], 1)
        inside = canvas.astype(bool)
        if inside.any() and sky[inside].mean() <= 0.02:
            return quad, name
    raise NoPlausibleSite("every place for a screen is on the sky")
