"""IPAD-CLIP inference speed and memory vs the bare open_clip image encoder, per backbone and size.

For each configuration (default: ViT-B-16@224, ViT-B-16@518, ViT-L-14@518) a fresh subprocess
builds the model with random weights (same cost as real ones; no download), times the bare
open_clip vision tower and the full IPAD-CLIP forward (adapters, taps, projectors, Eq. 12 maps
upsampled to the input size) on the same batch, and reports images/s, peak memory and the
overhead ratio IPAD-CLIP / bare encoder (target < 1.15). On CUDA it runs under bf16 autocast, with
IPAD-CLIP's score heads in fp32 as in training and scans.

    python benchmarks/bench_clip.py                       # CPU, batch 1
    python benchmarks/bench_clip.py --device cuda --batch 8 --iters 20
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = ("ViT-B-16@224", "ViT-B-16@518", "ViT-L-14@518")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, batch, device: str, iters: int) -> float:
    fn(batch)  # warm-up (kernels, allocator)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn(batch)
    _sync(device)
    return (time.perf_counter() - start) / iters


def measure(name: str, size: int, batch_size: int, iters: int, device: str) -> dict:
    import torch

    from ipad_qc.clip import IpadClip, IpadClipConfig
    from ipad_qc.device import autocast_for

    torch.set_num_threads(torch.get_num_threads())
    model = IpadClip(IpadClipConfig(backbone=name, pretrained=None, image_size=size))
    model.set_stage(3)
    model.drop_text_encoder()
    model = model.to(device).eval()
    batch = torch.randn(batch_size, 3, size, size, device=device)
    with torch.inference_mode(), autocast_for(device):
        bare = _time(model.vision.visual, batch, device, iters)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        full = _time(model, batch, device, iters)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"config": f"{name}@{size}", "batch": batch_size, "bare_s": bare, "ipad_s": full,
            "bare_img_s": batch_size / bare, "ipad_img_s": batch_size / full, "ratio": full / bare,
            "peak_mib": peak, "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="NAME@SIZE entries")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config in this process
    args = parser.parse_args()
    if args.one:
        name, size = args.one.split("@")
        print(json.dumps(measure(name, int(size), args.batch, args.iters, args.device)))
        return
    print(f"{'config':16} {'device':6} {'batch':>5} {'bare img/s':>11} {'IPAD img/s':>11} {'ratio':>6} "
          f"{'peak MiB':>9}")
    for config in args.configs:
        command = [sys.executable, __file__, "--one", config, "--batch", str(args.batch), "--iters",
                   str(args.iters), "--device", args.device]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(f"{result['config']:16} {result['device']:6} {result['batch']:>5} {result['bare_img_s']:>11.3f} "
              f"{result['ipad_img_s']:>11.3f} {result['ratio']:>6.3f} {result['peak_mib']:>9.0f}")
    print("peak MiB: process max RSS on CPU (includes the model), torch.cuda.max_memory_allocated on GPU")


if __name__ == "__main__":
    main()
