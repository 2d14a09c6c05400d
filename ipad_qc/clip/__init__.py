"""IPAD-CLIP (arXiv 2605.08664): the model, its checkpoints and the ``ipad-clip`` detector.

Names are loaded on first use (PEP 562) so that importing the CLI, which registers the
``model-info`` command from this package, does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BackboneError": "ipad_qc.clip.backbone",
    "build_backbone": "ipad_qc.clip.backbone",
    "register_bundled_configs": "ipad_qc.clip.backbone",
    "CheckpointError": "ipad_qc.clip.checkpoint",
    "load_model": "ipad_qc.clip.checkpoint",
    "read_checkpoint": "ipad_qc.clip.checkpoint",
    "save_checkpoint": "ipad_qc.clip.checkpoint",
    "IpadClipConfig": "ipad_qc.clip.config",
    "IpadClip": "ipad_qc.clip.model",
    "IpadClipOutput": "ipad_qc.clip.model",
    "parameter_counts": "ipad_qc.clip.model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ipad_qc.clip' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
