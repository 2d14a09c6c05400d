"""Scan cost per core, pipeline overhead and memory of the whole process tree, measured in one run.

On camera-sized synthetic JPEGs (quality 92, sensor noise), with the detector of ``--detector``:

1. each stage alone in this process, CPU per image: decode (at the detector's decode hint),
   detect, and writing the results (masks, maps, thumbnails, rows);
2. the full scan in one process (``--workers 0``): CPU per image, i.e. images per second per core;
3. the full scan with ``--workers`` decode processes: CPU of the whole process tree per image
   (this process, multiprocessing's fork server and its workers, read from ``/proc``: the workers
   are not this process's children, so ``getrusage`` would miss them), wall time against the
   slowest stage run alone with the same processes (1.0 = perfect overlap), and the peak RSS and
   PSS of the whole tree.

CPU seconds are the figures to compare on a shared machine: wall time depends on what else runs.
The labels of the two scans are printed so a change that alters detection shows up.

    python benchmarks/bench_scan.py --images 24 --width 4000 --height 3000 --workers 1 2
    python benchmarks/bench_scan.py --detector ipad-net          # random weights unless weights=FILE
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from proctree import TreeMonitor, TreeUsage

from ipad_qc import ScanOptions, get_detector, scan
from ipad_qc.detectors.registry import UnknownDetectorError
from ipad_qc.scanner import (
    DecodeJob,
    Finished,
    ResultWriter,
    ScanSummary,
    SilentListener,
    decode_job,
    decode_pool,
    detect_batch,
)
from ipad_qc.store import ResultStore
from ipad_qc.synthetic import make_case
from ipad_qc.walker import walk

KINDS = ("clean", "flare", "moire", "ghosting")
_MIB = 2**20


def make_folder(folder: Path, count: int, width: int, height: int, seed: int) -> None:
    """Synthetic shots at a camera-like size: cases made at 1/4 size, upscaled, with sensor noise."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        image, _, label = make_case(KINDS[i % len(KINDS)], rng, width // 4, height // 4)
        big = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
        big += rng.normal(0, 0.01, big.shape).astype(np.float32)
        pixels = (np.clip(big, 0, 1) * 255 + 0.5).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}_{label}.jpg"), pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])


def random_ipad_net(folder: Path) -> Path:
    """An ipad-net checkpoint with random weights (the network's cost is that of trained ones)."""
    import torch

    from ipad_qc.net.checkpoint import save_net
    from ipad_qc.net.model import IpadNet

    torch.manual_seed(0)
    return save_net(IpadNet(), folder / "ipad-net-random.safetensors", {"note": "random weights (benchmark)"})


def make_detector(name: str, options: dict[str, Any]) -> Any:
    """The detector by its registered name; ipad-net also before it is registered (its factory directly)."""
    try:
        return get_detector(name, device="cpu", **options)
    except UnknownDetectorError:
        if name != "ipad-net":
            raise
        from ipad_qc.net.detector import create

        return create(device="cpu", **options)


def detector_options(items: list[str], detector: str, scratch: Path) -> dict[str, Any]:
    """``KEY=VALUE`` options (JSON values, as the CLI parses them); ipad-net gets random weights when
    none are named."""
    options = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    if detector == "ipad-net" and "weights" not in options:
        options["weights"] = str(random_ipad_net(scratch))
    return options


class CpuClock:
    """CPU seconds and minor page faults of this process (every thread), between ``start`` and ``stop``."""

    def __enter__(self) -> CpuClock:
        self._begin = resource.getrusage(resource.RUSAGE_SELF)
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end = resource.getrusage(resource.RUSAGE_SELF)
        self.user_s = end.ru_utime - self._begin.ru_utime
        self.system_s = end.ru_stime - self._begin.ru_stime
        self.cpu_s = self.user_s + self.system_s
        self.faults = end.ru_minflt - self._begin.ru_minflt
        self.wall_s = time.perf_counter() - self._wall


def scan_conditions(workers: int) -> contextlib.AbstractContextManager[None]:
    """The allocator settings and detector threads a scan with ``workers`` runs under (ipad-qc from
    issue 14 on; older versions had neither, and ran their stages as this falls back to)."""
    try:
        from ipad_qc.scanning.resources import detector_threads, keep_freed_memory, share_cores
    except ImportError:
        return contextlib.nullcontext()
    keep_freed_memory()
    return detector_threads(share_cores(workers)[1])


def stages_alone(jobs: list[DecodeJob], detector: Any, batch_size: int, run_dir: Path,
                 workers: list[int]) -> dict[str, CpuClock]:
    """Each stage on its own: CPU in this process (decode, detect, write, under the first worker
    count's conditions) and the wall time of decoding with each number of worker processes."""
    with scan_conditions(workers[0]):
        return _stages(jobs, detector, batch_size, run_dir, workers)


