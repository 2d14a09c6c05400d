"""Real-capture benchmark: every installed detector on ``../shared/realdev`` and on synthetic data, side by side.

Real captures are the measure of detection work; synthetic figures are printed next to them so the
synthetic-to-real gap is visible in one run. Each detector is evaluated exactly as ``ipad-qc eval
DATA --detector NAME`` does (a scan of the labelled files into a run folder, then scoring), on

* **real**: ``realdev`` (labels.csv, image-level labels: no pixel metrics);
* **synthetic**: the test split of an IPAD data set made by ``ipad-qc synth`` from the real clean photos
  of ``../shared/clean-corpus`` (made once into ``--synthetic`` if missing; masks, so pixel metrics too).

Detectors that cannot be created here (``ipad-clip`` without CLIP weights) are listed as skipped with the
reason. Without ``../shared`` the benchmark says so and exits 0. Run:
``python benchmarks/bench_real.py`` (``--detectors classic`` for one, ``--json out.json`` to keep figures).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.datasets.synth import SynthSettings, synthesize
from ipad_qc.detectors.registry import available_detectors, get_detector
from ipad_qc.evaluation.run_scoring import DetectorEvaluation, evaluate_detector
from ipad_qc.scanner import ScanOptions

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IPAD_QC_SHARED", REPO.parent / "shared"))
# ipad-clip without local weights must fail at once instead of asking the network (none here).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
#: The synthetic set: the recipe's seed decides which photos are test photos, so a model trained on a
#: set made with the same seed from the same folder never saw the photos it is measured on here.
SYNTH_SETTINGS = SynthSettings(count=1200, size=512, seed=0)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdev", type=Path, default=SHARED / "realdev")
    parser.add_argument("--clean-corpus", type=Path, default=SHARED / "clean-corpus")
    parser.add_argument("--synthetic", type=Path, default=REPO / "runs" / "bench-real" / "synthetic",
                        help="IPAD data set for the synthetic figures (made from --clean-corpus when missing)")
    parser.add_argument("--no-synthetic", action="store_true", help="real figures only")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-real", help="run folders of the scans")
    parser.add_argument("--detectors", default=None, help="comma-separated names [default: every installed one]")
    parser.add_argument("--workers", type=int, default=None, help="decode processes [default: CPU cores]")
    parser.add_argument("--json", type=Path, default=None, help="write every figure as JSON here")
    return parser.parse_args()


def evaluate(name: str, data: Path, split: str, out: Path, workers: int | None) -> tuple[DetectorEvaluation, float]:
    """``ipad-qc eval data --detector name --split split`` in code; returns it with the detect time per image."""
    options = ScanOptions(detector=name, workers=workers, write_thumbnails=False, force=True)
    evaluation, summary = evaluate_detector(data, out / f"{data.name}-{name}", options, split)
    done = summary.scanned + summary.failed
    return evaluation, (summary.detect_s / done if done else math.nan)


def figures(evaluation: DetectorEvaluation) -> dict[str, float]:
    rest = evaluation.report.by_protocol["one-vs-rest"]
    vs_clean = evaluation.report.by_protocol["vs-clean"]
    result = {"accuracy": evaluation.verdicts.accuracy, "clean_flagged": evaluation.verdicts.clean_flagged,
              "clean_images": evaluation.verdicts.clean_total}
    result.update({f"auroc_{name}": rest.per_class[name]["C-AUROC"] for name in ARTIFACT_CLASSES})
    result["auroc_mean"] = rest.overall["C-AUROC"]
    result["auroc_vs_clean_mean"] = vs_clean.overall["C-AUROC"]
    result["pixel_auroc_mean"] = vs_clean.overall["S-AUROC"]
    result.update({f"recall_{name}": evaluation.verdicts.recall(name) for name in ("clean", *ARTIFACT_CLASSES)})
    return result


def table(title: str, rows: dict[str, dict[str, float]], pixel: bool) -> Table:
    out = Table(title=title, caption="AUROC one-vs-rest per class (ovr); vc: mean AUROC against clean images")
    columns = ["accuracy", "clean flagged", *(f"{n} ovr" for n in ARTIFACT_CLASSES), "mean ovr", "mean vc",
               *(["pixel AUROC vc"] if pixel else []), "detect ms/img"]
    out.add_column("detector")
    for column in columns:
        out.add_column(column, justify="right")
    for name, values in rows.items():
        if "skipped" in values:
            out.add_row(name, f"skipped: {values['skipped']}", *[""] * (len(columns) - 1))
            continue
        cells = [f"{values['accuracy']:.3f}", f"{values['clean_flagged']} of {values['clean_images']}",
                 *(f"{values[f'auroc_{n}']:.3f}" for n in ARTIFACT_CLASSES),
                 f"{values['auroc_mean']:.3f}", f"{values['auroc_vs_clean_mean']:.3f}"]
        if pixel:
            cells.append(f"{values['pixel_auroc_mean']:.3f}" if math.isfinite(values["pixel_auroc_mean"]) else "–")
        cells.append(f"{1000 * values['detect_s_per_image']:.0f}")
        out.add_row(name, *cells)
    return out


def main() -> int:
    args = _arguments()
    console = Console(width=160)
    if not (args.realdev / "labels.csv").is_file():
        console.print(f"skipped: no real captures at {args.realdev} (set IPAD_QC_SHARED or --realdev)")
        return 0
    names = args.detectors.split(",") if args.detectors else [info.name for info in available_detectors()]
    data_sets = {"real (realdev)": (args.realdev, "all")}
    if not args.no_synthetic:
        if not (args.synthetic / "manifest.csv").is_file():
            if not args.clean_corpus.is_dir():
                console.print(f"no synthetic figures: no clean photos at {args.clean_corpus}")
            else:
                console.print(f"making the synthetic set {args.synthetic} from {args.clean_corpus} ...")
                synthesize(args.clean_corpus, args.synthetic, SYNTH_SETTINGS, workers=args.workers or os.cpu_count())
        if (args.synthetic / "manifest.csv").is_file():
            data_sets["synthetic (test split)"] = (args.synthetic, "test")
    results: dict[str, dict[str, dict[str, float]]] = {title: {} for title in data_sets}
    for name in names:
        try:
            get_detector(name)
        except Exception as exc:  # noqa: BLE001 - any reason a detector cannot be built here is reported
            for title in data_sets:
                results[title][name] = {"skipped": str(exc).splitlines()[0][:100]}
            continue
        for title, (data, split) in data_sets.items():
            started = time.perf_counter()
            evaluation, per_image = evaluate(name, data, split, args.out, args.workers)
            results[title][name] = {**figures(evaluation), "detect_s_per_image": per_image,
                                    "elapsed_s": time.perf_counter() - started}
    for title, rows in results.items():
        console.print(table(f"{title}: {args.realdev if title.startswith('real') else args.synthetic}", rows,
                            pixel=not title.startswith("real")))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
