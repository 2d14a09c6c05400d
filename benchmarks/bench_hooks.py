"""Built-in removal hooks on real pairs and synthetic pairs: PSNR, SSIM, seams, declines and CPU time.

**Real pairs** (``shared/realdev``, see :mod:`ipad_qc.routing.real_pairs`): each hook runs with the
pair's oracle mask (where the input differs from its clean reference, cleaned up), so it is judged
apart from any detector, then end to end with the ``classic`` detector's own class mask on the
images it labels with that class. Per image: PSNR and SSIM against the clean reference over the
image and inside the artifact region (the oracle mask; for ghosting against the ghost-free fusion
aligned to the frame the repair is closest to, since any frame is a valid anchor), the seam measure
along the mask given to the hook (gradient energy of the difference to the clean image, after /
before; ``edge`` is the image's own gradient energy there), and ok/declined. Each oracle-mask table
ends with the issue-15 criteria: mean PSNR and SSIM up, no image down by more than 0.2 dB, no seam
ratio above 1. A contact sheet (input, repair, clean reference, oracle mask outlined) is written
for a person to look at.

**Synthetic pairs** (:mod:`ipad_qc.routing.pairs`): the same figures inside the mask, plus the
count of pixels outside the mask that changed (must be 0). **Time**: CPU seconds per 12 MP image.
Asserts nothing; without the realdev folder the real part is skipped, saying so.

    .venv/bin/python benchmarks/bench_hooks.py [--realdev DIR] [--sheet hooks_sheet.png] [--cases 24]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ipad_qc import get_detector, load_image
from ipad_qc.io.types import DecodedImage, ImageMeta
from ipad_qc.routing import Declined, RepairRequest, RoutingPolicy, create_hook, to_float
from ipad_qc.routing.pairs import make_pair
from ipad_qc.routing.quality import RepairScore, score
from ipad_qc.routing.real_pairs import RealPair, real_pairs

#: (hook, class, with reference frames)
RUNS = (("deflare", "flare", False), ("demoire", "moire", False), ("deghost", "ghosting", True),
        ("deghost", "ghosting", False))
DEFAULT_REALDEV = Path(__file__).resolve().parents[2] / "shared" / "realdev"
WORST_DROP_DB = -0.2
#: A seam ratio up to 1 + this counts as "no higher": a few pixels of the band rounded to the next 8-bit step
#: move the measure by ~1e-6, which is not a seam (a cut-off repair moves it by 1e-1 and more).
SEAM_TOLERANCE = 1e-4
THUMB = 200


def _label(hook: str, with_reference: bool) -> str:
    return f"{hook}{' (+ references)' if with_reference else ' (single image)' if hook == 'deghost' else ''}"


def _decoded(image: np.ndarray, name: str = "bench.png") -> DecodedImage:
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return DecodedImage(pixels, ImageMeta(name, pixels.shape[1], pixels.shape[0], 8, "png", "full"))


@dataclass
class Outcome:
    name: str
    score: RepairScore
    declined: str | None
    after: np.ndarray


def _repair(hook: object, image: np.ndarray, mask: np.ndarray, kind: str,
            references: Iterable[np.ndarray]) -> tuple[np.ndarray, str | None, float]:
    """(float result, decline reason or None, CPU seconds) of one hook call."""
    decoded = _decoded(image)
    request = RepairRequest(decoded, mask, mask.astype(np.float32), kind, kind, {}, "bench.png",
                            references=tuple(_decoded(frame) for frame in references))
    start = time.process_time()
    out = hook.repair(request)
    seconds = time.process_time() - start
    if out is None or isinstance(out, Declined):
        return to_float(decoded.pixels), getattr(out, "reason", "declined"), seconds
    return to_float(out), None, seconds


# --- real pairs -------------------------------------------------------------------------------


def _real_table(title: str, outcomes: list[Outcome], judge: bool = True) -> None:
    print(f"\n{title}")
    if not outcomes:
        print("  (no images)")
        return
    print(f"  {'image':<24}{'PSNR before':>12}{'after':>8}{'gain':>7}{'in reg.':>8}{'SSIM gain':>10}"
          f"{'in reg.':>8}{'seam':>8}{'edge':>7}  status")
    for o in outcomes:
        s = o.score
        status = "ok" if o.declined is None else f"declined: {o.declined}"
        print(f"  {o.name:<24}{s.psnr[0]:12.2f}{s.psnr[1]:8.2f}{s.psnr[1] - s.psnr[0]:+7.2f}"
              f"{s.psnr_region[1] - s.psnr_region[0]:+8.2f}{s.ssim[1] - s.ssim[0]:+10.4f}"
              f"{s.ssim_region[1] - s.ssim_region[0]:+8.4f}{s.seam_ratio:8.4f}{s.edge_ratio:7.3f}  {status}")
    _summary(outcomes, judge)


def _summary(outcomes: list[Outcome], judge: bool) -> None:
    gains = np.array([o.score.psnr[1] - o.score.psnr[0] for o in outcomes])
    ssim_gains = np.array([o.score.ssim[1] - o.score.ssim[0] for o in outcomes])
    seams = np.array([o.score.seam_ratio for o in outcomes])
    declined = sum(o.declined is not None for o in outcomes)
    passed = (gains.mean() > 0 and ssim_gains.mean() > 0 and gains.min() >= WORST_DROP_DB
              and seams.max() <= 1.0 + SEAM_TOLERANCE)
    verdict = "PASS" if passed else "FAIL"
    if declined == len(outcomes):
        verdict = "not applicable: every image declined, none changed"
    print(f"  {'mean':<24}{np.mean([o.score.psnr[0] for o in outcomes]):12.2f}"
          f"{np.mean([o.score.psnr[1] for o in outcomes]):8.2f}{gains.mean():+7.2f}"
          f"{np.mean([o.score.psnr_region[1] - o.score.psnr_region[0] for o in outcomes]):+8.2f}"
          f"{ssim_gains.mean():+10.4f}"
          f"{np.mean([o.score.ssim_region[1] - o.score.ssim_region[0] for o in outcomes]):+8.4f}"
          f"{seams.max():8.4f}{max(o.score.edge_ratio for o in outcomes):7.3f}  (seam, edge: max)")
    print(f"  {len(outcomes)} images, {declined} declined; worst PSNR change {gains.min():+.2f} dB; "
          f"largest seam ratio {seams.max():.6f}")
    if judge:
        print(f"  Criteria (mean PSNR and SSIM up, none below {WORST_DROP_DB} dB, seam <= 1 + {SEAM_TOLERANCE:g}): "
              f"{verdict}")


def _detector_masks(pairs: list[RealPair], kind: str) -> dict[str, np.ndarray]:
    """The classic detector's class mask for each pair it labels ``kind`` (what routing would send the hook)."""
    detector, threshold = get_detector("classic"), RoutingPolicy().mask_threshold
    masks = {}
    for pair in pairs:
        detection = detector.detect([load_image(pair.path, detector.decode_hint)])[0]
        if detection.label != kind:
            continue
        probability = (detection.class_maps or {}).get(kind, detection.probability)
        mask = cv2.resize(probability.astype(np.float32), pair.mask.shape[::-1]) >= threshold
        if mask.any():
            masks[pair.name] = mask
    return masks


