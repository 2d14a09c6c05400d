"""Rank metrics (AUROC, AP, F1max, AUPRO) from score histograms.

Every metric here is a function of the counts of positives and negatives scored at or above each
threshold, so it can be computed from a histogram over ascending score levels instead of the scores
themselves: a cumulative sum from the top level down gives the true- and false-positive counts at
every threshold, highest threshold first. Exact scores (image level) use the distinct score values
as levels; pixel scores use a fixed quantisation grid, so memory does not grow with the data.

Levels with no samples only repeat the previous point of each curve, which adds no area and no
recall, so the results equal those computed over distinct thresholds (as scikit-learn does).

When a level is a cell holding several distinct scores (pixel scores, see
:mod:`ipad_qc.evaluation.score_grid`), the order inside the cell is lost. The error bounds here
say how much that can matter, from the counts alone: inside a cell the true curve is some monotone
path across the cell's rectangle, between the orders "its positives first" and "its negatives
first", and each metric is monotone between those two extremes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cumulative_from_top(histogram: np.ndarray) -> np.ndarray:
    """Counts at or above each level, highest level first (a threshold sweep from the top down)."""
    return np.cumsum(np.asarray(histogram, dtype=np.float64)[::-1])


def trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Area under the polyline through ``(x, y)``; ``x`` must be non-decreasing."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def partial_area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Area under the polyline through ``(x, y)`` for ``x`` in ``[x[0], limit]``.

    ``x`` must be non-decreasing. The curve is cut exactly at ``limit``: the last segment that
    crosses it is interpolated linearly, as the trapezoidal rule assumes between points.
    """
    cut = int(np.searchsorted(x, limit, side="right"))
    xs, ys = x[:cut], y[:cut]
    if cut < x.size:
        x0, x1, y0, y1 = x[cut - 1], x[cut], y[cut - 1], y[cut]
        y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        xs, ys = np.append(xs, limit), np.append(ys, y_limit)
    return trapezoid(ys, xs)


@dataclass(frozen=True)
class RankCurve:
    """True- and false-positive counts at every threshold, highest threshold first.

    ``tp[i]`` and ``fp[i]`` count positives and negatives scored at or above the ``i``-th highest
    level; the last entry (lowest threshold) therefore holds the totals.
    """

    tp: np.ndarray
    fp: np.ndarray

    @classmethod
    def from_histograms(cls, positives: np.ndarray, negatives: np.ndarray) -> RankCurve:
        """Build from per-level counts of positives and negatives over ascending score levels."""
        return cls(cumulative_from_top(positives), cumulative_from_top(negatives))

    @classmethod
    def from_scores(cls, scores: np.ndarray, positive: np.ndarray) -> RankCurve:
        """Build from exact scores, one level per distinct score value (no quantisation)."""
        levels, level_of = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        positive = np.asarray(positive, dtype=bool)
        return cls.from_histograms(
            np.bincount(level_of[positive], minlength=levels.size),
            np.bincount(level_of[~positive], minlength=levels.size),
        )

    @property
    def positives(self) -> float:
        return float(self.tp[-1]) if self.tp.size else 0.0

    @property
    def negatives(self) -> float:
        return float(self.fp[-1]) if self.fp.size else 0.0

    def auroc(self) -> float:
        """Area under the ROC curve from (0, 0); NaN without both positives and negatives."""
        if self.positives == 0 or self.negatives == 0:
            return float("nan")
        return trapezoid(_from_origin(self.tp / self.positives), _from_origin(self.fp / self.negatives))

    def average_precision(self) -> float:
        """Sum of precision weighted by the recall gained at each threshold (scikit-learn's AP)."""
        if self.positives == 0:
            return float("nan")
        predicted = self.tp + self.fp
        precision = np.divide(self.tp, predicted, out=np.zeros_like(self.tp), where=predicted > 0)
        recall_gain = np.diff(self.tp, prepend=0.0) / self.positives
        return float(np.sum(recall_gain * precision))

    def f1_max(self) -> float:
        """Best F1 over all thresholds, written as 2·TP / (TP + FP + P) so no level divides by zero."""
        if self.positives == 0:
            return float("nan")
        return float(np.max(2.0 * self.tp / (self.tp + self.fp + self.positives)))

    def error_bounds(self, mixed: np.ndarray | None = None) -> dict[str, float]:
        """Largest possible distance of ``auroc``, ``average_precision`` and ``f1_max`` from their values
        on the scores before they were grouped into levels (NaN where the metric is undefined).

        ``mixed`` (per level, ascending like the histograms) says which levels hold more than one
        distinct score; the others hold real ties, counted exactly. Default: all of them.

        For a mixed level with ``p`` positives and ``n`` negatives below ``a`` true and ``c``
        predicted positives: AUROC counts its ``p·n`` pairs as half-ordered, and the truth orders
        them anywhere between none and all, so it is off by at most ``p·n / (2·P·N)``. AP gives each
        of its positives the precision ``(a+p)/(c+p+n)``; the j-th positive's true precision lies
        between ``(a+j)/(c+n+j)`` (all negatives first) and ``(a+p)/(c+p)`` (all negatives after, all
        positives tied), and AP between the sums over those extremes; the first sum is bounded from
        below in closed form since ``j -> (a+j)/(d+j)`` is increasing and concave (midpoint rule,
        Jensen). Level ends are real thresholds, so the true F1max is at least ours and at most the
        best F1 a mixed level could reach with its positives first, ``2(a+p)/(c+p+P)``.
        """
        positives, negatives = self.positives, self.negatives
        if positives == 0:
            return {"auroc": float("nan"), "average_precision": float("nan"), "f1_max": float("nan")}
        p = np.diff(self.tp, prepend=0.0)
        n = np.diff(self.fp, prepend=0.0)
        a, c = self.tp - p, self.tp + self.fp - p - n
        uncertain = p > 0 if mixed is None else (p > 0) & np.asarray(mixed, dtype=bool)[::-1]
        a, c, p_top, n = a[uncertain], c[uncertain], p[uncertain], n[uncertain]
        auroc = float(np.sum(p_top * n) / (2.0 * positives * negatives)) if negatives else float("nan")
        ours = p_top * (a + p_top) / (c + p_top + n)
        # Positives first, tied: each at (a+p)/(c+p), the most any order gives them.
        first = p_top * (a + p_top) / (c + p_top)
        # Negatives first: sum_{j=1..p} (a+j)/(c+n+j) >= the integral from 1/2 to p + 1/2.
        last = p_top - (c + n - a) * np.log1p(p_top / (c + n + 0.5))
        average_precision = max(float(np.sum(first - ours)), float(np.sum(ours - last)), 0.0) / positives
        best_f1 = float(np.max(2.0 * (a + p_top) / (c + p_top + positives), initial=0.0))
        return {"auroc": auroc, "average_precision": average_precision,
                "f1_max": max(0.0, best_f1 - self.f1_max())}


