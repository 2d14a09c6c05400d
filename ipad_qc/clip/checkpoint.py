"""IPAD-CLIP checkpoints: trained parameters + text embeddings + configuration, no code.

One ``.safetensors`` file: the tensors are the adapters, projectors, FC heads, learnable prompts
and the frozen text embeddings (never the CLIP backbone, which is loaded from its own weights);
the safetensors metadata holds the JSON configuration (backbone name, pretrained tag or weight
file hash, image size, class names, thresholds) and the trained stages. Loading it executes no
code, and inference from it needs no text encoder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ipad_qc import __version__
from ipad_qc.clip.config import IpadClipConfig
from ipad_qc.clip.model import IpadClip
from ipad_qc.tensor_files import read_tensors, write_tensors

FORMAT = "ipad-qc/ipad-clip"
FORMAT_VERSION = 1
_BACKBONE_PREFIXES = ("vision.visual.", "prompts.tower.")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, not ours, or made for another backbone or size."""


@dataclass
class Checkpoint:
    config: IpadClipConfig
    tensors: dict[str, torch.Tensor]
    stages: list[int]
    head: str


def trained_state(model: IpadClip) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint keeps: everything except the frozen backbone towers.

    During Stage II the anchors still live in the prompts; they are evaluated here (without
    touching the model's state) so the file always carries usable text embeddings.
    """
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
             if not name.startswith(_BACKBONE_PREFIXES)}
    if model.prompts is not None and model.head == "text" and not model.text_frozen:
        with torch.no_grad():
            state["text_embeddings"] = model.prompts().detach().cpu().contiguous()
    return state


def save_checkpoint(model: IpadClip, path: str | os.PathLike[str], stages: list[int],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``path`` atomically; the file is self-sufficient for inference."""
    config = model.config
    if model.weights_sha256:
        config.weights_sha256 = model.weights_sha256
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": config.to_json(),
                "stages": json.dumps(stages), "head": model.head,
                "ipad_qc_version": __version__, "extra": json.dumps(extra or {})}
    return write_tensors(path, trained_state(model), metadata)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read tensors and configuration without building a model."""
    metadata, tensors = read_tensors(path, FORMAT, FORMAT_VERSION, "an IPAD-CLIP checkpoint", CheckpointError)
    config = IpadClipConfig.from_json(metadata["config"])
    return Checkpoint(config, tensors, json.loads(metadata.get("stages", "[]")), metadata.get("head", "text"))


def check_compatible(checkpoint: Checkpoint, path: str | os.PathLike[str], **expected: Any) -> None:
    """Refuse a checkpoint made for another backbone, weights or input size than the one asked for."""
    for key, wanted in expected.items():
        have = getattr(checkpoint.config, key)
        if wanted is not None and wanted != have:
            raise CheckpointError(f"{path}: trained with {key}={have!r}, but {key}={wanted!r} was asked for; "
                                  f"use a checkpoint trained for {wanted!r} or drop the option")


def load_model(path: str | os.PathLike[str], pretrained: str | None = None, **expected: Any) -> IpadClip:
    """Build an inference model from a checkpoint: vision tower only, text embeddings from the file.

    ``pretrained`` overrides where the backbone weights are found (e.g. the weight file moved);
    when the checkpoint recorded a weight-file hash, the new file must have the same hash.
    """
    checkpoint = read_checkpoint(path)
    check_compatible(checkpoint, path, **expected)
    config = checkpoint.config
    recorded_hash = config.weights_sha256
    if pretrained is not None:
        config.pretrained = pretrained
    model = IpadClip(config, with_text=False)
    if recorded_hash and model.weights_sha256 and model.weights_sha256 != recorded_hash:
        raise CheckpointError(f"{path}: trained on backbone weights with SHA-256 {recorded_hash[:12]}..., but "
                              f"{config.pretrained} has {model.weights_sha256[:12]}...")
    tensors = {k: v for k, v in checkpoint.tensors.items() if not k.startswith("prompts.")}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith(_BACKBONE_PREFIXES)]
    if missing or unexpected:
        raise CheckpointError(f"{path}: does not match the model its configuration describes "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.text_frozen = checkpoint.head == "text"
    model.head = checkpoint.head
    return model.eval()
