"""The ``ipad-net`` detector: the compact network behind the scanner's Detector protocol.

Images are resized so their long side is the network's ``input_side`` (aspect kept) and padded by
reflection to multiples of 32; maps are cropped back and handed over at that analysis size. Images
of the same padded size are run as one batch. Labels use the thresholds calibrated on the training
run's validation split (argmax when the weights carry none).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ipad_qc.detectors.base import Detection, label_with_thresholds
from ipad_qc.device import autocast_for, resolve_device
from ipad_qc.io.types import DecodedImage, DecodeHint
from ipad_qc.net.checkpoint import BUNDLED_WEIGHTS, load_net
from ipad_qc.net.model import MEAN, STD, IpadNet


def network_input(rgb: np.ndarray, side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(3, H, W) float32 normalised input, H and W multiples of 32, and the (height, width) of the image in it."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    height, width = rgb.shape[:2]
    pad_y, pad_x = -height % 32, -width % 32
    if pad_y or pad_x:
        rgb = cv2.copyMakeBorder(rgb, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
    pixels = (rgb - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), (height, width)


class IpadNetDetector:
    """Batched ipad-net inference under ``torch.inference_mode``."""

    name = "ipad-net"

    def __init__(self, model: IpadNet, device: str, threshold: float = 0.5, source: str = "",
                 training: dict[str, Any] | None = None) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        self.model = model.to(device).eval()
        self.device = device
        self.threshold = threshold
        self.source = source
        self.training = training or {}
        self.decode_hint = DecodeHint(long_side=model.config.input_side)

    def settings(self) -> dict[str, Any]:
        return {"weights": self.source, "weights_id": self.training.get("weights_id", ""),
                "config": self.model.config.to_json(), "threshold": self.threshold}

    @torch.inference_mode()
    def detect(self, images: Sequence[DecodedImage]) -> list[Detection]:
        prepared = [network_input(image.to_float(), self.model.config.input_side) for image in images]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, (pixels, _) in enumerate(prepared):
            groups[pixels.shape].append(index)
        results: list[Detection | None] = [None] * len(images)
        for indices in groups.values():
            batch = torch.from_numpy(np.stack([prepared[i][0] for i in indices])).to(self.device)
            with autocast_for(self.device):
                output = self.model(batch)
            class_probs, seg_probs = (t.cpu().numpy() for t in output.probabilities())
            for row, index in enumerate(indices):
                height, width = prepared[index][1]
                results[index] = self._detection(images[index], class_probs[row], seg_probs[row, :, :height, :width])
        return results

    def _detection(self, image: DecodedImage, class_probs: np.ndarray, seg_probs: np.ndarray) -> Detection:
        names = self.model.config.class_names
        scores = {name: float(class_probs[k]) for k, name in enumerate(names)}
        maps = {name: np.ascontiguousarray(seg_probs[k]) for k, name in enumerate(names) if k > 0}
        probability = np.maximum.reduce(list(maps.values()))
        return Detection(scores=scores, label=label_with_thresholds(scores, self.model.config.thresholds),
                         probability=probability, original_size=(image.meta.width, image.meta.height),
                         threshold=self.threshold, class_maps=maps)


def create(device: str = "auto", weights: str | None = None, threshold: float = 0.5) -> IpadNetDetector:
    """Entry-point factory: the bundled weights, or ``weights`` (a checkpoint written by ``ipad-qc train-net``)."""
    path = Path(weights) if weights else BUNDLED_WEIGHTS
    model, training = load_net(path)
    return IpadNetDetector(model, resolve_device(device), threshold, source=str(path), training=training)