def aupro(region_weighted: np.ndarray, regions: int, negatives: np.ndarray, fpr_limit: float) -> float:
    """Normalised area under the per-region-overlap curve for FPR in ``[0, fpr_limit]``.

    ``region_weighted`` is the histogram of positive pixels over ascending levels where each pixel
    of region ``r`` weighs ``1 / |r|``; its cumulative sum from the top divided by ``regions`` is the
    mean overlap PRO(t) of all regions at every threshold at once. ``negatives`` is the histogram of
    negative pixels over the same levels, giving FPR(t). The area is divided by ``fpr_limit`` so a
    perfect detector scores 1. NaN without regions or without negative pixels.
    """
    negative_total = float(np.sum(negatives))
    if regions == 0 or negative_total == 0:
        return float("nan")
    pro = _from_origin(cumulative_from_top(region_weighted) / regions)
    fpr = _from_origin(cumulative_from_top(negatives) / negative_total)
    return partial_area(fpr, pro, fpr_limit) / fpr_limit


def aupro_error_bound(region_weighted: np.ndarray, regions: int, negatives: np.ndarray, fpr_limit: float,
                      mixed: np.ndarray | None = None) -> float:
    """Largest possible distance of :func:`aupro` from its value on the scores before grouping.

    Inside a mixed level (see :meth:`RankCurve.error_bounds`) the true PRO-FPR curve runs
    monotonically across the level's rectangle, so its area differs from the trapezoid by at most
    half the rectangle; the level that crosses ``fpr_limit`` is cut there and may be off by its
    whole cut rectangle.
    """
    negative_total = float(np.sum(negatives))
    if regions == 0 or negative_total == 0:
        return float("nan")
    pro = _from_origin(cumulative_from_top(region_weighted) / regions)
    fpr = _from_origin(cumulative_from_top(negatives) / negative_total)
    start, stop, rise = fpr[:-1], fpr[1:], np.diff(pro)
    uncertain = start < fpr_limit
    if mixed is not None:
        uncertain &= np.asarray(mixed, dtype=bool)[::-1]
    width = np.minimum(stop, fpr_limit) - start
    share = np.where(stop > fpr_limit, 1.0, 0.5)
    return float(np.sum((width * rise * share)[uncertain]) / fpr_limit)


def _from_origin(values: np.ndarray) -> np.ndarray:
    """Prepend the point of a threshold above every score, where nothing is predicted positive."""
    return np.concatenate(([0.0], values))
