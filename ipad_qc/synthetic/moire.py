"""Moiré as a camera makes it: a photo of a screen, simulated from the display's sub-pixels to the output.

The displayed picture is emitted through the display's sub-pixel grid, seen in perspective through a
lens with barrel or pincushion distortion (so the beat bands curve), blurred by the lens, integrated
by each pixel's aperture, sampled through a Bayer colour filter array, demosaiced and seen ``zoom``
times smaller than recorded (:mod:`.subpixels` computes all of that in closed form). Where a grid
harmonic lies near a fold of the colour lattice, its energy comes back as the curved, coloured
fringes of real screen photos; where lens blur or the grid's density hides it, the same capture is
a clean photo of a screen (a hard negative). The ISP's chroma noise reduction follows.

Three placements, each returning a :class:`~ipad_qc.synthetic.optics.Synthesis`:

* ``fullframe``: the camera pointed at a screen that fills the frame, showing the photo;
* ``detected``: the lit screen the photo already shows (:func:`~.screens.find_screen`) gets its grid;
* ``placed``: a device with a bezel is put into the scene (:func:`~.screens.place_device`, never on
  the sky), showing another view of the photo.

The *reference* is the same capture with the grid replaced by its average light (same geometry, tone,
blur, colour processing); the mask is where the capture departs visibly from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ipad_qc.synthetic.optics import Synthesis, gaussian, to_display, to_linear, visible_mask
from ipad_qc.synthetic.screens import find_screen, place_device
from ipad_qc.synthetic.sensor import BAYER_LAYOUTS, crosstalk
from ipad_qc.synthetic.subpixels import SubpixelGrid, grid_residual
from ipad_qc.synthetic.survey import NoPlausibleSite

#: Default visibility of a fringe (display-referred units) and the closing that joins its bands.
VISIBILITY, CLOSE = 0.035, 9
#: How many times smaller than recorded a screen photo is seen (equally likely choices): mostly
#: downscaled, so the screen-door texture is gone and the beats remain, as in shared phone photos.
ZOOMS = (1, 2, 2, 2, 3, 3, 3, 3, 4, 4)
MODES = ("fullframe", "detected", "placed")
#: Display pitches (sensor pixels) at which a grid harmonic k lands on a fold j/2 of the Bayer lattice
#: (pitch = 2k / j): ``(pitch, k, how often it is drawn)``. 2 px is the classic colour moiré of the red
#: and blue sites; 1 px aliases the luma too but needs a very sharp lens.
RESONANCES = ((2.0, 1, 0.65), (4.0, 2, 0.15), (6.0, 3, 0.05), (1.0, 1, 0.15))
_YCC = np.array([[0.299, 0.587, 0.114], [0.5, -0.4187, -0.0813], [-0.1687, -0.3313, 0.5]], np.float32)


@dataclass(frozen=True)
class Camera:
    """How the photo of the screen is taken and processed."""

    blur: float = 0.4  # Gaussian point spread of the lens, sensor pixels (defocus makes it large)
    aperture: float = 0.9  # width of a pixel's light-sensitive square, sensor pixels
    layout: str = "RGGB"  # Bayer site layout
    zoom: int = 2  # sensor pixels per output pixel: the photo is seen smaller than it was recorded
    exposure: float = 0.85  # linear gain from the screen's white to the raw frame
    depth: float = 1.0  # modulation depth of the grid (φ of the paper's Eq. 1, applied to the raw frame)
    chroma: float = 1.0  # the ISP's chroma noise reduction, output pixels
    sharpen: float = 0.5  # the ISP's unsharp-mask amount

    @classmethod
    def draw(cls, rng: np.random.Generator, blur: tuple[float, float] = (0.25, 0.55),
             depth: tuple[float, float] = (0.6, 1.0), zooms: tuple[int, ...] = ZOOMS) -> Camera:
        """A camera with parameters drawn from the given ranges (``zooms``: equally likely choices)."""
        return cls(blur=float(rng.uniform(*blur)), aperture=float(rng.uniform(0.75, 1.0)),
                   layout=str(rng.choice(list(BAYER_LAYOUTS))), zoom=int(rng.choice(zooms)),
                   exposure=float(rng.uniform(0.85, 1.05)), depth=float(rng.uniform(*depth)),
                   chroma=float(rng.uniform(0.3, 1.5)), sharpen=float(rng.uniform(0.2, 1.0)))

    def params(self) -> dict:
        return {"blur": round(self.blur, 3), "zoom": self.zoom, "depth": round(self.depth, 3), "cfa": self.layout}


def draw_grid(rng: np.random.Generator) -> SubpixelGrid:
    """An RGB or BGR stripe display with a random black-matrix fill."""
    order = (0, 1, 2) if rng.random() < 0.8 else (2, 1, 0)
    return SubpixelGrid(order=order, duty=float(rng.uniform(0.6, 0.95)), row_fill=float(rng.uniform(0.6, 0.9)))


def draw_pitch(rng: np.random.Generator, zoom: int, period: tuple[float, float] = (8.0, 90.0)) -> float:
    """A display pixel size (sensor pixels) detuned from a resonance so that its beat has a period of
    ``period`` output pixels (log-uniform) once the photo is seen ``zoom`` times smaller."""
    weights = np.array([weight for _, _, weight in RESONANCES])
    resonance, harmonic, _ = RESONANCES[int(rng.choice(len(RESONANCES), p=weights / weights.sum()))]
    beat = 1 / (zoom * float(np.exp(rng.uniform(np.log(period[0]), np.log(period[1])))))  # cycles per sensor px
    frequency = 1 / resonance + (beat if rng.random() < 0.5 else -beat) / harmonic
    return float(1 / max(frequency, 0.05))


def _isp(image: np.ndarray, camera: Camera) -> np.ndarray:
    """A phone ISP's finish, linear so it applies to differences too: chroma noise reduction (blur the
    colour-difference planes: pixel-scale colour checkerboards go, colour bands tens of pixels wide,
    the moiré, stay) and an unsharp mask on luma, as in real screen photos."""
    ycc = image @ _YCC.T
    ycc[..., 1:] = gaussian(np.ascontiguousarray(ycc[..., 1:]), camera.chroma)
    ycc[..., 0] += camera.sharpen * (ycc[..., 0] - gaussian(np.ascontiguousarray(ycc[..., 0]), 1.0))
    return (ycc @ np.linalg.inv(_YCC).T).astype(np.float32)


def capture(content: np.ndarray, u: np.ndarray, v: np.ndarray, grid: SubpixelGrid, camera: Camera,
            rng: np.random.Generator, *, displayed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(capture, reference)``, display-referred, of a screen at display coordinates ``u, v`` (per
    output pixel, see :func:`grid_residual`).

    With ``displayed``, ``content`` is the picture the display shows: it gets the display's tone and
    white point and the camera's blur, and the reference is that view without the grid. Otherwise
    ``content`` is already the camera's view of the screen (a screen the photo shows) and is its own
    reference; only the grid's residual is added to it.
    """
    response = crosstalk(rng)
    if displayed:
        white = (1 + rng.uniform(-0.06, 0.06, 3)).astype(np.float32)  # display white point vs camera white balance
        black = rng.uniform(0.001, 0.008)  # the display's black level, linear
        # the room reflected in the glass: a faint veil, brighter towards one side, that lifts the blacks
        height, width = content.shape[:2]
        ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :] * np.cos(rng.uniform(0, 2 * np.pi))
        ramp = ramp + np.linspace(0, 1, height, dtype=np.float32)[:, None] * rng.uniform(-1, 1)
        glare = rng.uniform(0.0, 0.04) * (1 + 0.5 * (ramp - ramp.mean()))[..., None]
        light = camera.exposure * (to_linear(content) * (1 - black) + black) * white + glare
        # the picture is already at the output scale: only the lens and pixel blur, seen zoom times smaller
        light = gaussian(light, np.sqrt(camera.blur**2 + camera.aperture**2 / 12) / camera.zoom)
    else:
        light = to_linear(content)
    residual = grid_residual(light, u, v, grid, response=response, layout=camera.layout, blur=camera.blur,
                             aperture=camera.aperture, zoom=camera.zoom)
    unmix = np.linalg.inv(response).T.astype(np.float32)  # the camera's colour matrix undoes the crosstalk
    flat = to_display(light)
    change = _isp(to_display(light + camera.depth * (residual @ unmix)) - flat, camera)
    reference = np.clip(_isp(flat, camera), 0, 1) if displayed else content
    return np.clip(reference + change, 0, 1).astype(np.float32), reference.astype(np.float32)


