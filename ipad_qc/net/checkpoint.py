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
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ipad_qc import __version__
from ipad_qc.net.model import IpadNet, IpadNetConfig

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
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": model.config.to_json(),
                "training": json.dumps(training or {}, sort_keys=True), "ipad_qc_version": __version__}
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, target)
    return target


def read_net(path: str | os.PathLike[str]) -> NetCheckpoint:
    """Tensors, configuration and training record of ``path`` without building a network."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except FileNotFoundError:
        raise NetCheckpointError(f"{path}: ipad-net weights not found") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise NetCheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise NetCheckpointError(f"{path}: not ipad-net weights (format {metadata.get('format')!r})")
    if int(metadata.get("format_version", "0")) > FORMAT_VERSION:
        raise NetCheckpointError(f"{path}: written by a newer ipad-qc; upgrade to read it")
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
