"""Benchmark the streaming IPAD evaluator: speed, memory and exactness, on random and on saturated maps.

Default mode: N prediction maps (default 2000, 518x518, the paper's input size) with random blob
masks, streamed through ``IpadEvaluator`` in batches of 16; prints the CPU and wall time spent in
``update`` and ``compute`` (synthesis excluded), the resident memory after N/4 and after N maps
(it must not grow with N: pixel statistics are fixed-size histograms) and the resulting table.

``--saturated``: maps like a confident IPAD-CLIP Eq. 12 head makes, a softmax of cosines over
T = 0.07 at the patch grid, upsampled (default N = 64, so that exact metrics over every pixel fit
in memory; about 90 % of the pixel scores lie within 1e-5 of 0 or 1), scored exactly (every
pixel sorted), by the evaluator and by the former 65,536-level uniform grid, each on fp32
probabilities and on those the former bf16 head produced (logits, upsampling and softmax in
bf16). The differences to the exact fp32 figures are the errors of the two fixed defects; their
size depends on how saturated the maps are.

    python benchmarks/bench_metrics.py --n 2000
    python benchmarks/bench_metrics.py --saturated
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.evaluation import PIXEL_METRICS, IpadEvaluator
from ipad_qc.evaluation.curves import RankCurve, aupro
from ipad_qc.evaluation.metrics import region_weights

#: How much a blob raises its class's pixel score before normalisation, so the metrics are not chance.
BLOB_BOOST = 1.5
TEMPERATURE = 0.07
OLD_LEVELS = 65536


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="number of maps (default 2000; 64 with --saturated)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=518, help="map side in pixels (default 518)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--saturated", action="store_true", help="T = 0.07 softmax maps, exactness report")
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


def _labels_and_masks(rng: np.random.Generator, batch: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(CLASS_NAMES), batch)
    masks = np.stack([_blob_mask(rng, size) if label else np.zeros((size, size), bool) for label in labels])
    return labels, masks


def _class_probs(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    logits = rng.normal(size=(len(labels), len(CLASS_NAMES)))
    logits[np.arange(len(labels)), labels] += 1.0
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _batch(rng: np.random.Generator, batch: int, size: int) -> tuple[np.ndarray, ...]:
    """Random class probabilities, labels, softmax-like pixel maps and masks for one batch."""
    labels, masks = _labels_and_masks(rng, batch, size)
    seg = rng.random((batch, len(CLASS_NAMES), size, size), dtype=np.float32)
    for i in np.flatnonzero(labels):
        seg[i, labels[i]][masks[i]] += BLOB_BOOST
    seg /= seg.sum(axis=1, keepdims=True)
    return _class_probs(rng, labels), labels, seg, masks


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


def speed(args: argparse.Namespace, console: Console) -> None:
    rng = np.random.default_rng(args.seed)
    evaluator = IpadEvaluator()
    wall, cpu, done, quarter_reported = 0.0, 0.0, 0, False
    while done < args.n:
        batch = _batch(rng, min(args.batch, args.n - done), args.size)
        start, start_cpu = time.perf_counter(), time.process_time()
        evaluator.update(*batch)
        wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - start_cpu
        done += len(batch[1])
        if not quarter_reported and done >= args.n / 4:
            _print_memory(console, done)
            quarter_reported = True
    start, start_cpu = time.perf_counter(), time.process_time()
    report = evaluator.compute()
    compute_s, compute_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    _print_memory(console, done)
    console.print(
        f"{done} maps of {args.size}x{args.size}: update {cpu:.2f} s CPU ({1000 * cpu / done:.1f} ms/map; "
        f"wall {wall:.2f} s), compute {compute_cpu:.3f} s CPU (wall {compute_s:.3f} s)"
    )
    console.print(report.table(title=f"Random maps, N={done} (%)"))


# --- saturated maps -----------------------------------------------------------------------------
def _saturated_logits(rng: np.random.Generator, labels: np.ndarray, masks: np.ndarray, size: int) -> np.ndarray:
    """Eq. 12 logits cos / T at the patch grid (size / 14) of a confident model: the image's class
    1-2 above the rest inside its mask, and as many confident false alarms (blobs where a random
    artifact class stands out the same way) as there are artifacts, so positives and negatives
    meet in the saturated top."""
    import cv2

    grid = max(2, size // 14)
    cosines = rng.normal(-0.5, 0.15, (len(labels), len(CLASS_NAMES), grid, grid))

    def small(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA) > 0.5

    for i, label in enumerate(labels):
        artifact = small(masks[i])
        cosines[i, 0][~artifact] += 1.0
        if label:
            cosines[i, label][artifact] += rng.uniform(1.0, 2.0)
        if rng.random() < 0.75:
            false_alarm = small(_blob_mask(rng, size)) & ~artifact
            cosines[i, rng.integers(1, len(CLASS_NAMES))][false_alarm] += rng.uniform(1.0, 2.0)
    return np.clip(cosines, -1, 1) / TEMPERATURE


def _probabilities(logits: np.ndarray, size: int, bf16: bool) -> np.ndarray:
    """Upsample and softmax as the model does: in fp32 (now) or all in bf16 (the former head)."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(logits.astype(np.float32))
    if bf16:
        tensor = tensor.to(torch.bfloat16)
    up = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return up.softmax(dim=1).float().numpy()


