"""Image decoding: formats, reduced decodes, orientation, RAW, damaged and non-image inputs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from fault_fixtures import child_env, unprivileged
from PIL import Image, ImageOps

from ipad_qc.io import (
    IMAGE_EXTENSIONS,
    RAW_EXTENSIONS,
    RAW_MODES,
    DecodedImage,
    DecodeError,
    DecodeHint,
    is_image_path,
    load_image,
)
from ipad_qc.io.dng import mosaic, write_dng
from ipad_qc.io.jpeg_check import TRUNCATED_REASON
from ipad_qc.io.orientation import apply_orientation
from ipad_qc.io.pixels import shrink_to
from ipad_qc.io.raster import imdecode_jpeg

SMALL = DecodeHint(long_side=1024)


# --------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def shared() -> Path:
    """Third-party files (see ../shared/testdata/SOURCES.md); the tests using them skip without."""
    default = Path(__file__).resolve().parents[2] / "shared" / "testdata"  # <repo>/../shared/testdata
    root = Path(os.environ.get("IPAD_QC_TESTDATA", default))
    if not root.is_dir():
        pytest.skip("shared testdata not present")
    return root


def _scene(height: int, width: int) -> np.ndarray:
    """An asymmetric RGB uint8 test picture: gradients plus a bright corner block."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([x / width, y / height, 0.25 + 0.5 * (x + y) / (width + height)], axis=-1)
    rgb[: height // 4, : width // 5] = (1.0, 1.0, 1.0)
    return np.rint(rgb * 255).astype(np.uint8)


def _red(height: int = 30, width: int = 40) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = 255
    return rgb


def _write_cv(path: Path, rgb: np.ndarray, params: tuple[int, ...] = ()) -> Path:
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), list(params))
    return path


def _write_jpeg_with_orientation(path: Path, rgb: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, quality=95, exif=exif.tobytes())
    return path


