from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from clip_fixtures import TINY, tiny_config, write_tiny_weights
from scan_fixtures import write_jpeg

from ipad_qc import get_detector
from ipad_qc.cli import main
from ipad_qc.clip import IpadClip, save_checkpoint
from ipad_qc.synthetic import as_decoded


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def checkpoint(weights: Path, tmp_path_factory) -> Path:
    model = IpadClip(tiny_config(weights))
    with torch.no_grad():
        for stage in (1, 2, 3):
            for parameter in model.set_stage(stage):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return save_checkpoint(model, tmp_path_factory.mktemp("c") / "tiny.safetensors", stages=[1, 2, 3])


def images():
    rng = np.random.default_rng(0)
    return [as_decoded(rng.random((90, 120, 3), dtype=np.float32), "a.png"),
            as_decoded(rng.random((70, 50, 3), dtype=np.float32), "b.png", bit_depth=16)]


def test_zero_shot_detector_without_checkpoint(weights: Path) -> None:
    detector = get_detector("ipad-clip", device="cpu", backbone=TINY, pretrained=str(weights), image_size=64)
    assert detector.model.prompts is None, "the text encoder is dropped once the anchors are computed"
    assert len(detector.model.vision.adapters) == 0
    detections = detector.detect(images())
    for detection, (height, width) in zip(detections, [(90, 120), (70, 50)], strict=True):
        assert sum(detection.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert detection.mask().shape == (height, width)
        assert detection.probability_map().shape == (height, width)
        assert set(detection.class_maps) == {"ghosting", "flare", "moire"}


def test_checkpoint_detector_matches_model_output(checkpoint: Path) -> None:
    detector = get_detector("ipad-clip", device="cpu", checkpoint=str(checkpoint))
    assert detector.decode_hint.short_side == 64
    detection = detector.detect(images()[:1])[0]
    from ipad_qc.clip.detector import preprocess

    batch = torch.from_numpy(preprocess(images()[0], 64, detector.mean, detector.std)[None])
    with torch.no_grad():
        class_probs, _ = detector.model(batch).probabilities()
    assert [detection.scores[n] for n in ("clean", "ghosting", "flare", "moire")] == pytest.approx(
        class_probs[0].tolist(), abs=1e-6)


def test_detector_scores_stay_fp32_under_bf16_autocast(checkpoint: Path, monkeypatch) -> None:
    """The CUDA path (bf16 autocast), run on the CPU: class maps come out in fp32 without bf16 ties."""
    from ipad_qc.clip import detector as detector_module

    detector = get_detector("ipad-clip", device="cpu", checkpoint=str(checkpoint))
    reference = detector.detect(images()[:1])[0]
    monkeypatch.setattr(detector_module, "autocast_for", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    emulated = detector.detect(images()[:1])[0]
    assert emulated.scores == pytest.approx(reference.scores, abs=0.03)
    for name, values in emulated.class_maps.items():
        assert values.dtype == np.float32
        assert np.unique(values).size >= 0.9 * np.unique(reference.class_maps[name]).size


def test_scan_with_ipad_clip_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    for i in range(3):
        write_jpeg(tmp_path / "shots" / f"{i}.jpg", width=160, height=120, seed=i)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "shots"), "--out", str(out), "--detector", "ipad-clip",
                                       "--checkpoint", str(checkpoint), "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and {r["detector"] for r in rows} == {"ipad-clip"}
    assert all(r["status"] == "ok" and (r["width"], r["height"]) == ("160", "120") for r in rows)


def test_scan_refuses_mismatched_checkpoint_and_unknown_options(checkpoint: Path, tmp_path: Path) -> None:
    write_jpeg(tmp_path / "shots" / "a.jpg")
    base = ["scan", str(tmp_path / "shots"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    mismatched = CliRunner().invoke(main, [*base, "--detector", "ipad-clip", "--checkpoint", str(checkpoint),
                                           "--detector-option", "image_size=96"])
    assert mismatched.exit_code == 2 and "image_size=64" in mismatched.output
    wrong_detector = CliRunner().invoke(main, [*base, "--checkpoint", str(checkpoint)])
    assert wrong_detector.exit_code == 2 and "does not accept" in wrong_detector.output


def test_calibrated_thresholds_decide_the_label() -> None:
    from ipad_qc.detectors.base import label_with_thresholds

    scores = {"clean": 0.3, "ghosting": 0.1, "flare": 0.45, "moire": 0.15}
    assert label_with_thresholds(scores, {}) == "flare"
    assert label_with_thresholds(scores, {"flare": 0.6, "moire": 0.1}) == "moire"
    assert label_with_thresholds(scores, {"flare": 0.6, "moire": 0.2}) == "clean"
    assert label_with_thresholds(scores, {"flare": 0.4, "ghosting": 0.05}) == "flare"
