"""What a photo offers an artifact: its light sources, its sky, whether it is a night scene.

An artifact is only synthesised where it can occur: a flare needs a light (a lamp or the sun in the
photo, or a dark scene or a sky where one can be added), a screen must not be put on the sky. These
tests are deliberately strict; a photo that offers nothing is used for other classes instead.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.synthetic.optics import luma

#: Mean luma under which a photo counts as a night or low-light scene (a lamp may be added to it).
NIGHT_LUMA = 0.25
#: Mean luma under which the photo's own lamps are bright enough, against the scene, to flare.
DIM_LUMA = 0.3


class NoPlausibleSite(ValueError):
    """The image offers no place where the requested artifact could occur."""


def light_sources(image: np.ndarray, *, level: float = 0.98, max_fraction: float = 0.01, min_pixels: int = 4,
                  contrast: float = 0.5) -> list[tuple[float, float, float]]:
    """Clipped compact blobs that stand out from darker surroundings (lamps, bulbs, the sun behind a
    gap), largest first, as ``(x, y, radius)``.

    A light strong enough to flare clips the sensor in every channel (``level``). A white wall or a
    sunlit sign clips too, but it is not brighter than its surroundings by much: the ring from 1.5
    to 3 radii around a source must average below ``contrast`` in luma. Large or elongated clipped
    regions (a window, a horizon band) are no point-like sources: components above ``max_fraction``
    of the image or filling less than half their bounding box are refused.
    """
    lum = luma(image)
    clipped = (cv2.GaussianBlur(image.min(axis=2), (0, 0), 1.0) >= level).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(clipped, connectivity=8)
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    found = []
    for label in range(1, count):
        x0, y0, w, h, area = stats[label]
        if not (min_pixels <= area <= max_fraction * clipped.size and area >= 0.5 * w * h
                and max(w, h) <= 3 * min(w, h)):
            continue
        cx, cy = centroids[label]
        radius = float(np.sqrt(area / np.pi))
        distance = np.hypot(xs - cx, ys - cy)
        ring = (distance >= 1.5 * radius + 1) & (distance <= 3 * radius + 3)
        if ring.any() and float(lum[ring].mean()) < contrast:
            found.append((float(area), float(cx), float(cy), radius))
    return [(x, y, radius) for _, x, y, radius in sorted(found, reverse=True)]


def sky_mask(image: np.ndarray, *, min_luma: float = 0.4) -> np.ndarray:
    """Open sky: bright, smooth, blue or bright-neutral regions that touch the top edge and lie mostly
    in the upper half of the frame.

    Texture is the local standard deviation of luma (sky is smooth even in clouds at this scale).
    Only components touching the top row count, so a white wall lower in the frame is not sky. A
    component is kept when it is clearly blue, or when it is blue-ish or bright and neutral
    (overcast) and mostly in the upper half (a white studio backdrop fills the whole frame).
    """
    lum = luma(image)
    height = image.shape[0]
    scale = max(1.0, 0.004 * max(image.shape[:2]))
    mean = cv2.GaussianBlur(lum, (0, 0), 2 * scale)
    deviation = np.sqrt(np.maximum(cv2.GaussianBlur(lum * lum, (0, 0), 2 * scale) - mean * mean, 0))
    red, blue = image[..., 0], image[..., 2]
    candidate = (lum >= min_luma) & (deviation < 0.03) & (blue >= red - 0.04)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate.astype(np.uint8), connectivity=4)
    sky = np.zeros(candidate.shape, bool)
    for label in np.unique(labels[0][candidate[0]]):
        region = labels == label
        colour = image[region].mean(axis=0)
        upper = region[: height // 2].sum() / stats[label, cv2.CC_STAT_AREA]
        blue = colour[2] - colour[0]
        if blue > 0.15 or (upper >= 0.7 and (blue > 0.04 or colour.mean() > 0.7)):
            sky |= region
    return sky


def is_dim(image: np.ndarray) -> bool:
    """Dim enough (dusk, night, indoors) that its lamps are far brighter than the scene and can flare."""
    return float(luma(image).mean()) < DIM_LUMA


def is_night(image: np.ndarray) -> bool:
    """A low-light scene: mostly dark, with a dark upper third (night sky, an unlit ceiling)."""
    lum = luma(image)
    return (float(lum.mean()) < NIGHT_LUMA and float(lum[: max(1, lum.shape[0] // 3)].mean()) < NIGHT_LUMA
            and float((lum < 0.1).mean()) > 0.35)


def lamp_spots(image: np.ndarray, *, count: int = 8) -> list[tuple[float, float, float]]:
    """Where a night scene already glows (a lit window, a dim fixture, a sign): local maxima of the
    smoothed luma that stand well above the scene, as ``(x, y, size)``, brightest first. A lamp added
    there replaces a light the scene already has, instead of floating in the dark sky."""
    lum = luma(image)
    scale = max(1.0, 0.004 * max(image.shape[:2]))
    smooth = cv2.GaussianBlur(lum, (0, 0), scale)
    peaks = (smooth >= cv2.dilate(smooth, np.ones((9, 9), np.uint8))) & (smooth >= max(0.35, 4 * float(lum.mean())))
    ys, xs = np.nonzero(peaks)
    order = np.argsort(smooth[ys, xs])[::-1][:count]
    return [(float(xs[i]), float(ys[i]), float(scale)) for i in order]


def flare_sites(image: np.ndarray) -> list[str]:
    """How a flare can be made plausible in ``image``: ``detected`` (a dim scene with a light), ``lamp`` (a night
    scene that glows somewhere: a street lamp or bulb may be put there), ``sun`` (a sky to put the sun in)."""
    sites = []
    if is_dim(image) and light_sources(image):
        sites.append("detected")
    if is_night(image) and lamp_spots(image):
        sites.append("lamp")
    sky = sky_mask(image)
    if sky[: max(1, image.shape[0] // 2)].mean() > 0.08:
        sites.append("sun")
    return sites
