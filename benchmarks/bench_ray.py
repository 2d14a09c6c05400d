"""Local engine vs Ray engine on the same folder and machine, measured in one run: the Ray overhead.

Both scans use the same detector, batch size and inputs (``--force``, so every file is decoded and
detected). The Ray scan runs on a local Ray instance with one detect actor, whose start-up (Ray
itself, then the actor building its detector) is printed apart from the scan. On one machine Ray
cannot be faster than the local engine; the ratio says what the engine costs per image, which a
cluster repays once it has more decode CPUs and GPUs than one workstation.

    python benchmarks/bench_ray.py --images 32 --width 3000 --height 2000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench_scan import make_folder

from ipad_qc import ScanOptions, scan
from ipad_qc.ray_engine import RayEngine


def timed_scan(folder: Path, run_dir: Path, options: ScanOptions, engine: RayEngine | None = None) -> float:
    start = time.perf_counter()
    summary = scan(folder, run_dir, options, engine=engine)
    elapsed = time.perf_counter() - start
    assert summary.scanned + summary.failed == summary.found, "every file must be scanned"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--detector", default="classic")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs for both engines")
    args = parser.parse_args()

    import ray

    options = ScanOptions(detector=args.detector, batch_size=args.batch_size, workers=args.cpus, force=True,
                          write_thumbnails=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shots"
        folder.mkdir()
        make_folder(folder, args.images, args.width, args.height, seed=0)
        local_s = timed_scan(folder, Path(tmp) / "local", options)

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        init_s = time.perf_counter() - start
        engine = RayEngine()
        warm_s = timed_scan(folder, Path(tmp) / "warm-up", options, engine)  # Ray starts and warms its workers
        ray_s = timed_scan(folder, Path(tmp) / "ray", options, engine)
        ray.shutdown()

    n = args.images
    print(f"{n} JPEG images of {args.width}x{args.height}, detector {args.detector}, batch {args.batch_size}, "
          f"{args.cpus} CPUs for each engine")
    print(f"local engine                         : {local_s:6.2f} s  {n / local_s:6.2f} img/s")
    print(f"ray engine, first scan (cold workers): {warm_s:6.2f} s  {n / warm_s:6.2f} img/s  "
          f"(plus ray.init {init_s:.1f} s)")
    print(f"ray engine, second scan              : {ray_s:6.2f} s  {n / ray_s:6.2f} img/s")
    print(f"Ray overhead ratio (second ray scan time / local time) = {ray_s / local_s:.2f}")


if __name__ == "__main__":
    main()
