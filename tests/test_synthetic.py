"""The synthetic generators: reproducible, physically placed, and honest about their masks."""

from __future__ import annotations

import numpy as np
import pytest

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.synthetic import add_flare, add_moire, as_decoded, blend_eq1, clean_scene, make_case

WIDTH, HEIGHT = 256, 192


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


def test_flare_lands_on_the_requested_source() -> None:
    scene = clean_scene(np.random.default_rng(5), WIDTH, HEIGHT)
    image, mask = add_flare(scene, np.random.default_rng(6), source=(60.0, 50.0))
    assert mask[50, 60]
    assert image[50, 60].min() > 0.95


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown case kind"):
        make_case("blur", np.random.default_rng(0), WIDTH, HEIGHT)


def test_as_decoded_quantises_to_the_requested_depth() -> None:
    image = clean_scene(np.random.default_rng(0), 64, 48)
    decoded = as_decoded(image, bit_depth=16)
    assert decoded.pixels.dtype == np.uint16
    assert decoded.meta.width == 64 and decoded.meta.height == 48
    np.testing.assert_allclose(decoded.to_float(), image, atol=1e-4)
