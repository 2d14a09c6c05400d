"""The built-in hooks on generated images: nothing changes outside the mask, repairs fade in over the
documented feather band (no seams), and a hook declines, saying why, an image it cannot improve."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from ipad_qc_plugins._common import feather, feather_width, to_display
from test_routing_helpers import ColourCodeDetector, create_scripted, write_marked

from ipad_qc.io.types import DecodedImage, ImageMeta
from ipad_qc.routing import (
    Declined,
    HookSpec,
    RepairRequest,
    RoutingPolicy,
    create_hook,
    register_hook,
    route,
    to_float,
)
from ipad_qc.routing.pairs import make_pair
from ipad_qc.routing.quality import psnr, seam_energy
from ipad_qc.routing.repairs import RepairStore
from ipad_qc.scanner import ScanOptions, scan

HOOK_FOR = {"flare": "deflare", "moire": "demoire", "ghosting": "deghost"}
register_hook("scripted", create_scripted)


def decoded(image: np.ndarray, depth: int = 8) -> DecodedImage:
    peak, dtype = (255, np.uint8) if depth == 8 else (65535, np.uint16)
    pixels = np.round(np.clip(image, 0, 1) * peak).astype(dtype)
    return DecodedImage(pixels, ImageMeta("x.png", pixels.shape[1], pixels.shape[0], depth, "png", "full"))


def request(image: np.ndarray, mask: np.ndarray, kind: str, depth: int = 8,
            references: tuple[np.ndarray, ...] = ()) -> RepairRequest:
    return RepairRequest(decoded(image, depth), mask, mask.astype(np.float32), kind, kind, {}, "x.png",
                         references=tuple(decoded(frame, depth) for frame in references))


@pytest.mark.parametrize(("kind", "with_reference"), [("flare", False), ("moire", False), ("ghosting", True),
                                                      ("ghosting", False)])
def test_repairs_change_nothing_outside_the_mask_and_fade_in_over_the_feather_band(kind: str,
                                                                                   with_reference: bool) -> None:
    hook, repaired = create_hook(HOOK_FOR[kind]), 0
    for seed in range(6):
        pair = make_pair(kind, np.random.default_rng(seed), 160, 120)
        for depth in (8, 16):
            sent = request(pair.image, pair.mask, kind, depth, (pair.reference,) if with_reference else ())
            out = hook.repair(sent)
            if isinstance(out, Declined):
                assert out.reason
                continue
            repaired += 1
            original = sent.image.pixels
            assert out.dtype == original.dtype and out.shape == original.shape
            assert np.array_equal(out[~pair.mask], original[~pair.mask]), "no pixel outside the mask may change"
            weight = feather(pair.mask, feather_width(pair.mask.shape, hook.feather_share))
            change = np.abs(to_float(out) - to_float(original)).max(axis=2)
            lsb = 1.0 / (255 if depth == 8 else 65535)
            # the weight is ~0 at the mask's edge, so this is what forbids a step there
            assert np.all(change <= weight + lsb), "a pixel changed more than the feather band allows"
    assert repaired > 0 or (kind == "ghosting" and not with_reference), f"{HOOK_FOR[kind]} repaired nothing"


def _lamp_scene(size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image with a lamp's glow and streaks, the same scene without flare, a disc mask smaller than the glow)."""
    rng = np.random.default_rng(3)
    clean = cv2.GaussianBlur(rng.uniform(0.0, 0.02, (size, size, 3)).astype(np.float32), (0, 0), 2) + 0.005
    cv2.rectangle(clean, (20, 150), (236, 236), (0.06, 0.05, 0.04), -1)
    cv2.circle(clean, (128, 110), 4, (1.0, 1.0, 1.0), -1)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = np.hypot(xs - 128, ys - 110)
    glow = 0.6 / (1 + (radius / 14) ** 2)
    streak = 0.3 * np.exp(-np.abs(ys - 110) / 1.5) * np.exp(-np.abs(xs - 128) / 60)
    image = to_display(clean + (glow + streak)[..., None] * np.float32([1.0, 0.9, 0.7]))
    mask = radius <= 60  # a detector's disc: the glow goes on well beyond it
    return image, to_display(clean), mask


def test_deflare_leaves_no_step_where_its_mask_cuts_through_a_glow() -> None:
    """The lamp of issue 15: the first deflare darkened a hard-edged disc the size of the mask."""
    image, clean, mask = _lamp_scene()
    sent = request(image, mask, "flare")
    out = create_hook("deflare").repair(sent)
    assert isinstance(out, np.ndarray)
    before, after = to_float(sent.image.pixels), to_float(out)
    change = np.abs(after - before).max(axis=2)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    assert change[mask & (distance <= 3)].max() <= 1 / 255 + 1e-6, "the glow must not be cut off at the mask's edge"
    assert change[mask & (distance > 40)].mean() > 8 / 255, "the glow near the lamp must be removed"
    assert psnr(after, clean, mask) > psnr(before, clean, mask) + 1.0
    assert seam_energy(after, mask, clean) <= seam_energy(before, mask, clean)