def _small(pixels: np.ndarray, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    return small - small.mean()


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _patch_means(image: DecodedImage, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = box
    return image.to_float()[y0:y1, x0:x1].mean(axis=(0, 1))


# --------------------------------------------------------------------------------------------
# extension tables


def test_extension_tables_are_case_insensitive_and_cover_raw() -> None:
    for name in ("a.JPG", "b.jpeg", "c.Jfif", "d.PNG", "e.dib", "f.WebP", "g.TIF", "h.HEIC", "i.hif"):
        assert is_image_path(name), name
    for name in ("x.NEF", "x.cr3", "x.ARW", "x.3fr", "x.iiq", "x.X3F", "x.gpr", "x.kdc", "x.rw2"):
        assert is_image_path(name), name
    for name in ("x.xmp", "x.txt", "x.mov", "noext", "x.jpg.bak"):
        assert not is_image_path(name), name
    assert RAW_EXTENSIONS < IMAGE_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)
    assert RAW_MODES == ("preview", "half", "full")


# --------------------------------------------------------------------------------------------
# formats, channel order, bit depth


@pytest.mark.parametrize(
    ("suffix", "fmt", "params"),
    [
        (".jpg", "jpeg", (cv2.IMWRITE_JPEG_QUALITY, 95)),
        (".png", "png", ()),
        (".bmp", "bmp", ()),
        (".webp", "webp", (cv2.IMWRITE_WEBP_QUALITY, 101)),
        (".tif", "tiff", ()),
    ],
)
def test_formats_decode_red_as_rgb(tmp_path: Path, suffix: str, fmt: str, params: tuple[int, ...]) -> None:
    image = load_image(_write_cv(tmp_path / f"red{suffix}", _red(), params))
    assert image.pixels.shape == (30, 40, 3)
    assert image.pixels.dtype == np.uint8
    red, green, blue = image.pixels.reshape(-1, 3).mean(axis=0)
    assert red > 240 and green < 15 and blue < 15
    assert (image.meta.format, image.meta.bit_depth, image.meta.decode_mode) == (fmt, 8, "full")
    assert (image.meta.width, image.meta.height, image.meta.orientation) == (40, 30, 1)


def test_tifffile_written_tiff_decodes_red(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "red.tiff", _red(), photometric="rgb", compression="zlib")
    pixels = load_image(tmp_path / "red.tiff").pixels
    assert pixels.dtype == np.uint8 and pixels[..., 0].min() == 255 and pixels[..., 1:].max() == 0


def _write_zlib_tiff(path: Path, rgb: np.ndarray) -> Path:
    tifffile.imwrite(path, rgb, photometric="rgb", compression="zlib", predictor=True)
    return path


@pytest.mark.parametrize(
    ("name", "write"),
    [("deep.png", _write_cv), ("lzw.tif", _write_cv), ("zlib.tif", _write_zlib_tiff)],
    ids=["png", "tiff-lzw-via-libtiff", "tiff-zlib-via-tifffile"],  # OpenCV writes LZW, tifffile lacks it
)
def test_16_bit_is_preserved_exactly(tmp_path: Path, name: str, write) -> None:
    rgb = (np.random.default_rng(1).random((24, 32, 3)) * 65535).astype(np.uint16)
    image = load_image(write(tmp_path / name, rgb))
    assert image.pixels.dtype == np.uint16 and image.meta.bit_depth == 16
    np.testing.assert_array_equal(image.pixels, rgb)


def test_16_bit_resize_stays_integer() -> None:
    pixels = np.full((400, 600, 3), 40000, np.uint16)
    small = shrink_to(pixels, (150, 100))
    assert small.dtype == np.uint16 and small.shape == (100, 150, 3) and int(small.max()) == 40000
    assert shrink_to(pixels, (900, 600)) is pixels  # never upscaled


def test_grey_and_alpha_become_three_channel_rgb(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 240, 6, dtype=np.uint8), (20, 1))
    assert cv2.imwrite(str(tmp_path / "grey.png"), grey)
    pixels = load_image(tmp_path / "grey.png").pixels
    assert pixels.shape == (20, 40, 3)
    np.testing.assert_array_equal(pixels[..., 0], grey)
    np.testing.assert_array_equal(pixels[..., 2], grey)

    rgba = np.dstack([_red(), np.full((30, 40), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    tifffile.imwrite(tmp_path / "alpha.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    tifffile.imwrite(tmp_path / "grey16.tif", (grey.astype(np.uint16) * 257))
    for name in ("alpha.png", "alpha.tif"):
        np.testing.assert_array_equal(load_image(tmp_path / name).pixels, _red())
    grey16 = load_image(tmp_path / "grey16.tif").pixels
    assert grey16.dtype == np.uint16 and grey16.shape == (20, 40, 3)
    np.testing.assert_array_equal(grey16[..., 1], grey.astype(np.uint16) * 257)


# --------------------------------------------------------------------------------------------
# decode at the needed resolution


@pytest.mark.parametrize(
    ("hint", "mode", "size"),
    [
        (DecodeHint(long_side=200), "jpeg-1/8", (200, 150)),
        (DecodeHint(long_side=201), "jpeg-1/4", (201, 151)),
        (DecodeHint(long_side=400), "jpeg-1/4", (400, 300)),
        (DecodeHint(long_side=700), "jpeg-1/2", (700, 525)),
        (DecodeHint(short_side=600), "jpeg-1/2", (800, 600)),
        (DecodeHint(long_side=1000), "resized", (1000, 750)),
        (DecodeHint(long_side=5000), "full", (1600, 1200)),
        (None, "full", (1600, 1200)),
    ],
)
def test_jpeg_reduced_decode_picks_largest_dct_factor(
    tmp_path: Path, hint: DecodeHint | None, mode: str, size: tuple[int, int]
) -> None:
    path = _write_cv(tmp_path / "big.jpg", _scene(1200, 1600), (cv2.IMWRITE_JPEG_QUALITY, 92))
    image = load_image(path, hint)
    assert image.meta.decode_mode == mode
    assert image.size == size
    assert (image.meta.width, image.meta.height) == (1600, 1200)
    reference = cv2.resize(load_image(path).pixels, size, interpolation=cv2.INTER_AREA)
    assert np.abs(image.pixels.astype(int) - reference).mean() < 3


def test_png_is_resized_but_never_upscaled(tmp_path: Path) -> None:
    path = _write_cv(tmp_path / "scene.png", _scene(300, 400))
    small = load_image(path, DecodeHint(long_side=100))
    assert (small.size, small.meta.decode_mode) == ((100, 75), "resized")
    large = load_image(path, DecodeHint(long_side=4000, short_side=3000))
    assert (large.size, large.meta.decode_mode) == ((400, 300), "full")


def test_reduced_jpeg_decode_works_on_non_ascii_paths(tmp_path: Path) -> None:
    folder = tmp_path / "Aufnahmen ü 写真"
    folder.mkdir()
    path = folder / "фото é.JPG"
    path.write_bytes(cv2.imencode(".jpg", _scene(800, 1200))[1].tobytes())
    image = load_image(path, DecodeHint(long_side=150))
    assert image.meta.decode_mode == "jpeg-1/8" and image.size == (150, 100)
    assert image.meta.path == str(path)


# --------------------------------------------------------------------------------------------
# orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    stored = _scene(60, 90)
    path = _write_jpeg_with_orientation(tmp_path / f"o{orientation}.jpg", stored, orientation)
    with Image.open(path) as stored_file:  # Pillow's own EXIF transpose is the reference
        expected = np.asarray(ImageOps.exif_transpose(stored_file).convert("RGB"))
    image = load_image(path)
    assert image.meta.orientation == orientation
    assert image.pixels.shape == expected.shape
    assert (image.meta.width, image.meta.height) == (expected.shape[1], expected.shape[0])
    assert np.abs(image.pixels.astype(int) - expected).mean() < 1.5
    reduced = load_image(path, DecodeHint(long_side=45))
    assert reduced.size == ((45, 30) if orientation < 5 else (30, 45))


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_shared_orientation_samples_all_look_upright(shared: Path, kind: str) -> None:
    reference = load_image(shared / f"jpeg-orientation/{kind}_1.jpg")
    base = _small(reference.pixels)
    for orientation in range(2, 9):
        image = load_image(shared / f"jpeg-orientation/{kind}_{orientation}.jpg")
        assert image.meta.orientation == orientation
        assert image.size == reference.size
        assert (image.meta.width, image.meta.height) == (reference.meta.width, reference.meta.height)
        difference = np.abs(_small(image.pixels) - base).mean()
        wrong = min(
            np.abs(_small(apply_orientation(image.pixels, other)) - base).mean() for other in (2, 3, 4)
        )
        assert difference < 12 and difference < wrong / 3, (orientation, difference, wrong)


def test_tiff_orientation_tag_is_honoured(tmp_path: Path) -> None:
    stored = _scene(20, 30)
    tifffile.imwrite(tmp_path / "o6.tif", stored, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    image = load_image(tmp_path / "o6.tif")
    assert image.meta.orientation == 6 and (image.meta.width, image.meta.height) == (20, 30)
    np.testing.assert_array_equal(image.pixels, cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE))


# --------------------------------------------------------------------------------------------
# TIFF specifics


def test_tiff_multi_page_takes_first_page(tmp_path: Path) -> None:
    blue = _red()[..., ::-1]
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        tif.write(_red(), photometric="rgb")
        tif.write(blue, photometric="rgb")
    np.testing.assert_array_equal(load_image(tmp_path / "pages.tif").pixels, _red())


def test_tiff_planar_rgb_is_interleaved(tmp_path: Path) -> None:
    rgb = (_scene(16, 24).astype(np.uint16)) * 200
    tifffile.imwrite(
        tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"
    )
    image = load_image(tmp_path / "planar.tif")
    assert image.meta.bit_depth == 16
    np.testing.assert_array_equal(image.pixels, rgb)


def test_float_tiff_becomes_uint16(tmp_path: Path) -> None:
    values = np.linspace(0.0, 1.0, 30 * 40 * 3, dtype=np.float32).reshape(30, 40, 3)
    tifffile.imwrite(tmp_path / "unit.tif", values, photometric="rgb")
    image = load_image(tmp_path / "unit.tif")
    assert image.pixels.dtype == np.uint16 and image.meta.bit_depth == 32 and not image.meta.warnings
    np.testing.assert_allclose(image.pixels / 65535.0, values, atol=1e-4)

    tifffile.imwrite(tmp_path / "hdr.tif", values * 4.0, photometric="rgb")
    hdr = load_image(tmp_path / "hdr.tif", DecodeHint(long_side=20))
    assert hdr.size == (20, 15) and int(hdr.pixels.max()) > 60000
    assert any("scaled by the maximum" in warning for warning in hdr.meta.warnings)


# --------------------------------------------------------------------------------------------
# DNG writer and RAW decoding


def _patches(height: int = 96, width: int = 128) -> np.ndarray:
    """Float RGB with red, green, blue, white and mid-grey patches (white keeps auto-brightening off)."""
    rgb = np.full((height, width, 3), 0.5)
    quarter = width // 4
    for index, colour in enumerate([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)]):
        rgb[: height // 2, index * quarter : (index + 1) * quarter] = colour
    return rgb


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("mode", ["half", "full"])
def test_dng_round_trip_preserves_colours(tmp_path: Path, pattern: str, mode: str) -> None:
    rgb = _patches()
    write_dng(tmp_path / "patches.dng", mosaic(rgb, pattern), pattern)
    image = load_image(tmp_path / "patches.dng", raw_mode=mode)
    scale = 2 if mode == "half" else 1
    assert image.pixels.dtype == np.uint16 and image.meta.bit_depth == 12
    assert (image.meta.width, image.meta.height, image.meta.format) == (128, 96, "dng")
    assert image.size == (128 // scale, 96 // scale)
    boxes = {(1, 0, 0): 0, (0, 1, 0): 1, (0, 0, 1): 2, (1, 1, 1): 3}
    for colour, index in boxes.items():
        box = (4 // scale, 40 // scale, (index * 32 + 4) // scale, (index * 32 + 28) // scale)
        np.testing.assert_allclose(_patch_means(image, box), colour, atol=0.06)
    np.testing.assert_allclose(
        _patch_means(image, (60 // scale, 90 // scale, 4, 60 // scale)), 0.5, atol=0.06
    )


def test_dng_orientation_and_preview_fallback(tmp_path: Path) -> None:
    rgb = _patches()
    write_dng(tmp_path / "turned.dng", mosaic(rgb), orientation=6)
    image = load_image(tmp_path / "turned.dng", DecodeHint(long_side=48))
    assert image.meta.decode_mode == "raw-half (no preview)"
    assert image.meta.orientation == 6 and (image.meta.width, image.meta.height) == (96, 128)
    assert image.size == (36, 48)
    upright = apply_orientation(cv2.resize(rgb.astype(np.float32), (64, 48), interpolation=cv2.INTER_AREA), 6)
    assert np.abs(cv2.resize(image.to_float(), (48, 64)) - cv2.resize(upright, (48, 64))).mean() < 0.05


def test_write_dng_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pattern"):
        write_dng(tmp_path / "x.dng", np.zeros((4, 4), np.uint16), pattern="RGBG")
    with pytest.raises(ValueError, match="uint16"):
        write_dng(tmp_path / "x.dng", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="orientation"):
        write_dng(tmp_path / "x.dng", np.zeros((4, 4), np.uint16), orientation=9)


_SHARED_RAW = {
    # file: (full width, height, decode_mode in preview mode at long_side=1024)
    "Blackmagic.dng": (4128, 2176, "raw-half (no preview)"),
    "Nikon_uncompressed.nef": (869, 593, "raw-half (preview too small)"),
    "RAW_KODAK_DC50_é.KDC": (768, 512, "raw-half (preview too small)"),
    "canon_eos_6d.dng": (1224, 816, "raw-preview"),
}


@pytest.mark.parametrize("mode", RAW_MODES)
@pytest.mark.parametrize("name", sorted(_SHARED_RAW))
def test_shared_raw_files_decode_in_every_mode(shared: Path, name: str, mode: str) -> None:
    width, height, preview_mode = _SHARED_RAW[name]
    image = load_image(shared / "raw" / name, SMALL, raw_mode=mode)
    assert (image.meta.width, image.meta.height) == (width, height)
    assert image.meta.format == Path(name).suffix[1:].lower()
    assert image.meta.decode_mode == (preview_mode if mode == "preview" else f"raw-{mode}")
    assert image.pixels.ndim == 3 and image.pixels.shape[2] == 3
    assert max(image.size) <= 1024
    assert image.size[0] / image.size[1] == pytest.approx(width / height, rel=0.02)
    brightness = float(image.to_float().mean())
    assert 0.05 < brightness < 0.75, brightness


@pytest.mark.parametrize(
    ("name", "long_side"),
    [("canon_eos_6d.dng", 1024), ("Nikon_uncompressed.nef", 300), ("RAW_KODAK_DC50_é.KDC", 90)],
)
def test_raw_preview_shows_the_same_picture_as_the_demosaic(shared: Path, name: str, long_side: int) -> None:
    hint = DecodeHint(long_side=long_side)
    preview = load_image(shared / "raw" / name, hint)
    half = load_image(shared / "raw" / name, hint, raw_mode="half")
    assert preview.meta.decode_mode == "raw-preview" and preview.size == half.size

    def normalised(image: DecodedImage) -> np.ndarray:
        small = cv2.resize(image.to_float(), (48, 32), interpolation=cv2.INTER_AREA)
        return small / small.mean()  # the camera's rendering is brighter or darker than LibRaw's

    difference = np.abs(normalised(preview) - normalised(half)).mean()
    turned = np.abs(normalised(preview)[::-1, ::-1] - normalised(half)).mean()
    assert difference < 0.2 and difference < turned / 2, (difference, turned)


def test_nikon_white_level_below_data_is_corrected(shared: Path) -> None:
    image = load_image(shared / "raw/Nikon_uncompressed.nef", raw_mode="half")
    assert float(image.to_float().mean()) < 0.65  # LibRaw's default gives ~0.87, nearly white
    assert float(np.mean(image.pixels == 65535)) < 0.05
    assert any("white level" in warning for warning in image.meta.warnings)


@pytest.mark.parametrize(
    "name",
    ["CanonRaw.cr2", "CanonRaw.cr3", "CanonRaw.crw", "DNG.dng", "FujiFilm.raf", "Minolta.mrw", "Nikon.nef",
     "Panasonic.rw2", "PhaseOne.iiq"],
)  # fmt: skip
@pytest.mark.parametrize("mode", RAW_MODES)
def test_raw_stubs_are_decode_errors(shared: Path, name: str, mode: str) -> None:
    path = shared / "raw-stubs" / name
    with pytest.raises(DecodeError) as error:
        load_image(path, SMALL, raw_mode=mode)
    assert str(path) in str(error.value)
    assert error.value.reason.startswith(("truncated RAW", "unsupported or corrupt RAW file (LibRaw: "))


def test_cut_off_dng_is_a_decode_error(tmp_path: Path) -> None:
    write_dng(tmp_path / "whole.dng", mosaic(_patches(512, 768)))
    data = (tmp_path / "whole.dng").read_bytes()
    (tmp_path / "cut.dng").write_bytes(data[:4096])
    with pytest.raises(DecodeError, match="truncated RAW: sensor data missing"):
        load_image(tmp_path / "cut.dng", raw_mode="half")
    (tmp_path / "zero-tail.dng").write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    with pytest.raises(DecodeError, match="truncated RAW: the last"):
        load_image(tmp_path / "zero-tail.dng", raw_mode="full")


def test_blank_sensor_data_is_a_decode_error(tmp_path: Path) -> None:
    write_dng(tmp_path / "blank.dng", np.full((256, 384), 256, np.uint16))
    with pytest.raises(DecodeError, match="sensor data is blank"):
        load_image(tmp_path / "blank.dng", raw_mode="half")


# --------------------------------------------------------------------------------------------
# damaged JPEGs


def test_cut_off_jpeg_fails_unless_partial_allowed(tmp_path: Path) -> None:
    data = cv2.imencode(".jpg", _scene(240, 320))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DecodeError) as error:
        load_image(tmp_path / "cut.jpg")
    assert error.value.reason == TRUNCATED_REASON
    partial = load_image(tmp_path / "cut.jpg", DecodeHint(long_side=80), allow_partial=True)
    assert partial.size == (80, 60)
    assert any(warning.startswith("truncated JPEG") for warning in partial.meta.warnings)


def test_jpeg_missing_restart_intervals_is_truncated(tmp_path: Path) -> None:
    params = [cv2.IMWRITE_JPEG_RST_INTERVAL, 2, cv2.IMWRITE_JPEG_QUALITY, 90]
    data = cv2.imencode(".jpg", _scene(240, 320), params)[1].tobytes()
    assert load_image(_bytes(tmp_path / "intact.jpg", data)).meta.warnings == ()
    middle = len(data) // 2
    damaged = data[:middle] + data[middle + len(data) // 5 :]  # lose a chunk, keep the end marker
    with pytest.raises(DecodeError, match="truncated JPEG: image data is missing"):
        load_image(_bytes(tmp_path / "hole.jpg", damaged))


def test_data_after_the_jpeg_is_not_truncation(tmp_path: Path) -> None:
    data = cv2.imencode(".jpg", _scene(120, 160))[1].tobytes()
    trailer = bytes(200_000)  # e.g. a motion-photo video or padding after the end-of-image marker
    image = load_image(_bytes(tmp_path / "motion.jpg", data + trailer))
    assert image.size == (160, 120) and image.meta.warnings == ()


def test_shared_truncated_jpeg(shared: Path) -> None:
    path = shared / "jpeg-broken/corrupted.jpg"
    with pytest.raises(DecodeError, match="truncated JPEG") as error:
        load_image(path, SMALL)
    assert str(path) in str(error.value)
    partial = load_image(path, SMALL, allow_partial=True)
    assert (partial.meta.width, partial.meta.height) == (3648, 2736)
    assert partial.size == (1024, 768)
    assert any("truncated JPEG" in warning for warning in partial.meta.warnings)


def test_shared_jpegs_with_broken_exif_decode_quickly(shared: Path) -> None:
    paths = sorted((shared / "jpeg-broken").glob("image*.jpg"))
    assert paths
    for path in paths:
        started = time.perf_counter()
        image = load_image(path, SMALL)
        assert time.perf_counter() - started < 2.0
        assert image.meta.orientation == 1 and image.pixels.mean() > 10


def test_damaged_exif_gives_orientation_1_and_a_warning(tmp_path: Path) -> None:
    data = cv2.imencode(".jpg", _scene(40, 60))[1].tobytes()
    # One IFD0 entry (ImageDescription, 4000 bytes) whose data offset points far beyond the block.
    ifd = (1).to_bytes(2, "little") + bytes.fromhex("0e01 0200 a00f0000 00000100") + bytes(4)
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + ifd
    app1 = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    image = load_image(_bytes(tmp_path / "bad-exif.jpg", data[:2] + app1 + data[2:]))
    assert image.meta.orientation == 1 and image.size == (60, 40)
    assert any(warning.startswith("EXIF partly unreadable") for warning in image.meta.warnings)


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# content sniffing, HEIF, bad inputs


def test_png_named_jpg_is_decoded_as_png_with_a_warning(tmp_path: Path) -> None:
    png = cv2.imencode(".png", _red()[..., ::-1])[1].tobytes()
    image = load_image(_bytes(tmp_path / "actually-png.jpg", png))
    assert image.meta.format == "png" and image.pixels[0, 0].tolist() == [255, 0, 0]
    assert image.meta.warnings == ("content is PNG although the extension says JPEG",)


def test_heif_decodes_when_plugin_present(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.from_bytes(mode="RGB", size=(64, 48), data=_red(48, 64).tobytes()).save(tmp_path / "red.heic")
    image = load_image(tmp_path / "red.heic", DecodeHint(long_side=32))
    assert (image.meta.format, image.meta.width, image.meta.height, image.size) == ("heif", 64, 48, (32, 24))
    red, green, blue = image.pixels.reshape(-1, 3).mean(axis=0)
    assert red > 200 and green < 40 and blue < 40

    ramp = np.linspace(0, 65535, 48 * 64 * 3).astype(np.uint16).reshape(48, 64, 3)
    pillow_heif.from_bytes(mode="RGB;16", size=(64, 48), data=ramp.tobytes()).save(tmp_path / "deep.heic")
    deep = load_image(tmp_path / "deep.heic")
    assert deep.pixels.dtype == np.uint16 and deep.meta.bit_depth == 10 and int(deep.pixels.max()) > 60000

    cut = (tmp_path / "red.heic").read_bytes()[:200]
    with pytest.raises(DecodeError, match="corrupt or unsupported HEIF"):
        load_image(_bytes(tmp_path / "cut.heic", cut))


def test_heif_without_plugin_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # makes `import pillow_heif` fail
    path = _bytes(tmp_path / "photo.HEIC", b"\x00\x00\x00\x18ftypheic" + bytes(16))
    with pytest.raises(DecodeError, match=r"pip install 'ipad-qc\[heif\]'"):
        load_image(path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.jpg", "file not found"),
        (lambda d: (d / "folder.jpg").mkdir() or d / "folder.jpg", "is a directory"),
        (lambda d: _bytes(d / "empty.jpg", b""), "empty file"),
        (lambda d: _bytes(d / "noise.jpg", np.random.default_rng(0).bytes(5000)), "not a JPEG file"),
        (lambda d: _bytes(d / "notes.txt", b"hello"), "not a supported image type"),
        (lambda d: _bytes(d / "text.png", b"just some text, not a picture"), "not a PNG file"),
        (lambda d: _bytes(d / "header-only.png", cv2.imencode(".png", _red())[1].tobytes()[:60]), "PNG"),
        (lambda d: _bytes(d / "garbage.nef", np.random.default_rng(1).bytes(5000)), "LibRaw"),
        (lambda d: _bytes(d / "garbage.tif", b"II*\x00" + bytes(40)), "TIFF"),
    ],
    ids=["missing", "directory", "empty", "random-jpg", "unknown-ext", "text-png", "cut-png", "raw", "tiff"],
)
def test_bad_inputs_raise_decode_error_naming_the_file(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(DecodeError) as error:
        load_image(path)
    assert str(path) in str(error.value)
    assert reason in error.value.reason


UNREADABLE = """
import sys
from ipad_qc.io import DecodeError, load_image
try:
    load_image(sys.argv[1])
except DecodeError as exc:
    print(exc.reason)
"""


@pytest.mark.skipif(os.name != "posix", reason="chmod 000 only blocks reading on POSIX")
def test_unreadable_file_is_a_decode_error(tmp_path: Path) -> None:
    prefix = unprivileged()  # as root, in a user namespace where permission bits bind
    path = _write_cv(tmp_path / "locked.jpg", _red())
    path.chmod(0)
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", UNREADABLE, str(path)], capture_output=True,
                              text=True, env=child_env(), timeout=60)
    finally:
        path.chmod(0o644)
    assert done.stdout.strip() == "permission denied", done.stderr


def test_invalid_raw_mode_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="raw_mode"):
        load_image(_write_cv(tmp_path / "x.png", _red()), raw_mode="quarter")


def test_originals_are_not_modified(tmp_path: Path) -> None:
    paths = [
        _write_cv(tmp_path / "a.jpg", _scene(64, 96)),
        _write_cv(tmp_path / "b.png", _scene(64, 96)),
        _write_cv(tmp_path / "c.tif", _scene(64, 96)),
    ]
    write_dng(tmp_path / "d.dng", mosaic(_patches()))
    paths.append(tmp_path / "d.dng")
    before = [_digest(path) for path in paths]
    for path in paths:
        load_image(path, DecodeHint(long_side=32))
    assert [_digest(path) for path in paths] == before


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_strict_jpeg_decode_gives_opencvs_pixels(tmp_path: Path, factor: int) -> None:
    """The JPEG decoder changed from OpenCV to libjpeg-turbo's strict mode: verdicts must not move."""
    rng = np.random.default_rng(factor)
    pixels = cv2.GaussianBlur(rng.integers(0, 255, (333, 517, 3)).astype(np.uint8), (0, 0), 1.5)
    data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    decoded, warning = imdecode_jpeg("x.jpg", data, factor)
    assert warning is None
    np.testing.assert_array_equal(decoded, expected)
