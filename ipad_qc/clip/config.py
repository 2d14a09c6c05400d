"""IPAD-CLIP configuration: the paper's defaults (Section 5.1) as data, plus the Table 2 ablations.

Layer indices are 1-based, as in the paper ("layers 6, 12, 18, 24"). When they are not given they
scale with the backbone's depth, so a 12-layer ViT-B gets adapters in layers 1-3 and taps at 3, 6,
9, 12, the same relative positions as ViT-L/14's 1-6 and 6, 12, 18, 24.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ipad_qc.classes import CLASS_NAMES

#: Words for each artifact in the prompt ``[A_1..A_L][cls][artifact_k]``.
DEFAULT_ARTIFACT_WORDS = {"ghosting": "ghosting", "flare": "lens flare", "moire": "moire pattern"}

# The paper's layer choices on its 24-layer ViT-L/14 vision and 12-layer text encoder.
_PAPER_VISION_DEPTH, _PAPER_ADAPTER_LAYERS, _PAPER_TAPS = 24, 6, (6, 12, 18, 24)
_PAPER_TEXT_DEPTH, _PAPER_DEEP_PROMPT_LAYERS = 12, 9


@dataclass
class IpadClipConfig:
    """Everything that defines an IPAD-CLIP model; stored in checkpoints as JSON."""

    backbone: str = "ViT-L-14"
    #: open_clip pretrained tag (e.g. ``openai``, ``laion2b_s32b_b82k``), a local weight file, or
    #: ``None`` for random weights (tests and speed benchmarks only).
    pretrained: str | None = "openai"
    #: SHA-256 of the local weight file, filled in when a model is built from one.
    weights_sha256: str | None = None
    image_size: int = 518
    #: ``None``: QuickGELU when the pretrained tag or the model config says so (OpenAI weights).
    quick_gelu: bool | None = None
    class_names: tuple[str, ...] = CLASS_NAMES
    artifact_words: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ARTIFACT_WORDS))
    #: ``[cls]``: the object-level description. Photos carry no object labels, so it is generic.
    object_description: str = "a photo of an object"
    prompt_length: int = 12  # L learnable word embeddings per prompt
    deep_prompt_length: int = 4  # J learnable tokens per deep text layer
    deep_prompt_layers: int | None = None  # text layers with learnable tokens (paper: 9 of 12)
    adapter_layers: tuple[int, ...] | None = None  # 1-based (paper: 1..6 of 24)
    tap_layers: tuple[int, ...] | None = None  # 1-based (paper: 6, 12, 18, 24)
    beta: float = 0.1  # weight of the adapted feature in the residual (Eq. 8)
    #: Softmax temperature of Eq. 12. The paper writes exp(cos); cosines lie in [-1, 1], so without a
    #: temperature four classes could never get a confident probability. 0.07 is CLIP's initial
    #: temperature (logit scale 1/0.07 ~ 14.3), also used by AnomalyCLIP for the same kind of head.
    temperature: float = 0.07
    # Table 2 ablations (all True is the full model).
    learnable_text: bool = True  # False: "w/o LTE", fixed templates
    object_context: bool = True  # False: "w/o CLS", prompts without [cls]
    adapters: bool = True  # False: "w/o AD"
    multi_granularity: bool = True  # False: "w/o MG", no projectors: CLIP's frozen ln_post + proj of the last layer
    #: Per-class decision thresholds calibrated on validation data; empty means argmax.
    thresholds: dict[str, float] = field(default_factory=dict)
    seed: int = 0  # random initialisation of the trainable parts (and of the backbone when random)

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        if self.class_names[0] != "clean":
            raise ValueError("the first class must be 'clean'")
        missing = [name for name in self.class_names[1:] if name not in self.artifact_words]
        if missing:
            raise ValueError(f"no artifact words for {missing}")
        if self.adapter_layers is not None:
            self.adapter_layers = tuple(int(i) for i in self.adapter_layers)
        if self.tap_layers is not None:
            self.tap_layers = tuple(int(i) for i in self.tap_layers)
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {self.beta}")
        if self.deep_prompt_length > self.prompt_length:
            raise ValueError("deep_prompt_length (J) must not exceed prompt_length (L): deep tokens replace "
                             "the learnable word positions, never the words of [cls] or the artifact")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")

    # --- layer choices, scaled with depth ----------------------------------------------------------
    def resolved_adapter_layers(self, depth: int) -> tuple[int, ...]:
        """1-based vision layers that get an adapter (empty for the "w/o AD" ablation)."""
        if not self.adapters:
            return ()
        layers = self.adapter_layers or tuple(range(1, max(1, round(_PAPER_ADAPTER_LAYERS * depth /
                                                                        _PAPER_VISION_DEPTH)) + 1))
        return _checked(layers, depth, "adapter_layers")

    def resolved_tap_layers(self, depth: int) -> tuple[int, ...]:
        """1-based vision layers whose outputs make the feature map (the last layer alone for "w/o MG", through
        CLIP's own frozen projection instead of a trained projector)."""
        if not self.multi_granularity:
            return (depth,)
        layers = self.tap_layers or tuple(sorted({max(1, round(t * depth / _PAPER_VISION_DEPTH))
                                                  for t in _PAPER_TAPS}))
        return _checked(layers, depth, "tap_layers")

    def resolved_deep_prompt_layers(self, text_depth: int) -> int:
        if not self.learnable_text:
            return 0
        layers = self.deep_prompt_layers
        if layers is None:
            layers = max(1, round(_PAPER_DEEP_PROMPT_LAYERS * text_depth / _PAPER_TEXT_DEPTH))
        if not 0 <= layers <= text_depth:
            raise ValueError(f"deep_prompt_layers must lie in 0..{text_depth}, got {layers}")
        return layers

    # --- serialisation --------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IpadClipConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown IPAD-CLIP configuration keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> IpadClipConfig:
        return cls.from_dict(json.loads(text))


def _checked(layers: tuple[int, ...], depth: int, name: str) -> tuple[int, ...]:
    bad = [i for i in layers if not 1 <= i <= depth]
    if bad:
        raise ValueError(f"{name} {bad} outside 1..{depth} for this backbone")
    return tuple(sorted(set(layers)))