def test_deflare_declines_a_region_without_any_glow() -> None:
    rng = np.random.default_rng(0)
    image = np.clip(0.3 + rng.normal(0, 0.02, (120, 160, 3)), 0, 1).astype(np.float32)
    mask = np.zeros((120, 160), bool)
    mask[30:90, 40:120] = True
    out = create_hook("deflare").repair(request(image, mask, "flare"))
    assert isinstance(out, Declined) and "no veil" in out.reason


def test_demoire_declines_colour_without_a_beat_pattern() -> None:
    ys, xs = np.mgrid[0:160, 0:200].astype(np.float32)
    image = np.stack([xs / 200, ys / 160, 0.5 + 0.2 * np.sin(xs / 40)], axis=2).astype(np.float32)
    cv2.circle(image, (100, 80), 30, (0.9, 0.2, 0.1), -1)  # real colour edges, nothing periodic
    mask = np.zeros((160, 200), bool)
    mask[20:140, 30:170] = True
    out = create_hook("demoire").repair(request(image, mask, "moire"))
    assert isinstance(out, Declined) and "no beat pattern" in out.reason


def test_demoire_removes_a_colour_beat_but_keeps_luminance() -> None:
    pair = make_pair("moire", np.random.default_rng(5), 240, 180)
    ys, xs = np.mgrid[0:180, 0:240].astype(np.float32)
    beat = 0.08 * np.sin(2 * np.pi * (xs * 0.9 + ys * 0.3) / 9)
    image = pair.truth.copy()
    image[..., 0] += beat
    image[..., 2] -= beat  # red and blue beat against each other: colour, almost no luminance
    image = np.clip(image, 0, 1)
    mask = np.zeros((180, 240), bool)
    mask[30:150, 40:200] = True
    out = create_hook("demoire").repair(request(image, mask, "moire"))
    assert isinstance(out, np.ndarray)
    assert psnr(to_float(out), pair.truth, mask) > psnr(image, pair.truth, mask) + 3.0


def test_deghost_declines_reference_frames_of_another_scene() -> None:
    pair = make_pair("ghosting", np.random.default_rng(1), 160, 120)
    other = make_pair("ghosting", np.random.default_rng(99), 160, 120)
    out = create_hook("deghost").repair(request(pair.image, pair.mask, "ghosting", references=(
        np.ascontiguousarray(other.truth[::-1, ::-1]),)))
    assert isinstance(out, Declined) and "no reference frame matches" in out.reason


def test_deghost_single_image_declines_an_image_without_a_duplicate() -> None:
    pair = make_pair("ghosting", np.random.default_rng(2), 160, 120)
    out = create_hook("deghost").repair(request(pair.truth, pair.mask, "ghosting"))
    assert isinstance(out, Declined) and "duplicate" in out.reason


def test_a_declined_repair_is_recorded_with_its_reason(tmp_path: Path) -> None:
    root, run = tmp_path / "shots", tmp_path / "run"
    write_marked(root / "leave_sun.png", ("flare",))
    write_marked(root / "sun.png", ("flare",), seed=1)
    scan(root, run, ScanOptions(workers=0), detector=ColourCodeDetector())
    log = tmp_path / "calls.log"
    policy = RoutingPolicy(hooks={"flare": HookSpec("flare", plugin="scripted",
                                                   options={"artifact": "flare", "log": str(log)})})
    summary = route(run, policy)
    with RepairStore(run) as store:
        rows = {row["path"]: row for row in store.rows()}
    assert (rows["leave_sun.png"]["status"], rows["leave_sun.png"]["error"]) == ("declined", "scripted: leave it alone")
    assert rows["leave_sun.png"]["output_path"] is None and not (run / "repaired" / "leave_sun.png").exists()
    assert rows["sun.png"]["status"] == "ok" and rows["sun.png"]["error"] is None
    assert summary.statuses[("scripted", "declined")] == 1


def test_deghost_repairs_a_shaken_burst_whose_mask_covers_the_whole_image() -> None:
    scene = make_pair("flare", np.random.default_rng(8), 200, 150).truth
    frames = [np.ascontiguousarray(np.roll(scene, shift, axis=1)) for shift in (-6, 0, 6)]
    fused = np.mean(frames, axis=0).astype(np.float32)  # camera shake: every edge is doubled
    mask = np.ones(fused.shape[:2], bool)
    out = create_hook("deghost").repair(request(fused, mask, "ghosting", references=tuple(frames)))
    assert isinstance(out, np.ndarray)
    inner = (slice(10, -10), slice(10, -10))  # np.roll wraps at the sides
    assert psnr(to_float(out)[inner], frames[1][inner]) > psnr(fused[inner], frames[1][inner]) + 4
