"""Ship a trained ipad-net run as the package's bundled weights, with a model card measured on the spot.

What it does, in order (every figure in the card comes from this one run of the script):

1. checks ``RUN/best.safetensors`` loads as ipad-net and fits the package limit (10 MB);
2. copies it to ``ipad_qc/net/weights/ipad-net.safetensors`` (atomically);
3. measures the bundled weights and ``classic`` on the real captures (``--realdev``, image level), the
   shipped model on the test split of its own training data (``--test-data``: image and pixel level,
   photos it never saw), and the CPU time per 12 MP JPEG of decode + detection on one thread;
4. writes ``ipad_qc/net/weights/MODEL_CARD.md``: data, synthesis settings, seed, training time and
   hardware (from the run folder), all figures, and the failure modes seen among the worst mistakes.

Run (the shipped weights: ``training/README.md``, "ipad-net")::

    python training/ship_ipad_net.py runs/ipad-net --test-data runs/ipad-net/synth
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_real import evaluate, figures  # noqa: E402

from ipad_qc.classes import ARTIFACT_CLASSES  # noqa: E402
from ipad_qc.evaluation.run_scoring import DetectorEvaluation  # noqa: E402
from ipad_qc.net.checkpoint import BUNDLED_WEIGHTS, load_net  # noqa: E402

MAX_BYTES = 10 * 2**20
CARD = BUNDLED_WEIGHTS.with_name("MODEL_CARD.md")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the train-net run folder (best.safetensors, metrics.csv)")
    parser.add_argument("--test-data", type=Path, required=True, help="the data set it was trained on")
    parser.add_argument("--continued-from", type=Path, action="append", default=[], metavar="RUN",
                        help="an earlier run the weights were initialised from (--init): its epochs and "
                             "hours count too (repeatable)")
    parser.add_argument("--realdev", type=Path, default=REPO.parent / "shared" / "realdev")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "ship-ipad-net", help="evaluation scans")
    parser.add_argument("--command", default="ipad-qc train-net --synth-from ../shared/clean-corpus "
                        "--out runs/ipad-net --seed 0", help="the command that trained the run (for the card)")
    parser.add_argument("--hardware", default=f"{os.cpu_count()} CPU cores ({platform.processor() or 'x86_64'}), "
                        "no GPU", help="what it was trained on (for the card)")
    return parser.parse_args()


def install(best: Path) -> None:
    size = best.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{best}: {size / 2**20:.1f} MB is over the package's {MAX_BYTES / 2**20:.0f} MB limit")
    load_net(best)  # refuses anything that is not a complete ipad-net checkpoint, naming the file
    BUNDLED_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=BUNDLED_WEIGHTS.parent, suffix=".tmp", delete=False) as handle:
        shutil.copyfile(best, handle.name)
    os.chmod(handle.name, 0o644)  # a temporary file is private; package data is world-readable
    os.replace(handle.name, BUNDLED_WEIGHTS)


def cpu_seconds_per_12mp_jpeg(samples: Path, images: int = 8) -> float:
    """Decode + detect CPU time on one thread for 4000x3000 JPEGs (q 92) made from the data set's photos."""
    import torch

    from ipad_qc.detectors.registry import get_detector
    from ipad_qc.io.loader import load_image

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    detector = get_detector("ipad-net", device="cpu")
    photos = sorted((samples / "images").rglob("*.png"))[:images]
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for index, photo in enumerate(photos):
            big = cv2.resize(cv2.imread(str(photo)), (4000, 3000), interpolation=cv2.INTER_CUBIC)
            path = Path(scratch) / f"{index}.jpg"
            cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
            paths.append(path)
        detector.detect([load_image(paths[0], detector.decode_hint)])  # warm-up
        started = time.process_time()
        for path in paths:
            detector.detect([load_image(path, detector.decode_hint)])
        return (time.process_time() - started) / len(paths)


