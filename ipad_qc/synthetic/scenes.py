"""Procedural clean scenes that look enough like photographs to be *hard negatives*.

A detector that only ever sees flat gradients learns nothing about false positives. These scenes
carry what makes artifact detectors misfire on real photos: strong straight edges (ghosting
detectors see duplicated edges everywhere), fine but properly sampled regular textures such as
brick, stripes and woven fabric (moiré detectors see periodic peaks), bright skies, white walls
and small lamps without glare (flare detectors see bright regions), 1/f natural texture and
signal-dependent sensor noise. Everything is drawn from ``rng`` so a seed fixes every byte.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Shortest period (pixels) of a regular texture. Nyquist is 2 px; 5 px keeps textures well
#: inside the band a real lens + sensor resolve without aliasing, so they are clean by definition.
MIN_TEXTURE_PERIOD = 5.0


def pink_noise(rng: np.random.Generator, height: int, width: int, exponent: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std noise with a 1/f^exponent amplitude spectrum (natural-image statistics)."""
    white = rng.standard_normal((height, width)).astype(np.float32)
    spectrum = np.fft.rfft2(white)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum *= radius ** (-exponent)
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=(height, width)).astype(np.float32)
    return noise / (noise.std() + 1e-8)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _sky_and_ground(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Bright sky gradient over a textured ground; the sky is sometimes nearly white (overcast)."""
    horizon = int(height * rng.uniform(0.25, 0.6))
    overcast = rng.random() < 0.4
    top = np.array([0.93, 0.94, 0.95]) if overcast else np.array([0.35, 0.55, 0.9])
    bottom = np.array([0.97, 0.97, 0.96]) if overcast else np.array([0.75, 0.85, 0.97])
    top = np.clip(top + rng.normal(0, 0.03, 3), 0, 1)
    t = np.linspace(0, 1, max(horizon, 1), dtype=np.float32)[:, None, None]
    image = np.empty((height, width, 3), np.float32)
    image[:horizon] = (1 - t) * top + t * bottom
    ground = rng.uniform(0.15, 0.55, 3).astype(np.float32)
    texture = pink_noise(rng, height - horizon, width, rng.uniform(0.8, 1.4))[..., None]
    shade = np.linspace(0.8, 1.1, height - horizon, dtype=np.float32)[:, None, None]
    image[horizon:] = ground * shade * (1 + 0.25 * texture)
    return image


def _shape_alpha(rng: np.random.Generator, height: int, width: int, size: float) -> np.ndarray:
    """Anti-aliased alpha (float32 [0, 1]) of a random ellipse, rectangle or polygon."""
    canvas = np.zeros((height, width), np.uint8)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    kind = rng.integers(3)
    if kind == 0:
        axes = (int(size * rng.uniform(0.3, 0.6)), int(size * rng.uniform(0.3, 0.6)))
        cv2.ellipse(
            canvas, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA
        )
    else:
        count = 4 if kind == 1 else int(rng.integers(5, 9))
        angles = (
            np.sort(rng.uniform(0, 2 * np.pi, count))
            if kind == 2
            else np.array([0.25, 0.75, 1.25, 1.75]) * np.pi
        )
        angles = angles + rng.uniform(0, np.pi)
        radii = size * rng.uniform(0.3, 0.6, count)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _composite(image: np.ndarray, alpha: np.ndarray, layer: np.ndarray) -> None:
    a = alpha[..., None]
    image *= 1 - a
    image += a * layer


def _shaded_object(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A flat-coloured object lit from one side, with mild surface texture."""
    xs, ys = _grid(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xs * np.cos(angle) + ys * np.sin(angle)) / max(height, width)
    colour = rng.uniform(0.05, 0.9, 3).astype(np.float32)
    light = (0.75 + 0.5 * ramp)[..., None]
    texture = 1 + 0.1 * pink_noise(rng, height, width, 1.5)[..., None]
    return colour * light * texture


def _regular_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Brick, stripes or woven fabric with a period far from Nyquist (see ``MIN_TEXTURE_PERIOD``)."""
    xs, ys = _grid(height, width)
    angle = rng.uniform(0, np.pi)
    u = xs * np.cos(angle) + ys * np.sin(angle)
    v = -xs * np.sin(angle) + ys * np.cos(angle)
    period = rng.uniform(MIN_TEXTURE_PERIOD, 20.0)
    colour_a = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    colour_b = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        weight = 0.5 + 0.5 * np.cos(2 * np.pi * u / period)
    elif kind == 1:
        weight = 0.25 * (
            2 + np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / (period * rng.uniform(0.8, 1.3)))
        )
    else:
        row_height = period * 1.5
        row = np.floor(v / row_height)
        brick_u = u / (period * 3) + 0.5 * (row % 2)
        mortar_v = np.abs(v / row_height - row - 0.5) * 2
        mortar_u = np.abs(brick_u - np.floor(brick_u) - 0.5) * 2
        joint = np.maximum(mortar_v, mortar_u)
        weight = np.clip((joint - 0.8) / 0.15, 0, 1)
    weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), 0.7)[..., None]
    return (1 - weight) * colour_a + weight * colour_b


def _white_wall(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A bright, almost uniform surface: bright but with no glare around it."""
    level = rng.uniform(0.85, 0.98)
    xs, _ = _grid(height, width)
    gradient = 1 - 0.06 * xs / width
    return np.repeat((level * gradient)[..., None], 3, axis=2)


def _add_lamps(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Small saturated discs (street lamps, bulbs): bright sources that do *not* flare."""
    height, width = image.shape[:2]
    canvas = np.zeros((height, width), np.uint8)
    for _ in range(count):
        radius = max(1, int(rng.uniform(0.004, 0.012) * max(height, width)))
        centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height * 0.7)))
        cv2.circle(canvas, centre, radius, 255, -1, cv2.LINE_AA)
    alpha = canvas.astype(np.float32) / 255.0
    _composite(image, alpha, np.ones_like(image))


def add_sensor_noise(
    rng: np.random.Generator, image: np.ndarray, strength: float | None = None
) -> np.ndarray:
    """Signal-dependent (shot + read) noise, as in a raw sensor after a mild denoise."""
    strength = rng.uniform(0.3, 1.0) if strength is None else strength
    variance = strength * (2e-4 * image + 2e-6)
    noisy = image + np.sqrt(variance) * rng.standard_normal(image.shape).astype(np.float32)
    return np.clip(noisy, 0, 1).astype(np.float32)


def clean_scene(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    objects: int | None = None,
    textures: int | None = None,
    lamps: int | None = None,
    noise: float | None = None,
) -> np.ndarray:
    """A clean, photo-like scene: float32 RGB in [0, 1], shape ``(height, width, 3)``.

    Counts left as ``None`` are drawn from ``rng``. The scene is finished with a slight lens blur
    (real optics never produce one-pixel steps) and sensor noise.
    """
    image = _sky_and_ground(rng, height, width)
    size = min(height, width)
    objects = int(rng.integers(2, 7)) if objects is None else objects
    textures = int(rng.integers(1, 3)) if textures is None else textures
    painters = [_shaded_object] * objects + [_regular_texture] * textures
    if rng.random() < 0.4:
        painters.append(_white_wall)
    for index in rng.permutation(len(painters)):
        alpha = _shape_alpha(rng, height, width, size * rng.uniform(0.25, 0.8))
        _composite(image, alpha, painters[index](rng, height, width))
    lamps = int(rng.choice([0, 0, 1, 2, 3])) if lamps is None else lamps
    _add_lamps(rng, image, lamps)
    image = cv2.GaussianBlur(np.clip(image, 0, 1), (0, 0), rng.uniform(0.5, 0.9))
    return add_sensor_noise(rng, image, noise)
