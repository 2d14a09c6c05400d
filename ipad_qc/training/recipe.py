"""The model-specific part of training: stages, parameter groups, checkpoints.

The trainer (:mod:`ipad_qc.training.trainer`) owns what every detector family shares: data,
loss, validation, model selection, calibration and resume. A recipe owns what differs: how the
model is built, which stages it has and which parameters each trains, and how its checkpoints
are written and read back. :class:`IpadClipRecipe` is IPAD-CLIP's; another family (a compact
fully-convolutional detector, say) plugs in a recipe with a single stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from safetensors.torch import load_file
from torch import nn

from ipad_qc.clip.checkpoint import save_checkpoint
from ipad_qc.clip.config import IpadClipConfig
from ipad_qc.clip.model import STAGES, IpadClip


class ModelRecipe(Protocol):
    """What the shared training loop needs from a detector family.

    ``model(pixels)`` returns an object with ``class_logits`` (B, K+1), ``seg_logits``
    (B, K+1, H, W) and ``probabilities()``; ``class_names[0]`` is clean.
    """

    model: nn.Module
    device: str
    stages: tuple[int, ...]
    class_names: tuple[str, ...]
    image_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]

    def start_stage(self, stage: int) -> list[nn.Parameter]:
        """Freeze all but what ``stage`` trains and return that; empty: the stage has nothing to learn."""

    def save(self, path: Path, stages: list[int], extra: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint atomically; ``stages`` are those actually trained into it."""

    def load(self, path: Path) -> None:
        """Load a checkpoint written by :meth:`save` into the training model."""

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """Store calibrated per-class thresholds in what :meth:`save` writes."""


class IpadClipRecipe:
    """IPAD-CLIP's three stages (paper Section 4.4) and its safetensors checkpoints."""

    stages = STAGES

    def __init__(self, config: IpadClipConfig, device: str) -> None:
        self.device = device
        self.model = IpadClip(config).to(device)
        self.class_names = config.class_names
        self.image_size = config.image_size
        self.image_mean, self.image_std = self.model.image_mean, self.model.image_std

    def start_stage(self, stage: int) -> list[nn.Parameter]:
        parameters = self.model.set_stage(stage)
        if not parameters:  # Stage II of "w/o LTE": the anchors are the fixed templates
            self.model.freeze_text_embeddings()
        return parameters

    def save(self, path: Path, stages: list[int], extra: dict[str, Any] | None = None) -> Path:
        return save_checkpoint(self.model, path, stages=stages, extra=extra)

    def load(self, path: Path) -> None:
        """The checkpoint's trained tensors into the training model (backbone untouched)."""
        _, unexpected = self.model.load_state_dict(load_file(str(path), device=str(self.device)), strict=False)
        if unexpected:
            raise ValueError(f"{path}: does not match this model ({unexpected[:3]})")

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        self.model.config.thresholds = dict(thresholds)

