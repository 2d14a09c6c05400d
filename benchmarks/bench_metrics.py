"""Benchmark the streaming IPAD evaluator: time and memory of update + compute on N random maps.

Synthesises N prediction maps (default 2000, 518x518, the paper's input size) with random blob
masks, streams them through ``IpadEvaluator`` in batches of 16 and prints the time spent in
``update`` and ``compute`` (synthesis excluded), the resident memory after N/4 and after N maps
(it must not grow with N: pixel statistics are fixed-size histograms) and the resulting table.
Run: ``python benchmarks/bench_metrics.py --n 2000``.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.evaluation import IpadEvaluator

#: How much a blob raises its class's pixel score before normalisation, so the metrics are not chance.
BLOB_BOOST = 1.5


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of maps (default 2000)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=518, help="map side in pixels (default 518)")
    parser.add_argument("--bins", type=int, default=65536)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def _blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One to three random ellipses, so images hold several regions of different sizes."""
    rows, cols = np.ogrid[:size, :size]
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(rng.integers(1, 4)):
        centre_r, centre_c = rng.uniform(0, size, 2)
        radius_r, radius_c = rng.uniform(size / 40, size / 6, 2)
        mask |= ((rows - centre_r) / radius_r) ** 2 + ((cols - centre_c) / radius_c) ** 2 <= 1
    return mask


def _batch(rng: np.random.Generator, batch: int, size: int) -> tuple[np.ndarray, ...]:
    """Random class probabilities, labels, softmax-like pixel maps and masks for one batch."""
    n_classes = len(CLASS_NAMES)
    labels = rng.integers(0, n_classes, batch)
    masks = np.stack([_blob_mask(rng, size) if label else np.zeros((size, size), bool) for label in labels])
    seg = rng.random((batch, n_classes, size, size), dtype=np.float32)
    for i in np.flatnonzero(labels):
        seg[i, labels[i]][masks[i]] += BLOB_BOOST
    seg /= seg.sum(axis=1, keepdims=True)
    logits = rng.normal(size=(batch, n_classes))
    logits[np.arange(batch), labels] += 1.0
    class_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return class_probs, labels, seg, masks


def _memory_mib() -> tuple[float, float]:
    """Current and peak resident set size in MiB (Linux /proc; peak only elsewhere)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = Path("/proc/self/status")
    if not status.exists():
        return float("nan"), peak
    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _print_memory(console: Console, done: int) -> None:
    current, peak = _memory_mib()
    console.print(f"RSS after {done} maps: {current:.0f} MiB (peak {peak:.0f} MiB)")


def main() -> None:
    args = _arguments()
    rng = np.random.default_rng(args.seed)
    evaluator = IpadEvaluator(bins=args.bins)
    console = Console()
    elapsed, done, quarter_reported = 0.0, 0, False
    while done < args.n:
        batch = _batch(rng, min(args.batch, args.n - done), args.size)
        start = time.perf_counter()
        evaluator.update(*batch)
        elapsed += time.perf_counter() - start
        done += len(batch[1])
        if not quarter_reported and done >= args.n / 4:
            _print_memory(console, done)
            quarter_reported = True
    start = time.perf_counter()
    report = evaluator.compute()
    compute_s = time.perf_counter() - start
    _print_memory(console, done)
    console.print(
        f"{done} maps of {args.size}x{args.size}: update {elapsed:.2f} s ({1000 * elapsed / done:.1f} ms/map), "
        f"compute {compute_s:.3f} s, total {elapsed + compute_s:.2f} s"
    )
    console.print(report.table(title=f"Random maps, N={done} (%)"))


if __name__ == "__main__":
    main()
