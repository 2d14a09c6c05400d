"""Run a model over a data set split and hand batched predictions to evaluation or calibration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext

import numpy as np
import torch
from torch.utils.data import DataLoader

from ipad_qc.clip.model import IpadClip


def autocast_for(device: str):
    """bf16 autocast on CUDA (fp16 where bf16 is missing); plain fp32 on the CPU."""
    if not device.startswith("cuda"):
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@torch.inference_mode()
def predictions(model: IpadClip, loader: DataLoader, device: str) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``(class_probs, labels, seg_probs, masks)`` per batch as NumPy arrays."""
    was_training = model.training
    model.eval()
    try:
        for pixels, labels, masks in loader:
            with autocast_for(device):
                output = model(pixels.to(device))
            class_probs, seg_probs = (t.float().cpu().numpy() for t in output.probabilities())
            yield class_probs, labels.numpy(), seg_probs, masks.numpy() > 0.5
    finally:
        model.train(was_training)
