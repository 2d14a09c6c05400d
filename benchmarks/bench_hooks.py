"""Built-in removal hooks: PSNR inside the artifact mask before and after, over N synthetic pairs.

Pairs come from :mod:`ipad_qc.routing.pairs` (clean ground truth known). Prints per-hook mean PSNR
before/after, the mean dB gain, the share of pairs that improved and the time per image; also checks
that no pixel outside the mask changed. Asserts nothing.

    .venv/bin/python benchmarks/bench_hooks.py [--cases 24] [--size 480x360]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ipad_qc.io.types import DecodedImage, ImageMeta
from ipad_qc.routing import RepairRequest, create_hook, to_float
from ipad_qc.routing.pairs import make_pair, psnr_inside

RUNS = (("deflare", "flare", False), ("demoire", "moire", False), ("deghost", "ghosting", False),
        ("deghost", "ghosting", True))


def _decoded(image: np.ndarray) -> DecodedImage:
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return DecodedImage(pixels, ImageMeta("bench.png", pixels.shape[1], pixels.shape[0], 8, "png", "full"))


def _measure(hook_name: str, kind: str, with_reference: bool, cases: int, size: tuple[int, int]) -> dict:
    hook = create_hook(hook_name)
    before, after, seconds, outside_changed = [], [], 0.0, 0
    for seed in range(cases):
        pair = make_pair(kind, np.random.default_rng(1000 + seed), *size)
        image = _decoded(pair.image)
        references = (_decoded(pair.reference),) if with_reference else ()
        request = RepairRequest(image, pair.mask, pair.mask.astype(np.float32), kind, kind, {}, "bench.png",
                                references=references)
        start = time.perf_counter()
        out = hook.repair(request)
        seconds += time.perf_counter() - start
        out = image.pixels if out is None else out
        outside_changed += int(np.count_nonzero(np.any(out != image.pixels, axis=2) & ~pair.mask))
        before.append(psnr_inside(to_float(image.pixels), pair.truth, pair.mask))
        after.append(psnr_inside(to_float(out), pair.truth, pair.mask))
    gains = np.subtract(after, before)
    return {"before": np.mean(before), "after": np.mean(after), "gain": gains.mean(), "improved": (gains > 0).mean(),
            "ms": 1000 * seconds / cases, "outside": outside_changed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--size", default="480x360", help="WIDTHxHEIGHT of the synthetic pairs")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    print(f"{args.cases} synthetic pairs per hook at {size[0]}x{size[1]}; PSNR (dB) inside the artifact mask")
    print(f"{'hook':<26}{'before':>8}{'after':>8}{'gain':>8}{'improved':>10}{'ms/img':>9}{'outside px changed':>20}")
    for hook_name, kind, with_reference in RUNS:
        r = _measure(hook_name, kind, with_reference, args.cases, size)
        label = f"{hook_name}{' (+ reference)' if with_reference else ''}"
        print(f"{label:<26}{r['before']:8.2f}{r['after']:8.2f}{r['gain']:+8.2f}{r['improved']:10.0%}{r['ms']:9.1f}"
              f"{r['outside']:20d}")


if __name__ == "__main__":
    main()
