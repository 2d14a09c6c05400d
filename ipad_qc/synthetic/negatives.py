"""Clean photos that look like artifacts: the hard negatives a detector must learn to leave alone.

Each recipe takes a clean crop and returns a clean image (float RGB) that resembles one artifact
class without having it:

* ``screen``: a photo of a screen whose grid the lens defocus or the display's density hides (the
  capture is kept only when its moiré mask is empty; otherwise its alias-free reference is used);
* ``lamps``: a night scene with lamps that do not flare (the flare synthesiser's reference);
* ``fused``: an exposure-fused or averaged burst in which nothing moved (the HDR look, no ghost);
* ``texture``: a 1:1 window of the photo where its finest regular texture is (brick, fabric, grass);
* ``text``: a printed sign or page in the scene, in perspective (repeated letter strokes);
* ``photo``: the crop itself.

Black borders and JPEG are not recipes: the capture tail (:mod:`.capture`) applies them to every
label alike. A recipe that does not fit the photo (no night scene for ``lamps``) raises
:class:`~ipad_qc.synthetic.survey.NoPlausibleSite`; the caller falls back to ``photo``.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.synthetic.flare import add_lamps
from ipad_qc.synthetic.ghosting import FUSIONS, expose, fuse
from ipad_qc.synthetic.moire import screen_capture, screen_in_scene
from ipad_qc.synthetic.screens import place_device
from ipad_qc.synthetic.survey import NoPlausibleSite, is_night, lamp_spots

RECIPES = ("photo", "screen", "lamps", "fused", "texture", "text")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
          cv2.FONT_HERSHEY_PLAIN)


def clean_screen(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A photo of a screen without visible moiré: defocused (blur 1–2.5 sensor px) or far away and dense."""
    defocus = rng.random() < 0.6
    blur = (1.0, 2.5) if defocus else (0.3, 0.55)
    options = {"blur": blur, "pitch": None if defocus else float(rng.uniform(0.3, 0.55)), "zooms": (2, 3, 4)}
    if rng.random() < 0.7:
        result = screen_capture(image, rng, **options)
    else:
        quad, _ = place_device(image, rng)
        view = np.ascontiguousarray(image[:, ::-1])
        result = screen_in_scene(image, quad, rng, content=view, bezel=float(rng.uniform(0.02, 0.08)), **options)
    hidden = not result.mask.any()
    return (result.image if hidden else result.reference), {**result.params, "defocus": defocus,
                                                           "kept": "capture" if hidden else "reference"}


def clean_lamps(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A night scene with added lamps that do not flare."""
    if not (is_night(image) and lamp_spots(image)):
        raise NoPlausibleSite("not a night scene with a glowing spot for a lamp")
    lit, lights = add_lamps(image, rng)
    return lit, {"lamps": len(lights)}


def still_burst(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A burst in which nothing moved, fused as a ghosting sample would be (Mertens or average)."""
    frames = int(rng.integers(2, 5))
    fusion = str(rng.choice(FUSIONS, p=[0.75, 0.25]))
    spread = rng.uniform(0.5, 2.0)
    evs = [0.0] * frames if fusion == "average" else [float(ev) for ev in np.linspace(-spread, spread, frames)]
    return fuse([expose(image, ev) for ev in evs], fusion, evs), {"frames": frames, "fusion": fusion}


def texture_window(photo: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A ``size`` window of the full-resolution ``photo`` (scaled up at most to fit) where its fine
    detail is strongest: the regular textures that aliasing and ghost detectors mistake for artifacts."""
    height, width = photo.shape[:2]
    side = min(size, height, width)
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    detail = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    best, best_box = -1.0, (0, 0)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        score = float(detail[y0 : y0 + side, x0 : x0 + side].mean())
        if score > best:
            best, best_box = score, (x0, y0)
    x0, y0 = best_box
    window = photo[y0 : y0 + side, x0 : x0 + side]
    if side != size:
        window = cv2.resize(window, (size, size), interpolation=cv2.INTER_CUBIC)
    return window, {"window": [x0, y0, side], "detail": round(best, 4)}


def _sign(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A flat sign or page (float RGB): a light or dark ground with lines of random words."""
    light = rng.random() < 0.75
    ground = rng.uniform(0.75, 0.97, 3) if light else rng.uniform(0.05, 0.3, 3)
    ink = rng.uniform(0.0, 0.2, 3) if light else rng.uniform(0.8, 1.0, 3)
    sign = np.empty((height, width, 3), np.uint8)  # OpenCV draws text on 8-bit images only
    sign[:] = np.round(ground * 255)
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    scale = rng.uniform(0.25, 0.9) * height / 260  # letters 3 to 12 px high once the sign is in place
    thickness = max(1, int(round(scale * rng.uniform(1, 2.2))))
    line = int(cv2.getTextSize("Ag", font, scale, thickness)[0][1] * rng.uniform(1.5, 2.2)) + 2
    for y in range(line, height - line // 3, line):
        x = int(rng.integers(2, max(3, width // 12)))
        while x < width - 10:
            word = "".join(rng.choice(list(_LETTERS), int(rng.integers(2, 9))))
            cv2.putText(sign, word, (x, y), font, scale, tuple(float(c) * 255 for c in ink), thickness, cv2.LINE_AA)
            x += cv2.getTextSize(word + " ", font, scale, thickness)[0][0]
    return sign.astype(np.float32) / 255


def text_sign(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The scene with a printed sign or page in perspective (off the sky), lit like its surroundings."""
    quad, _ = place_device(image, rng, coverage=(0.06, 0.3))
    height, width = image.shape[:2]
    flat_w = int(np.linalg.norm(quad[1] - quad[0]) * 2) + 8
    flat_h = int(np.linalg.norm(quad[3] - quad[0]) * 2) + 8
    sign = _sign(rng, flat_w, flat_h)
    source = np.float32([[0, 0], [flat_w, 0], [flat_w, flat_h], [0, flat_h]])
    warp = cv2.getPerspectiveTransform(source, quad.astype(np.float32))
    shown = cv2.warpPerspective(sign, warp, (width, height), flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(np.ones((flat_h, flat_w), np.float32), warp, (width, height), flags=cv2.INTER_LINEAR)
    inside = alpha > 0.5
    light = float(np.clip(image[inside].mean() * rng.uniform(1.0, 1.6), 0.25, 1.0)) if inside.any() else 1.0
    shown = cv2.GaussianBlur(shown * light, (0, 0), rng.uniform(0.3, 0.8))
    result = image * (1 - alpha[..., None]) + shown * alpha[..., None]
    return result.astype(np.float32), {"quad": np.round(quad, 1).tolist()}


def hard_negative(recipe: str, clean: np.ndarray, rng: np.random.Generator,
                  photo: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """The clean image of ``recipe`` (one of ``RECIPES``) made from the crop ``clean``; ``texture``
    needs the full-resolution ``photo`` as well."""
    if recipe == "photo":
        return clean, {}
    if recipe == "screen":
        return clean_screen(clean, rng)
    if recipe == "lamps":
        return clean_lamps(clean, rng)
    if recipe == "fused":
        return still_burst(clean, rng)
    if recipe == "texture":
        return texture_window(clean if photo is None else photo, clean.shape[0], rng)
    if recipe == "text":
        return text_sign(clean, rng)
    raise ValueError(f"unknown clean recipe {recipe!r}; choose from {', '.join(RECIPES)}")
