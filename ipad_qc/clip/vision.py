"""The vision side of IPAD-CLIP (paper Section 4.3): adapters, multi-granularity taps, projectors.

The frozen open_clip ``VisionTransformer`` is driven block by block instead of through its own
``forward`` so that (a) the adapted feature ``F~ = beta * LN(Act(W F)) + (1 - beta) * F`` is what the
next block receives (Eq. 7-8), and (b) the tapped layers' tokens are kept for the projectors
(Eq. 9) in the same pass; open_clip's ``forward_intermediates`` cannot feed an adapted feature on.

The "w/o MG" ablation removes the projectors (Section 5.3.2: "the model relies exclusively on the
final-layer global features"): the last layer's tokens then reach the text-embedding space through
CLIP's own frozen ``ln_post`` and ``proj``, the path CLIP maps its pooled token with, and nothing
on that path is trained. The zero-shot mode uses the same path.
"""

from __future__ import annotations

import torch
from torch import nn


class Adapter(nn.Module):
    """``LayerNorm(GELU(W F))`` with a square ``W`` (Eq. 7). GELU is the activation CLIP's own MLPs use."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.linear(features)))


class Projector(nn.Module):
    """Maps one tapped layer's patch tokens into the text-embedding space (``Proj_i`` of Eq. 9).

    A LayerNorm precedes the linear map because token norms grow by an order of magnitude from the
    first to the last layers of a ViT; without it the deepest tap would dominate the sum.
    """

    def __init__(self, width: int, embed_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(tokens))


class AdaptedVisionEncoder(nn.Module):
    """Runs the frozen vision tower with adapters and returns ``F_image`` and ``F_MG``.

    ``tap_layers`` feed trainable projectors; ``tap_layers=None`` is the projector-free path: the
    last layer through CLIP's frozen ``ln_post`` and ``proj`` ("w/o MG", zero-shot).
    """

    def __init__(self, visual: nn.Module, embed_dim: int, adapter_layers: tuple[int, ...],
                 tap_layers: tuple[int, ...] | None, beta: float) -> None:
        super().__init__()
        self.visual = visual
        width = visual.transformer.width
        self.beta = beta
        # 1-based layer numbers as in the paper; ModuleDict keys must be strings.
        self.adapters = nn.ModuleDict({str(i): Adapter(width) for i in adapter_layers})
        self.projectors = nn.ModuleDict({str(i): Projector(width, embed_dim) for i in tap_layers or ()})
        self.patch_size = visual.patch_size[0] if isinstance(visual.patch_size, tuple) else visual.patch_size

    @property
    def uses_clip_projection(self) -> bool:
        """True when the feature map is CLIP's own frozen projection of the last layer (no projectors)."""
        return len(self.projectors) == 0

    def use_clip_projection(self) -> None:
        """Drop the trainable projectors (and adapters stay as they are): the zero-shot feature map."""
        self.projectors = nn.ModuleDict()

    def clip_projection(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP's frozen ``ln_post`` and ``proj`` applied to (patch) tokens."""
        tokens = self.visual.ln_post(tokens)
        return tokens @ self.visual.proj if self.visual.proj is not None else tokens

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixels`` (B, 3, S, S) normalised -> ``F_image`` (B, E) and ``F_MG`` (B, E, S/p, S/p)."""
        batch, _, height, width = pixels.shape
        tokens = self.visual._embeds(pixels)
        batch_first = getattr(self.visual.transformer, "batch_first", True)
        multi_granularity = None
        for number, block in enumerate(self.visual.transformer.resblocks, start=1):
            tokens = block(tokens) if batch_first else block(tokens.transpose(0, 1)).transpose(0, 1)
            if str(number) in self.adapters:
                tokens = self.beta * self.adapters[str(number)](tokens) + (1.0 - self.beta) * tokens
            if str(number) in self.projectors:
                projected = self.projectors[str(number)](tokens[:, 1:])
                multi_granularity = projected if multi_granularity is None else multi_granularity + projected
        if self.uses_clip_projection:
            multi_granularity = self.clip_projection(tokens[:, 1:])
        pooled, _ = self.visual._pool(tokens)
        if self.visual.proj is not None:
            pooled = pooled @ self.visual.proj
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        feature_map = multi_granularity.transpose(1, 2).reshape(batch, -1, grid_h, grid_w)
        return pooled, feature_map
