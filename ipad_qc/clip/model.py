"""IPAD-CLIP: a frozen open_clip ViT steered by adapters, multi-granularity projectors and
learned artifact-aware text anchors (paper Section 4), with the three training stages.

Two prediction heads exist. Stage I uses fully-connected classification and segmentation heads;
Stages II and III use Eq. 12, the softmax over temperature-scaled cosine similarities between the
image features and the K+1 text embeddings. After Stage II the text embeddings are constants
(``text_embeddings`` buffer), which is what checkpoints store and inference uses.

Both heads run in fp32, also under bf16/fp16 autocast: the backbone is where the time goes, while
Eq. 12's softmax over cosines / 0.07 saturates, and in bf16 (8 mantissa bits) every probability
above 0.998 would be 1.0, thousands of ties that cost points of C-AP and S-AP and blur the
calibrated thresholds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from ipad_qc.clip.backbone import Backbone, build_backbone
from ipad_qc.clip.config import IpadClipConfig
from ipad_qc.clip.text import PromptedTextEncoder, template_embeddings
from ipad_qc.clip.vision import AdaptedVisionEncoder

HEADS = ("fc", "text")
STAGES = (1, 2, 3)


@dataclass
class IpadClipOutput:
    """Logits: ``class_logits`` (B, K+1) and ``seg_logits`` (B, K+1, H, W) at the input size."""

    class_logits: torch.Tensor
    seg_logits: torch.Tensor

    def probabilities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Image (B, K+1) and pixel (B, K+1, H, W) probabilities, in fp32 whatever the logits' type."""
        return self.class_logits.float().softmax(dim=1), self.seg_logits.float().softmax(dim=1)


def tokenizer_for(backbone_name: str, context_length: int):
    return open_clip.get_tokenizer(backbone_name, context_length=context_length)


