"""TIFF: 8/16-bit and float, grey or RGB, chunky or planar, first page of multi-page files.

tifffile decodes what it can without optional codecs (uncompressed, Deflate, LZMA), straight into
one output array, or, when the hint allows a reduction by an integer factor and the page is made of
strips, strip by strip into a reduced image (block means, as JPEG's DCT scaling), so memory stays
far below the full-size image. Files that need a codec it lacks here (LZW, JPEG, PackBits), packed
or bilevel samples, or colour models other than grey/RGB go to OpenCV's libtiff instead, decoded
into one buffer (:mod:`ipad_qc.io.imread`). Either way the orientation tag (274) is read by
tifffile and applied by the loader.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import numpy as np
import tifffile
from tifffile import COMPRESSION, PHOTOMETRIC, PLANARCONFIG, SAMPLEFORMAT, TIFF

from ipad_qc.io import orientation as orient
from ipad_qc.io.budget import StoredSize, check_size
from ipad_qc.io.imread import imread_into
from ipad_qc.io.pixels import BoxReducer, shrink_to
from ipad_qc.io.raster import imdecode_stored, read_file
from ipad_qc.io.stored import StoredPixels
from ipad_qc.io.types import DecodeError, DecodeHint

_ORIENTATION_TAG = 274
_NATIVE_DTYPES = frozenset("BHefd")  # uint8, uint16, float16/32/64: what tifffile returns as is
_STREAMED_DTYPES = frozenset("BHfd")  # what OpenCV's area resize takes


def decode_tiff(path: str, hint: DecodeHint | None, max_pixels: int | None = None) -> StoredPixels:
    """Decode the first page of a TIFF file to uint8/uint16 samples in its stored orientation.

    The page's size is checked against ``max_pixels`` and, for codecs with a bounded ratio, against
    the file's size (see :mod:`ipad_qc.io.budget`) before any pixel is decoded.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise DecodeError(path, "corrupt TIFF: it holds no image (no readable page)")
            page = tif.pages.first
            width, height, bits = int(page.imagewidth), int(page.imagelength), int(page.bitspersample)
            _check_budget(path, page, max_pixels)
            orientation = int(page.tags.valueof(_ORIENTATION_TAG, 1))
            factor = _reduction(page, hint)
            mode = f"tiff-1/{factor}" if factor > 1 else "full"
            pixels = None
            if factor > 1:
                pixels = _reduced_pixels(tif, page, factor)
            elif _tifffile_handles(page):
                pixels = _page_pixels(page)
            layout = None if pixels is not None else _opencv_layout(page)
    except (tifffile.TiffFileError, ValueError, KeyError, IndexError, OSError) as exc:
        raise DecodeError(path, f"corrupt or unsupported TIFF ({_reason(exc)})") from exc
    bgr = pixels is None
    if bgr:
        pixels = _opencv_pixels(path, layout, max_pixels)
    target = hint.target_size(width, height) if hint else (width, height)
    pixels, notes = _as_integer(shrink_to(pixels, target), path)
    if not orient.is_valid(orientation):
        notes.append(f"invalid TIFF orientation {orientation}; assumed 1")
        orientation = 1
    return StoredPixels(pixels, width, height, bits, mode, orientation, notes, bgr=bgr)


def _opencv_layout(page: tifffile.TiffPage) -> tuple[tuple[int, ...], np.dtype] | None:
    """The array OpenCV's libtiff decode gives this page, as far as it can be told (grey stays grey,
    other colour models become 3 channels); ``None`` for sample types it is not predicted for."""
    height, width, bits = int(page.imagelength), int(page.imagewidth), int(page.bitspersample)
    grey = page.samplesperpixel == 1 and page.photometric in (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.MINISWHITE)
    floating = page.sampleformat == SAMPLEFORMAT.IEEEFP
    dtype = {(8, False): np.uint8, (16, False): np.uint16, (32, True): np.float32}.get((bits, floating))
    if dtype is None and bits < 8 and not floating:
        dtype = np.uint8
    return None if dtype is None else ((height, width) if grey else (height, width, 3), np.dtype(dtype))


def _opencv_pixels(path: str, layout: tuple[tuple[int, ...], np.dtype] | None, max_pixels: int | None) -> np.ndarray:
    """What OpenCV decodes: into one buffer of the predicted layout (1.0x the decoded size, where
    ``cv2.imdecode`` of an LZW TIFF peaks at 2.3x), else from the file's bytes."""
    if layout is not None:
        with open(path, "rb") as handle:
            pixels = imread_into(handle.fileno(), *layout)
        if pixels is not None:
            return pixels
    return imdecode_stored(path, read_file(path, "tiff", max_pixels), "tiff")


