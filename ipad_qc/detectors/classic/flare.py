"""Lens flare: veiling glare that spreads from a compact light source.

Physics: scattering and inter-reflections in the lens spread a fraction of a strong source's light
over the frame with a point-spread function that falls off smoothly with the distance ``r`` from
the source (Vos' glare model: roughly a power law). That light is *added* to every pixel, so it
lifts the darkest values of each neighbourhood — the local "black level" — by an amount that
depends only on ``r``, whatever the scene content underneath.

The test therefore
1. finds compact, (near-)saturated blobs — candidate sources; a saturated sky is wide, not compact;
2. measures the local black level ``E`` (the dark channel, min over RGB, eroded over a window, so a
   single dark pixel in the neighbourhood pins it) and its mean over rings around each source;
3. fits the ring profile with ``b + A·g(r/ρ)``, ``g(s) = (1 + s²)^-1.5``, over a grid of ρ.
A flare is a large lift ``A`` that the radial model explains well (``R²``). A bright sky or a white
wall lifts ``E`` too, but as a plateau with a sharp cliff at its border, which the smooth glare
profile explains poorly; a lamp without glare has no lift outside its own disc.
The map is the fitted glare ``A·g`` turned into a visibility probability.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Long side (px) of the working image: glare is smooth, so a coarse grid sees all of it.
WORK_SIDE = 256
#: Luminance above which a pixel counts as saturated (a light source or its blown-out core).
SATURATION = 0.985
#: Candidate glare radii ρ as fractions of the image diagonal.
GLARE_RADII = np.geomspace(0.01, 0.2, 10)
#: Black-level lift at which glare is judged visible (matches the synthetic mask's threshold).
VISIBLE_LIFT = 0.05
MAX_SOURCES = 4
#: Largest median dark channel (min over RGB) around a source that still leaves room for glare.
HEADROOM = 0.9


def flare_map(rgb: np.ndarray) -> np.ndarray:
    """Flare probability map at the size of ``rgb`` (float32 RGB [0, 1]): where the best-fitting glare
    is visible, weighted by how strong and how well explained that glare is."""
    height, width = rgb.shape[:2]
    scale = WORK_SIDE / max(height, width)
    small = cv2.resize(
        rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    black = cv2.erode(small.min(axis=2), np.ones((5, 5), np.uint8))
    black = cv2.blur(black, (5, 5))
    best = np.zeros(black.shape, np.float32)
    evidence = 0.0
    for centre, source_radius in _sources(small.mean(axis=2), small.min(axis=2)):
        glare, score = _fit_glare(black, centre, source_radius)
        if score > evidence:
            best, evidence = glare, score
    prob = np.clip(best / (2 * VISIBLE_LIFT), 0, 1).astype(np.float32) * min(1.0, 2 * evidence)
    return cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)


def _sources(luminance: np.ndarray, dark: np.ndarray) -> list[tuple[tuple[float, float], float]]:
    """Centroid and equivalent radius of compact saturated blobs that can be light sources, largest first.

    A source must be small (a saturated sky is wide), round enough, and stand out from what lies
    around it: the dark channel just outside it must leave headroom for glare (``HEADROOM``). A
    saturated cloud, a patch of snow or a white wall in daylight is surrounded by near-white pixels:
    nothing there can be lifted by glare, so it is not a light source to fit glare around.
    """
    saturated = (luminance >= SATURATION).astype(np.uint8)
    count, _, stats, centroids = cv2.connectedComponentsWithStats(saturated, connectivity=8)
    limit = 0.05 * luminance.size
    ys, xs = np.indices(luminance.shape, dtype=np.float32)
    found = []
    for index in range(1, count):
        area = stats[index, cv2.CC_STAT_AREA]
        extent = max(stats[index, cv2.CC_STAT_WIDTH], stats[index, cv2.CC_STAT_HEIGHT])
        roundness = area / (np.pi * (extent / 2) ** 2 + 1e-9)
        if area > limit or roundness <= 0.3:
            continue
        centre, radius = tuple(centroids[index]), float(np.sqrt(area / np.pi))
        distance = np.hypot(xs - centre[0], ys - centre[1])
        ring = (distance > 2 * radius + 3) & (distance < 4 * radius + 8)
        if ring.any() and float(np.median(dark[ring])) < HEADROOM:
            found.append((area, (centre, radius)))
    found.sort(key=lambda item: -item[0])
    return [source for _, source in found[:MAX_SOURCES]]


def _fit_glare(
    black: np.ndarray, centre: tuple[float, float], source_radius: float
) -> tuple[np.ndarray, float]:
    """Fit ``b + A·g(r/ρ)`` to the ring-mean black level around ``centre``, outside the source itself
    (a lamp's own disc is bright but is not glare).

    Returns the fitted glare term ``A·g`` as a map and a score in [0, 1]: the lift just outside
    the source, ``A·g(r₀/ρ)``, scaled by the fraction of the profile's variance the model explains.
    """
    height, width = black.shape
    diagonal = float(np.hypot(height, width))
    ys, xs = np.indices(black.shape, dtype=np.float32)
    radius = np.hypot(xs - centre[0], ys - centre[1])
    rings = np.minimum((radius / 2).astype(np.intp), int(diagonal / 4))
    counts = np.bincount(rings.ravel())
    valid = counts > 0
    valid[: int((source_radius * 1.5 + 4) / 2) + 1] = False
    profile = np.bincount(rings.ravel(), black.ravel())[valid] / counts[valid]
    ring_radius = (np.nonzero(valid)[0] * 2 + 1).astype(np.float64)
    weights = np.sqrt(counts[valid])
    total = np.sum(weights**2 * (profile - np.average(profile, weights=weights**2)) ** 2) + 1e-9
    best = (0.0, 0.0, GLARE_RADII[0])
    for rho in GLARE_RADII * diagonal:
        shape = (1 + (ring_radius / rho) ** 2) ** -1.5
        design = np.stack([np.ones_like(shape), shape], axis=1) * weights[:, None]
        (base, lift), residual, *_ = np.linalg.lstsq(design, profile * weights, rcond=None)
        explained = 1 - float(residual[0]) / total if residual.size else 0.0
        score = max(0.0, lift * shape[0]) * max(0.0, explained)
        if score > best[0]:
            best = (score, lift, rho)
    score, lift, rho = best
    glare = (lift * (1 + (radius / rho) ** 2) ** -1.5).astype(np.float32)
    return glare, float(np.clip(score, 0, 1))
