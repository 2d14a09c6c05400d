"""Evaluate a trained checkpoint on a data set split (vision tower only, no text encoder)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import DataLoader

from ipad_qc.clip.checkpoint import load_model
from ipad_qc.datasets.loader import DatasetError, IpadDataset, load_samples
from ipad_qc.device import resolve_device
from ipad_qc.evaluation import EvaluationReport, IpadEvaluator
from ipad_qc.training.predict import predictions


def evaluate_checkpoint(checkpoint: Path, data: Path, split: str = "test", batch_size: int = 8,
                        device: str = "auto", pretrained: str | None = None) -> EvaluationReport:
    resolved = resolve_device(device)
    model = load_model(checkpoint, pretrained=pretrained).to(resolved)
    config = model.config
    samples = [s for s in load_samples(data, config.class_names) if s.split == split]
    if not samples:
        raise DatasetError(f"{data}: the {split} split is empty")
    dataset = IpadDataset(data, samples, config.image_size, model.image_mean, model.image_std, config.class_names)
    evaluator = IpadEvaluator(config.class_names)
    for batch in predictions(model, DataLoader(dataset, batch_size=batch_size), resolved):
        evaluator.update(*batch)
    return evaluator.compute()
