"""Decode throughput per format and mode, and the peak memory of decoding 100-megapixel files.

Throughput: synthetic camera-sized files (JPEG, PNG, 8/16-bit TIFF, a DNG from ``write_dng``)
plus the real RAW files in the shared test data when present, each decoded at a ``DecodeHint``
(default long side 1024) and, for JPEG, also at full resolution. Figures are single-core: images/s
and source megapixels/s (megapixels of the file, not of the smaller decoded result).

Memory: a 100-megapixel JPEG, 16-bit TIFF and 16-bit PNG are decoded in fresh subprocesses
(full resolution and at the hint); each reports its peak RSS (``ru_maxrss``) against its RSS
after imports and against the size of the full decoded image.

    python benchmarks/bench_decode.py --long-side 1024 --width 6000 --height 4000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

from ipad_qc.io import RAW_MODES, DecodeError, DecodeHint, ImageMeta, load_image
from ipad_qc.io.dng import mosaic, write_dng

_MIB = 2**20


def scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Camera-like 8-bit RGB: smooth structure with fine texture and sensor noise (realistic file sizes)."""
    rng = np.random.default_rng(seed)
    small = cv2.resize(rng.random((12, 18, 3), dtype=np.float32), (width // 8, height // 8))
    pixels = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0.0, 0.02, (height, width, 1)).astype(np.float32)
    return np.clip((pixels + noise) * 255 + 0.5, 0, 255).astype(np.uint8)


def make_files(folder: Path, width: int, height: int) -> dict[str, Path]:
    """One file per synthetic format, all of the same picture."""
    rgb = scene(width, height)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    files = {
        "jpeg": folder / "scene.jpg",
        "png": folder / "scene.png",
        "tiff-8": folder / "scene8.tif",
        "tiff-16": folder / "scene16.tif",
        "dng": folder / "scene.dng",
    }
    cv2.imwrite(str(files["jpeg"]), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    cv2.imwrite(str(files["png"]), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    tifffile.imwrite(files["tiff-8"], rgb, photometric="rgb")
    tifffile.imwrite(files["tiff-16"], rgb.astype(np.uint16) * 257, photometric="rgb")
    write_dng(files["dng"], mosaic(rgb.astype(np.float32) / 255))
    return files


def time_decode(path: Path, hint: DecodeHint | None, raw_mode: str, repeat: int) -> tuple[float, ImageMeta]:
    """Median seconds per decode, and the metadata of the decoded file."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        meta = load_image(path, hint, raw_mode=raw_mode).meta
        times.append(time.perf_counter() - start)
    return statistics.median(times), meta


def throughput_cases(files: dict[str, Path], testdata: Path | None) -> list[tuple[str, Path, bool, str]]:
    """(label, file, use the hint, raw mode) for every measured combination."""
    cases = [("jpeg full", files["jpeg"], False, "preview"), ("jpeg reduced", files["jpeg"], True, "preview")]
    cases += [(name, files[name], True, "preview") for name in ("png", "tiff-8", "tiff-16")]
    cases += [(f"dng (write_dng) {mode}", files["dng"], True, mode) for mode in RAW_MODES]
    raw_dir = testdata / "raw" if testdata else None
    if raw_dir and raw_dir.is_dir():
        for path in sorted(raw_dir.iterdir()):
            cases += [(f"{path.name} {mode}", path, True, mode) for mode in RAW_MODES]
    return cases


def print_throughput(files: dict[str, Path], testdata: Path | None, hint: DecodeHint, repeat: int) -> None:
    print(f"Decode throughput, 1 process, hint long_side={hint.long_side} (median of {repeat})")
    print(f"{'case':40} {'decode_mode':30} {'MP':>6} {'ms':>8} {'img/s':>7} {'MP/s':>7}")
    for label, path, use_hint, raw_mode in throughput_cases(files, testdata):
        try:
            seconds, meta = time_decode(path, hint if use_hint else None, raw_mode, repeat)
        except DecodeError as exc:
            print(f"{label:40} failed: {exc.reason}")
            continue
        megapixels = meta.width * meta.height / 1e6
        print(
            f"{label:40} {meta.decode_mode:30} {megapixels:6.1f} {seconds * 1e3:8.1f} {1 / seconds:7.2f} "
            f"{megapixels / seconds:7.1f}"
        )


def make_large_files(folder: Path, megapixels: int) -> dict[str, Path]:
    """JPEG, 16-bit TIFF and 16-bit PNG of about ``megapixels`` megapixels (3:2), same picture."""
    width = int((megapixels * 1e6 * 1.5) ** 0.5)
    height = int(megapixels * 1e6 / width)
    rgb = scene(width, height, seed=1)
    files = {
        "jpeg": folder / "large.jpg",
        "tiff-16": folder / "large16.tif",
        "png-16": folder / "large16.png",
    }
    cv2.imwrite(str(files["jpeg"]), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    deep = rgb.astype(np.uint16)
    del rgb
    deep *= 257
    tifffile.imwrite(files["tiff-16"], deep, photometric="rgb")
    cv2.imwrite(str(files["png-16"]), deep[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return files


def peak_rss() -> int:
    """Peak resident set size of this process, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def rss_worker(path: str, long_side: int) -> None:
    """Runs in a subprocess: decode once and print RSS figures as JSON."""
    baseline = peak_rss()
    hint = DecodeHint(long_side=long_side) if long_side else None
    image = load_image(path, hint)
    peak = peak_rss()
    full_bytes = image.meta.width * image.meta.height * 3 * image.pixels.itemsize
    print(
        json.dumps(
            {"baseline": baseline, "peak": peak, "full_bytes": full_bytes, "mode": image.meta.decode_mode}
        )
    )


def print_memory(folder: Path, hint: DecodeHint, megapixels: int) -> None:
    """Measure in fresh subprocesses started while this process is still small.

    A child's ``ru_maxrss`` starts at its parent's RSS when it is spawned, so the large files are
    made in a subprocess too and this section runs before anything big is loaded here.
    """
    print(f"Peak RSS of a fresh worker decoding one {megapixels}-megapixel file")
    make = [sys.executable, __file__, "--make-large", str(folder), "--megapixels", str(megapixels)]
    files = json.loads(subprocess.run(make, capture_output=True, text=True, check=True).stdout)
    header = ("file", "size MiB", "hint", "decode_mode", "peak MiB", "+decode", "x image")
    print("{:10} {:>9} {:>6} {:14} {:>9} {:>8} {:>8}".format(*header))
    for name, path in files.items():
        for long_side in (0, hint.long_side or 0):
            command = [sys.executable, __file__, "--rss-worker", path, "--long-side", str(long_side)]
            result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            added = result["peak"] - result["baseline"]
            print(
                f"{name:10} {Path(path).stat().st_size / _MIB:9.0f} {long_side or 'full':>6} "
                f"{result['mode']:14} {result['peak'] / _MIB:9.0f} {added / _MIB:8.0f} "
                f"{added / result['full_bytes']:8.2f}"
            )
    print(
        "(+decode: peak minus the peak after imports; x image: +decode over the full-resolution decoded "
        f"size; parent RSS at spawn {peak_rss() / _MIB:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--long-side", type=int, default=1024)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--megapixels", type=int, default=100, help="size of the memory-test files")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--testdata", type=Path, default=None, help="shared test data (real RAW files)")
    parser.add_argument("--rss-worker", help=argparse.SUPPRESS)
    parser.add_argument("--make-large", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_worker:
        rss_worker(args.rss_worker, args.long_side)
        return
    if args.make_large:
        files = make_large_files(args.make_large, args.megapixels)
        print(json.dumps({name: str(path) for name, path in files.items()}))
        return
    default_testdata = Path(__file__).resolve().parents[2] / "shared" / "testdata"
    testdata = args.testdata or Path(os.environ.get("IPAD_QC_TESTDATA", default_testdata))
    shared = testdata if testdata.is_dir() else None
    hint = DecodeHint(long_side=args.long_side)
    with tempfile.TemporaryDirectory(prefix="ipad-qc-bench-") as tmp:
        if not args.skip_memory:
            print_memory(Path(tmp), hint, args.megapixels)
        files = make_files(Path(tmp), args.width, args.height)
        print(f"\nSynthetic files: {args.width}x{args.height}; shared test data: {shared or 'absent'}")
        print_throughput(files, shared, hint, args.repeat)


if __name__ == "__main__":
    main()