class IpadClip(nn.Module):
    """The full model. Build with ``with_text=False`` for inference from a checkpoint."""

    def __init__(self, config: IpadClipConfig, backbone: Backbone | None = None, with_text: bool = True) -> None:
        super().__init__()
        self.config = config
        backbone = backbone or build_backbone(config, with_text=with_text)
        depth = backbone.vision_depth
        count = len(config.class_names)
        taps = config.resolved_tap_layers(depth) if config.multi_granularity else None
        self.vision = AdaptedVisionEncoder(backbone.visual, backbone.embed_dim, config.resolved_adapter_layers(depth),
                                           taps, config.beta)
        self.cls_head = nn.Linear(backbone.embed_dim, count)
        self.seg_head = nn.Linear(backbone.embed_dim, count)
        self.prompts = None
        if backbone.text is not None:
            tokenizer = tokenizer_for(config.backbone, backbone.model_config["text_cfg"]["context_length"])
            self.prompts = PromptedTextEncoder(backbone.text, tokenizer, config)
        self.register_buffer("text_embeddings", torch.zeros(count, backbone.embed_dim))
        self.text_frozen = False
        self.head = "fc"
        self._init_trainable(config.seed)
        self.model_config = backbone.model_config
        self.weights_sha256 = backbone.weights_sha256
        self.image_mean, self.image_std = backbone.mean, backbone.std

    def _init_trainable(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for module in self.trainable_modules():
            for parameter in module.parameters():
                if parameter.dim() > 1:
                    with torch.no_grad():
                        parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)

    def trainable_modules(self) -> Iterator[nn.Module]:
        yield from (self.vision.adapters, self.vision.projectors, self.cls_head, self.seg_head)

    # --- stages ---------------------------------------------------------------------------------
    def set_stage(self, stage: int) -> list[nn.Parameter]:
        """Freeze all but what ``stage`` trains (paper Section 4.4); returns the trainable parameters.

        I: adapters, projectors and the FC heads. II: the text prompts only (Eq. 12 head).
        III: adapters and projectors against the text embeddings frozen after Stage II.
        The CLIP backbone is frozen in every stage, including ``ln_post`` and ``proj`` when the
        feature map goes through them ("w/o MG"). An empty list means the stage has nothing to
        learn (Stage II of "w/o LTE": fixed templates).
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage}")
        self.requires_grad_(False)
        if stage == 1:
            self.head = "fc"
            modules = list(self.trainable_modules())
        elif stage == 2:
            if self.prompts is None:
                raise RuntimeError("Stage II needs the text encoder; build the model with with_text=True")
            self.head, self.text_frozen = "text", False
            modules = [self.prompts]
        else:
            self.freeze_text_embeddings()
            self.head = "text"
            modules = [self.vision.adapters, self.vision.projectors]
        backbone = self._backbone_parameter_ids()
        trainable = [p for m in modules for p in m.parameters() if id(p) not in backbone]
        for parameter in trainable:
            parameter.requires_grad_(True)
        return trainable

    def _backbone_parameter_ids(self) -> set[int]:
        backbone = set(map(id, self.vision.visual.parameters()))
        if self.prompts is not None:
            backbone |= set(map(id, self.prompts.tower.parameters()))
        return backbone

    @torch.no_grad()
    def freeze_text_embeddings(self) -> None:
        """Compute the text anchors once and keep them as constants (end of Stage II / inference)."""
        if self.prompts is None:
            if not self.text_frozen:
                raise RuntimeError("no text encoder and no stored text embeddings")
            return
        self.text_embeddings.copy_(self.prompts())
        self.text_frozen = True

    def use_zero_shot(self) -> None:
        """Zero-shot mode: fixed template anchors and CLIP's own projection of the last layer's tokens."""
        if self.prompts is None:
            raise RuntimeError("zero-shot anchors need the text encoder")
        tokenizer = tokenizer_for(self.config.backbone, self.prompts.token_ids.shape[1])
        self.text_embeddings.copy_(template_embeddings(self.prompts.tower, tokenizer, self.config))
        self.vision.adapters = nn.ModuleDict()
        self.vision.use_clip_projection()
        self.text_frozen, self.head = True, "text"

    def drop_text_encoder(self) -> None:
        """Free the text tower once the anchors are constants (inference needs only the buffer)."""
        self.freeze_text_embeddings()
        self.prompts = None

    # --- forward --------------------------------------------------------------------------------
    def current_text_embeddings(self) -> torch.Tensor:
        if self.text_frozen or self.prompts is None:
            return self.text_embeddings
        return self.prompts()

    def forward(self, pixels: torch.Tensor) -> IpadClipOutput:
        image_features, feature_map = self.vision(pixels)
        with torch.autocast(pixels.device.type, enabled=False):  # the heads in fp32 (module docstring)
            return self.heads(image_features.float(), feature_map.float(), pixels.shape[-2:])

    def heads(self, image_features: torch.Tensor, feature_map: torch.Tensor, size: tuple[int, int]) -> IpadClipOutput:
        """Logits from ``F_image`` (B, E) and ``F_MG`` (B, E, h, w): the FC heads or Eq. 12, maps at ``size``."""
        if self.head == "fc":
            class_logits = self.cls_head(image_features)
            seg = self.seg_head(feature_map.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            text = F.normalize(self.current_text_embeddings().to(image_features.dtype), dim=-1)
            scale = 1.0 / self.config.temperature
            class_logits = scale * F.normalize(image_features, dim=-1) @ text.T
            seg = scale * torch.einsum("bchw,kc->bkhw", F.normalize(feature_map, dim=1), text)
        seg_logits = F.interpolate(seg, size=size, mode="bilinear", align_corners=False)
        return IpadClipOutput(class_logits, seg_logits)


def parameter_counts(model: IpadClip) -> dict[str, int]:
    """Trainable parameters per stage and the frozen backbone, for the closing note and ``model-info``."""
    frozen = sum(p.numel() for p in model.vision.visual.parameters())
    if model.prompts is not None:
        frozen += sum(p.numel() for p in model.prompts.tower.parameters())
    counts = {"frozen_backbone": frozen}
    for stage in STAGES:
        if stage == 2 and model.prompts is None:
            continue
        counts[f"stage_{stage}_trainable"] = sum(p.numel() for p in model.set_stage(stage))
    model.requires_grad_(False)
    return counts
