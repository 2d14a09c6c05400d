"""How the shared trainer trains ipad-net: one stage, every parameter, ipad-net checkpoints.

The trainer (:mod:`ipad_qc.training.trainer`) owns data, the Eq. 11 loss, validation, model
selection, threshold calibration and resume for every detector family; this recipe is the part
that is ipad-net's own. Training starts from random weights (seeded), or from a checkpoint to
fine-tune (``init``): the bundled weights on a team's own captures, say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ipad_qc.net.checkpoint import load_net, read_net, save_net
from ipad_qc.net.model import MEAN, STD, IpadNet, IpadNetConfig


class IpadNetRecipe:
    """ipad-net for :class:`~ipad_qc.training.trainer.Trainer` (the ``ModelRecipe`` protocol)."""

    stages = (1,)
    image_mean = MEAN
    image_std = STD

    def __init__(self, config: IpadNetConfig, device: str, init: str | Path | None = None) -> None:
        self.device = device
        self.training: dict[str, Any] = {}
        if init is not None:
            model, self.training = load_net(init)
            model.config.seed = config.seed
            self.training = {"initialised_from": str(init), "init_training": self.training}
        else:
            torch.manual_seed(config.seed)
            model = IpadNet(config)
        self.model = model.to(device)
        self.class_names = self.model.config.class_names
        #: The trainer feeds square images of this side (the synthesis writes them at that size).
        self.image_size = self.model.config.input_side

    def start_stage(self, stage: int) -> list[nn.Parameter]:
        parameters = list(self.model.parameters())
        for parameter in parameters:
            parameter.requires_grad_(True)
        return parameters

    def save(self, path: Path, stages: list[int], extra: dict[str, Any] | None = None) -> Path:
        return save_net(self.model, path, training={**self.training, **(extra or {}), "stages": stages})

    def load(self, path: Path) -> None:
        """Tensors (and calibrated thresholds) of a checkpoint written by :meth:`save` into the model."""
        checkpoint = read_net(path)
        self.model.load_state_dict({k: v.to(self.device) for k, v in checkpoint.tensors.items()})
        self.model.config.thresholds = dict(checkpoint.config.thresholds)

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        self.model.config.thresholds = dict(thresholds)
