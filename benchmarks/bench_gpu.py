"""The GPU path measured in one prepared run: detectors at batch 1/8/32/64, and full scans.

1. IPAD-CLIP (default ViT-L-14 @ 518, random weights: the same cost as real ones) through the
   detector's own forward under bf16 autocast, its scores softmaxed in fp32, beside the bare
   open_clip image encoder on the same batch: images/s and peak GPU memory per batch size.
2. ipad-net (random weights unless ``--ipad-net-weights``) the same way, at its input size.
3. Full scans with ``--device cuda`` over generated 12 MP JPEGs (quality 92), through the same
   ``scan()`` the CLI calls, with decode workers on every core, beside decoding alone with those
   workers: when scan ≈ decode alone, decoding is the limit. CPU of the whole process tree from
   ``/proc`` (the workers included).

``--dry-run`` runs everything on the CPU at toy sizes (a 4-layer ViT at 64 px, a 64 px ipad-net,
a few small JPEGs): it checks the script end to end on a machine without a GPU, nothing more.

    python benchmarks/bench_gpu.py                # on a CUDA machine, a few minutes
    python benchmarks/bench_gpu.py --dry-run      # anywhere
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from bench_scan import make_folder, random_ipad_net
from proctree import TreeMonitor

from ipad_qc import ScanOptions, scan
from ipad_qc.scanner import DecodeJob, decode_job, decode_pool
from ipad_qc.scanning.resources import usable_cores
from ipad_qc.walker import walk


@dataclass(frozen=True)
class Sizes:
    backbone: str
    clip_side: int
    net_side: int
    batches: tuple[int, ...]
    images: int
    width: int
    height: int
    device: str
    iters: int


FULL = Sizes("ViT-L-14", 518, 768, (1, 8, 32, 64), 256, 4000, 3000, "cuda", 10)
DRY = Sizes("ipad-tiny", 64, 64, (1, 2), 2, 400, 300, "cpu", 1)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()


def timed(run: Callable[[torch.Tensor], Any], batch: torch.Tensor, device: str, iters: int) -> tuple[float, float]:
    """(images/s, peak GPU MiB) of ``run`` on ``batch`` after a warm-up; peak is 0 on the CPU."""
    with torch.inference_mode(), autocast(device):
        run(batch)
        synchronize(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(iters):
            run(batch)
        synchronize(device)
        seconds = (time.perf_counter() - start) / iters
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
    return len(batch) / seconds, peak


def measure_batches(name: str, runs: dict[str, Callable[[torch.Tensor], Any]], shape: tuple[int, int],
                    sizes: Sizes) -> None:
    print(f"\n{name}")
    print(f"  {'batch':>5} " + " ".join(f"{label + ' img/s':>18} {'peak MiB':>9}" for label in runs))
    for batch_size in sizes.batches:
        batch = torch.randn(batch_size, 3, *shape, device=sizes.device)
        cells = []
        for run in runs.values():
            try:
                images_per_s, peak = timed(run, batch, sizes.device, sizes.iters)
                cells.append(f"{images_per_s:18.1f} {peak:9.0f}")
            except torch.cuda.OutOfMemoryError:
                cells.append(f"{'out of memory':>18} {'':9}")
            if sizes.device.startswith("cuda"):
                torch.cuda.empty_cache()
        print(f"  {batch_size:5} " + " ".join(cells))


def ipad_clip_detector(sizes: Sizes) -> Any:
    """IPAD-CLIP as a scan runs it (adapters, taps, projectors, Eq. 12), random weights, no text tower."""
    from ipad_qc.clip import IpadClip, IpadClipConfig, register_bundled_configs
    from ipad_qc.clip.detector import IpadClipDetector

    register_bundled_configs()
    config = IpadClipConfig(backbone=sizes.backbone, pretrained=None, image_size=sizes.clip_side)
    model = IpadClip(config)
    model.set_stage(3)
    model.drop_text_encoder()
    return IpadClipDetector(model, sizes.device)


def ipad_net_detector(sizes: Sizes, weights: Path | None, scratch: Path) -> Any:
    from ipad_qc.net.checkpoint import save_net
    from ipad_qc.net.detector import create
    from ipad_qc.net.model import IpadNet, IpadNetConfig

    if weights is None:
        weights = (random_ipad_net(scratch) if sizes is FULL else
                   save_net(IpadNet(IpadNetConfig(input_side=sizes.net_side)), scratch / "ipad-net-tiny.safetensors"))
    return create(device=sizes.device, weights=str(weights))


def clip_scores(detector: Any) -> Callable[[torch.Tensor], Any]:
    def run(batch: torch.Tensor) -> Any:
        class_probs, seg_probs = detector.model(batch).probabilities()
        return class_probs.float(), seg_probs.float()

    return run


def net_scores(detector: Any) -> Callable[[torch.Tensor], Any]:
    return lambda batch: detector.model(batch).probabilities()


def score_dtype(detector: Any, side: int, sizes: Sizes) -> str:
    with torch.inference_mode(), autocast(sizes.device):
        output = detector.model(torch.randn(1, 3, side, side, device=sizes.device))
        return f"logits {str(output.class_logits.dtype)[6:]}, scores {str(output.probabilities()[0].dtype)[6:]}"


def scans(detectors: dict[str, Any], sizes: Sizes, scratch: Path) -> None:
    """Decode alone with every core, then a full scan per detector with as many decode workers."""
    folder = scratch / "shots"
    folder.mkdir()
    distinct = min(8, sizes.images)
    make_folder(folder, distinct, sizes.width, sizes.height, seed=0)
    originals = sorted(folder.iterdir())
    for index in range(distinct, sizes.images):  # copies: every file is decoded and detected again
        shutil.copyfile(originals[index % distinct], folder / f"copy{index:03d}{originals[index % distinct].suffix}")
    cores = usable_cores()
    with decode_pool(1) as pool:  # starts multiprocessing's fork server, which every later pool reuses
        pool.submit(int).result()
    print(f"\nFull scans: {sizes.images} JPEGs of {sizes.width}x{sizes.height}, {cores} cores, "
          f"device {sizes.device}, batch 32")
    print(f"  {'what':28} {'workers':>7} {'wall s':>7} {'img/s':>7} {'tree CPU ms/img':>15}")
    for workers in sorted({cores, max(1, cores - 1)}) if sizes.device == "cuda" else (1,):
        for name, detector in detectors.items():
            hint = detector.decode_hint
            jobs = [DecodeJob(str(f.path), f.relpath, hint, "preview", False) for f in walk(folder).files]
            with TreeMonitor() as usage, decode_pool(workers) as pool:
                start = time.perf_counter()
                list(pool.map(decode_job, jobs))
                wall = time.perf_counter() - start
            row(f"decode alone, {name} hint", workers, wall, usage.cpu_s, sizes.images)
            options = ScanOptions(workers=workers, batch_size=32, force=True, device=sizes.device)
            with TreeMonitor() as usage:
                start = time.perf_counter()
                summary = scan(folder, scratch / f"run-{name}-{workers}", options, detector=detector)
                wall = time.perf_counter() - start
            row(f"scan, {name}", workers, wall, usage.cpu_s, summary.scanned)


def row(what: str, workers: int, wall: float, cpu_s: float, images: int) -> None:
    print(f"  {what:28} {workers:7} {wall:7.2f} {images / wall:7.1f} {1000 * cpu_s / max(1, images):15.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (checks the script)")
    parser.add_argument("--ipad-net-weights", type=Path, default=None)
    parser.add_argument("--skip-scans", action="store_true")
    args = parser.parse_args()
    sizes = DRY if args.dry_run else FULL
    if sizes.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --dry-run to check the script on the CPU")
    name = torch.cuda.get_device_name() if sizes.device == "cuda" else "CPU (dry run: toy sizes)"
    print(f"device: {name}; torch {torch.__version__}; {usable_cores()} cores; pid {os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="ipad-qc-bench-gpu-") as tmp:
        scratch = Path(tmp)
        clip = ipad_clip_detector(sizes)
        measure_batches(f"IPAD-CLIP {sizes.backbone} @ {sizes.clip_side}, random weights, bf16 autocast on CUDA "
                        f"({score_dtype(clip, sizes.clip_side, sizes)})",
                        {"IPAD-CLIP": clip_scores(clip), "bare encoder": clip.model.vision.visual},
                        (sizes.clip_side, sizes.clip_side), sizes)
        net = ipad_net_detector(sizes, args.ipad_net_weights, scratch)
        side = net.model.config.input_side
        measure_batches(f"ipad-net @ {side} x {side * 3 // 4}, {'random' if args.ipad_net_weights is None else ''} "
                        f"weights ({score_dtype(net, side, sizes)})", {"ipad-net": net_scores(net)},
                        (side * 3 // 4 // 32 * 32, side), sizes)
        if not args.skip_scans:
            scans({"ipad-clip": clip, "ipad-net": net}, sizes, scratch)


if __name__ == "__main__":
    main()
