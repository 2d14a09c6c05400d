"""One sample of ``ipad-qc synth``: crop a clean photo, make the artifact (or a hard negative), pass the capture tail.

Each sample crops a random 80–100 % window of its photo and squashes it to ``size`` x ``size`` (the
model's input shape) *before* the artifact is made, so the artifact lives at the pixel scale it is
stored at. Then, per class:

* ``flare``: :func:`~ipad_qc.synthetic.flare.lens_flare` at a site the crop offers (its own lamps and
  night lamps are drawn twice as often as the sun, since flare photos are mostly night shots);
* ``moire``: a full-frame photo of a screen showing the crop (``moire_fullframe`` of the samples),
  else the lit screen the crop shows, else (``moire_placed``) a device placed off the sky, else full-frame;
* ``ghosting``: :func:`~ipad_qc.synthetic.ghosting.fused_burst` of the crop;
* ``clean``: one of the hard-negative recipes (:mod:`~ipad_qc.synthetic.negatives`), drawn by weight;
  one the crop does not allow (``lamps`` on a day photo) becomes a plain ``photo``.

A crop that offers no plausible site, or whose artifact stays invisible (mask under
``min_mask_fraction``), is drawn again, up to ``attempts`` times. Finally every sample, whatever its
label, goes through a :class:`~ipad_qc.synthetic.capture.CaptureTail` drawn from its own stream.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from ipad_qc.datasets.plan import Job, sample_rng, tail_rng
from ipad_qc.datasets.settings import CLEAN, SynthSettings
from ipad_qc.io import DecodeHint, load_image
from ipad_qc.synthetic.capture import CaptureTail
from ipad_qc.synthetic.flare import lens_flare
from ipad_qc.synthetic.ghosting import fused_burst
from ipad_qc.synthetic.moire import screen_moire
from ipad_qc.synthetic.negatives import hard_negative
from ipad_qc.synthetic.optics import Synthesis
from ipad_qc.synthetic.screens import find_screen
from ipad_qc.synthetic.survey import NoPlausibleSite, flare_sites

#: How often each flare site is drawn, relative to the others the crop offers.
SITE_WEIGHTS = {"detected": 2.0, "lamp": 2.0, "sun": 1.0}


def load_source(path: str | os.PathLike[str], settings: SynthSettings, *, full: bool = False) -> np.ndarray:
    """The clean photo as float32 RGB in [0, 1], decoded no larger than the crops need (``full``: as stored)."""
    return load_image(path, DecodeHint() if full else settings.decode_hint()).to_float()


def draw_crop(rng: np.random.Generator, height: int, width: int, crop_min: float) -> tuple[int, int, int, int]:
    """A random window ``(x0, y0, x1, y1)`` covering ``crop_min``–100 % of each side."""
    crop_w = max(1, round(width * rng.uniform(crop_min, 1.0)))
    crop_h = max(1, round(height * rng.uniform(crop_min, 1.0)))
    x0 = int(rng.integers(0, width - crop_w + 1))
    y0 = int(rng.integers(0, height - crop_h + 1))
    return x0, y0, x0 + crop_w, y0 + crop_h


def crop_resize(photo: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The window ``box`` squashed to ``size`` x ``size`` (the model's input shape), area-averaged."""
    x0, y0, x1, y1 = box
    return cv2.resize(photo[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def quantise(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] to the 8-bit values that are stored."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    share = np.array([weights[name] for name in names], float)
    return names[int(rng.choice(len(names), p=share / share.sum()))]


def _flare(clean: np.ndarray, rng: np.random.Generator, s: SynthSettings) -> Synthesis:
    sites = flare_sites(clean)
    if not sites:
        raise NoPlausibleSite("the crop has no light source, night scene or sky")
    site = _weighted(rng, {site: SITE_WEIGHTS[site] for site in sites})
    return lens_flare(clean, rng, site=site, strength=float(rng.uniform(*s.flare_strength)))


def _moire(clean: np.ndarray, rng: np.random.Generator, s: SynthSettings) -> Synthesis:
    options = {"blur": s.moire_blur, "depth": s.moire_phi}
    mode = "fullframe"
    if rng.random() >= s.moire_fullframe:
        if find_screen(clean, min_fraction=s.screen_min_area) is not None:
            mode = "detected"
        elif s.moire_placed:
            mode = "placed"
    try:
        return screen_moire(clean, rng, mode, coverage=s.moire_coverage, screen_min_area=s.screen_min_area,
                            **options)
    except NoPlausibleSite:  # every place for a device was on the sky: the screen fills the frame instead
        return screen_moire(clean, rng, "fullframe", **options)


def _ghosting(clean: np.ndarray, rng: np.random.Generator, s: SynthSettings) -> Synthesis:
    frames = int(rng.integers(s.ghost_frames[0], s.ghost_frames[1] + 1))
    return fused_burst(clean, rng, frames=frames, shift=s.ghost_shift)


MAKERS: dict[str, Callable[[np.ndarray, np.random.Generator, SynthSettings], Synthesis]] = {
    "flare": _flare, "moire": _moire, "ghosting": _ghosting}


def _negative(clean: np.ndarray, rng: np.random.Generator, s: SynthSettings,
              load_full: Callable[[], np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
    recipe = _weighted(rng, dict(s.clean_recipes))
    try:
        image, params = hard_negative(recipe, clean, rng, load_full() if recipe == "texture" else None)
        return image, {"recipe": recipe, **params}
    except NoPlausibleSite as reason:
        return clean, {"recipe": "photo", "wanted": recipe, "because": str(reason)}


def render(job: Job, settings: SynthSettings) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Make one sample in memory: ``(uint8 RGB image, bool mask or None, details)``.

    For an artifact, the returned mask is the last attempt's; it is empty when no attempt found a
    plausible site, and the caller skips samples whose mask is under ``min_mask_fraction``.
    """
    rng = sample_rng(settings.seed, job.index)
    tail = CaptureTail.draw(tail_rng(settings.seed, job.index), settings.tail)
    photo = load_source(job.source, settings)
    details: dict[str, Any] = {"decoded_size": list(photo.shape[1::-1])}
    mask: np.ndarray | None = None
    for attempt in range(1, settings.attempts + 1):
        box = draw_crop(rng, *photo.shape[:2], settings.crop_min)
        clean = crop_resize(photo, box, settings.size)
        details.update(crop=list(box), attempts=attempt)
        if job.label == CLEAN:
            image, params = _negative(clean, rng, settings, lambda: load_source(job.source, settings, full=True))
            details.update(params)
            break
        try:
            result = MAKERS[job.label](clean, rng, settings)
        except NoPlausibleSite as reason:
            image, mask = clean, np.zeros(clean.shape[:2], bool)
            details["params"] = {"no_site": str(reason)}
            continue
        image, mask = result.image, result.mask
        details["params"] = result.params
        if mask.mean() >= settings.min_mask_fraction:
            break
    details["tail"] = tail.params()
    return tail.apply(image), (None if mask is None else tail.frame_mask(mask)), details
