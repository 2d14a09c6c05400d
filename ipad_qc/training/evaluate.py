"""Evaluate a trained checkpoint on a data set split (vision tower only, no text encoder).

Unlike ``ipad-qc eval --detector``, which scores what a scan stored, this runs the model on the
split at its own input size and keeps the maps in float, which the pixel metrics of saturated
softmax maps need (the paper's protocol; see :mod:`ipad_qc.evaluation.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import DataLoader

from ipad_qc.clip.checkpoint import load_model
from ipad_qc.datasets.loader import DatasetError, IpadDataset
from ipad_qc.datasets.manifest import Sample
from ipad_qc.detectors.base import label_with_thresholds
from ipad_qc.device import resolve_device
from ipad_qc.evaluation import DEFAULT_PROTOCOL, IpadEvaluator
from ipad_qc.evaluation.run_scoring import DetectorEvaluation
from ipad_qc.evaluation.verdicts import ImageVerdict, VerdictSummary
from ipad_qc.training.predict import predictions


def evaluate_checkpoint(checkpoint: Path, data: Path, samples: Sequence[Sample], batch_size: int = 8,
                        device: str = "auto", pretrained: str | None = None,
                        protocol: str = DEFAULT_PROTOCOL) -> DetectorEvaluation:
    """Metrics of ``checkpoint`` on ``samples`` of the data set ``data``; labels use its calibrated thresholds."""
    resolved = resolve_device(device)
    model = load_model(checkpoint, pretrained=pretrained).to(resolved)
    config = model.config
    if not samples:
        raise DatasetError(f"{data}: no samples to evaluate")
    dataset = IpadDataset(data, list(samples), config.image_size, model.image_mean, model.image_std,
                          config.class_names)
    evaluator = IpadEvaluator(config.class_names, protocol=protocol)
    verdicts, offset = [], 0
    loader = DataLoader(dataset, batch_size=batch_size)
    for class_probs, labels, seg_probs, masks, has_mask in predictions(model, loader, resolved):
        batch, offset = samples[offset : offset + len(labels)], offset + len(labels)
        evaluator.update(class_probs, labels, seg_probs, masks, has_mask=has_mask)
        for row, sample in zip(class_probs, batch, strict=True):
            scores = dict(zip(config.class_names, map(float, row), strict=True))
            verdicts.append(ImageVerdict(sample.image, sample.label, label_with_thresholds(scores, config.thresholds),
                                         scores))
    return DetectorEvaluation(data=data, run_dir=None, detectors=(f"ipad-clip ({checkpoint})",),
                              report=evaluator.compute(), verdicts=VerdictSummary.of(verdicts, config.class_names))