def _real(root: Path, sheet: Path | None, end_to_end: bool) -> None:
    print(f"\nReal pairs from {root}: PSNR (dB) and SSIM against the clean reference; gains are after - before.")
    print("seam = gradient energy of (image - clean) within 3 px of the hook's mask edge, after / before;"
          " edge = the image's own there.")
    rows: list[tuple[str, RealPair, np.ndarray]] = []
    cache: dict[str, list[RealPair]] = {}
    for hook_name, kind, with_reference in RUNS:
        found = cache.setdefault(kind, list(real_pairs(root, kind)))
        pairs, skipped = [p for p in found if p.mask.any()], [p.name for p in found if not p.mask.any()]
        hook, label = create_hook(hook_name), _label(hook_name, with_reference)
        outcomes = []
        for pair in pairs:
            after, declined, _ = _repair(hook, pair.image, pair.mask, kind, pair.references if with_reference else ())
            outcomes.append(Outcome(pair.name, score(pair.image, after, pair.truth_for(after), pair.mask, pair.mask),
                                    declined, after))
        note = f"; not measured (no artifact region against the clean image): {', '.join(skipped)}" if skipped else ""
        _real_table(f"{label}: {len(pairs)} real {kind} pairs, oracle masks{note}", outcomes)
        rows += [(label, pair, o.after) for pair, o in zip(pairs, outcomes, strict=True)
                 if with_reference or hook_name != "deghost"]
        if end_to_end:
            masks = _detector_masks(pairs, kind)
            e2e = []
            for pair in (p for p in pairs if p.name in masks):
                after, declined, _ = _repair(hook, pair.image, masks[pair.name], kind,
                                             pair.references if with_reference else ())
                e2e.append(Outcome(pair.name, score(pair.image, after, pair.truth_for(after), pair.mask,
                                         masks[pair.name]), declined, after))
            _real_table(f"{label}: end to end, classic detector's {kind} mask on the {len(e2e)} of {len(pairs)} "
                        f"pairs it labels {kind} (PSNR 'in reg.' = inside the oracle region)", e2e, judge=False)
    if sheet is not None:
        sheet.parent.mkdir(parents=True, exist_ok=True)
        _contact_sheet(rows, sheet)
        print(f"\ncontact sheet: {sheet} (input | repair | clean reference; oracle mask outlined in green)")


