"""The procedural benchmark's artifacts: simple ``add_*`` generators, frozen, behind ``make_case``.

``make_case`` (a procedural scene plus one of these) is the seeded benchmark of
``benchmarks/bench_classic.py`` and the ``classic`` detector's tests, and ``add_flare`` / ``add_moire``
make the removal hooks' benchmark pairs (``ipad_qc.routing.pairs``). Classic's logistic weights and
the hooks' figures were fitted and measured on exactly these cases, so they are kept byte-for-byte
as they were. They are *not* realistic (an alpha-blended screen, a pasted textured blob, a flare at
the brightest spot or anywhere): ``ipad-qc synth`` uses the physical synthesisers (:mod:`.moire`,
:mod:`.flare`, :mod:`.ghosting`). Retire this module once classic and the hooks are measured on
realistic data.

Each ``add_*`` takes a clean float32 RGB image and a Generator and returns ``(image, mask)``; outside
the mask ``add_flare`` and ``add_moire`` leave the image untouched (the paper's Eq. 1).
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.synthetic.moire import project
from ipad_qc.synthetic.optics import fill_holes
from ipad_qc.synthetic.scenes import pink_noise

_GAMMA = 2.2


def to_linear(image: np.ndarray) -> np.ndarray:
    """Display-referred [0, 1] values to linear light (a plain gamma; exact sRGB is not needed)."""
    return np.power(np.clip(image, 0, 1), _GAMMA)


def to_display(linear: np.ndarray) -> np.ndarray:
    """Linear light to display-referred values, clipped like a sensor at full well."""
    return np.power(np.clip(linear, 0, 1), 1 / _GAMMA).astype(np.float32)


def blend_eq1(image: np.ndarray, pattern: np.ndarray, mask: np.ndarray, phi: float) -> np.ndarray:
    """Eq. 1: ``I = I_gt ⊙ (1 − M) + [(1 − φ) I_gt + φ N] ⊙ M`` with a binary mask ``M``."""
    blended = (1 - phi) * image + phi * pattern
    return np.where(mask[..., None], blended, image).astype(np.float32)


def _pick(rng: np.random.Generator, value: float | None, low: float, high: float) -> float:
    return float(rng.uniform(low, high)) if value is None else float(value)


def brightest_blob(image: np.ndarray) -> tuple[float, float]:
    """Centre (x, y) of the brightest smoothed spot: where a detector of the sun/lamp would put it."""
    luminance = image.mean(axis=2)
    smooth = cv2.GaussianBlur(luminance, (0, 0), max(2.0, 0.01 * max(image.shape[:2])))
    y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return float(x), float(y)


def flare_pattern(
    rng: np.random.Generator,
    height: int,
    width: int,
    source: tuple[float, float],
    *,
    strength: float = 1.0,
) -> np.ndarray:
    """Linear-light flare ``N`` (H x W x 3, unbounded): source core, glow, streaks and reflection ghosts.

    The glow is a power-law veiling glare (intensity ∝ 1/(1 + (r/r0)²)), the streaks are diffraction
    spikes of the aperture blades, and the ghosts are inter-reflections which, for a centred optical
    system, lie on the line through the source and the image centre.
    """
    diagonal = float(np.hypot(height, width))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xs - source[0], ys - source[1]
    radius = np.sqrt(dx * dx + dy * dy)
    tint = np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.55, 1.0)], np.float32)
    if rng.random() < 0.3:
        tint = tint[::-1].copy()

    core_radius = rng.uniform(0.006, 0.015) * diagonal
    glow_radius = rng.uniform(0.03, 0.08) * diagonal
    intensity = 6.0 * np.clip(1 - (radius / core_radius) ** 2, 0, 1)
    intensity += rng.uniform(0.5, 1.5) / (1 + (radius / glow_radius) ** 2) ** 1.5

    blades = int(rng.choice([4, 6, 8, 12]))
    theta = np.arctan2(dy, dx)
    phase = rng.uniform(0, np.pi)
    spike_width = rng.uniform(1.0, 2.5) * diagonal / 1000
    along = np.exp(-radius / (rng.uniform(0.1, 0.3) * diagonal))
    for k in range(blades):
        offset = np.angle(np.exp(1j * (theta - phase - k * 2 * np.pi / blades)))
        across = radius * np.sin(np.abs(offset).clip(max=np.pi / 2))
        intensity += rng.uniform(0.2, 0.6) * along * np.exp(-0.5 * (across / spike_width) ** 2)

    pattern = intensity[..., None] * tint
    centre = np.array([width / 2, height / 2])
    axis = centre - np.array(source)
    for t in rng.uniform(-0.5, 1.6, int(rng.integers(2, 6))):
        gx, gy = centre + t * axis
        ghost_radius = rng.uniform(0.01, 0.05) * diagonal
        distance = np.sqrt((xs - gx) ** 2 + (ys - gy) ** 2) / ghost_radius
        disc = np.clip((1 - distance) * 8, 0, 1)
        if rng.random() < 0.4:
            disc = disc * np.clip(distance * 1.5 - 0.5, 0, 1)
        pattern += (rng.uniform(0.03, 0.12) * disc)[..., None] * rng.uniform(0.4, 1.0, 3).astype(np.float32)
    return (strength * pattern).astype(np.float32)


def add_flare(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    source: tuple[float, float] | None = None,
    strength: float | None = None,
    visibility: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Add lens flare around a light source; mask = where the flare changes the pixel by > ``visibility``,
    with the holes it encloses (the clipped source itself) filled.

    ``source`` defaults to the brightest blob of the scene (half of the time) or a random point in the
    upper two thirds; pass one of ``light_sources(image)`` to put the flare on a real light. ``strength``
    (default 0.5–1.5) scales the whole pattern.
    """
    height, width = image.shape[:2]
    if source is None:
        if rng.random() < 0.5:
            source = brightest_blob(image)
        else:
            source = (rng.uniform(0.1, 0.9) * width, rng.uniform(0.05, 0.65) * height)
    pattern = flare_pattern(rng, height, width, source, strength=_pick(rng, strength, 0.5, 1.5))
    flared = to_display(to_linear(image) + pattern)
    mask = fill_holes((flared - image).max(axis=2) > visibility)
    return np.where(mask[..., None], flared, image).astype(np.float32), mask


