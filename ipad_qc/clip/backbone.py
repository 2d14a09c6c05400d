"""Build the frozen open_clip towers IPAD-CLIP adapts, from a model name plus weights.

Weights come from an open_clip pretrained tag (downloaded once into the usual open_clip / Hugging
Face cache on a connected machine), from a local weight file (works offline), or are random
(tests and speed benchmarks). The towers are built directly from the model config rather than
through ``open_clip.create_model`` so that inference can build the vision tower alone: a trained
checkpoint carries its text embeddings, and the text encoder is neither built nor run.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.factory import load_state_dict
from open_clip.model import _build_text_tower, _build_vision_tower, resize_pos_embed
from torch import nn

from ipad_qc.clip.config import IpadClipConfig

_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


class BackboneError(ValueError):
    """The backbone cannot be built: unknown model, missing weights, wrong file. One clear line."""


@dataclass
class Backbone:
    """The frozen CLIP parts: a vision tower, optionally the text tower, and how they were made."""

    visual: nn.Module
    text: nn.Module | None
    embed_dim: int
    model_config: dict[str, Any]
    weights_sha256: str | None
    mean: tuple[float, float, float] = OPENAI_DATASET_MEAN
    std: tuple[float, float, float] = OPENAI_DATASET_STD

    @property
    def vision_depth(self) -> int:
        return len(self.visual.transformer.resblocks)

    @property
    def text_depth(self) -> int:
        return 0 if self.text is None else len(self.text.transformer.resblocks)


def register_bundled_configs() -> None:
    """Make the tiny test/benchmark configs shipped with ipad-qc (e.g. ``ipad-tiny``) known to open_clip."""
    folder = resources.files("ipad_qc.clip") / "model_configs"
    if Path(str(folder)) not in [Path(p) for p in open_clip.factory._MODEL_CONFIG_PATHS]:
        open_clip.add_model_config(Path(str(folder)))


def model_config(name: str) -> dict[str, Any]:
    register_bundled_configs()
    config = open_clip.get_model_config(name)
    if config is None:
        raise BackboneError(f"unknown open_clip model {name!r}; see open_clip.list_models()")
    if "timm_model_name" in config["vision_cfg"] or isinstance(config["vision_cfg"].get("layers"), (list, tuple)):
        raise BackboneError(f"{name} is not an open_clip ViT; IPAD-CLIP needs a ViT backbone")
    if "hf_model_name" in config.get("text_cfg", {}):
        raise BackboneError(f"{name} uses a Hugging Face text tower, which IPAD-CLIP's deep prompts do not support")
    return config


def uses_quick_gelu(config: IpadClipConfig, cfg: dict[str, Any]) -> bool:
    """OpenAI's CLIP weights were trained with QuickGELU; their tags say so, and so must the model."""
    if config.quick_gelu is not None:
        return config.quick_gelu
    tag = open_clip.get_pretrained_cfg(config.backbone, config.pretrained) if config.pretrained else {}
    return bool(cfg.get("quick_gelu", False) or tag.get("quick_gelu", False))


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(config: IpadClipConfig) -> Path | None:
    """Local path of the backbone weights: a file as given, or a tag fetched into the cache."""
    if config.pretrained is None:
        return None
    if os.path.isfile(config.pretrained):
        return Path(config.pretrained)
    tag = open_clip.get_pretrained_cfg(config.backbone, config.pretrained)
    if not tag:
        if os.sep in config.pretrained or config.pretrained.endswith((".bin", ".pt", ".pth", ".safetensors")):
            raise BackboneError(f"{config.pretrained}: weight file not found")
        known = ", ".join(open_clip.list_pretrained_tags_by_model(config.backbone)) or "none"
        raise BackboneError(f"{config.backbone} has no pretrained tag {config.pretrained!r} (known tags: {known}); "
                            "or pass the path of a local weight file")
    try:
        return Path(open_clip.download_pretrained(tag))
    except Exception as exc:
        raise BackboneError(
            f"cannot get the {config.pretrained!r} weights of {config.backbone} ({type(exc).__name__}). On a "
            f"connected machine run: python -c \"import open_clip; open_clip.create_model('{config.backbone}', "
            f"pretrained='{config.pretrained}')\" to fill the Hugging Face cache (copy ~/.cache/huggingface "
            "here), or pass a local weight file with --detector-option pretrained=/path/to/weights"
        ) from exc


def _split_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Vision and text weights of a CLIP state dict (both the CLIP and CustomTextCLIP layouts)."""
    vision = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    text = {k[len("text."):]: v for k, v in state.items() if k.startswith("text.")}
    text.update({k: v for k, v in state.items() if k.startswith(_TEXT_PREFIXES)})
    return vision, text


class _Holder(nn.Module):
    """open_clip's ``resize_pos_embed`` expects a model with a ``visual`` attribute."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual


def _load(module: nn.Module, weights: dict[str, torch.Tensor], what: str, source: Path) -> None:
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BackboneError(f"{source}: the {what} weights do not fit this model ({first})") from exc


def build_backbone(config: IpadClipConfig, with_text: bool = True) -> Backbone:
    """Build the frozen towers of ``config.backbone`` at ``config.image_size`` and load their weights."""
    cfg = model_config(config.backbone)
    vision_cfg = dict(cfg["vision_cfg"], image_size=config.image_size)
    quick_gelu = uses_quick_gelu(config, cfg)
    torch.manual_seed(config.seed)
    visual = _build_vision_tower(cfg["embed_dim"], vision_cfg, quick_gelu)
    text = _build_text_tower(cfg["embed_dim"], cfg["text_cfg"], quick_gelu) if with_text else None
    source = resolve_weights(config)
    digest = None
    if source is not None:
        digest = file_sha256(source) if os.path.isfile(config.pretrained or "") else None
        state = load_state_dict(str(source))
        resize_pos_embed(state, _Holder(visual))
        vision_weights, text_weights = _split_state_dict(state)
        _load(visual, vision_weights, "vision", source)
        if text is not None:
            _load(text, text_weights, "text", source)
    for module in (visual, text):
        if module is not None:
            module.requires_grad_(False).eval()
    tag = open_clip.get_pretrained_cfg(config.backbone, config.pretrained) if config.pretrained else {}
    preprocess = {**cfg.get("preprocess_cfg", {}), **tag}
    mean, std = preprocess.get("mean", OPENAI_DATASET_MEAN), preprocess.get("std", OPENAI_DATASET_STD)
    return Backbone(visual, text, cfg["embed_dim"], {**cfg, "quick_gelu": quick_gelu}, digest, tuple(mean), tuple(std))
