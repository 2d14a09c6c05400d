"""Per-class decision thresholds picked on the validation split and stored in the checkpoint.

For each artifact class the threshold is the lowest score at which validation precision reaches
``target_precision`` (the most recall at that precision); when no threshold reaches it, the
F1-maximising one is used instead and the report says so. The detector then flags a class when
its score passes its threshold, and labels an image with the flagged class of highest score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Threshold:
    value: float
    precision: float
    recall: float
    rule: str  # "precision>=target" or "f1-max"


def _curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], positive[order].astype(np.float64)
    last_of_value = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    true_pos = np.cumsum(hits)[last_of_value]
    flagged = last_of_value + 1.0
    return sorted_scores[last_of_value], true_pos / flagged, true_pos / max(1.0, hits.sum())


def pick_threshold(scores: np.ndarray, positive: np.ndarray, target_precision: float = 0.9) -> Threshold:
    """The threshold for one class's scores against its one-vs-rest ground truth."""
    if not positive.any():
        return Threshold(1.0, float("nan"), float("nan"), "no positives")
    values, precision, recall = _curve(scores, positive)
    reaching = np.flatnonzero(precision >= target_precision)
    if reaching.size:
        best = reaching[np.argmax(recall[reaching])]
        return Threshold(float(values[best]), float(precision[best]), float(recall[best]), "precision>=target")
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1))
    return Threshold(float(values[best]), float(precision[best]), float(recall[best]), "f1-max")


def calibrate(class_probs: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
              target_precision: float = 0.9) -> dict[str, Threshold]:
    """Thresholds for every artifact class (index >= 1) from validation predictions."""
    return {name: pick_threshold(class_probs[:, k], labels == k, target_precision)
            for k, name in enumerate(class_names) if k > 0}