def _screen_quad(rng: np.random.Generator, height: int, width: int, coverage: float) -> np.ndarray:
    """Corners (4 x 2, clockwise from top-left) of a perspective-warped, rotated screen."""
    screen_w = width * np.sqrt(coverage) * rng.uniform(0.9, 1.2)
    screen_h = min(screen_w * rng.uniform(0.55, 0.8), height * 0.9)
    angle = rng.uniform(-0.35, 0.35)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * [screen_w / 2, screen_h / 2]
    corners += rng.uniform(-0.12, 0.12, (4, 2)) * [screen_w, screen_h]
    corners = corners @ rotation.T
    span = corners.max(axis=0) - corners.min(axis=0)
    low = -corners.min(axis=0)
    high = np.array([width, height]) - corners.max(axis=0)
    centre = (
        rng.uniform(low, np.maximum(high, low + 1))
        if np.all(span < [width, height])
        else [width / 2, height / 2]
    )
    return (corners + centre).astype(np.float32)


def _aliasing_pitch(rng: np.random.Generator) -> float:
    """Screen pixel pitch in sensor pixels whose sub-pixel frequency lies just off a multiple of the
    Bayer colour lattice's Nyquist frequency (0.5 cycles/px), so its alias is a visible beat with a
    period of ~8–60 px rather than fine noise."""
    while True:
        pitch = rng.uniform(0.7, 2.6)
        frequency = 1 / pitch
        beat = abs(frequency - round(2 * frequency) / 2)
        if 0.015 < beat < 0.12:
            return float(pitch)