def _reduction(page: tifffile.TiffPage, hint: DecodeHint | None) -> int:
    """The integer factor a strip-by-strip reduction can shrink ``page`` by and still cover the
    hint's least size (1: decode it whole). Only pages of strips of interleaved samples stream."""
    streams = (_tifffile_handles(page) and not page.is_tiled and page.dtype.char in _STREAMED_DTYPES
               and (page.planarconfig == PLANARCONFIG.CONTIG or page.samplesperpixel == 1))
    if hint is None or not streams:
        return 1
    width, height = int(page.imagewidth), int(page.imagelength)
    least_width, least_height = hint.least_size(width, height)
    return max(1, min(width // least_width, height // least_height))


def _reduced_pixels(tif: tifffile.TiffFile, page: tifffile.TiffPage, factor: int) -> np.ndarray:
    """The page reduced by ``factor`` (block means), decoded strip by strip: a 100-megapixel 16-bit
    TIFF takes a few tens of MB instead of 600. Uncompressed data is read straight from the file."""
    height, row_shape = int(page.imagelength), tuple(page.shape[1:])
    reducer = BoxReducer(height, row_shape, page.dtype, factor)
    if page.compression == COMPRESSION.NONE and page.is_contiguous:
        for rows in _file_rows(tif, page, len(reducer.band)):
            reducer.add(rows)
    else:
        for segment, index, shape in page.segments():
            rows = shape[1]
            reducer.add(np.zeros((rows, *row_shape), page.dtype) if segment is None
                        else segment.reshape(rows, *row_shape)[: height - index[2]])
    return reducer.result()


def _file_rows(tif: tifffile.TiffFile, page: tifffile.TiffPage, count: int) -> Iterator[np.ndarray]:
    """The rows of an uncompressed contiguous page, ``count`` at a time, read into one buffer."""
    height, row_shape = int(page.imagelength), tuple(page.shape[1:])
    handle = tif.filehandle
    handle.seek(page.dataoffsets[0])
    buffer = np.empty((count, *row_shape), page.dtype)
    swap = tif.byteorder != ("<" if sys.byteorder == "little" else ">") and page.dtype.itemsize > 1
    for start in range(0, height, count):
        rows = buffer[: min(count, height - start)]
        if handle.readinto(rows) != rows.nbytes:
            raise ValueError("the image data ends before the last row (truncated file)")
        yield rows.byteswap(inplace=True) if swap else rows


_CODECS = {1: "none", 32773: "packbits", 8: "deflate", 32946: "deflate", 5: "lzw"}


def _check_budget(path: str, page: tifffile.TiffPage, max_pixels: int | None) -> None:
    bits = int(page.bitspersample) * int(page.samplesperpixel)
    size = StoredSize(int(page.imagewidth), int(page.imagelength), _CODECS.get(int(page.compression)), bits)
    check_size(path, "tiff", size, os.path.getsize(path), max_pixels, whole=False)


def _reason(exc: Exception) -> str:
    """tifffile's words for a broken file; a bare ``IndexError: 0`` or ``KeyError`` says nothing by itself."""
    text = str(exc).strip("'\"")
    if isinstance(exc, IndexError | KeyError) or not text or text.isdigit():
        return f"a required tag or page is missing ({type(exc).__name__} {text})".replace(" )", ")")
    return f"{type(exc).__name__}: {text}"


def _tifffile_handles(page: tifffile.TiffPage) -> bool:
    """True when tifffile can decode this page here into a grey or RGB array of plain samples."""
    return (
        page.compression in TIFF.DECOMPRESSORS
        and page.predictor in TIFF.UNPREDICTORS
        and page.photometric in (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.RGB)
        and page.dtype is not None
        and page.dtype.char in _NATIVE_DTYPES
        and page.bitspersample == page.dtype.itemsize * 8
    )


def _page_pixels(page: tifffile.TiffPage) -> np.ndarray:
    """The page's samples, H x W or H x W x S; planar pages are interleaved (colour samples only)."""
    pixels = page.asarray()
    if page.planarconfig == PLANARCONFIG.SEPARATE and page.samplesperpixel > 1:
        pixels = np.ascontiguousarray(np.moveaxis(pixels[:3], 0, -1))
    return pixels


def _as_integer(pixels: np.ndarray, path: str) -> tuple[np.ndarray, list[str]]:
    """uint8/uint16 pass through; float becomes uint16. Called after shrinking, so floats stay small.

    Float TIFFs are usually scaled to [0, 1]; larger values (HDR, or 0..255 data) are scaled by the
    maximum so that nothing clips, and a warning says so.
    """
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels, []
    if pixels.dtype.kind != "f":
        raise DecodeError(path, f"unsupported TIFF sample type {pixels.dtype} (need uint8, uint16 or float)")
    pixels = np.nan_to_num(pixels.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0, copy=False)
    peak = float(pixels.max()) if pixels.size else 0.0
    notes = [f"float TIFF values reach {peak:.4g}; scaled by the maximum"] if peak > 1.0 else []
    np.clip(pixels, 0.0, max(peak, 1.0), out=pixels)
    pixels *= np.float32(65535.0 / max(peak, 1.0))
    return np.rint(pixels, out=pixels).astype(np.uint16), notes
