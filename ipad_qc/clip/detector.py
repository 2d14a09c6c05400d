"""The ``ipad-clip`` detector: IPAD-CLIP behind the scanner's Detector protocol.

``ipad-qc scan --detector ipad-clip --checkpoint model.safetensors`` runs a trained model; without
a checkpoint it runs **zero-shot** (pretrained CLIP, fixed templates, no adapters), for users
who have CLIP weights but have not trained a head yet. Images are squashed to the square input
without cropping, so artifacts at the borders are seen, and the maps are stretched back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from ipad_qc.clip.checkpoint import load_model
from ipad_qc.clip.config import IpadClipConfig
from ipad_qc.clip.model import IpadClip
from ipad_qc.detectors.base import Detection, label_with_thresholds
from ipad_qc.device import autocast_for, resolve_device
from ipad_qc.io.types import DecodedImage, DecodeHint


def preprocess(image: DecodedImage, size: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(3, size, size) float32, normalised with the backbone's statistics, from any bit depth."""
    rgb = cv2.resize(image.to_float(), (size, size), interpolation=cv2.INTER_AREA)
    return ((rgb - mean) / std).transpose(2, 0, 1)


class IpadClipDetector:
    """Batched IPAD-CLIP inference under ``torch.inference_mode`` (bf16/fp16 autocast on CUDA, fp32 scores)."""

    name = "ipad-clip"

    def __init__(self, model: IpadClip, device: str, threshold: float = 0.5, source: str = "") -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.threshold = threshold
        self.source = source
        self.size = model.config.image_size
        self.mean = np.asarray(model.image_mean, dtype=np.float32)
        self.std = np.asarray(model.image_std, dtype=np.float32)
        self.decode_hint = DecodeHint(short_side=self.size)

    def settings(self) -> dict[str, Any]:
        return {"model": self.source, "config": self.model.config.to_json(), "threshold": self.threshold}

    @torch.inference_mode()
    def detect(self, images: Sequence[DecodedImage]) -> list[Detection]:
        batch = torch.from_numpy(np.stack([preprocess(image, self.size, self.mean, self.std) for image in images]))
        with autocast_for(self.device):
            output = self.model(batch.to(self.device, non_blocking=True))
        class_probs, seg_probs = (t.cpu().numpy() for t in output.probabilities())  # fp32 heads, fp32 softmax
        return [self._detection(image, class_probs[i], seg_probs[i]) for i, image in enumerate(images)]

    def _detection(self, image: DecodedImage, class_probs: np.ndarray, seg_probs: np.ndarray) -> Detection:
        names = self.model.config.class_names
        scores = {name: float(class_probs[k]) for k, name in enumerate(names)}
        width, height = image.size
        maps = {name: cv2.resize(seg_probs[k], (width, height), interpolation=cv2.INTER_LINEAR)
                for k, name in enumerate(names) if k > 0}
        probability = np.clip(1.0 - cv2.resize(seg_probs[0], (width, height), interpolation=cv2.INTER_LINEAR), 0, 1)
        label = label_with_thresholds(scores, self.model.config.thresholds)
        return Detection(scores=scores, label=label, probability=probability,
                         original_size=(image.meta.width, image.meta.height), threshold=self.threshold,
                         class_maps=maps)


def create(device: str = "auto", checkpoint: str | None = None, backbone: str | None = None,
           pretrained: str | None = None, image_size: int | None = None, threshold: float = 0.5,
           **config: Any) -> IpadClipDetector:
    """Entry-point factory.

    With ``checkpoint``: a trained model; ``backbone``/``image_size`` if given must match it, and
    ``pretrained`` may point at the backbone weights' new location. Without: zero-shot on
    ``backbone`` (default ViT-L-14) with ``pretrained`` weights (default ``openai``) at
    ``image_size`` (default 518).
    """
    resolved = resolve_device(device)
    if checkpoint:
        model = load_model(checkpoint, pretrained=pretrained, backbone=backbone, image_size=image_size)
        return IpadClipDetector(model, resolved, threshold, source=str(checkpoint))
    settings = IpadClipConfig(backbone=backbone or "ViT-L-14", pretrained=pretrained or "openai",
                              image_size=image_size or 518, adapters=False, multi_granularity=False, **config)
    model = IpadClip(settings, with_text=True)
    model.use_zero_shot()
    model.drop_text_encoder()
    return IpadClipDetector(model, resolved, threshold, source=f"zero-shot {settings.backbone}:{settings.pretrained}")
