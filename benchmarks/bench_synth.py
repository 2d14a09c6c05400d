"""Throughput and realism of ``ipad-qc synth`` on real clean photos, in one process.

Generates ``--count`` samples at ``--size`` px from a folder of clean photos (default: the shared
clean corpus next to the repository) with one worker process, and prints the CPU time per sample
by class (``time.process_time`` deltas between samples; the photo check and the sheets are timed
apart) and the samples per CPU-second. With a folder of real labelled photos (default: the shared
``realdev``), it writes ``comparison_sheet.jpg``: synthetic beside real photos per class, whole
and 1:1. Look at it.

    .venv/bin/python benchmarks/bench_synth.py --count 200 --size 512 --out /tmp/synth-bench
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ipad_qc.datasets.settings import SynthSettings
from ipad_qc.datasets.synth import SETTINGS_NAME, synthesize

SHARED = Path(os.environ.get("IPAD_QC_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


class CpuClock:
    """A synth listener that records the process CPU time at every finished sample of the generating phase."""

    def __init__(self) -> None:
        self.phase_name, self.marks = "", []

    def phase(self, name: str, total: int) -> None:
        self.phase_name = name
        if name == "generating":
            self.marks = [time.process_time()]

    def advance(self) -> None:
        if self.phase_name == "generating":
            self.marks.append(time.process_time())

    def note(self, message: str) -> None:
        print(f"  note: {message}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=SHARED / "clean-corpus", help="folder of clean photos")
    parser.add_argument("--real", type=Path, default=SHARED / "realdev", help="real photos in class folders")
    parser.add_argument("--out", type=Path, required=True, help="where to write the data set (replaced)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.photos.is_dir():
        raise SystemExit(f"{args.photos}: no such folder (set IPAD_QC_SHARED or pass --photos)")
    clock = CpuClock()
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    summary = synthesize(args.photos, args.out, SynthSettings(count=args.count, size=args.size, seed=args.seed),
                         workers=0, overwrite=args.out.exists(), listener=clock,
                         compare=args.real if args.real.is_dir() else None)
    total_cpu, total_wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    records = json.loads((args.out / SETTINGS_NAME).read_text())["samples"]
    per_class: dict[str, list[float]] = defaultdict(list)
    for record, begin, end in zip(records, clock.marks[:-1], clock.marks[1:], strict=True):
        per_class[record["label"]].append(end - begin)
    generating = clock.marks[-1] - clock.marks[0]
    print(f"{len(summary.samples)} samples of {args.size} px from {summary.sources} photos "
          f"({len(records) - len(summary.samples)} skipped); one process")
    for label, seconds in sorted(per_class.items()):
        print(f"  {label:9s} {len(seconds):4d} samples  CPU {np.mean(seconds):.3f} s/sample "
              f"(p90 {np.percentile(seconds, 90):.3f})")
    print(f"generating: {generating:.1f} s CPU = {len(records) / generating:.2f} samples per CPU-second; "
          f"{3000 / (len(records) / generating) / 60:.1f} CPU-minutes per 3000 samples")
    print(f"whole run (photo check, sheets): {total_cpu:.1f} s CPU, {total_wall:.1f} s wall")
    if args.real.is_dir():
        print(f"look at {args.out / 'comparison_sheet.jpg'} and {args.out / 'contact_sheet.jpg'}")


if __name__ == "__main__":
    main()