def _stages(jobs: list[DecodeJob], detector: Any, batch_size: int, run_dir: Path,
            workers: list[int]) -> dict[str, CpuClock]:
    clocks: dict[str, CpuClock] = {}
    with CpuClock() as clocks["decode"]:
        outcomes = [decode_job(job) for job in jobs]
    for count in workers:
        with CpuClock() as clocks[f"decode, {count} workers (wall)"], decode_pool(count) as pool:
            list(pool.map(decode_job, jobs))
    detections: list = []
    with CpuClock() as clocks["detect"]:
        for start in range(0, len(outcomes), batch_size):
            batch = outcomes[start : start + batch_size]
            results, _ = detect_batch(detector, [outcome.image for outcome in batch])
            detections += results
    with CpuClock() as clocks["write"], ResultStore(run_dir) as store:
        writer = ResultWriter(store, detector.name, "bench", ScanOptions(), SilentListener(),
                              ScanSummary(run_dir, run_dir, detector.name))
        items = [Finished(outcome, result, 0.0) for outcome, result in zip(outcomes, detections, strict=True)]
        for start in range(0, len(items), batch_size):
            writer.commit(items[start : start + batch_size])
        writer.close()
    return clocks


def full_scan(folder: Path, run_dir: Path, detector: Any, workers: int,
              batch_size: int) -> tuple[float, TreeUsage, Counter[str]]:
    """Wall seconds, CPU and memory of the whole process tree, and the labels of one full scan."""
    options = ScanOptions(workers=workers, batch_size=batch_size, force=True)
    with TreeMonitor() as usage:
        start = time.perf_counter()
        summary = scan(folder, run_dir, options, detector=detector)
        wall = time.perf_counter() - start
    if summary.failed:
        raise SystemExit(f"{summary.failed} files failed to scan: {summary.errors[:3]}")
    return wall, usage, summary.labels


def report(args: argparse.Namespace, detector: Any, clocks: dict[str, CpuClock],
           scans: dict[int, tuple[float, TreeUsage, Counter[str]]]) -> None:
    n = args.images
    print(f"{n} JPEGs of {args.width}x{args.height} ({args.width * args.height / 1e6:.1f} MP, quality 92), "
          f"detector {detector.name} (decode hint {detector.decode_hint}), batch {args.batch_size}, "
          f"{os.cpu_count()} cores here")
    print("\nStages alone, this process (CPU ms per image; faults = minor page faults per image)")
    for name in ("decode", "detect", "write"):
        clock = clocks[name]
        print(f"  {name:8} {1000 * clock.cpu_s / n:7.1f} ms  (user {1000 * clock.user_s / n:6.1f}, system "
              f"{1000 * clock.system_s / n:5.1f}; {clock.faults / n:7.0f} faults)")
    stage_cpu = sum(clocks[name].cpu_s for name in ("decode", "detect", "write"))
    print(f"  sum      {1000 * stage_cpu / n:7.1f} ms  -> {n / stage_cpu:.2f} img/s per core")

    print("\nFull scans (CPU of the whole process tree: this process, fork server, decode workers)")
    print(f"  {'workers':>7} {'wall s':>7} {'CPU ms/img':>10} {'img/s/core':>10} {'CPU / stages':>12} "
          f"{'peak RSS':>9} {'peak PSS':>9} {'procs':>5}")
    for workers, (wall, usage, _) in scans.items():
        print(f"  {workers:7} {wall:7.2f} {1000 * usage.cpu_s / n:10.1f} {n / usage.cpu_s:10.2f} "
              f"{usage.cpu_s / stage_cpu:12.2f} {usage.peak_rss / _MIB:8.0f}M {usage.peak_pss / _MIB:8.0f}M "
              f"{usage.processes:5}")
    print()
    for workers in args.workers:
        wall = scans[workers][0]
        stage_walls = {f"decode ({workers} workers)": clocks[f"decode, {workers} workers (wall)"].wall_s,
                       "detect": clocks["detect"].wall_s, "write": clocks["write"].wall_s}
        slowest = max(stage_walls, key=stage_walls.get)
        print(f"Wall, {workers} workers: full scan {wall:.2f} s / slowest stage alone ({slowest}, "
              f"{stage_walls[slowest]:.2f} s) = {wall / stage_walls[slowest]:.2f}   "
              f"(stages: {', '.join(f'{k} {v:.2f} s' for k, v in stage_walls.items())})")
    for workers, (_, _, labels) in scans.items():
        print(f"labels, {workers} workers: {dict(sorted(labels.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="decode workers of the multi-process scans (a one-process scan always runs)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--detector", default="classic")
    parser.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--decode-slack", type=float, default=0.0,
                        help="stand-in for the detector with this DecodeHint.slack (its hint is replaced)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ipad-qc-bench-") as tmp:
        scratch = Path(tmp)
        options = detector_options(args.detector_option, args.detector, scratch)
        detector = make_detector(args.detector, options)
        if args.decode_slack:
            detector.decode_hint = dataclasses.replace(detector.decode_hint, slack=args.decode_slack)
        folder = scratch / "shots"
        folder.mkdir()
        make_folder(folder, args.images, args.width, args.height, args.seed)
        jobs = [DecodeJob(str(f.path), f.relpath, detector.decode_hint, "preview", False) for f in walk(folder).files]
        detector.detect([decode_job(jobs[0]).image])  # warm-up: lazy imports, first-call allocations
        clocks = stages_alone(jobs, detector, args.batch_size, scratch / "stages", args.workers)
        scans = {workers: full_scan(folder, scratch / f"run-{workers}", detector, workers, args.batch_size)
                 for workers in (0, *args.workers)}
    report(args, detector, clocks, scans)


if __name__ == "__main__":
    main()
