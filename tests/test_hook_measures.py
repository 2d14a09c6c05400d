"""What the hook benchmark measures with: SSIM, the seam measure, oracle masks and the ghost-free reference."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ipad_qc.routing.pairs import make_pair
from ipad_qc.routing.quality import boundary_distance, psnr, score, seam_energy, ssim
from ipad_qc.routing.real_pairs import aligned_fusion, clean_mask, oracle_mask, real_pairs


def _scene(seed: int = 0, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 1, (*size, 3)).astype(np.float32), (0, 0), 2)


def test_ssim_is_one_for_identical_images_and_falls_with_noise() -> None:
    image, rng = _scene(), np.random.default_rng(1)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-5)
    values = [ssim(np.clip(image + rng.normal(0, sigma, image.shape), 0, 1).astype(np.float32), image)
              for sigma in (0.01, 0.05, 0.2)]
    assert values[0] > values[1] > values[2] > 0
    region = np.zeros(image.shape[:2], bool)
    region[:, :80] = True
    noisy_right = image.copy()
    noisy_right[:, 90:] = np.clip(noisy_right[:, 90:] + rng.normal(0, 0.2, noisy_right[:, 90:].shape), 0, 1)
    assert ssim(noisy_right, image, region) > 0.99 > ssim(noisy_right, image)


def test_seam_measure_catches_a_cut_off_repair_but_not_a_feathered_one() -> None:
    truth = _scene(2) * 0.5
    ys, xs = np.mgrid[0:120, 0:160].astype(np.float32)
    veil = (0.4 * np.exp(-((xs - 80) ** 2 + (ys - 60) ** 2) / (2 * 40.0**2)))[..., None]  # a glow
    image = truth + veil
    mask = np.hypot(xs - 80, ys - 60) <= 35
    cut_off = np.where(mask[..., None], truth, image)  # the veil removed up to the edge and not beyond
    t = np.clip(boundary_distance(mask) / 20, 0, 1)[..., None]
    feathered = image - veil * t**3 * (t * (6 * t - 15) + 10)
    before = seam_energy(image, mask, truth)
    assert seam_energy(cut_off, mask, truth) > 10 * before
    assert seam_energy(feathered, mask, truth) < 1.1 * before
    assert seam_energy(image, np.zeros_like(mask), truth) == 0.0 == seam_energy(image, np.ones_like(mask), truth)
    judged = score(image, cut_off, truth, mask, mask)
    assert judged.psnr[1] > judged.psnr[0] and judged.seam_ratio > 10  # PSNR alone would call it a success


def test_oracle_masks_find_the_generated_artifact() -> None:
    for kind in ("flare", "ghosting"):
        pair = make_pair(kind, np.random.default_rng(4), 320, 240)
        found = oracle_mask(kind, pair.image, pair.truth)
        overlap = (found & pair.mask).sum() / (found | pair.mask).sum()
        assert overlap > 0.3, f"{kind}: oracle mask overlaps the generator's mask by {overlap:.2f}"
    assert not oracle_mask("flare", pair.truth, pair.truth).any()


def test_clean_mask_fills_holes_and_drops_specks() -> None:
    raw = np.zeros((200, 200), bool)
    raw[40:160, 40:160] = True
    raw[90:110, 90:110] = False  # a hole (the lamp itself differs less than its glow)
    raw[5, 5] = True
    cleaned = clean_mask(raw)
    assert cleaned[100, 100] and not cleaned[5, 5] and cleaned[50, 50] and not cleaned[180, 180]


def test_aligned_fusion_of_a_moving_object_shows_it_once() -> None:
    base = _scene(5, (120, 160)) * 0.6
    frames = []
    for shift in (0, 12, 24):
        frame = base.copy()
        cv2.rectangle(frame, (30 + shift, 40), (60 + shift, 80), (0.95, 0.9, 0.2), -1)
        frames.append(frame)
    naive = cv2.createMergeMertens().process([cv2.cvtColor(np.round(f * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
                                              for f in frames])
    naive = np.clip(cv2.cvtColor(naive, cv2.COLOR_BGR2RGB), 0, 1)
    fused = aligned_fusion(frames, anchor=1)
    assert psnr(fused, frames[1]) > psnr(naive, frames[1]) + 6


def _realdev() -> Path:
    root = Path(os.environ.get("IPAD_QC_REALDEV", Path(__file__).resolve().parents[2] / "shared" / "realdev"))
    if not (root / "labels.csv").is_file():
        # The real pairs are other people's photos under their own licences: never copied into the
        # repository, so this runs only where ../shared/realdev (or $IPAD_QC_REALDEV) is present.
        pytest.skip(f"real pairs not present at {root} (licensed data outside the repository; "
                    "set $IPAD_QC_REALDEV)")
    return root


def test_real_flare_pairs_load_with_an_oracle_mask() -> None:
    pair = next(real_pairs(_realdev(), "flare"))
    assert pair.image.shape == pair.truth.shape and pair.mask.shape == pair.image.shape[:2]
    assert 0.01 < pair.mask.mean() < 0.9
    with pytest.raises(ValueError, match="unknown pair kind"):
        next(real_pairs(_realdev(), "noise"))