def _contact_sheet(rows: list[tuple[str, RealPair, np.ndarray]], path: Path) -> None:
    """One row per pair: input, repair, clean reference (each THUMB px tall), the oracle mask outlined."""
    lines = []
    for label, pair, after in rows:
        height, width = pair.mask.shape
        size = (max(1, round(width * THUMB / height)), THUMB)
        outline = cv2.resize(pair.mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        edge = outline.astype(bool) & ~cv2.erode(outline, np.ones((3, 3), np.uint8)).astype(bool)
        tiles = []
        for image in (pair.image, after, pair.truth_for(after)):
            tile = cv2.resize(np.clip(image, 0, 1), size, interpolation=cv2.INTER_AREA)
            tile[edge] = (0.0, 1.0, 0.0)
            tiles.append(tile)
        line = np.concatenate([np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=1.0) for t in tiles], axis=1)
        line = cv2.cvtColor(np.round(line * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        cv2.putText(line, f"{label}: {pair.name}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 255, 255), 1,
                    cv2.LINE_AA)
        lines.append(line)
    width = max(line.shape[1] for line in lines)
    cv2.imwrite(str(path), np.concatenate([np.pad(line, ((0, 4), (0, width - line.shape[1]), (0, 0)),
                                                  constant_values=255) for line in lines], axis=0))


# --- synthetic pairs and time -----------------------------------------------------------------


def _synthetic(cases: int, size: tuple[int, int]) -> None:
    print(f"\n{cases} synthetic pairs per hook at {size[0]}x{size[1]}; PSNR (dB) and SSIM inside the artifact mask")
    print(f"{'hook':<28}{'before':>8}{'after':>8}{'gain':>8}{'improved':>10}{'SSIM gain':>10}{'worst':>8}"
          f"{'seam max':>9}{'declined':>9}{'outside px changed':>20}")
    for hook_name, kind, with_reference in RUNS:
        hook, outcomes, outside = create_hook(hook_name), [], 0
        for seed in range(cases):
            pair = make_pair(kind, np.random.default_rng(1000 + seed), *size)
            references = (pair.reference,) if with_reference else ()
            after, declined, _ = _repair(hook, pair.image, pair.mask, kind, references)
            before = to_float(_decoded(pair.image).pixels)
            outside += int(np.count_nonzero(np.any(after != before, axis=2) & ~pair.mask))
            outcomes.append(Outcome(str(seed), score(before, after, pair.truth, pair.mask, pair.mask), declined, after))
        gains = np.array([o.score.psnr_region[1] - o.score.psnr_region[0] for o in outcomes])
        print(f"{_label(hook_name, with_reference):<28}{np.mean([o.score.psnr_region[0] for o in outcomes]):8.2f}"
              f"{np.mean([o.score.psnr_region[1] for o in outcomes]):8.2f}{gains.mean():+8.2f}"
              f"{(gains > 0).mean():10.0%}"
              f"{np.mean([o.score.ssim_region[1] - o.score.ssim_region[0] for o in outcomes]):+10.4f}"
              f"{gains.min():+8.2f}{max(o.score.seam_ratio for o in outcomes):9.3f}"
              f"{sum(o.declined is not None for o in outcomes):9d}{outside:20d}")


#: Options that switch a hook's decline check off, so that the timed call does the whole repair.
FORCED = {"demoire": {"min_beat": 0.0}, "deghost": {"min_echo": 1e-6}}


def _timing(size: tuple[int, int]) -> None:
    print(f"\nTime per {size[0] * size[1] / 1e6:.0f} MP image (one synthetic pair, mask from the generator; "
          f"CPU s = user + system over all threads; decline checks off: {FORCED})")
    for hook_name, kind, with_reference in RUNS:
        pair = make_pair(kind, np.random.default_rng(7), *size)
        hook = create_hook(hook_name, **FORCED.get(hook_name, {}))
        usage, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        _, declined, _ = _repair(hook, pair.image, pair.mask, kind, (pair.reference,) if with_reference else ())
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
        print(f"  {_label(hook_name, with_reference):<28} CPU {cpu:6.1f} s  wall {time.perf_counter() - wall:6.1f} s"
              f"  mask {pair.mask.mean():.0%}{f'  (declined: {declined})' if declined else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdev", type=Path, default=Path(os.environ.get("IPAD_QC_REALDEV", DEFAULT_REALDEV)),
                        help="folder of real labelled pairs (default $IPAD_QC_REALDEV or <repo>/../shared/realdev)")
    parser.add_argument("--sheet", type=Path, default=Path("runs/bench_hooks_contact_sheet.png"),
                        help="where the contact sheet PNG goes (default runs/bench_hooks_contact_sheet.png)")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end runs with detector masks")
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--size", default="480x360", help="WIDTHxHEIGHT of the synthetic pairs")
    parser.add_argument("--time-size", default="4000x3000", help="WIDTHxHEIGHT of the timed image ('' to skip)")
    args = parser.parse_args()
    if args.realdev.is_dir():
        _real(args.realdev, args.sheet, not args.no_e2e)
    else:
        print(f"Real pairs: {args.realdev} not found; skipped (pass --realdev or set $IPAD_QC_REALDEV)")
    _synthetic(args.cases, tuple(int(v) for v in args.size.lower().split("x")))
    if args.time_size:
        _timing(tuple(int(v) for v in args.time_size.lower().split("x")))


if __name__ == "__main__":
    main()
