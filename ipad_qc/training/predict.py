"""Run a model over a data set split and hand batched predictions to evaluation or calibration."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from ipad_qc.clip.model import IpadClip
from ipad_qc.device import autocast_for


@torch.inference_mode()
def predictions(model: IpadClip, loader: DataLoader, device: str) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``(class_probs, labels, seg_probs, masks, has_mask)`` per batch as NumPy arrays.

    Probabilities are fp32 (the model's heads and softmax run in fp32 under autocast); ``has_mask``
    says which images have a ground-truth mask (see :class:`ipad_qc.datasets.loader.IpadDataset`).
    """
    was_training = model.training
    model.eval()
    try:
        for pixels, labels, masks, has_mask in loader:
            with autocast_for(device):
                output = model(pixels.to(device))
            class_probs, seg_probs = (t.cpu().numpy() for t in output.probabilities())
            yield class_probs, labels.numpy(), seg_probs, masks.numpy() > 0.5, has_mask.numpy()
    finally:
        model.train(was_training)
