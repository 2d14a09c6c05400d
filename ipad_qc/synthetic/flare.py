"""Lens flare from a light in the photo, rendered in linear light before the tone curve.

Every flare has a source the viewer can see (or, for the sun just outside the frame, a sky that
makes it plausible): a clipped lamp the photo already has, a lamp added to a night scene, or the sun
added to the sky behind the foreground (:mod:`.survey` says which a photo allows). The flare is the
light those sources scatter and reflect inside the lens, in proportion to their power:

* veiling glare: a narrow halo and a wide veil with power-law falloff, which lift the shadows;
* streaks: a few long, thin lines through the source (scratches and grease on a phone's cover
  glass), and diffraction spikes of the aperture blades (a starburst, 2N spikes for N odd blades);
* ghosts: out-of-focus images of the aperture, reflected between lens surfaces, on the line from the
  source through the optical centre (mirrored through it for negative positions), tinted by coatings.

It is added to the linearised photo and the sum is encoded again, clipping like a sensor. The
reference is the photo with its sources but without the flare (a lamp that does not flare).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ipad_qc.synthetic.optics import Synthesis, fill_holes, gaussian, to_display, to_linear, visible_mask
from ipad_qc.synthetic.survey import NoPlausibleSite, flare_sites, lamp_spots, light_sources, sky_mask

#: Default visibility of flare light (display-referred units).
VISIBILITY = 0.04
_SOURCES = 4  # at most this many lights flare (the brightest): the rest are too weak to matter
#: Radiance ranges (times the sensor's full scale, drawn log-uniformly): a clipped pixel hides how bright
#: the light really is, so it is drawn. Lamps that flare visibly are tens to hundreds of times over.
CLIPPED, LAMP, SUN = (40.0, 500.0), (60.0, 800.0), (100.0, 800.0)
_LAMP_TINTS = ((1.0, 0.82, 0.55), (1.0, 0.93, 0.8), (0.85, 0.92, 1.0), (1.0, 0.7, 0.4))
_GHOST_TINTS = ((0.5, 1.0, 0.55), (0.8, 0.5, 1.0), (1.0, 0.7, 0.35), (0.45, 0.8, 1.0), (1.0, 1.0, 0.9))


@dataclass(frozen=True)
class Light:
    """A light source: centre, radius (pixels), radiance in units of the sensor's full scale, colour."""

    x: float
    y: float
    radius: float
    radiance: float
    colour: tuple[float, float, float]

    @property
    def power(self) -> float:
        return self.radiance * np.pi * self.radius**2


def _disc(height: int, width: int, x: float, y: float, radius: float, soft: float = 1.0) -> np.ndarray:
    ys, xs = np.ogrid[0:height, 0:width]
    return np.clip((radius - np.hypot(xs - x, ys - y)) / soft + 0.5, 0, 1).astype(np.float32)


def _radiance(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _tint(rng: np.random.Generator, tints: tuple[tuple[float, float, float], ...]) -> tuple[float, float, float]:
    base = np.array(tints[int(rng.integers(len(tints)))]) * rng.uniform(0.9, 1.1, 3)
    return tuple(float(c) for c in base / base.max())


def detected_lights(image: np.ndarray, rng: np.random.Generator) -> list[Light]:
    """The photo's own clipped lights, brightest first, with a drawn radiance (``CLIPPED``) and the colour
    of their surroundings' glow."""
    lights = []
    for x, y, radius in light_sources(image)[:_SOURCES]:
        ring = _disc(*image.shape[:2], x, y, 3 * radius + 3) - _disc(*image.shape[:2], x, y, radius + 1)
        glow = (image * ring[..., None]).sum(axis=(0, 1)) / max(ring.sum(), 1) + 1e-3
        lights.append(Light(x, y, radius, _radiance(rng, CLIPPED),
                            tuple(float(c) for c in glow / glow.max())))
    return lights


def add_lamps(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Light]]:
    """A night scene with 1–3 of its glowing spots (:func:`lamp_spots`) turned into lamps: saturated
    discs with a little bloom, in a lamp's colour."""
    height, width = image.shape[:2]
    diagonal = float(np.hypot(height, width))
    spots = lamp_spots(image)
    if not spots:
        raise NoPlausibleSite("no glowing spot in the scene where a lamp could be")
    lights = [Light(spots[index][0], spots[index][1], float(rng.uniform(0.003, 0.01) * diagonal),
                    _radiance(rng, LAMP), _tint(rng, _LAMP_TINTS))
              for index in rng.permutation(len(spots))[: int(rng.integers(1, 4))]]
    return _lit(image, lights), lights


