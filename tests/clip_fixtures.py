"""Tiny random-weight open_clip backbones for IPAD-CLIP tests (no pretrained weights exist here)."""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from ipad_qc.clip import IpadClipConfig, register_bundled_configs

TINY = "ipad-tiny"
TINY_SIZE = 64


def write_tiny_weights(path: Path, seed: int = 0) -> Path:
    """A full open_clip CLIP state dict (random, seeded) saved like a downloaded weight file."""
    register_bundled_configs()
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def tiny_config(weights: Path, **overrides) -> IpadClipConfig:
    values = {"backbone": TINY, "pretrained": str(weights), "image_size": TINY_SIZE, "prompt_length": 4,
              "deep_prompt_length": 2}
    values.update(overrides)
    return IpadClipConfig(**values)