def render_screen(
    image: np.ndarray,
    quad: np.ndarray,
    pitch: float,
    rng: np.random.Generator,
    supersample: int = 2,
) -> np.ndarray:
    """What a Bayer sensor records of a screen that displays ``image``'s content inside ``quad``.

    The screen has pixels of ``pitch`` sensor pixels, each made of R, G, B vertical sub-pixel stripes
    and a black matrix. Every sensor pixel integrates ``supersample``² point samples of the emitted
    light through its colour filter (RGGB), and the mosaic is demosaiced bilinearly. Because the
    sub-pixel grid is finer than the colour lattice, its energy folds back to low frequencies:
    coloured beat bands, coloured because the three stripes are offset and sampled on different sites.
    """
    height, width = image.shape[:2]
    side_u = np.linalg.norm(quad[1] - quad[0])
    side_v = np.linalg.norm(quad[3] - quad[0])
    n_u, n_v = max(2.0, round(side_u / pitch)), max(2.0, round(side_v / pitch))
    screen = np.array([[0, 0], [n_u, 0], [n_u, n_v], [0, n_v]], np.float32)
    to_screen = cv2.getPerspectiveTransform(quad, screen)
    to_image = np.linalg.inv(to_screen)
    stripe_duty = rng.uniform(0.6, 0.9)
    row_fill = rng.uniform(0.65, 0.9)

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    bayer = (ys % 2) + (xs % 2)  # RGGB: 0 = R, 1 = G, 2 = B
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    mosaic = np.zeros((height, width), np.float64)
    for oy in offsets:
        for ox in offsets:
            u, v = project(to_screen, xs + ox, ys + oy)
            cell_u, cell_v = np.floor(u), np.floor(v)
            content_x, content_y = project(to_image, cell_u + 0.5, cell_v + 0.5)
            cx = np.clip(np.round(content_x), 0, width - 1).astype(np.intp)
            cy = np.clip(np.round(content_y), 0, height - 1).astype(np.intp)
            subpixel = (u - cell_u) * 3
            lit = ((v - cell_v) < row_fill) & (subpixel >= bayer) & (subpixel < bayer + stripe_duty)
            mosaic += lit * image[cy, cx, bayer.astype(np.intp)]
    gain = 3.0 / (stripe_duty * row_fill * supersample**2)
    raw = np.round(np.clip(mosaic * gain, 0, 1) * 65535).astype(np.uint16)
    return cv2.cvtColor(raw, cv2.COLOR_BayerRG2RGB).astype(np.float32) / 65535.0


def add_moire(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    coverage: float | None = None,
    pitch: float | None = None,
    phi: float | None = None,
    quad: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a quadrilateral of the scene into a photographed screen showing aliasing moiré.

    ``quad`` (4 x 2 corners, clockwise from top-left, e.g. from ``find_screen``) is the screen; without
    it a perspective-warped screen covering ``coverage`` (default 0.12–0.45) of the image is placed at
    random. ``pitch`` is the screen's pixel pitch in sensor pixels (default: see ``_aliasing_pitch``),
    ``phi`` the Eq. 1 blend factor (default 0.35–0.8). The mask is the screen quadrilateral.
    """
    height, width = image.shape[:2]
    if quad is None:
        quad = _screen_quad(rng, height, width, _pick(rng, coverage, 0.12, 0.45))
    quad = np.asarray(quad, np.float32)
    pitch = _aliasing_pitch(rng) if pitch is None else pitch
    pattern = render_screen(image, quad, pitch, rng)
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, [np.round(quad).astype(np.int32)], 1)
    mask = canvas.astype(bool)
    return blend_eq1(image, pattern, mask, _pick(rng, phi, 0.35, 0.8)), mask


def _moving_object(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured object with strong outer and inner edges (a person, a car): its layer and alpha."""
    size = min(height, width) * rng.uniform(0.15, 0.35)
    centre = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height])
    outline = _blob(height, width, centre, size, rng)
    colour = rng.uniform(0.05, 0.95, 3).astype(np.float32)
    layer = colour * (0.8 + 0.15 * pink_noise(rng, height, width, 1.2)[..., None])
    for _ in range(int(rng.integers(1, 4))):
        inner = _blob(height, width, centre + rng.uniform(-0.25, 0.25, 2) * size, size * 0.35, rng)[..., None]
        layer = layer * (1 - inner) + inner * rng.uniform(0.05, 0.95, 3).astype(np.float32)
    return np.clip(layer, 0, 1).astype(np.float32), outline