def distort(xs: np.ndarray, ys: np.ndarray, width: int, height: int, k1: float) -> tuple[np.ndarray, np.ndarray]:
    """Radial lens distortion about the image centre (``k1`` < 0 barrel, > 0 pincushion), radius 1 at a corner."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    dx, dy = xs - cx, ys - cy
    factor = 1 + k1 * (dx * dx + dy * dy) / (cx * cx + cy * cy)
    return cx + dx * factor, cy + dy * factor


def project(matrix: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 3 x 3 homography to coordinate arrays."""
    w = matrix[2, 0] * xs + matrix[2, 1] * ys + matrix[2, 2]
    return ((matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]) / w,
            (matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]) / w)


def _coordinates(to_screen: np.ndarray, box: tuple[int, int, int, int], width: int, height: int,
                 k1: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Display-pixel coordinates ``(u, v)`` seen by the output pixels of ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return project(to_screen, *distort(xs, ys, width, height, k1))


def screen_capture(content: np.ndarray, rng: np.random.Generator, *, pitch: float | None = None,
                   blur: tuple[float, float] = (0.25, 0.55), depth: tuple[float, float] = (0.6, 1.0),
                   zooms: tuple[int, ...] | None = None, visibility: float = VISIBILITY) -> Synthesis:
    """A photo of a screen that fills the frame and shows ``content`` (float RGB, display-referred).

    ``pitch`` is the display pixel in sensor pixels (default: :func:`draw_pitch`); the screen's roll
    is within about ±8° (a quarter of the displays are turned to portrait: their stripes run
    across), with keystone perspective and barrel or pincushion distortion.
    """
    height, width = content.shape[:2]
    camera = Camera.draw(rng, blur, depth, ZOOMS if zooms is None else zooms)
    grid = draw_grid(rng)
    pitch = draw_pitch(rng, camera.zoom) if pitch is None else float(pitch)
    angle = float(rng.normal(0, 0.07))
    portrait = bool(rng.random() < 0.25)
    keystone, k1 = float(rng.uniform(0, 0.12)), float(rng.uniform(-0.12, 0.06))
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (corners - [width / 2, height / 2]) * (1 + rng.uniform(-keystone, keystone, (4, 1)))
    screen = tilted @ rotation.T / (pitch / camera.zoom) + rng.uniform(0, 1000, 2)
    to_screen = cv2.getPerspectiveTransform(corners.astype(np.float32), screen.astype(np.float32))
    u, v = _coordinates(to_screen.astype(np.float64), (0, 0, width, height), width, height, k1)
    # the displayed picture fills the part of the display the camera sees, upright
    map_x = ((u - u.min()) / max(np.ptp(u), 1e-6) * (width - 1)).astype(np.float32)
    map_y = ((v - v.min()) / max(np.ptp(v), 1e-6) * (height - 1)).astype(np.float32)
    shown = cv2.remap(content, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # a display turned to portrait shows the picture upright, but its stripes now run across
    grid_u, grid_v = (v, -u) if portrait else (u, v)
    image, reference = capture(shown, grid_u, grid_v, grid, camera, rng)
    params = {"mode": "fullframe", "pitch": round(pitch, 4), "angle_deg": round(float(np.degrees(angle)), 2),
              "portrait": portrait, "keystone": round(keystone, 3), "distortion": round(k1, 3), **camera.params()}
    return Synthesis(image, reference, visible_mask(image, reference, visibility, CLOSE), params)


def _quad_alpha(quad: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased coverage (float32 [0, 1]) of a quadrilateral."""
    canvas = np.zeros((height, width), np.uint8)
    cv2.fillPoly(canvas, [np.round(np.asarray(quad) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255


def _with_bezel(image: np.ndarray, quad: np.ndarray, width_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The scene with the device's frame: a dark (or silver) band with a soft top-lit sheen around ``quad``."""
    centre = quad.mean(axis=0)
    short = min(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[3] - quad[0]))
    grow = 1 + 2 * width_fraction * short / np.linalg.norm(quad - centre, axis=1).mean()
    alpha = _quad_alpha(centre + (quad - centre) * grow, *image.shape[:2])[..., None]
    tone = rng.uniform(0.02, 0.1) if rng.random() < 0.85 else rng.uniform(0.55, 0.8)
    sheen = np.linspace(1.2, 0.85, image.shape[0], dtype=np.float32)[:, None, None]
    frame = np.clip(tone * sheen + rng.uniform(-0.01, 0.01, 3).astype(np.float32), 0, 1)
    return (image * (1 - alpha) + frame * alpha).astype(np.float32)


def screen_in_scene(image: np.ndarray, quad: np.ndarray, rng: np.random.Generator, *, content: np.ndarray | None,
                    pitch: float | None = None, bezel: float = 0.0, blur: tuple[float, float] = (0.25, 0.55),
                    depth: tuple[float, float] = (0.6, 1.0), zooms: tuple[int, ...] | None = None,
                    visibility: float = VISIBILITY) -> Synthesis:
    """The scene with a photographed screen in ``quad`` (4 x 2 corners, clockwise from top-left).

    ``content`` is the picture the screen shows, stretched over it; ``None`` means the scene's own
    pixels inside the quad are the screen as the camera saw it (a screen the photo already has).
    ``bezel`` is the frame's width as a fraction of the screen's short side (0: none is drawn).
    """
    height, width = image.shape[:2]
    quad = np.asarray(quad, np.float64)
    camera = Camera.draw(rng, blur, depth, ZOOMS if zooms is None else zooms)
    grid = draw_grid(rng)
    pitch = draw_pitch(rng, camera.zoom) if pitch is None else float(pitch)
    side_u = (np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    side_v = (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    screen = np.array([[0, 0], [side_u, 0], [side_u, side_v], [0, side_v]]) / (pitch / camera.zoom)
    to_screen = cv2.getPerspectiveTransform(quad.astype(np.float32), screen.astype(np.float32)).astype(np.float64)
    x0, y0 = np.maximum(np.floor(quad.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(quad.max(axis=0)).astype(int) + 3, [width, height])
    u, v = _coordinates(to_screen, (x0, y0, x1, y1), width, height)
    scene = _with_bezel(image, quad, bezel, rng) if bezel > 0 else image
    if content is None:
        shown = scene[y0:y1, x0:x1]
    else:
        scale = (content.shape[1] / screen[2, 0], content.shape[0] / screen[2, 1])
        shown = cv2.remap(content, (u * scale[0]).astype(np.float32), (v * scale[1]).astype(np.float32),
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    captured, flat = capture(shown, u, v, grid, camera, rng, displayed=content is not None)
    coverage = _quad_alpha(quad, height, width)
    alpha = coverage[y0:y1, x0:x1, None]
    result, reference = scene.copy(), scene.copy()
    result[y0:y1, x0:x1] = scene[y0:y1, x0:x1] + (captured - flat) * alpha
    if content is not None:  # the screen shows a new picture (else the scene itself is the reference)
        reference[y0:y1, x0:x1] = scene[y0:y1, x0:x1] * (1 - alpha) + flat * alpha
        result[y0:y1, x0:x1] += (flat - scene[y0:y1, x0:x1]) * alpha
    mask = visible_mask(result, reference, visibility, CLOSE, within=coverage > 0)
    params = {"mode": "scene", "pitch": round(pitch, 4), "quad": np.round(quad, 1).tolist(), "bezel": round(bezel, 3),
              **camera.params()}
    return Synthesis(result, reference, mask, params)


def _another_view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a placed screen shows: a mirrored, zoomed-in part of the photo (not the pixels behind it)."""
    height, width = image.shape[:2]
    zoom = rng.uniform(0.5, 0.9)
    crop_w, crop_h = max(2, int(width * zoom)), max(2, int(height * zoom))
    x0, y0 = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    return np.ascontiguousarray(image[y0 : y0 + crop_h, x0 : x0 + crop_w][:, ::-1])


def screen_moire(image: np.ndarray, rng: np.random.Generator, mode: str, *,
                 coverage: tuple[float, float] = (0.08, 0.35), screen_min_area: float = 0.04,
                 **options) -> Synthesis:
    """Moiré in one of ``MODES`` (see the module docstring); ``options`` go to the capture functions.

    ``coverage`` is the range of the frame a placed device's screen covers, ``screen_min_area`` the
    smallest share of the frame a detected screen may have.

    Raises :class:`~ipad_qc.synthetic.survey.NoPlausibleSite` for ``detected`` when the photo shows
    no lit screen, and for ``placed`` when every place for a device is on the sky.
    """
    if mode == "fullframe":
        return screen_capture(image, rng, **options)
    if mode == "detected":
        quad = find_screen(image, min_fraction=screen_min_area)
        if quad is None:
            raise NoPlausibleSite("the photo shows no lit screen")
        result = screen_in_scene(image, quad, rng, content=None, **options)
    elif mode == "placed":
        quad, device = place_device(image, rng, coverage)
        result = screen_in_scene(image, quad, rng, content=_another_view(image, rng),
                                 bezel=float(rng.uniform(0.02, 0.08)), **options)
        result.params["device"] = device
    else:
        raise ValueError(f"unknown moiré mode {mode!r}; choose from {', '.join(MODES)}")
    result.params["mode"] = mode
    return result
