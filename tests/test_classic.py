"""The ``classic`` detector on seeded synthetic cases: contract, localisation and robustness.

Two kinds of cases: the camera-like synthesis (a photographed screen, flare from a light in the
scene, a fused burst; :mod:`ipad_qc.synthetic`) on procedural scenes, which is what the detector's
physics is built for, and the frozen procedural benchmark (``make_case``) for the contract and the
ghosting ranking. Real-capture figures come from ``benchmarks/bench_real.py``.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.detectors.base import Detector
from ipad_qc.detectors.classic import ANALYSIS_SIDE, ClassicDetector, create
from ipad_qc.synthetic import as_decoded, clean_scene, fused_burst, lens_flare, make_case, screen_capture

WIDTH, HEIGHT = 512, 384
SEEDS = range(6)


@pytest.fixture(scope="module")
def detector() -> ClassicDetector:
    return create()


@pytest.fixture(scope="module")
def results(detector: ClassicDetector) -> dict[str, list]:
    """Per class: (detection, ground-truth mask) for every seed, computed once for all tests."""
    out: dict[str, list] = {}
    for kind in CLASS_NAMES:
        cases = [make_case(kind, np.random.default_rng(seed), WIDTH, HEIGHT) for seed in SEEDS]
        detections = detector.detect([as_decoded(image) for image, _, _ in cases])
        out[kind] = [(detection, mask) for detection, (_, mask, _) in zip(detections, cases, strict=True)]
    return out


CAMERA_SEEDS = range(8)
_CAMERA = {"moire": screen_capture, "flare": lens_flare, "ghosting": fused_burst}


@pytest.fixture(scope="module")
def camera_results(detector: ClassicDetector) -> dict[str, list]:
    """Per class: (detection, mask) of camera-like synthesis on procedural scenes (lamps for flare)."""
    out: dict[str, list] = {}
    for kind in CLASS_NAMES:
        cases = []
        for seed in CAMERA_SEEDS:
            rng = np.random.default_rng(seed)
            scene = clean_scene(rng, WIDTH, HEIGHT, lamps=2 if kind == "flare" else None)
            if kind == "clean":
                cases.append((scene, np.zeros((HEIGHT, WIDTH), bool)))
                continue
            made = _CAMERA[kind](scene, rng)
            cases.append((made.image.astype(np.float32), made.mask))
        detections = detector.detect([as_decoded(image) for image, _ in cases])
        out[kind] = [(detection, mask) for detection, (_, mask) in zip(detections, cases, strict=True)]
    return out


def _iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float((prediction & truth).sum() / max(1, (prediction | truth).sum()))


def test_entry_point_path_and_protocol() -> None:
    module, attribute = ["ipad_qc.detectors.classic", "create"]
    made = getattr(importlib.import_module(module), attribute)(device="cpu")
    assert isinstance(made, Detector)
    assert made.name == "classic"
    assert made.decode_hint.long_side == ANALYSIS_SIDE
    settings = made.settings()
    assert settings["version"]
    json.dumps(settings)


def test_bad_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        create(threshold=1.5)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_non_cpu_device_is_refused(device: str) -> None:
    with pytest.raises(ValueError, match="runs on the CPU; use --device cpu or auto"):
        create(device=device)


def test_auto_device_is_accepted() -> None:
    assert create(device="auto").name == "classic"


def test_scores_maps_and_masks_have_the_contracted_shapes(results: dict[str, list]) -> None:
    for kind, pairs in results.items():
        for detection, _ in pairs:
            assert set(detection.scores) == set(CLASS_NAMES)
            assert sum(detection.scores.values()) == pytest.approx(1.0, abs=1e-6)
            assert detection.probability.shape == (HEIGHT, WIDTH), kind
            assert set(detection.class_maps) == set(CLASS_NAMES[1:])
            for name, prob in detection.class_maps.items():
                assert prob.shape == (HEIGHT, WIDTH), name
                assert prob.min() >= 0.0 and prob.max() <= 1.0
            np.testing.assert_array_equal(
                detection.probability, np.maximum.reduce(list(detection.class_maps.values()))
            )
            assert detection.mask().shape == (HEIGHT, WIDTH)


def test_clean_scenes_are_mostly_labelled_clean(results: dict[str, list], camera_results: dict[str, list]) -> None:
    for pairs in (results["clean"], camera_results["clean"]):
        labels = [detection.label for detection, _ in pairs]
        assert labels.count("clean") >= len(labels) - 1, labels


def test_photographed_screens_are_labelled_moire_over_the_screen(camera_results: dict[str, list]) -> None:
    """A screen filling the frame, photographed through a Bayer sensor: coloured beats everywhere."""
    labels = [detection.label for detection, _ in camera_results["moire"]]
    assert labels.count("moire") >= 6, labels
    covered = [float((detection.class_maps["moire"] >= 0.5).mean()) for detection, _ in camera_results["moire"]]
    assert np.median(covered) >= 0.3, np.round(covered, 2)


def test_flare_is_labelled_and_localised_where_it_is_visible(camera_results: dict[str, list]) -> None:
    pairs = camera_results["flare"]
    labels = [detection.label for detection, _ in pairs]
    assert labels.count("flare") >= 4, labels
    ious = [_iou(detection.class_maps["flare"] >= 0.5, mask) for detection, mask in pairs if detection.label == "flare"]
    assert np.median(ious) >= 0.4, np.round(ious, 2)


def test_ghosting_map_is_higher_on_the_ghost_than_elsewhere(results: dict[str, list],
                                                            camera_results: dict[str, list]) -> None:
    """The ghosting test is the weakest of the three; it must still rank ghost pixels higher."""
    for pairs, needed in ((results["ghosting"], 5), (camera_results["ghosting"], 5)):
        contrasts = [detection.class_maps["ghosting"][mask].mean() - detection.class_maps["ghosting"][~mask].mean()
                     for detection, mask in pairs]
        assert sum(c > 0 for c in contrasts) >= needed, np.round(contrasts, 3)


def test_ghosting_scores_rank_ghosts_above_clean_scenes(results: dict[str, list]) -> None:
    """Image level: the duplicate-displacement margin must lift ghosted images above clean ones. The
    calibration is deliberately conservative (few clean photos flagged), so this is a ranking test."""
    ghost, clean = ([detection.scores["ghosting"] for detection, _ in results[kind]] for kind in ("ghosting", "clean"))
    wins = np.mean([g > c for g in ghost for c in clean])
    assert wins >= 0.75, (np.round(ghost, 3), np.round(clean, 3))


def test_sixteen_bit_input_gives_the_same_verdict(detector: ClassicDetector) -> None:
    image, _, _ = make_case("moire", np.random.default_rng(0), WIDTH, HEIGHT)
    eight, sixteen = detector.detect([as_decoded(image, bit_depth=8), as_decoded(image, bit_depth=16)])
    assert eight.label == sixteen.label
    for name in CLASS_NAMES:
        assert eight.scores[name] == pytest.approx(sixteen.scores[name], abs=0.05)


def test_mixed_sizes_in_one_batch(detector: ClassicDetector) -> None:
    rng = np.random.default_rng(4)
    sizes = [(200, 150), (640, 120), (1400, 1000)]
    images = [as_decoded(make_case("flare", rng, w, h)[0]) for w, h in sizes]
    detections = detector.detect(images)
    assert len(detections) == len(sizes)
    for detection, (w, h) in zip(detections, sizes, strict=True):
        assert detection.original_size == (w, h)
        expected = (h, w) if max(w, h) <= ANALYSIS_SIDE else (round(h * ANALYSIS_SIDE / w), ANALYSIS_SIDE)
        assert detection.probability.shape == expected
        assert detection.mask().shape == (h, w)