def _blob(height: int, width: int, centre: np.ndarray, size: float, rng: np.random.Generator) -> np.ndarray:
    """Anti-aliased alpha of an ellipse or a rectangle around ``centre``."""
    canvas = np.zeros((height, width), np.uint8)
    half = np.array([size * rng.uniform(0.3, 0.6), size * rng.uniform(0.4, 0.9)])
    if rng.random() < 0.5:
        axes = (int(half[0]), int(half[1]))
        cv2.ellipse(
            canvas,
            (int(centre[0]), int(centre[1])),
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )
    else:
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half + centre
        cv2.fillPoly(canvas, [np.round(corners * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(
        image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def _well_exposedness(captured: np.ndarray) -> np.ndarray:
    """Mertens et al. well-exposedness weight: trust pixels near mid-grey, distrust clipped ones."""
    return np.exp(-0.5 * ((captured - 0.5) / 0.2) ** 2).prod(axis=2) + 1e-6


def fuse_exposures(frames: list[np.ndarray], exposures: list[float]) -> np.ndarray:
    """Per-pixel weighted fusion of radiometrically normalised frames (no de-ghosting)."""
    total = np.zeros_like(frames[0])
    weights = np.zeros(frames[0].shape[:2], np.float32)
    for frame, exposure in zip(frames, exposures, strict=True):
        captured = to_display(to_linear(frame) * exposure)
        weight = _well_exposedness(captured)
        normalised = to_display(to_linear(captured) / exposure)
        total += weight[..., None] * normalised
        weights += weight
    return (total / weights[..., None]).astype(np.float32)


def add_ghosting(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    displacement: float | None = None,
    frames: int | None = None,
    shake: float | None = None,
    visibility: float = 0.04,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse a burst in which an object moved between frames: semi-transparent duplicates appear.

    ``displacement`` is the object's motion per frame as a fraction of the long side (default
    0.005–0.02), ``frames`` the burst length (default 2–3, exposures spread by up to ±1 EV), ``shake``
    a residual global misalignment in pixels (default 0–0.5, what a good aligner leaves). The mask is
    where the fused image departs from the same fusion with the object held still (i.e. the ideal
    de-ghosted result) by more than ``visibility``, dilated by a few pixels.
    """
    height, width = image.shape[:2]
    layer, alpha = _moving_object(rng, height, width)
    step = _pick(rng, displacement, 0.005, 0.02) * max(height, width)
    direction = rng.uniform(0, 2 * np.pi)
    count = int(rng.integers(2, 4)) if frames is None else frames
    shake = _pick(rng, shake, 0.0, 0.5)
    exposures = [1.0] + list(2.0 ** rng.uniform(-1, 1, count - 1))

    moving, still = [], []
    for index in range(count):
        jitter = rng.uniform(-shake, shake, 2) if index else np.zeros(2)
        dx, dy = index * step * np.cos(direction), index * step * np.sin(direction)
        scene = _shift(image, *jitter)
        still.append(_paste(scene, _shift(layer, *jitter), _shift(alpha, *jitter)))
        moving.append(
            _paste(
                scene,
                _shift(layer, dx + jitter[0], dy + jitter[1]),
                _shift(alpha, dx + jitter[0], dy + jitter[1]),
            )
        )
    fused = fuse_exposures(moving, exposures)
    reference = fuse_exposures(still, exposures)
    departure = (np.abs(fused - reference).max(axis=2) > visibility).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.dilate(departure, kernel).astype(bool)
    return fused, mask


def _paste(scene: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return (scene * (1 - a) + layer * a).astype(np.float32)
