"""Scan throughput: decode alone, detect alone, and the full pipeline, measured in one run.

The full scan overlaps decoding (worker processes) with detection (main process), so its time
should approach the slower of the two stages: the printed ratio full / max(decode, detect) is 1.0
for perfect overlap and grows with pipeline overhead (IPC, mask writing, SQLite commits).

    python benchmarks/bench_scan.py --images 24 --width 4000 --height 3000 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ipad_qc import ScanOptions, get_detector, scan
from ipad_qc.scanner import DecodeJob, decode_job, decode_pool
from ipad_qc.synthetic import make_case
from ipad_qc.walker import walk

KINDS = ("clean", "flare", "moire", "ghosting")


def make_folder(folder: Path, count: int, width: int, height: int, seed: int) -> None:
    """Synthetic shots at a camera-like size: cases made at 1/4 size, upscaled, with sensor noise."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        image, _, label = make_case(KINDS[i % len(KINDS)], rng, width // 4, height // 4)
        big = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
        big += rng.normal(0, 0.01, big.shape).astype(np.float32)
        pixels = (np.clip(big, 0, 1) * 255 + 0.5).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}_{label}.jpg"), pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])


def time_decode(jobs: list[DecodeJob], workers: int) -> tuple[float, float, list]:
    """Wall time of the pool, summed single-core decode time, and the decoded images."""
    start = time.perf_counter()
    with decode_pool(workers) as pool:
        outcomes = list(pool.map(decode_job, jobs))
    return time.perf_counter() - start, sum(o.decode_ms for o in outcomes) / 1000, [o.image for o in outcomes]


def time_detect(detector, images: list, batch_size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        detector.detect(images[i : i + batch_size])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--detector", default="classic")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    detector = get_detector(args.detector, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shots"
        folder.mkdir()
        make_folder(folder, args.images, args.width, args.height, args.seed)
        jobs = [DecodeJob(str(f.path), f.relpath, detector.decode_hint, "preview", False) for f in walk(folder).files]
        decode_s, decode_cpu_s, images = time_decode(jobs, args.workers)
        detect_s = time_detect(detector, images, args.batch_size)
        start = time.perf_counter()
        summary = scan(folder, Path(tmp) / "run",
                       ScanOptions(workers=args.workers, batch_size=args.batch_size, force=True), detector=detector)
        full_s = time.perf_counter() - start

    n, mp = args.images, args.width * args.height / 1e6
    print(f"{n} JPEG images of {args.width}x{args.height} ({mp:.1f} MP), {args.workers} decode workers, "
          f"detector {detector.name}, batch {args.batch_size}")
    print(f"decode only (pool of {args.workers}): {decode_s:6.2f} s  {n / decode_s:6.2f} img/s")
    print(f"detect only (main process)  : {detect_s:6.2f} s  {n / detect_s:6.2f} img/s  "
          f"{1000 * detect_s / n:.0f} ms/img")
    print(f"full scan                   : {full_s:6.2f} s  {n / full_s:6.2f} img/s  "
          f"(scanned {summary.scanned}, failed {summary.failed})")
    print(f"ratio full / max(decode, detect) = {full_s / max(decode_s, detect_s):.2f}")
    print(f"per image on one core: decode {1000 * decode_cpu_s / n:.0f} ms + detect {1000 * detect_s / n:.0f} ms "
          f"= {1000 * (decode_cpu_s + detect_s) / n:.0f} ms")


if __name__ == "__main__":
    main()
