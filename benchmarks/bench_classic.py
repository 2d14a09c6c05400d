"""Benchmark the ``classic`` detector on seeded synthetic cases with known masks.

Prints image-level AUROC per artifact (one-vs-rest on the class score, and artifact-vs-clean on
``1 - score_clean``), pixel-level AUROC per artifact (class map against the ground-truth mask over
that class's images plus the clean ones), label accuracy, the confusion matrix and the detector's
time per image. Run: ``python benchmarks/bench_classic.py --per-class 40 --seed 1``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.detectors.classic import create
from ipad_qc.synthetic import as_decoded, make_case

#: Pixel AUROC subsamples maps and masks on this grid step: millions of pixels add nothing to the
#: estimate but time.
PIXEL_STEP = 4


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=40, help="cases per class (default 40)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    rng = np.random.default_rng(args.seed)
    detector = create()
    labels, scores, pixel_maps, masks = [], [], [], []
    elapsed = 0.0
    for _ in range(args.per_class):
        for kind in CLASS_NAMES:
            image, mask, label = make_case(kind, rng, args.width, args.height)
            decoded = as_decoded(image)
            start = time.perf_counter()
            detection = detector.detect([decoded])[0]
            elapsed += time.perf_counter() - start
            labels.append(label)
            scores.append(detection.scores)
            pixel_maps.append({k: v[::PIXEL_STEP, ::PIXEL_STEP] for k, v in detection.class_maps.items()})
            masks.append(mask[::PIXEL_STEP, ::PIXEL_STEP])
    _report(np.array(labels), scores, pixel_maps, masks)
    print(f"\ndetector time: {1000 * elapsed / len(labels):.1f} ms/image at {args.width}x{args.height}")


def _report(
    labels: np.ndarray, scores: list[dict[str, float]], maps: list[dict], masks: list[np.ndarray]
) -> None:
    print(f"{'class':10s} {'img one-vs-rest':>16s} {'img vs clean':>13s} {'pixel':>7s}")
    clean = labels == CLASS_NAMES[0]
    for name in ARTIFACT_CLASSES:
        score = np.array([s[name] for s in scores])
        one_vs_rest = roc_auc_score(labels == name, score)
        pair = clean | (labels == name)
        not_clean = 1 - np.array([s[CLASS_NAMES[0]] for s in scores])
        vs_clean = roc_auc_score(labels[pair] == name, not_clean[pair])
        chosen = np.flatnonzero(pair)
        truth = np.concatenate([masks[i].ravel() for i in chosen])
        values = np.concatenate([maps[i][name].ravel() for i in chosen])
        print(f"{name:10s} {one_vs_rest:16.3f} {vs_clean:13.3f} {roc_auc_score(truth, values):7.3f}")
    predicted = np.array([max(CLASS_NAMES, key=s.__getitem__) for s in scores])
    print(f"\naccuracy: {np.mean(predicted == labels):.3f}\nconfusion (rows = truth, columns = predicted):")
    print(" " * 10 + "".join(f"{name:>10s}" for name in CLASS_NAMES))
    for truth in CLASS_NAMES:
        row = [(predicted[labels == truth] == guess).sum() for guess in CLASS_NAMES]
        print(f"{truth:10s}" + "".join(f"{count:10d}" for count in row))


if __name__ == "__main__":
    main()
