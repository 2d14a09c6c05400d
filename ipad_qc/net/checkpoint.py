"""ipad-net checkpoints: the whole network's tensors plus its JSON configuration, nothing executable.

One ``.safetensors`` file; the metadata holds the configuration (input size, widths, class names,
calibrated thresholds) and a free-form ``training`` record (data, seed, epochs) for the model card.
Loading checks the format, the version and that the tensors are exactly those the configuration
describes, and every failure names the file: a truncated download or a file for another model is
a one-line error, never a traceback from deep inside torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ipad_qc import __version__
from ipad_qc.net.model import IpadNet, IpadNetConfig
from ipad_qc.tensor_files import read_tensors, write_tensors

FORMAT = "ipad-qc/ipad-net"
FORMAT_VERSION = 1
#: The weights shipped in the package, used when no ``weights=`` option is given.
BUNDLED_WEIGHTS = Path(__file__).with_name("weights") / "ipad-net.safetensors"


class NetCheckpointError(ValueError):
    """An ipad-net checkpoint cannot be used; the message names the file and the reason."""


@dataclass
class NetCheckpoint:
    config: IpadNetConfig
    tensors: dict[str, torch.Tensor]
    training: dict[str, Any]


def save_net(model: IpadNet, path: str | os.PathLike[str], training: dict[str, Any] | None = None) -> Path:
    """Write ``path`` atomically (a temporary name, then a rename)."""
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": model.config.to_json(),
                "training": json.dumps(training or {}, sort_keys=True), "ipad_qc_version": __version__}
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    return write_tensors(path, state, metadata)


def read_net(path: str | os.PathLike[str]) -> NetCheckpoint:
    """Tensors, configuration and training record of ``path`` without building a network."""
    metadata, tensors = read_tensors(path, FORMAT, FORMAT_VERSION, "ipad-net weights", NetCheckpointError)
    try:
        config = IpadNetConfig.from_json(metadata["config"])
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        raise NetCheckpointError(f"{path}: unreadable configuration ({exc})") from exc
    return NetCheckpoint(config, tensors, training)


def load_net(path: str | os.PathLike[str] | None = None) -> tuple[IpadNet, dict[str, Any]]:
    """The network in ``path`` (default: the bundled weights), in eval mode, and its training record."""
    path = Path(path) if path is not None else BUNDLED_WEIGHTS
    checkpoint = read_net(path)
    model = IpadNet(checkpoint.config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(checkpoint.tensors))
    unexpected = sorted(set(checkpoint.tensors) - set(expected))
    shared = set(expected) & set(checkpoint.tensors)
    wrong = sorted(k for k in shared if expected[k].shape != checkpoint.tensors[k].shape)
    if missing or unexpected or wrong:
        raise NetCheckpointError(f"{path}: tensors do not match the network its configuration describes "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
    model.load_state_dict(checkpoint.tensors)
    return model.eval(), checkpoint.training
