"""Peak memory of the whole process tree while scanning (and reporting on) flagged 100-megapixel files.

One 100-megapixel JPEG, 16-bit TIFF and 16-bit PNG (the same picture) are scanned into one run
folder, flagged (the detector's verdict is kept, but a clean one is turned into its top artifact
class, so each image gets its full-size mask), then ``report.html`` is built. A monitor samples the
RSS and PSS of every process of the tree every 10 ms: this process, multiprocessing's fork server
and the decode workers, which ``getrusage`` and ``ru_maxrss`` do not see.

The same scan of 1-megapixel copies, run after a first one (so this process holds the detector's
working set, as it does during any long scan), gives the tree's memory without large images
(imports, the detector, idle workers); the difference is what the large images cost, printed
against the target: 1.2x the decoded size of the largest file (100 MP x 3 channels x 2 bytes).

    python benchmarks/bench_memory.py --megapixels 100 --workers 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proctree import TreeMonitor, TreeUsage

from ipad_qc import ScanOptions, get_detector, scan
from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.report import build_report

_MIB = 2**20
_BENCH_DECODE = Path(__file__).with_name("bench_decode.py")


class FlagAll:
    """The wrapped detector, whose clean verdicts become their most likely artifact class."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.name = detector.name
        self.decode_hint = detector.decode_hint

    def settings(self) -> dict[str, Any]:
        return {**self.detector.settings(), "bench": "flag-all"}

    def detect(self, images: Sequence[Any]) -> list:
        return [detection if not detection.is_clean else
                dataclasses.replace(detection, label=max(ARTIFACT_CLASSES, key=detection.scores.get))
                for detection in self.detector.detect(images)]


def make_files(folder: Path, megapixels: int) -> dict[str, Path]:
    """The large files, made in a subprocess so this process does not keep their memory."""
    command = [sys.executable, str(_BENCH_DECODE), "--make-large", str(folder), "--megapixels", str(megapixels)]
    made = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return {name: Path(path) for name, path in made.items()}


def measure(folder: Path, run_dir: Path, detector: FlagAll, workers: int | None) -> tuple[TreeUsage, TreeUsage, Any]:
    """Tree usage of the scan, then of the report, and the scan's summary."""
    with TreeMonitor() as scanning:
        summary = scan(folder, run_dir, ScanOptions(workers=workers, force=True), detector=detector)
    with TreeMonitor() as reporting:
        build_report(run_dir)
    return scanning, reporting, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="decode workers (default: the scan's default)")
    parser.add_argument("--detector", default="classic")
    args = parser.parse_args()

    detector = FlagAll(get_detector(args.detector, device="cpu"))
    with tempfile.TemporaryDirectory(prefix="ipad-qc-bench-") as tmp:
        scratch = Path(tmp)
        small, large = scratch / "small", scratch / "large"
        small.mkdir()
        large.mkdir()
        make_files(small, 1)
        files = make_files(large, args.megapixels)
        measure(small, scratch / "warm-up", detector, args.workers)  # the detector's working set, as in a long scan
        base_scan, base_report, _ = measure(small, scratch / "run-small", detector, args.workers)
        big_scan, big_report, summary = measure(large, scratch / "run-large", detector, args.workers)
        sizes = {name: path.stat().st_size for name, path in files.items()}

    decoded = args.megapixels * 1e6 * 3 * 2  # the 16-bit files, decoded
    print(f"One flagged {args.megapixels} MP JPEG, 16-bit TIFF and 16-bit PNG "
          f"({', '.join(f'{name} {size / _MIB:.0f} MiB' for name, size in sizes.items())}), detector "
          f"{detector.name}, workers {args.workers if args.workers is not None else 'default'}; "
          f"labels {dict(summary.labels)}, {summary.failed} failed")
    print(f"{'':28} {'peak RSS':>9} {'peak PSS':>9} {'procs':>5}")
    for name, usage in (("scan, 1 MP files", base_scan), (f"scan, {args.megapixels} MP files", big_scan),
                        ("report, 1 MP files", base_report), (f"report, {args.megapixels} MP files", big_report)):
        print(f"{name:28} {usage.peak_rss / _MIB:8.0f}M {usage.peak_pss / _MIB:8.0f}M {usage.processes:5}")
    target = 1.2 * decoded
    for name, big, base in (("scan", big_scan, base_scan), ("report", big_report, base_report)):
        added = big.peak_rss - base.peak_rss
        print(f"{name}: the large files add {added / _MIB:.0f} MiB of peak tree RSS = {added / decoded:.2f}x the "
              f"decoded image of the largest ({decoded / _MIB:.0f} MiB; target 1.2x = {target / _MIB:.0f} MiB): "
              f"{'within' if added <= target else 'ABOVE'}; absolute peak {big.peak_rss / decoded:.2f}x")
    if summary.failed:
        raise SystemExit("a file failed to scan")


if __name__ == "__main__":
    main()