def training_time(runs: list[Path]) -> tuple[int, float]:
    """Epochs and seconds of the run folders together (from their metrics.csv)."""
    rows = []
    for run in runs:
        with open(run / "metrics.csv", newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return len(rows), sum(float(row["seconds"]) for row in rows)


def _row(name: str, values: dict[str, float]) -> str:
    cells = [f"{values['accuracy']:.3f}", f"{values['clean_flagged']} of {values['clean_images']}",
             *(f"{values[f'auroc_{n}']:.3f}" for n in ARTIFACT_CLASSES), f"{values['auroc_mean']:.3f}",
             f"{values['auroc_vs_clean_mean']:.3f}"]
    return f"| {name} | " + " | ".join(cells) + " |"


def _mistakes(evaluation: DetectorEvaluation, count: int = 8) -> list[str]:
    return [f"- `{m.path}`: {m.truth} labelled {m.predicted} (p = {m.scores[m.predicted]:.2f} against "
            f"{m.scores[m.truth]:.2f} for {m.truth})" for m in evaluation.verdicts.mistakes[:count]]


def write_card(args: argparse.Namespace, real: dict[str, tuple[DetectorEvaluation, float]],
               synthetic: DetectorEvaluation, seconds_12mp: float) -> None:
    model, training = load_net(BUNDLED_WEIGHTS)
    epochs, seconds = training_time([*args.continued_from, args.run])
    synth_record = args.test_data / "synth.json"
    settings = json.loads(synth_record.read_text()).get("settings", {}) if synth_record.is_file() else {}
    header = ("| detector | accuracy | clean flagged | " + " | ".join(f"{n} ovr" for n in ARTIFACT_CLASSES)
              + " | mean ovr | mean vc |\n|---|" + "---:|" * (4 + len(ARTIFACT_CLASSES)))
    pixel = synthetic.report.by_protocol["vs-clean"].overall
    lines = [
        "# ipad-net: model card", "",
        "A compact fully-convolutional detector (per-class probability maps and image-level scores) trained "
        "from scratch by `ipad-qc train-net`, on synthetic artifacts made from real clean photos only.", "",
        "## Training", "",
        f"- command: `{args.command}`",
        f"- data: `{args.test_data.name}`, synthesised by `ipad-qc synth` from `../shared/clean-corpus` "
        f"(320 real clean photos): settings `{json.dumps(settings, sort_keys=True)}`",
        f"- split sizes: `{json.dumps(training.get('data', {}), sort_keys=True)}`",
        f"- network: `{model.config.to_json()}` ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{BUNDLED_WEIGHTS.stat().st_size / 2**20:.2f} MB)",
        f"- seed {model.config.seed}; {epochs} epochs in {seconds / 3600:.2f} h on {args.hardware}",
        f"- thresholds (calibrated on the validation split): `{json.dumps(model.config.thresholds)}`", "",
        f"## Real captures: `{args.realdev}` (never trained on)", "", header,
        *(_row(name, figures(evaluation)) for name, (evaluation, _) in real.items()), "",
        "ovr: one-vs-rest AUROC; vc: mean AUROC against clean images (the paper's protocol).", "",
        "## Synthetic: the test split of its training data (photos it never saw)", "", header,
        _row("ipad-net", figures(synthetic)), "",
        f"Pixel level (vs-clean): S-AUROC {pixel['S-AUROC']:.3f}, S-AP {pixel['S-AP']:.3f}, "
        f"S-AUPRO {pixel['S-AUPRO']:.3f}.", "",
        "## Speed", "",
        f"{1000 * seconds_12mp:.0f} ms CPU per 4000x3000 JPEG (q 92), decode included, one thread: "
        f"{1 / seconds_12mp:.1f} images/s per core.", "",
        "## Known failure modes (worst mistakes on the real captures)", "",
        *_mistakes(real["ipad-net"][0]), "",
        f"Written by `training/ship_ipad_net.py` on {time.strftime('%Y-%m-%d')}.", ""]
    CARD.write_text("\n".join(lines))


def main() -> int:
    args = _arguments()
    install(args.run / "best.safetensors")
    real = {name: evaluate(name, args.realdev, "all", args.out, None) for name in ("classic", "ipad-net")}
    synthetic, _ = evaluate("ipad-net", args.test_data, "test", args.out, None)
    seconds_12mp = cpu_seconds_per_12mp_jpeg(args.test_data)
    write_card(args, real, synthetic, seconds_12mp)
    print(CARD.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