def add_sun(image: np.ndarray, rng: np.random.Generator, sky: np.ndarray) -> tuple[np.ndarray, list[Light]]:
    """The sun, put in the upper part of the sky and hidden wherever the foreground is in front of it."""
    height, width = image.shape[:2]
    ys, xs = np.nonzero(sky[: max(1, int(0.6 * height))])
    if not len(xs):
        raise NoPlausibleSite("no sky in the upper part of the frame to put the sun in")
    radius = float(rng.uniform(0.008, 0.02) * np.hypot(height, width))
    soft_sky = gaussian(sky.astype(np.float32), 1.0)
    for _ in range(8):  # a sun mostly hidden by the foreground would flare from nowhere: look for an open spot
        pick = int(rng.integers(len(xs)))
        disc = _disc(height, width, float(xs[pick]), float(ys[pick]), radius, soft=1.5)
        visible = disc * soft_sky
        shown = float(visible.sum()) / max(float(disc.sum()), 1.0)
        if shown >= 0.4:
            break
    else:
        raise NoPlausibleSite("no open patch of sky large enough for the sun")
    light = Light(float(xs[pick]), float(ys[pick]), radius, _radiance(rng, SUN),
                  _tint(rng, ((1.0, 0.97, 0.9), (1.0, 0.9, 0.75))))
    linear = to_linear(image) + (visible * light.radiance)[..., None] * np.array(light.colour, np.float32)
    # only the part of the disc that the foreground does not hide shines into the lens
    return to_display(linear), [Light(light.x, light.y, radius, light.radiance * shown, light.colour)]


def light_at(image: np.ndarray, rng: np.random.Generator, x: float, y: float) -> tuple[np.ndarray, list[Light]]:
    """A light at ``(x, y)``: the photo's own clipped source when there is one within a few pixels,
    else a lamp added there. Returns the image with the light (the flare's reference) and the light."""
    for sx, sy, radius in light_sources(image):
        if np.hypot(sx - x, sy - y) <= radius + 3:
            glow = image[int(round(sy)), int(round(sx))] + 1e-3
            return image, [Light(sx, sy, radius, _radiance(rng, CLIPPED),
                                 tuple(float(c) for c in glow / glow.max()))]
    height, width = image.shape[:2]
    light = Light(float(x), float(y), 0.008 * float(np.hypot(height, width)),
                  _radiance(rng, LAMP), _tint(rng, _LAMP_TINTS))
    return _lit(image, [light]), [light]


def _lit(image: np.ndarray, lights: list[Light]) -> np.ndarray:
    """``image`` with each light drawn: a saturated disc with a little bloom, in linear light."""
    height, width = image.shape[:2]
    linear = to_linear(image)
    for light in lights:
        core = _disc(height, width, light.x, light.y, light.radius)
        bloom = gaussian(core, 1.5 * light.radius) * 0.6
        linear = linear + (np.maximum(core * light.radiance, bloom))[..., None] * np.array(light.colour, np.float32)
    return to_display(linear)


def _veil(radius: np.ndarray, light: Light, rng: np.random.Generator, diagonal: float) -> np.ndarray:
    """Halo plus veil: two power laws ``(1 + (r / r0)²)^-α`` carrying fractions of the source's power."""
    total = np.zeros_like(radius)
    for fraction, scale, alpha in ((rng.uniform(0.03, 0.2), rng.uniform(2, 8) * light.radius, 1.6),
                                   (rng.uniform(0.02, 0.15), rng.uniform(0.03, 0.15) * diagonal,
                                    rng.uniform(1.15, 1.6))):
        peak = fraction * light.power * (alpha - 1) / (np.pi * scale**2)  # the profile integrates to fraction·power
        total += peak * (1 + (radius / scale) ** 2) ** -alpha
    return total


