"""Decoding at the cost the hint allows: DCT scales within the slack, PNGs without a second decode,
TIFF strips reduced as they are read, block means that match a plain reference, OpenCV decoding
into one buffer."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, PngImagePlugin

from ipad_qc.io import DecodeError, DecodeHint, load_image
from ipad_qc.io.imread import AS_STORED, imread_into
from ipad_qc.io.pixels import BoxReducer, box_reduce, shrink_to
from ipad_qc.scanning.types import settings_fingerprint


def _scene(height: int, width: int, channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = cv2.resize(rng.random((12, 16, channels), np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    top = 65535 if dtype == np.uint16 else 255
    pixels = np.clip(smooth * top + rng.normal(0, top / 50, smooth.shape), 0, top).astype(dtype)
    return pixels.reshape(height, width) if channels == 1 else pixels


# --- JPEG: the DCT scale within the hint's slack is the result --------------------------------------------------


def test_slack_takes_the_cheaper_dct_scale_and_skips_the_resize(tmp_path: Path) -> None:
    path = tmp_path / "12mp-like.jpg"
    cv2.imwrite(str(path), _scene(300, 400), [cv2.IMWRITE_JPEG_QUALITY, 92])
    exact = load_image(path, DecodeHint(long_side=102))
    slack = load_image(path, DecodeHint(long_side=102, slack=0.05))
    assert exact.meta.decode_mode == "jpeg-1/2" and exact.size == (102, 76), "1/4 (100 px) is below 102: resized"
    assert slack.meta.decode_mode == "jpeg-1/4" and slack.size == (100, 75), "100 px is within 5 % of 102"
    assert load_image(path, DecodeHint(long_side=102, slack=0.01)).meta.decode_mode == "jpeg-1/2"


def test_slack_never_enters_the_settings_hash_unless_set() -> None:
    class Fake:
        name, decode_hint = "fake", DecodeHint(long_side=1024)

        def settings(self) -> dict:
            return {}

    from ipad_qc.scanning.types import ScanOptions

    settings, digest = settings_fingerprint(Fake(), ScanOptions())
    assert settings["decode_hint"] == {"long_side": 1024, "short_side": None}, "hashes of earlier scans still match"
    Fake.decode_hint = DecodeHint(long_side=1024, slack=0.05)
    assert settings_fingerprint(Fake(), ScanOptions())[1] != digest
    with pytest.raises(ValueError, match="slack"):
        DecodeHint(long_side=10, slack=1.0)


# --- PNG: one decode, into one buffer ---------------------------------------------------------------------------


def _with_chunk_before_end(png: bytes, kind: bytes, data: bytes) -> bytes:
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return png[:-12] + chunk + png[-12:]


def _pillow(mode: str, pixels: np.ndarray):
    return lambda path: Image.fromarray(pixels, mode).save(path)


@pytest.mark.parametrize(
    ("write", "bits"),
    [(_pillow("L", _scene(30, 40, 1)), 8), (_pillow("RGB", _scene(30, 40)), 8), (_pillow("RGBA", _scene(30, 40, 4)), 8),
     (_pillow("LA", _scene(30, 40, 2)), 8), (lambda path: Image.fromarray(_scene(30, 40)).convert("P").save(path), 8),
     (lambda path: cv2.imwrite(str(path), _scene(30, 40, 1, np.uint16)), 16),
     (lambda path: cv2.imwrite(str(path), _scene(30, 40, 3, np.uint16)), 16)],
    ids=["grey", "rgb", "rgba", "grey-alpha", "palette", "grey-16", "rgb-16"],
)
def test_png_decodes_like_opencv_for_every_layout_without_a_pillow_decode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write, bits: int) -> None:
    path = tmp_path / "layout.png"
    write(path)

    def no_pixels(self):
        raise AssertionError("Pillow decoded the pixels of a PNG it was only asked the header of")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_pixels)
    decoded = load_image(path)
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    expected = cv2.imdecode(np.fromfile(path, np.uint8), flags)
    expected = cv2.cvtColor(expected, cv2.COLOR_GRAY2RGB if expected.ndim == 2 else cv2.COLOR_BGR2RGB)
    assert np.array_equal(decoded.pixels, expected) and decoded.meta.bit_depth == bits


def test_png_orientation_from_an_exif_chunk_after_the_image_data(tmp_path: Path) -> None:
    pixels = _scene(30, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    ok, png = cv2.imencode(".png", pixels[..., ::-1])
    path = tmp_path / "rotated.png"
    path.write_bytes(_with_chunk_before_end(png.tobytes(), b"eXIf", exif.tobytes()[6:]))  # TIFF header on
    decoded = load_image(path)
    assert decoded.meta.orientation == 6 and decoded.size == (30, 40)
    assert np.array_equal(decoded.pixels, np.rot90(pixels, -1))


def test_png_with_a_chunk_libpng_refuses_still_fails_clearly(tmp_path: Path) -> None:
    ok, png = cv2.imencode(".png", _scene(30, 40))
    path = tmp_path / "odd.png"
    path.write_bytes(_with_chunk_before_end(png.tobytes(), b"ABCD", b"critical and unknown"))
    with pytest.raises(DecodeError, match="odd.png"):
        load_image(path)


def test_non_utf8_png_name_decodes(tmp_path: Path) -> None:
    name = tmp_path / b"caf\xe9.png".decode("utf-8", "surrogateescape")
    ok, png = cv2.imencode(".png", _scene(30, 40))
    name.write_bytes(png.tobytes())
    assert load_image(name).size == (40, 30)


# --- TIFF: strips reduced as they are read ----------------------------------------------------------------------


def _reference(pixels: np.ndarray, factor: int, hint: DecodeHint) -> np.ndarray:
    reduced = box_reduce(pixels, factor)
    height, width = pixels.shape[:2]
    return shrink_to(reduced, hint.target_size(width, height))


@pytest.mark.parametrize(
    "write",
    [
        {"photometric": "rgb"},  # uncompressed, one contiguous strip: read straight from the file
        {"photometric": "rgb", "compression": "zlib", "rowsperstrip": 7},
        {"photometric": "rgb", "byteorder": ">"},
        {"photometric": "minisblack", "compression": "zlib", "grey": True},
    ],
    ids=["contiguous", "deflate-strips", "big-endian", "grey"],
)
def test_tiff_strips_are_reduced_by_the_largest_factor_the_hint_allows(tmp_path: Path, write: dict) -> None:
    grey = write.pop("grey", False)
    pixels = _scene(301, 403, 1 if grey else 3, np.uint16)
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, pixels, **write)
    hint = DecodeHint(long_side=100)
    decoded = load_image(path, hint)
    assert decoded.meta.decode_mode == "tiff-1/4" and decoded.meta.bit_depth == 16
    expected = _reference(pixels, 4, hint)
    expected = np.repeat(expected[..., None], 3, axis=2) if grey else expected
    assert decoded.size == (100, 75) and np.array_equal(decoded.pixels, expected)
    means = pixels.reshape(-1, 1 if grey else 3).mean(axis=0)
    assert np.allclose(decoded.pixels.reshape(-1, 3).mean(axis=0), means, rtol=0.01), "same picture, same channels"


def test_tiled_tiff_and_full_decodes_are_unchanged(tmp_path: Path) -> None:
    pixels = _scene(300, 400, 3, np.uint16)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", tile=(64, 64))
    assert load_image(path, DecodeHint(long_side=100)).meta.decode_mode == "resized"
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, pixels, photometric="rgb")
    full = load_image(flat)
    assert full.meta.decode_mode == "full" and np.array_equal(full.pixels, pixels)


def test_truncated_uncompressed_tiff_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, _scene(300, 400, 3, np.uint16), photometric="rgb")
    path.write_bytes(path.read_bytes()[:400_000])
    with pytest.raises(DecodeError, match="cut.tif"):
        load_image(path, DecodeHint(long_side=100))


def test_box_reduce_is_the_block_mean_with_partial_edges() -> None:
    pixels = np.random.default_rng(3).integers(0, 65535, (11, 14, 3), dtype=np.uint16)
    reduced = box_reduce(pixels, 4)
    assert reduced.shape == (3, 4, 3)
    for row in range(3):
        for col in range(4):
            block = pixels[row * 4 : row * 4 + 4, col * 4 : col * 4 + 4].reshape(-1, 3).astype(float)
            assert np.abs(reduced[row, col] - block.mean(axis=0)).max() <= 0.5


@pytest.mark.parametrize("chunks", [[1], [3, 11], [50], [4, 4, 2]])
def test_box_reducer_gives_the_same_whatever_the_chunks(chunks: list[int]) -> None:
    pixels = np.random.default_rng(4).integers(0, 255, (37, 29, 3), dtype=np.uint8)
    reducer = BoxReducer(37, (29, 3), np.uint8, 3, band_bytes=29 * 3 * 6)  # a band of 6 rows
    start, index = 0, 0
    while start < 37:
        count = chunks[index % len(chunks)]
        reducer.add(pixels[start : start + count])
        start, index = start + count, index + 1
    assert np.array_equal(reducer.result(), box_reduce(pixels, 3))
    short = BoxReducer(37, (29, 3), np.uint8, 3)
    short.add(pixels[:20])
    with pytest.raises(ValueError, match="rows given"):
        short.result()


# --- OpenCV's decode into one buffer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pixels",
    [_scene(40, 50), _scene(40, 50, 1, np.uint16), _scene(40, 50, 3, np.uint16), _scene(40, 50, 4)],
    ids=["rgb-8", "grey-16", "rgb-16", "rgba-8"],
)
def test_tiffs_opencv_decodes_give_its_pixels(tmp_path: Path, pixels: np.ndarray) -> None:
    path = tmp_path / "lzw.tif"
    assert cv2.imwrite(str(path), pixels)  # LZW with a predictor: a codec tifffile lacks here
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.compression == tifffile.COMPRESSION.LZW
    decoded = load_image(path)
    expected = cv2.imdecode(np.fromfile(path, np.uint8), AS_STORED)
    expected = cv2.cvtColor(expected, cv2.COLOR_GRAY2RGB if expected.ndim == 2 else cv2.COLOR_BGR2RGB)
    assert np.array_equal(decoded.pixels, expected) and decoded.meta.decode_mode == "full"


def test_imread_into_says_when_it_did_not_decode(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    cv2.imwrite(str(good), _scene(20, 30))
    bad.write_bytes(good.read_bytes()[:60])  # a header and nothing else: OpenCV leaves the buffer as it was
    with open(good, "rb") as handle:
        assert np.array_equal(imread_into(handle.fileno(), (20, 30, 3), np.uint8), cv2.imread(str(good)))
        assert imread_into(handle.fileno(), (20, 30, 3), np.uint16) is None, "another layout than predicted"
    with open(bad, "rb") as handle:
        assert imread_into(handle.fileno(), (20, 30, 3), np.uint8) is None
    with pytest.raises(DecodeError, match="bad.png"):
        load_image(bad)
