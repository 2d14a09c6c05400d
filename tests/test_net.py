"""ipad-net: shapes, fp32 probabilities, checkpoints that round-trip and fail clearly, the detector contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.io.types import DecodedImage, ImageMeta
from ipad_qc.net import IpadNet, IpadNetConfig, NetCheckpointError, load_net, read_net, save_net
from ipad_qc.net.detector import IpadNetDetector, create, network_input

TINY = IpadNetConfig(input_side=64, widths=(4, 4, 8, 8, 8, 8), fuse_width=8)


def tiny(seed: int = 0) -> IpadNet:
    torch.manual_seed(seed)
    return IpadNet(IpadNetConfig(**{**TINY.__dict__}))


def decoded(width: int, height: int, seed: int = 0) -> DecodedImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return DecodedImage(pixels, ImageMeta("x.png", width, height, 8, "png", "full"))


def test_forward_gives_logits_at_the_input_size_and_fp32_probabilities() -> None:
    model = tiny().eval()
    output = model(torch.randn(2, 3, 64, 96))
    assert output.class_logits.shape == (2, len(CLASS_NAMES))
    assert output.seg_logits.shape == (2, len(CLASS_NAMES), 64, 96)
    class_probs, seg_probs = output.probabilities()
    assert class_probs.dtype == seg_probs.dtype == torch.float32
    torch.testing.assert_close(class_probs.sum(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 60, 64))


def test_bf16_forward_gives_scores_close_to_fp32() -> None:
    """Scores come out of the fp32 softmax even when the network ran in bf16 (autocast on CPU here)."""
    model = tiny().eval()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        exact = model(pixels).probabilities()[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = model(pixels).probabilities()[0]
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, exact, atol=0.02, rtol=0)


@pytest.mark.parametrize(("values", "message"), [
    ({"widths": (4, 4)}, "widths"), ({"input_side": 100}, "multiple of 32"), ({"top_share": 0.0}, "top_share"),
    ({"class_names": ("ghosting", "clean")}, "start with"),
])
def test_bad_configuration_is_refused(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IpadNetConfig(**values)


def test_checkpoint_round_trips_exactly(tmp_path: Path) -> None:
    model = tiny(1).eval()
    model.config.thresholds = {"flare": 0.4}
    path = save_net(model, tmp_path / "w.safetensors", training={"seed": 3, "weights_id": "abc"})
    loaded, training = load_net(path)
    assert training == {"seed": 3, "weights_id": "abc"}
    assert loaded.config == model.config
    pixels = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(pixels).class_logits, model(pixels).class_logits, atol=0, rtol=0)


def test_corrupt_missing_and_foreign_weights_fail_naming_the_file(tmp_path: Path) -> None:
    path = save_net(tiny(), tmp_path / "w.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    for bad, message in ((truncated, "not a readable safetensors"), (junk, "not a readable safetensors"),
                         (tmp_path / "absent.safetensors", "not found")):
        with pytest.raises(NetCheckpointError, match=message) as caught:
            load_net(bad)
        assert str(bad) in str(caught.value)
    other = tiny()
    other.config.widths = (4, 4, 8, 8, 8, 16)  # metadata says one thing, the tensors another
    foreign = save_net(other, tmp_path / "foreign.safetensors")
    with pytest.raises(NetCheckpointError, match="do not match"):
        load_net(foreign)
    assert read_net(path).config == TINY


def test_detector_maps_at_analysis_size_for_mixed_sizes_in_one_batch(tmp_path: Path) -> None:
    path = save_net(tiny(), tmp_path / "w.safetensors")
    detector = create(device="cpu", weights=str(path))
    assert isinstance(detector, IpadNetDetector) and detector.decode_hint.long_side == 64
    images = [decoded(64, 48), decoded(40, 64, 1), decoded(64, 48, 2)]
    detections = detector.detect(images)
    for detection, image in zip(detections, images, strict=True):
        _, (height, width) = network_input(image.to_float(), 64)
        assert detection.probability.shape == (height, width)
        assert set(detection.class_maps) == set(ARTIFACT_CLASSES)
        assert detection.original_size == (image.meta.width, image.meta.height)
        assert detection.mask().shape == (image.meta.height, image.meta.width)
    assert detector.settings()["weights"] == str(path)


def test_settings_name_the_weights_by_content_so_a_rescan_redoes_files_when_they_change(tmp_path: Path) -> None:
    first = save_net(tiny(), tmp_path / "w.safetensors")
    settings = create(device="cpu", weights=str(first)).settings()
    copy = tmp_path / "elsewhere.safetensors"
    copy.write_bytes(first.read_bytes())
    assert create(device="cpu", weights=str(copy)).settings()["weights_id"] == settings["weights_id"]
    retrained = tiny()
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    save_net(retrained, first)  # same file name, other weights
    assert create(device="cpu", weights=str(first)).settings()["weights_id"] != settings["weights_id"]


def test_missing_bundled_weights_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(NetCheckpointError, match="not found"):
        create(device="cpu", weights=str(tmp_path / "none.safetensors"))


def test_bundled_weights_are_calibrated_small_and_detect_at_the_shipped_size() -> None:
    from ipad_qc.net.checkpoint import BUNDLED_WEIGHTS

    assert BUNDLED_WEIGHTS.stat().st_size <= 10 * 2**20, "the package carries at most 10 MB of weights"
    assert BUNDLED_WEIGHTS.with_name("MODEL_CARD.md").is_file(), "the weights ship with their model card"
    detector = create(device="cpu")
    assert detector.settings()["weights"] == "bundled"
    assert set(detector.model.config.thresholds) == set(ARTIFACT_CLASSES)
    image = decoded(480, 360)
    (detection,) = detector.detect([image])
    side = detector.model.config.input_side
    assert detection.probability.shape == (round(360 * side / 480), side)
    assert abs(sum(detection.scores.values()) - 1.0) < 1e-4 and detection.label in CLASS_NAMES