def _streaks(dx: np.ndarray, dy: np.ndarray, radius: np.ndarray, light: Light, rng: np.random.Generator,
             diagonal: float) -> np.ndarray:
    """Thin lines through the source: a few scattering streaks, or a symmetric diffraction starburst."""
    total = np.zeros_like(radius)
    if rng.random() < 0.25:  # aperture blades: N odd blades give 2N spikes, N even give N
        blades = int(rng.choice([5, 6, 7, 8, 9]))
        angles = rng.uniform(0, np.pi) + np.arange(blades if blades % 2 == 0 else 2 * blades) * np.pi / blades
        lengths = np.full(len(angles), rng.uniform(0.03, 0.12) * diagonal)
        fraction = rng.uniform(0.0005, 0.004)
    else:
        angles = rng.uniform(0, 2 * np.pi, int(rng.integers(1, 3)))
        angles = np.concatenate([angles, angles + np.pi])  # a streak runs through the source both ways
        lengths = np.tile(rng.uniform(0.15, 0.8, len(angles) // 2) * diagonal, 2)
        fraction = rng.uniform(0.0005, 0.006)
    width = rng.uniform(0.6, 1.6)
    for angle, length in zip(angles, lengths, strict=True):
        along = dx * np.cos(angle) + dy * np.sin(angle)
        across = np.abs(-dx * np.sin(angle) + dy * np.cos(angle))
        spread = width + 0.004 * np.maximum(along, 0)
        profile = np.exp(-0.5 * (across / spread) ** 2) * np.exp(-np.maximum(along, 0) / length) * (along > 0)
        total += fraction * light.power / (length * width * np.sqrt(2 * np.pi)) * profile
    return total


def _ghosts(shape: tuple[int, int], lights: list[Light], rng: np.random.Generator, diagonal: float) -> np.ndarray:
    """Aperture images on the line source–centre, tinted; each ghost's total light is a fraction of the source's."""
    height, width = shape
    centre = np.array([width / 2, height / 2])
    sides = int(rng.choice([0, 6, 8]))  # 0: a round aperture
    ghosts = np.zeros((height, width, 3), np.float32)
    for position in rng.uniform(-1.4, 0.9, int(rng.integers(2, 7))):
        size = rng.uniform(0.01, 0.07) * diagonal
        tint = np.array(_tint(rng, _GHOST_TINTS), np.float32)
        fraction = rng.uniform(2e-4, 3e-3)
        ring = rng.random() < 0.3
        shape_mask = _aperture(height, width, size, sides, ring, rng)
        area = max(float(shape_mask.sum()), 1.0)
        for light in lights:
            offset = centre + position * (np.array([light.x, light.y]) - centre) - [width / 2, height / 2]
            moved = cv2.warpAffine(shape_mask, np.float32([[1, 0, offset[0]], [0, 1, offset[1]]]), (width, height))
            ghosts += (fraction * light.power / area * moved)[..., None] * tint * np.array(light.colour, np.float32)
    return ghosts


def _aperture(height: int, width: int, size: float, sides: int, ring: bool, rng: np.random.Generator) -> np.ndarray:
    """A soft disc or polygon of radius ``size`` at the image centre (a ring when ``ring``)."""
    canvas = np.zeros((height, width), np.float32)
    centre = np.array([width / 2, height / 2])
    if sides:
        angles = rng.uniform(0, np.pi) + np.arange(sides) * 2 * np.pi / sides
        corners = centre + size * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(corners * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    else:
        canvas = _disc(height, width, centre[0], centre[1], size)
    canvas = gaussian(canvas, rng.uniform(0.5, 0.08 * size + 0.6))
    if ring:
        canvas = np.clip(canvas - 0.8 * gaussian(_disc(height, width, centre[0], centre[1], 0.75 * size), 2.0), 0, 1)
    return canvas


def flare_light(shape: tuple[int, int], lights: list[Light], rng: np.random.Generator, *,
                strength: float = 1.0) -> np.ndarray:
    """The linear-light flare (H x W x 3, unbounded) that ``lights`` throw into the frame."""
    height, width = shape
    diagonal = float(np.hypot(height, width))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    flare = np.zeros((height, width, 3), np.float32)
    for light in lights:
        dx, dy = xs - light.x, ys - light.y
        radius = np.hypot(dx, dy)
        grey = _veil(radius, light, rng, diagonal) + _streaks(dx, dy, radius, light, rng, diagonal)
        flare += grey[..., None] * np.array(light.colour, np.float32)
    if rng.random() < 0.8:
        flare += _ghosts(shape, lights, rng, diagonal)
    return strength * flare


def lens_flare(image: np.ndarray, rng: np.random.Generator, *, site: str | None = None, strength: float = 1.0,
               source: tuple[float, float] | None = None, visibility: float = VISIBILITY) -> Synthesis:
    """Flare from a plausible light in ``image`` (float RGB, display-referred).

    ``site`` is how the light comes about (see :func:`~ipad_qc.synthetic.survey.flare_sites`); by
    default one of those the image allows is drawn. ``source`` instead names the light's position
    (the caller vouches that a light is plausible there; one is drawn unless the photo has it).
    Raises :class:`NoPlausibleSite` when the image allows no site.
    """
    sites = [] if source is not None else flare_sites(image)
    if source is not None:
        site = "given"
    elif site is None:
        if not sites:
            raise NoPlausibleSite("no light source, night scene or sky to make a flare plausible")
        site = str(rng.choice(sites))
    if site == "given":
        reference, lights = light_at(image, rng, *source)
    elif site == "detected":
        reference, lights = image, detected_lights(image, rng)
        if not lights:
            raise NoPlausibleSite("no clipped light source in the image")
    elif site == "lamp":
        reference, lights = add_lamps(image, rng)
    elif site == "sun":
        reference, lights = add_sun(image, rng, sky_mask(image))
    else:
        raise ValueError(f"unknown flare site {site!r}; choose from detected, lamp, sun")
    flared = to_display(to_linear(reference) + flare_light(image.shape[:2], lights, rng, strength=strength))
    mask = fill_holes(visible_mask(flared, reference, visibility, close=15))
    params = {"site": site, "strength": strength,
              "sources": [[round(light.x, 1), round(light.y, 1), round(light.radius, 1), round(light.radiance, 1)]
                          for light in lights]}
    return Synthesis(flared, reference, mask, params)
