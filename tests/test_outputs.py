"""The files a scan writes per image: PNG encoders, probability maps, masks, report overlays."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scan_fixtures import BrightSpotDetector, write_jpeg

from ipad_qc.detectors.base import Detection, scores_from_evidence
from ipad_qc.outputs import (
    THUMB_DIR,
    THUMB_SIDE,
    VIEW_SIDE,
    overlay_name,
    overlay_stem,
    write_mask,
    write_probability_map,
)
from ipad_qc.png import encode_bilevel_png, encode_png
from ipad_qc.report import build_report
from ipad_qc.scanner import ScanOptions, scan
from ipad_qc.store import ResultStore


def _decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("shape", [(5, 7), (64, 33, 3), (9, 1, 4), (1, 1, 2), (300, 200, 3)])
def test_encode_png_round_trips_through_opencv_and_pillow(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(pixels)
    with Image.open(io.BytesIO(data)) as image:
        assert np.array_equal(np.asarray(image), pixels)
    back = _decode(data)
    if len(shape) == 3 and shape[2] == 2:  # OpenCV gives grey + alpha as BGRA
        back = back[..., [0, 3]]
    elif len(shape) == 3:  # BGR(A)
        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB if shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(back.reshape(shape), pixels)


def test_encode_png_refuses_what_it_cannot_write() -> None:
    for pixels in (np.zeros((4, 4), np.uint16), np.zeros((4, 4, 5), np.uint8), np.zeros(4, np.uint8)):
        with pytest.raises(ValueError, match="encode_png"):
            encode_png(pixels)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 7), (2, 8), (5, 9), (301, 401)])
def test_bilevel_png_is_a_1_bit_png_of_the_mask(height: int, width: int) -> None:
    mask = (np.random.default_rng(width).random((height, width)) > 0.5).astype(np.uint8) * np.uint8(255)
    data = encode_bilevel_png(mask)
    assert np.array_equal(_decode(data), mask), "OpenCV reads 0/255"
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "1" and np.array_equal(np.asarray(image.convert("L")), mask)
    assert len(data) <= len(cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_BILEVEL, 1])[1]) * 1.1


def _detection(maps: dict[str, np.ndarray], label: str = "flare", size: tuple[int, int] = (40, 30)) -> Detection:
    scores = scores_from_evidence({label: 0.9})
    return Detection(scores=scores, label=label, probability=np.maximum.reduce(list(maps.values())),
                     original_size=size, class_maps=maps)


def test_probability_map_channels_and_rounding(tmp_path: Path) -> None:
    flare = np.array([[-0.2, 0.0, 0.5, 1.0, 1.3, np.nan, 0.25, 0.75]], np.float32)
    moire = np.full_like(flare, 0.1)
    relpath = write_probability_map(tmp_path, "a/b.jpg", _detection({"flare": flare, "moire": moire}))
    bgr = cv2.imread(str(tmp_path / relpath), cv2.IMREAD_UNCHANGED)
    assert relpath == "maps/a/b.jpg.png" and bgr.dtype == np.uint8 and bgr.shape == (1, 8, 3)
    assert bgr[..., 2].tolist() == [[0] * 8], "red = ghosting, absent here"
    assert bgr[..., 1].tolist() == [[0, 0, 128, 255, 255, 0, 64, 191]], "green = flare; < 0 and NaN give 0"
    assert bgr[..., 0].tolist() == [[26] * 8], "blue = moire"


def test_mask_file_is_the_detection_mask_at_the_original_size(tmp_path: Path) -> None:
    probability = np.zeros((30, 40), np.float32)
    probability[5:20, 10:30] = 0.9
    detection = _detection({"flare": probability}, size=(401, 299))
    relpath = write_mask(tmp_path, "x.jpg", detection)
    mask = cv2.imread(str(tmp_path / relpath), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(mask, detection.mask_image()) and mask.shape == (299, 401)
    assert write_mask(tmp_path, "clean.jpg", _detection({"flare": probability}, label="clean")) == ""


def test_scan_leaves_report_overlays_so_the_report_reads_no_mask(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root, out = tmp_path / "shots", tmp_path / "run"
    write_jpeg(root / "sun.jpg", width=1600, height=1200, bright=True)
    write_jpeg(root / "dark.jpg")
    scan(root, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    with ResultStore(out) as store:
        row = next(row for row in store.rows() if row["path"] == "sun.jpg")
    stem = overlay_stem(row["content_hash"], row["settings_hash"], "flare")
    for side in (THUMB_SIDE, VIEW_SIDE):
        overlay = cv2.imread(str(out / THUMB_DIR / overlay_name(stem, side)), cv2.IMREAD_UNCHANGED)
        assert overlay.shape == (round(1200 * side / 1600), side, 4)
        assert overlay[..., 3].max() == 255 and overlay[0, 0, 3] == 0, "outline opaque, outside clear"

    import ipad_qc.report.assets as assets

    def no_mask_reads(*args, **kwargs):
        raise AssertionError("the report read a full-size mask")

    monkeypatch.setattr(assets.cv2, "imread", no_mask_reads)
    result = build_report(out)
    assert not result.problems


def test_a_batch_is_written_while_the_next_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import ipad_qc.scanning.writer as writer_module
    from ipad_qc.scanner import DecodeJob, Finished, ResultWriter, ScanSummary, SilentListener, decode_job

    path = write_jpeg(tmp_path / "shots" / "sun.jpg", bright=True)
    outcome = decode_job(DecodeJob(str(path), "sun.jpg", BrightSpotDetector.decode_hint, "preview", False))
    detection = BrightSpotDetector().detect([outcome.image])[0]
    may_write, events = threading.Event(), []
    real_write = writer_module.write_probability_map

    def slow_write(*args):
        may_write.wait(timeout=30)
        events.append("map written")
        return real_write(*args)

    monkeypatch.setattr(writer_module, "write_probability_map", slow_write)
    run = tmp_path / "run"
    with ResultStore(run) as store:
        writer = ResultWriter(store, "bright-spot", "h", ScanOptions(), SilentListener(), ScanSummary(run, run, "b"))
        writer.commit([Finished(outcome, detection, 1.0)])
        events.append("commit returned")
        assert store.count() == 0, "rows wait for their files"
        may_write.set()
        writer.close()
        assert events == ["commit returned", "map written"] and store.count() == 1
        assert writer.summary.scanned == 1


def test_quantised_map_is_the_rounded_float_map() -> None:
    from ipad_qc.outputs import _quantised

    values = np.random.default_rng(3).uniform(-0.3, 1.3, (200, 300)).astype(np.float32)
    expected = np.clip(values.astype(np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    got = _quantised(values)
    differ = got != expected
    assert np.abs(got.astype(int) - expected).max() <= 1
    ties = np.abs((values.astype(np.float64) * 255.0) % 1.0 - 0.5) < 1e-4
    assert not (differ & ~ties).any(), "only float32 rounding of exact halves may differ"


def _blob_detection(size: tuple[int, int], map_shape: tuple[int, int] = (48, 64)) -> Detection:
    """A smooth map (as detectors give) much coarser than the image: a large blob and a faint small one."""
    height, width = map_shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)

    def blob(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return np.exp(-(((x - width * cx) / (width * rx)) ** 2 + ((y - height * cy) / (height * ry)) ** 2))

    probability = blob(0.4, 0.5, 0.12, 0.2) + 0.6 * blob(0.8, 0.3, 0.03, 0.05)
    return _detection({"flare": probability.astype(np.float32)}, size=size)


def test_mask_image_thresholds_in_place_at_any_size() -> None:
    import tracemalloc

    detection = _blob_detection((4000, 3000))
    quantised = np.clip(detection.probability * 255.0 + 0.5, 0, 255).astype(np.uint8)
    for size in ((4000, 3000), (1024, 768)):
        upsampled = cv2.resize(quantised, size, interpolation=cv2.INTER_LINEAR)
        expected = np.where(upsampled >= 128, 255, 0).astype(np.uint8)  # threshold 0.5 -> level 128
        assert np.array_equal(detection.mask_image(size if size != (4000, 3000) else None), expected)
    tracemalloc.start()
    mask = detection.mask_image()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.2 * mask.nbytes, "one full-size array, not an upsampled copy and a thresholded one"


def test_scan_overlays_match_the_full_size_mask_scaled_down(tmp_path: Path) -> None:
    """The scan draws overlays from the detector's map; the report, for older runs, from the mask file.
    Both must show the same region: the mask the user sees is the mask that was written."""
    from ipad_qc.outputs import write_overlays
    from ipad_qc.scanner import DecodeJob, Finished, ResultWriter, ScanSummary, SilentListener, decode_job

    path = write_jpeg(tmp_path / "shots" / "sun.jpg", width=1600, height=1200)
    outcome = decode_job(DecodeJob(str(path), "sun.jpg", BrightSpotDetector.decode_hint, "preview", False))
    detection = _blob_detection((1600, 1200))
    run = tmp_path / "run"
    with ResultStore(run) as store:
        writer = ResultWriter(store, "blob", "settings", ScanOptions(), SilentListener(), ScanSummary(run, run, "b"))
        writer.commit([Finished(outcome, detection, 1.0)])
        writer.close()
    stem = overlay_stem(outcome.content_hash, "settings", "flare")
    write_overlays(tmp_path / "from-mask", stem, detection.mask_image(), (1600, 1200), "flare", (THUMB_SIDE, VIEW_SIDE))
    for side in (THUMB_SIDE, VIEW_SIDE):
        scanned = cv2.imread(str(run / THUMB_DIR / overlay_name(stem, side)), cv2.IMREAD_UNCHANGED).astype(int)
        reference = cv2.imread(str(tmp_path / "from-mask" / overlay_name(stem, side)), cv2.IMREAD_UNCHANGED)
        assert scanned.shape == reference.shape and (reference[..., 3] == 255).sum() > 100
        difference = np.abs(scanned - reference)
        assert difference.mean() < 0.1 and (difference > 10).mean() < 0.0005, f"overlay at {side} px"
