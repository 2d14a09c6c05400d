"""Streaming evaluation of IPAD predictions with the paper's seven metrics, in bounded memory.

The paper (Section 5.1, Table 1) reports C-AUROC, C-AP and C-F1max for image classification and
S-AUROC, S-AP, S-F1max and S-AUPRO for segmentation. It evaluates K artifact classes against a
clean class; this module fixes how that multi-class problem maps onto each binary metric.

Two protocols say which images are the negatives of class k (k = 1..K; index 0 is clean):

* ``vs-clean`` (the paper's, the default): class-k images against clean images. Table 3 scores
  single-score baselines per class, which is only possible this way; images of the other artifact
  classes take no part in class k's metrics.
* ``one-vs-rest``: class-k images against every other image, clean and other artifacts alike. It
  also asks whether the class's score singles out its own artifact, which routing relies on.

Both are computed in one pass; ``compute`` returns both, ``protocol`` says which one the report
shows first (its table, ``overall`` and ``per_class``).

Per artifact class k:

* Image level (C-*): score ``class_probs[:, k]``; positives are the images with ``labels == k``,
  negatives the clean images (vs-clean) or all other images (one-vs-rest).
* Pixel level (S-AUROC, S-AP, S-F1max): score map ``seg_probs[:, k]``. Positive pixels are the
  ground-truth mask pixels of images labelled k. Negative pixels are all pixels of clean images and
  the unmasked pixels of class-k images, plus (one-vs-rest only) all pixels of images of the other
  artifact classes, their own artifact included. Masks of clean images must be empty.
* Image-level-only samples: an artifact image whose ground truth has no mask (``has_mask`` False:
  a real capture labelled by a person) says nothing about its pixels. It counts at image level and
  is left out of every pixel metric; the counts say how many were left out. A clean image's mask
  is empty by definition (all of it is clean), so it is left out only when its maps are missing.
* S-AUPRO: the regions are the 8-connected components (``scipy.ndimage.label`` with a 3x3
  structure) of the masks of class-k images, each image labelled separately. PRO(t) is the mean
  over regions of the fraction of the region's pixels scored >= t; FPR(t) is the fraction of the
  class's negative pixels (as above) scored >= t. The area under PRO against FPR for FPR in
  [0, ``fpr_limit``] (0.3), cut exactly at the limit by linear interpolation, is divided by
  ``fpr_limit`` so that a perfect detector scores 1.
* Overall: the macro mean over the K artifact classes, metric by metric. This is what the paper
  reports: Table 3's per-class C-AP of IPAD-CLIP (68.74, 72.22, 96.64) average to Table 1's 79.20,
  and its per-class S-F1 (35.98, 34.64, 58.80) to 43.14; its ablation rows average to Table 2's
  (w/o MG: C-AP 62.69, 66.74, 93.26 to 74.23; w/o LTE: S-F1 25.79, 23.49, 46.18 to 31.82).
* Undefined metrics are NaN and excluded from the macro mean, with a note in the report. A class
  with no positive images in the evaluated set has all seven NaN; a class whose images carry no
  mask pixel has its four pixel metrics NaN; C-AUROC is NaN without negative images.

Definitions follow scikit-learn: AUROC is the trapezoidal area under the ROC curve; AP is
sum_n (R_n - R_{n-1}) P_n over descending thresholds; F1max is the largest F1 over all thresholds.

Memory: image-level scores are few (one row per image), so they are kept exactly and sorted at
``compute``. Pixel scores are not kept: each is counted in one of ``CELLS`` cells of a fixed grid
that is fine where softmax maps put their scores, next to 0 and 1 (see
:mod:`ipad_qc.evaluation.score_grid`: every float32 score above 1 - 2**-12 has its own cell), and
per class five float64 histograms over those cells are accumulated: pixels of clean images, of
class-k images and of other artifact images, positive pixels, and positive pixels weighted by
1 / |r| for the region r they belong to. Each protocol's negatives are sums of the first three
minus the positives. Since PRO(t) = (1 / R) * sum_r (1 / |r|) * #{p in r : s_p >= t}, the whole PRO
curve is the weighted histogram summed from the top cell down, divided by the region count R: one
pass instead of re-labelling masks at each threshold. All curves take their thresholds at the cell
boundaries, descending.

Exactness: the pixel metrics are those of the scores with the order inside each cell forgotten.
Scores one to a cell (distinct 8-bit or 1/255-step maps, saturated float32 tops) give exact
results; for the rest the report carries, per class and metric, a proven bound on the distance to
the exact value (``error_bounds``, see :meth:`ipad_qc.evaluation.curves.RankCurve.error_bounds`),
and a note when a bound could show in the table's two decimals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.evaluation.curves import RankCurve, aupro, aupro_error_bound
from ipad_qc.evaluation.report import (
    DEFAULT_PROTOCOL,
    METRIC_NAMES,
    PIXEL_METRICS,
    PROTOCOLS,
    EvaluationReport,
    ProtocolMetrics,
)
from ipad_qc.evaluation.score_grid import CELLS, score_cells

#: 8-connectivity: pixels touching by an edge or a corner belong to the same region.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


#: A bound below this (0.005 points) cannot change a percentage printed with two decimals.
_VISIBLE_BOUND = 5e-5
_KINDS = ("clean", "own", "others")


@dataclass
class _PixelHistograms:
    """One artifact class's pixel statistics over the score cells, split by the kind of image the
    pixels come from (rows of ``by_kind``, in ``_KINDS`` order), so that each protocol's negatives
    are a sum of parts. The ``lowest`` and ``highest`` score per cell (as the float32 bits of its
    distance to 0 or 1, see :func:`score_cells`) tell the cells that hold one distinct score (real
    ties, counted exactly) from those whose inner order was lost."""

    by_kind: np.ndarray = field(default_factory=lambda: np.zeros((len(_KINDS), CELLS)))
    positives: np.ndarray = field(default_factory=lambda: np.zeros(CELLS))
    region_weighted: np.ndarray = field(default_factory=lambda: np.zeros(CELLS))
    lowest: np.ndarray = field(default_factory=lambda: np.full(CELLS, np.iinfo(np.int32).max, dtype=np.int32))
    highest: np.ndarray = field(default_factory=lambda: np.full(CELLS, -1, dtype=np.int32))
    #: Per cell: True where it holds more than one distinct score.
    mixed: np.ndarray = field(default_factory=lambda: np.zeros(CELLS, dtype=bool))
    regions: int = 0

    def add(self, cells: np.ndarray, distances: np.ndarray, kinds: np.ndarray, masks: np.ndarray) -> None:
        """Add a batch of maps: ``cells`` and ``distances`` (B, H, W) as :func:`score_cells` gives them,
        ``kinds`` (B,) the row of ``by_kind`` of each map, in ascending order (``own``: an image of
        this class, whose artifact ``masks`` (B, H, W) are the positives)."""
        cells_flat, distances_flat = cells.ravel(), distances.ravel()
        undecided = ~self.mixed[cells_flat]  # a cell known to be mixed stays so: no need to look again
        if not undecided.all():
            cells_flat, distances_flat = cells_flat[undecided], distances_flat[undecided]
        np.minimum.at(self.lowest, cells_flat, distances_flat)
        np.maximum.at(self.highest, cells_flat, distances_flat)
        self.mixed |= self.highest > self.lowest
        for kind, start, stop in _runs(kinds):
            self.by_kind[kind] += np.bincount(cells[start:stop].ravel(), minlength=CELLS)
        own = np.flatnonzero(kinds == _KINDS.index("own"))
        if not own.size:
            return
        positive_cells, weights = [], []
        for image in own:
            image_weights, regions = region_weights(masks[image])
            positive_cells.append(cells[image][masks[image]])
            weights.append(image_weights)
            self.regions += regions
        positive_cells = np.concatenate(positive_cells)
        self.positives += np.bincount(positive_cells, minlength=CELLS)
        self.region_weighted += np.bincount(positive_cells, weights=np.concatenate(weights), minlength=CELLS)

    def negatives(self, protocol: str) -> np.ndarray:
        """Negative pixels per cell: clean images and the unmasked part of this class's images, plus
        every pixel of other artifact images under one-vs-rest."""
        clean, own, others = self.by_kind
        negatives = clean + own - self.positives
        return negatives + others if protocol == "one-vs-rest" else negatives

    @property
    def pixels(self) -> float:
        return float(self.by_kind.sum())



def _runs(kinds: np.ndarray) -> list[tuple[int, int, int]]:
    """``(kind, start, stop)`` of each run of equal values in the sorted ``kinds``."""
    starts = np.flatnonzero(np.r_[True, kinds[1:] != kinds[:-1]])
    stops = np.r_[starts[1:], len(kinds)]
    return [(int(kinds[start]), int(start), int(stop)) for start, stop in zip(starts, stops, strict=True)]


def region_weights(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``1 / |r|`` for each mask pixel in row-major order, with r its 8-connected region; region count."""
    regions, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    sizes = np.bincount(regions.ravel())
    return 1.0 / sizes[regions[mask]], count