def _exact_pixel_metrics(maps: np.ndarray, labels: np.ndarray, masks: np.ndarray, k: int) -> dict[str, float]:
    """Class k's pixel metrics (vs-clean) from every score of its ``maps`` (N, H, W), one level per
    distinct value: the reference."""
    chosen = (labels == 0) | (labels == k)
    scores, truth = maps[chosen].ravel().astype(np.float64), masks[chosen].ravel()
    curve = RankCurve.from_scores(scores, truth)
    levels, level_of = np.unique(scores, return_inverse=True)
    weights = np.zeros(truth.shape)
    per_image = masks[0].size
    regions = 0
    for row, image in enumerate(np.flatnonzero(chosen)):
        if labels[image] == k:
            image_weights, count = region_weights(masks[image])
            weights[row * per_image: (row + 1) * per_image][masks[image].ravel()] = image_weights
            regions += count
    weighted = np.bincount(level_of, weights=weights, minlength=levels.size)
    negatives = np.bincount(level_of[~truth], minlength=levels.size)
    return {"S-AUROC": curve.auroc(), "S-AP": curve.average_precision(), "S-F1max": curve.f1_max(),
            "S-AUPRO": aupro(weighted, regions, negatives, 0.3)}


def _on_old_grid(maps: np.ndarray) -> np.ndarray:
    """What the former evaluator counted: every score rounded to the nearest of 65,536 uniform levels."""
    return np.rint(np.clip(maps, 0, 1) * (OLD_LEVELS - 1)) / (OLD_LEVELS - 1)


def saturated(args: argparse.Namespace, console: Console) -> None:
    rng = np.random.default_rng(args.seed)
    labels, masks = _labels_and_masks(rng, args.n, args.size)
    logits = _saturated_logits(rng, labels, masks, args.size)
    class_logits = logits.max(axis=(2, 3))  # a confident image head: as saturated as the maps
    rows: dict[str, dict[str, list[float]]] = {}
    for precision in ("fp32", "bf16"):
        seg = _probabilities(logits, args.size, bf16=precision == "bf16")
        image = _probabilities(class_logits[:, :, None, None], 1, bf16=precision == "bf16")[:, :, 0, 0]
        evaluator = IpadEvaluator()
        start = time.process_time()
        for first in range(0, args.n, args.batch):
            part = slice(first, first + args.batch)
            evaluator.update(image[part], labels[part], seg[part], masks[part])
        report = evaluator.compute()
        cpu = time.process_time() - start
        console.print(f"{precision} maps: evaluator {1000 * cpu / args.n:.1f} ms/map CPU; share of pixel scores "
                      f"within 1e-5 of 0 or 1: {np.mean(np.minimum(seg[:, 1:], 1 - seg[:, 1:]) < 1e-5):.0%}")
        exact = {"C-AP": [], **{m: [] for m in PIXEL_METRICS}}
        ours = {m: [] for m in exact}
        bounds = {m: [] for m in PIXEL_METRICS}
        old = {m: [] for m in PIXEL_METRICS}
        for k, name in enumerate(CLASS_NAMES[1:], start=1):
            chosen = (labels == 0) | (labels == k)
            exact["C-AP"].append(RankCurve.from_scores(image[chosen, k], labels[chosen] == k).average_precision())
            ours["C-AP"].append(report.per_class[name]["C-AP"])
            for metric, value in _exact_pixel_metrics(seg[:, k], labels, masks, k).items():
                exact[metric].append(value)
                ours[metric].append(report.per_class[name][metric])
                bounds[metric].append(report.by_protocol["vs-clean"].error_bounds[name][metric])
            for metric, value in _exact_pixel_metrics(_on_old_grid(seg[:, k]), labels, masks, k).items():
                old[metric].append(value)
        rows[f"exact, {precision} head"] = exact
        rows[f"evaluator, {precision} head"] = ours
        rows[f"old 65,536-level grid, {precision} head"] = old
        rows[f"evaluator's proven bound, {precision} head"] = bounds
    table = Table(title=f"Saturated maps (T = {TEMPERATURE}), N={args.n}, vs-clean, overall (%), "
                        "delta to exact fp32 in points")
    metrics = ["C-AP", *PIXEL_METRICS]
    table.add_column("scored")
    for metric in metrics:
        table.add_column(metric, justify="right")
    reference = {m: float(np.mean(v)) for m, v in rows["exact, fp32 head"].items()}
    for label, values in rows.items():
        cells = []
        for metric in metrics:
            if metric not in values:
                cells.append("")
                continue
            mean = float(np.mean(values[metric]))
            cells.append(f"±{100 * mean:.4f}" if "bound" in label else
                         f"{100 * mean:.3f} ({100 * (mean - reference[metric]):+.3f})")
        table.add_row(label, *cells)
    console.print(table)


def main() -> None:
    args = _arguments()
    if args.n is None:
        args.n = 64 if args.saturated else 2000
    console = Console(width=160)
    saturated(args, console) if args.saturated else speed(args, console)


if __name__ == "__main__":
    main()
