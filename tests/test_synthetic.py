"""The synthesisers: masks where the image changed visibly, nothing visible outside them, artifacts only where
they can occur, and the closed-form screen capture equal to a brute-force mosaic and demosaic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.synthetic import (
    NoPlausibleSite,
    add_flare,
    add_moire,
    as_decoded,
    blend_eq1,
    clean_scene,
    make_case,
)
from ipad_qc.synthetic.capture import CaptureTail, TailSettings
from ipad_qc.synthetic.flare import lens_flare
from ipad_qc.synthetic.ghosting import fused_burst
from ipad_qc.synthetic.moire import screen_capture, screen_in_scene, screen_moire
from ipad_qc.synthetic.negatives import RECIPES, clean_screen, hard_negative
from ipad_qc.synthetic.optics import Synthesis
from ipad_qc.synthetic.screens import place_device
from ipad_qc.synthetic.sensor import BAYER_LAYOUTS
from ipad_qc.synthetic.subpixels import SubpixelGrid, grid_residual, transfer
from ipad_qc.synthetic.survey import flare_sites, is_night, light_sources, sky_mask

WIDTH, HEIGHT = 256, 192
SIZE = 128


def _scene(seed: int, size: int = SIZE) -> np.ndarray:
    return clean_scene(np.random.default_rng(seed), size, size, lamps=0)


def _night(seed: int) -> np.ndarray:
    scene = _scene(seed) * 0.1
    cv2.circle(scene, (90, 30), 4, (1.0, 1.0, 1.0), -1)
    return scene


def _assert_honest(result: Synthesis, visibility: float) -> None:
    """The mask holds every visibly changed pixel, and is mostly made of them (not a box around them)."""
    change = np.abs(result.image - result.reference).max(axis=2)
    assert result.mask.any(), "the artifact must show"
    assert change[~result.mask].max(initial=0) <= visibility + 1e-6, "a visible change outside the mask"
    assert (change[result.mask] > visibility / 4).mean() > 0.5, "the mask is mostly where the image changed"


# --- each synthesiser: its mask --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_flare_mask_is_where_the_flare_shows(seed: int) -> None:
    result = lens_flare(_night(seed), np.random.default_rng(seed), site="detected")
    _assert_honest(result, 0.04)
    assert result.mask[30, 90], "the lamp is part of its flare"
    np.testing.assert_array_equal(result.reference, _night(seed))  # the photo's own lamp: the photo is the reference


@pytest.mark.parametrize("seed", range(3))
def test_full_frame_screen_photo_mask_is_where_the_fringes_show(seed: int) -> None:
    result = screen_capture(_scene(seed), np.random.default_rng(seed), pitch=2.05, zooms=(2,))
    _assert_honest(result, 0.035)


@pytest.mark.parametrize("seed", range(3))
def test_a_photos_own_screen_gets_fringes_only_inside_it(seed: int) -> None:
    scene = _scene(seed)
    quad = np.array([[20, 25], [100, 30], [96, 96], [24, 90]], np.float32)
    cv2.fillPoly(scene, [quad.astype(np.int32)], (0.85, 0.86, 0.9))
    result = screen_in_scene(scene, quad, np.random.default_rng(seed), content=None, pitch=2.05, zooms=(1,))
    _assert_honest(result, 0.035)
    np.testing.assert_array_equal(result.reference, scene)  # only the grid's aliasing is added
    inside = np.zeros(scene.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(quad).astype(np.int32)], 1)
    assert not (result.mask & (cv2.dilate(inside, np.ones((3, 3), np.uint8)) == 0)).any()


@pytest.mark.parametrize("seed", range(3))
def test_ghost_mask_is_where_the_fused_burst_departs_from_the_still_one(seed: int) -> None:
    result = fused_burst(_scene(seed), np.random.default_rng(seed), motion="object", frames=3)
    _assert_honest(result, 0.04)
    if result.params["motion"] == "object":  # (a photo with no region to segment shakes instead)
        assert result.mask.mean() < 0.9


def test_placed_screens_have_a_bezel_and_stay_off_the_sky() -> None:
    scene = _scene(2)
    sky = sky_mask(scene)
    for seed in range(4):
        result = screen_moire(scene, np.random.default_rng(seed), "placed", zooms=(2,))
        inside = np.zeros(scene.shape[:2], np.uint8)
        cv2.fillPoly(inside, [np.round(np.array(result.params["quad"])).astype(np.int32)], 1)
        assert sky[inside > 0].mean() <= 0.02
        change = np.abs(result.reference - scene).max(axis=2)
        assert change[inside == 0].max() > 0.1, "the device's frame is drawn around the screen"


def test_an_all_sky_photo_gets_no_placed_screen() -> None:
    sky = np.zeros((SIZE, SIZE, 3), np.float32) + np.array([0.45, 0.6, 0.92], np.float32)
    with pytest.raises(NoPlausibleSite):
        place_device(sky, np.random.default_rng(0))


# --- artifacts only where they can occur -----------------------------------------------------------------


def test_no_flare_without_a_plausible_light() -> None:
    wall = np.full((SIZE, SIZE, 3), 0.5, np.float32)
    assert flare_sites(wall) == []
    with pytest.raises(NoPlausibleSite):
        lens_flare(wall, np.random.default_rng(0))


def test_sources_night_and_sky_are_told_apart() -> None:
    night = _night(0)
    assert is_night(night) and light_sources(night)[0][:2] == pytest.approx((90, 30), abs=1)
    bright_wall = np.full((SIZE, SIZE, 3), 0.8, np.float32)
    cv2.circle(bright_wall, (60, 60), 4, (1.0, 1.0, 1.0), -1)
    assert not light_sources(bright_wall), "a white spot on a bright wall is no lamp"
    day = np.full((SIZE, SIZE, 3), 0.3, np.float32)
    day[: SIZE // 3] = (0.45, 0.6, 0.92)
    sky = sky_mask(day)
    assert sky[: SIZE // 3].mean() > 0.8 and not sky[SIZE // 3 + 2 :].any() and not is_night(day)
    day[-SIZE // 4 :] = 0.9  # a white floor is not sky: it does not touch the top
    assert not sky_mask(day)[-SIZE // 4 :].any()


def test_a_sun_flare_has_its_sun_in_the_sky() -> None:
    day = _scene(0)
    sky = sky_mask(day)
    for seed in range(3):
        result = lens_flare(day, np.random.default_rng(seed), site="sun")
        x, y = result.params["sources"][0][:2]
        assert sky[round(y), round(x)]
        assert result.reference[round(y), round(x)].min() > 0.95, "the sun itself is in the reference"


def test_flare_from_a_requested_position_has_a_lamp_there() -> None:
    scene = _scene(5)
    result = lens_flare(scene, np.random.default_rng(6), source=(60.0, 50.0))
    assert result.params["site"] == "given" and result.mask[50, 60]
    assert result.reference[50, 60].min() > 0.95 and result.image[50, 60].min() > 0.95


# --- the closed-form screen capture ---------------------------------------------------------------------


def _brute_force(light: np.ndarray, u: np.ndarray, v: np.ndarray, grid: SubpixelGrid, response: np.ndarray,
                 blur: float, aperture: float) -> np.ndarray:
    """Every sensor site sees its own colour of the filtered grid pattern; OpenCV demosaics bilinearly."""
    du, dv = np.gradient(u), np.gradient(v)
    stripe, centres = grid.duty / 3, grid.stripe_centres()
    pattern = np.zeros(light.shape)
    for k in range(-5, 6):
        for m in range(-3, 4):
            row = np.sinc(m * grid.row_fill) * (-1) ** m
            coefficient = np.sinc(k * stripe) * np.exp(-2j * np.pi * k * centres) * row
            gain = transfer(k * du[1] + m * dv[1], k * du[0] + m * dv[0], blur, aperture)
            pattern += np.real(coefficient * (gain * np.exp(2j * np.pi * (k * u + m * v)))[..., None])
    sensed = (light * pattern) @ response.T
    sites = np.tile(np.array(BAYER_LAYOUTS["RGGB"]).reshape(2, 2), (u.shape[0] // 2, u.shape[1] // 2))
    raw = np.take_along_axis(sensed, sites[..., None], axis=2)[..., 0]
    return cv2.cvtColor(np.round(raw * 65535).astype(np.uint16), cv2.COLOR_BayerBG2RGB).astype(np.float64) / 65535


@pytest.mark.parametrize(("pitch", "angle"), [(1.9, 0.1), (1.0, 0.2), (2.5, -0.3), (4.1, 0.05)])
def test_closed_form_capture_equals_mosaic_and_demosaic(pitch: float, angle: float) -> None:
    ys, xs = np.mgrid[0:64, 0:64].astype(np.float64)
    u = (np.cos(angle) * xs + np.sin(angle) * ys) / pitch + 3.3
    v = (-np.sin(angle) * xs + np.cos(angle) * ys) / pitch + 1.7
    light = np.ones((64, 64, 3)) * [0.15, 0.12, 0.1]  # dim enough that no site clips
    response = np.full((3, 3), 0.1) + 0.7 * np.eye(3)
    grid = SubpixelGrid(duty=0.8, row_fill=0.8)
    expected = _brute_force(light, u, v, grid, response, 0.3, 0.9)
    fast = light @ response.T + grid_residual(light, u, v, grid, response=response.astype(np.float32),
                                              layout="RGGB", blur=0.3, aperture=0.9, zoom=1)
    assert np.abs(fast - expected)[4:-4, 4:-4].max() < 3e-3  # the gains are interpolated from a coarse grid
    assert np.abs(fast - light @ response.T).max() > 0.002 or pitch < 1.5


def test_downscaled_capture_keeps_the_beat_and_loses_the_screen_door() -> None:
    """At zoom 3 an output pixel is a 3 x 3 block of sensor pixels behind a resampling filter: the slow
    beat of a pitch near 2 px survives, the fine screen-door texture of a 3 px pitch goes."""
    light = np.full((48, 48, 3), 0.15)
    grid = SubpixelGrid(duty=0.8, row_fill=0.8)

    def amplitude(pitch: float, zoom: int) -> float:
        ys, xs = np.mgrid[0:48, 0:48].astype(np.float64) * zoom  # each output pixel's first sensor pixel
        residual = grid_residual(light, xs / pitch, ys / pitch, grid, response=np.eye(3, dtype=np.float32),
                                 layout="RGGB", blur=0.3, aperture=0.9, zoom=zoom)
        return float(np.abs(residual).max())

    assert amplitude(2.06, 3) > 0.8 * amplitude(2.06, 1) > 0.1
    assert amplitude(3.0, 3) < amplitude(3.0, 1) / 4


def test_defocused_or_dense_screens_make_clean_screen_photos() -> None:
    for seed in range(4):
        image, params = clean_screen(_scene(seed), np.random.default_rng(seed))
        assert image.shape == (SIZE, SIZE, 3) and params["kept"] in ("capture", "reference")


# --- the capture tail and the negatives ------------------------------------------------------------------


def test_the_capture_tail_is_a_pure_function_of_its_draw() -> None:
    tail = CaptureTail.draw(np.random.default_rng(3), TailSettings(jpeg_share=1, noise_share=1))
    scene = _scene(0)
    assert tail.quality is not None and tail.noise > 0
    np.testing.assert_array_equal(tail.apply(scene), tail.apply(scene.copy()))
    plain = CaptureTail.draw(np.random.default_rng(3), TailSettings(0, (60, 98), 0, (0.002, 0.02), 0,
                                                                    (0.6, 0.95), 0, 0))
    np.testing.assert_array_equal(plain.apply(scene), np.round(np.clip(scene, 0, 1) * 255).astype(np.uint8))
    assert plain.frame_mask(np.ones((4, 4), bool)).all()


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_clean_recipe_gives_a_clean_image_of_the_same_size(recipe: str) -> None:
    scene = _night(1) if recipe == "lamps" else _scene(1)
    image, params = hard_negative(recipe, scene, np.random.default_rng(0), photo=_scene(1, 256))
    assert image.shape == scene.shape and np.isfinite(image).all() and isinstance(params, dict)


# --- the frozen procedural benchmark (make_case and the simple add_* of the classic detector and hooks) ---


@pytest.mark.parametrize("adder", [add_flare, add_moire])
def test_eq1_artifacts_leave_pixels_outside_the_mask_untouched(adder) -> None:
    for seed in range(3):
        scene = clean_scene(np.random.default_rng(seed), WIDTH, HEIGHT)
        image, mask = adder(scene.copy(), np.random.default_rng(100 + seed))
        assert np.array_equal(image[~mask], scene[~mask])
        assert not np.allclose(image[mask], scene[mask])


def test_blend_eq1_is_the_papers_formula() -> None:
    rng = np.random.default_rng(0)
    image, pattern = rng.random((4, 5, 3)), rng.random((4, 5, 3))
    mask = rng.random((4, 5)) > 0.5
    out = blend_eq1(image, pattern, mask, 0.3)
    m = mask[..., None].astype(float)
    np.testing.assert_allclose(out, image * (1 - m) + (0.7 * image + 0.3 * pattern) * m, rtol=1e-6)


def test_benchmark_flare_lands_on_the_requested_source() -> None:
    scene = clean_scene(np.random.default_rng(5), WIDTH, HEIGHT)
    image, mask = add_flare(scene, np.random.default_rng(6), source=(60.0, 50.0))
    assert mask[50, 60]
    assert image[50, 60].min() > 0.95


@pytest.mark.parametrize("kind", CLASS_NAMES)
def test_same_seed_gives_identical_bytes(kind: str) -> None:
    first = make_case(kind, np.random.default_rng(7), WIDTH, HEIGHT)
    second = make_case(kind, np.random.default_rng(7), WIDTH, HEIGHT)
    assert np.array_equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])


@pytest.mark.parametrize("kind", CLASS_NAMES)
def test_different_seeds_differ(kind: str) -> None:
    first = make_case(kind, np.random.default_rng(1), WIDTH, HEIGHT)[0]
    second = make_case(kind, np.random.default_rng(2), WIDTH, HEIGHT)[0]
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("kind", CLASS_NAMES)
def test_case_shapes_ranges_and_masks(kind: str) -> None:
    for seed in range(3):
        image, mask, label = make_case(kind, np.random.default_rng(seed), WIDTH, HEIGHT)
        assert label == kind
        assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0
        assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == bool
        if kind == "clean":
            assert not mask.any()
        else:
            assert 0.0 < mask.mean() < 0.9, f"{kind} seed {seed}: mask covers {mask.mean():.2f}"


def test_clean_scenes_are_not_flat() -> None:
    """Hard negatives need edges and texture: the gradient energy must be far above sensor noise."""
    image = clean_scene(np.random.default_rng(3), WIDTH, HEIGHT)
    gradient = np.abs(np.diff(image.mean(axis=2), axis=1))
    assert np.percentile(gradient, 99) > 0.05


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown case kind"):
        make_case("blur", np.random.default_rng(0), WIDTH, HEIGHT)


def test_as_decoded_quantises_to_the_requested_depth() -> None:
    image = clean_scene(np.random.default_rng(0), 64, 48)
    decoded = as_decoded(image, bit_depth=16)
    assert decoded.pixels.dtype == np.uint16
    assert decoded.meta.width == 64 and decoded.meta.height == 48
    np.testing.assert_allclose(decoded.to_float(), image, atol=1e-4)