class IpadEvaluator:
    """Accumulates predictions batch by batch; ``compute`` returns the seven metrics in both protocols.

    Memory is the image-level scores (N x (K+1) floats) plus, per artifact class, 5 histograms of
    ``CELLS`` float64 and the per-cell score range (17 MB per class), whatever the number and size of
    the maps. See the module docstring for the metric definitions.
    """

    def __init__(self, class_names: Sequence[str] = CLASS_NAMES, fpr_limit: float = 0.3,
                 protocol: str = DEFAULT_PROTOCOL) -> None:
        if len(class_names) < 2:
            raise ValueError("class_names needs the clean class and at least one artifact class")
        if not 0 < fpr_limit <= 1:
            raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.class_names = tuple(class_names)
        self.fpr_limit = fpr_limit
        self.protocol = protocol
        self._image_scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._without_mask: list[np.ndarray] = []
        self._pixels = {name: _PixelHistograms() for name in self.class_names[1:]}

    def update(self, class_probs: np.ndarray, labels: np.ndarray, seg_probs: np.ndarray, masks: np.ndarray,
               has_mask: np.ndarray | None = None) -> None:
        """Add a batch of B images.

        ``class_probs`` (B, K+1) image probabilities, ``labels`` (B,) class indices (0 = clean),
        ``seg_probs`` (B, K+1, H, W) pixel probabilities, ``masks`` (B, H, W) ground-truth artifact
        masks, empty for clean images. ``has_mask`` (B,) says which images have a ground-truth mask
        (default: all); images without one are left out of the pixel metrics. (A clean image's mask
        is empty by definition: pass False for it only when its maps are missing.)
        """
        class_probs, labels, seg_probs, masks, has_mask = self._validated(class_probs, labels, seg_probs, masks,
                                                                          has_mask)
        self._image_scores.append(class_probs)
        self._labels.append(labels)
        self._without_mask.append(~has_mask)
        known = np.flatnonzero(has_mask)
        if not known.size:
            return
        cells = np.empty((known.size, *seg_probs.shape[2:]), dtype=np.int64)
        distances = np.empty(cells.shape, dtype=np.int32)
        for k, histograms in enumerate(self._pixels.values(), start=1):
            kinds = np.where(labels[known] == 0, _KINDS.index("clean"),
                             np.where(labels[known] == k, _KINDS.index("own"), _KINDS.index("others")))
            order = np.argsort(kinds, kind="stable")  # maps of one kind side by side: one count per kind
            # Map by map: one map's temporaries stay in cache, which halves the time of whole batches.
            for row, image in enumerate(known[order]):
                cells[row], distances[row] = score_cells(seg_probs[image, k])
            histograms.add(cells, distances, kinds[order], masks[known[order]])

    def compute(self) -> EvaluationReport:
        """Metrics per artifact class and their macro mean in both protocols, with counts and notes."""
        if not self._labels:
            raise ValueError("no predictions: call update() before compute()")
        scores = np.concatenate(self._image_scores)
        labels = np.concatenate(self._labels)
        without_mask = np.concatenate(self._without_mask)
        counts = self._counts(labels, without_mask)
        results = {protocol: self._protocol_metrics(protocol, scores, labels, counts) for protocol in PROTOCOLS}
        return EvaluationReport(by_protocol=results, protocol=self.protocol, counts=counts)

    def _protocol_metrics(self, protocol: str, scores: np.ndarray, labels: np.ndarray,
                          counts: dict[str, Any]) -> ProtocolMetrics:
        per_class, bounds = {}, {}
        for k, name in enumerate(self.class_names[1:], start=1):
            chosen = (labels == 0) | (labels == k) if protocol == "vs-clean" else np.ones(labels.shape, dtype=bool)
            image = RankCurve.from_scores(scores[chosen, k], labels[chosen] == k)
            pixel, pixel_bounds = self._pixel_metrics(self._pixels[name], protocol)
            per_class[name] = {"C-AUROC": image.auroc(), "C-AP": image.average_precision(),
                               "C-F1max": image.f1_max(), **pixel}
            bounds[name] = pixel_bounds
        overall = {metric: _mean_of_finite([row[metric] for row in per_class.values()]) for metric in METRIC_NAMES}
        notes = tuple(
            note for name, values in per_class.items()
            if (note := _exclusion_note(name, values, counts, protocol)) is not None
        )
        notes += tuple(
            f"{name}: {count} image(s) without {'maps' if name == self.class_names[0] else 'a ground-truth mask'} "
            "left out of the pixel metrics"
            for name, count in counts["images_without_mask"].items() if count
        )
        notes += tuple(
            f"{name}: {metric} is within {100 * bound:.3f} points of its exact value (pixel scores counted in "
            f"{CELLS:,} cells)"
            for name, values in bounds.items() for metric, bound in values.items() if bound > _VISIBLE_BOUND
        )
        return ProtocolMetrics(overall=overall, per_class=per_class, notes=notes, error_bounds=bounds)

    def _pixel_metrics(self, pixels: _PixelHistograms, protocol: str) -> tuple[dict[str, float], dict[str, float]]:
        """The four pixel metrics of one class and their error bounds."""
        negatives = pixels.negatives(protocol)
        curve = RankCurve.from_histograms(pixels.positives, negatives)
        mixed = pixels.mixed
        bounds = curve.error_bounds(mixed)
        values = {"S-AUROC": curve.auroc(), "S-AP": curve.average_precision(), "S-F1max": curve.f1_max(),
                  "S-AUPRO": aupro(pixels.region_weighted, pixels.regions, negatives, self.fpr_limit)}
        bound_values = {"S-AUROC": bounds["auroc"], "S-AP": bounds["average_precision"], "S-F1max": bounds["f1_max"],
                        "S-AUPRO": aupro_error_bound(pixels.region_weighted, pixels.regions, negatives,
                                                     self.fpr_limit, mixed)}
        return values, {metric: bound_values[metric] for metric in PIXEL_METRICS}

    def _counts(self, labels: np.ndarray, without_mask: np.ndarray) -> dict[str, Any]:
        """The sample sizes behind the metrics, so a reader can judge how much each figure means."""
        classes = list(enumerate(self.class_names))
        return {
            "images": {name: int(np.sum(labels == k)) for k, name in classes},
            "images_without_mask": {name: int(np.sum(without_mask & (labels == k))) for k, name in classes},
            "regions": {name: pixels.regions for name, pixels in self._pixels.items()},
            "positive_pixels": {name: int(pixels.positives.sum()) for name, pixels in self._pixels.items()},
            "pixels": int(self._pixels[self.class_names[1]].pixels),
            "cells": CELLS,
            "fpr_limit": self.fpr_limit,
        }

    def _validated(
        self, class_probs: np.ndarray, labels: np.ndarray, seg_probs: np.ndarray, masks: np.ndarray,
        has_mask: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Arrays with the documented shapes and types, or a ValueError naming what is wrong."""
        class_probs = np.asarray(class_probs, dtype=np.float64)
        labels = np.asarray(labels)
        seg_probs = np.asarray(seg_probs)
        masks = np.asarray(masks, dtype=bool)
        n_classes = len(self.class_names)
        batch = labels.shape[0] if labels.ndim == 1 else -1
        if batch < 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} {labels.dtype}")
        has_mask = np.ones(batch, dtype=bool) if has_mask is None else np.asarray(has_mask, dtype=bool)
        if class_probs.shape != (batch, n_classes):
            raise ValueError(f"class_probs must have shape {(batch, n_classes)}, got {class_probs.shape}")
        if seg_probs.ndim != 4 or seg_probs.shape[:2] != (batch, n_classes):
            raise ValueError(f"seg_probs must have shape ({batch}, {n_classes}, H, W), got {seg_probs.shape}")
        if masks.shape != (batch, *seg_probs.shape[2:]):
            raise ValueError(f"masks must have shape {(batch, *seg_probs.shape[2:])}, got {masks.shape}")
        if has_mask.shape != (batch,):
            raise ValueError(f"has_mask must have shape {(batch,)}, got {has_mask.shape}")
        if not np.isfinite(class_probs).all():
            raise ValueError("class_probs contain NaN or infinity")
        if np.any((labels < 0) | (labels >= n_classes)):
            raise ValueError(f"labels must be class indices in [0, {n_classes - 1}]")
        if masks[labels == 0].any():
            raise ValueError("clean images (label 0) must have empty masks")
        return class_probs, labels, seg_probs, masks, has_mask


def _mean_of_finite(values: list[float]) -> float:
    finite = [value for value in values if math.isfinite(value)]
    return sum(finite) / len(finite) if finite else float("nan")


def _exclusion_note(name: str, values: dict[str, float], counts: dict[str, Any], protocol: str) -> str | None:
    """Why some of a class's metrics are undefined and so left out of the macro mean; None if none are."""
    undefined = [metric for metric in METRIC_NAMES if not math.isfinite(values[metric])]
    if not undefined:
        return None
    images, regions = counts["images"][name], counts["regions"][name]
    negatives = counts["images"]["clean"] if protocol == "vs-clean" else sum(counts["images"].values()) - images
    conditions = (
        (images == 0, "no positive images"),
        (images > 0 and regions == 0, "no ground-truth artifact pixels"),
        (negatives == 0, "no clean images" if protocol == "vs-clean" else "no negative images"),
    )
    reasons = [reason for holds, reason in conditions if holds] or ["no negatives"]
    return f"{name}: {', '.join(undefined)} undefined ({'; '.join(reasons)}); excluded from the macro mean"
