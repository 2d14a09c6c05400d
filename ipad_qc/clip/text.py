"""The text side of IPAD-CLIP (paper Section 4.2): learnable prompts with deep prompt tokens.

Clean prompt ``[N_1..N_L][cls].`` and one prompt per artifact ``[A^k_1..A^k_L][cls][artifact_k].``;
the ``L`` word embeddings of each prompt are learnable (CoOp style: placeholder tokens whose
embeddings are replaced). In the first ``deep_prompt_layers`` layers of the frozen text encoder,
fresh learnable tokens replace positions ``1..J`` of every prompt before the layer runs, and the
transformed ones are discarded (Eq. 4-6, as in MaPLe and AnomalyCLIP). Layer 1's "deep tokens" are
the learnable word embeddings themselves, so layers 2..D get their own ``g_h``.

Pooling is at the end-of-text token. Under the causal mask, the EOT token is the only one that
has attended to the whole prompt (learned words, deep tokens, [cls] and the artifact word), so
it is the right summary, exactly as CLIP pools its own text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ipad_qc.clip.config import IpadClipConfig

_PLACEHOLDER = "X"

#: Fixed templates of the zero-shot mode (no trained checkpoint): averaged per class, as CLIP does.
ZERO_SHOT_TEMPLATES = {
    "clean": ("a photo of an object.", "a clean photo of an object.", "a sharp, artifact-free photo."),
    "artifact": ("a photo of an object with {}.", "a photo with {} artifacts.", "a photo showing {}."),
}


def prompt_texts(config: IpadClipConfig) -> list[str]:
    """One prompt string per class; placeholders mark the learnable word positions."""
    context = " ".join([_PLACEHOLDER] * config.prompt_length) if config.learnable_text else ""
    obj = config.object_description if config.object_context else ""
    texts = []
    for name in config.class_names:
        words = obj if name == config.class_names[0] else f"{obj} {config.artifact_words[name]}"
        texts.append(" ".join(part for part in (context, words.strip()) if part).strip() + ".")
    return texts


def _pool_positions(tower: nn.Module, token_ids: torch.Tensor) -> torch.Tensor:
    """Index of the pooled token per prompt, following the tower's own pooling rule."""
    pool_type = getattr(tower, "pool_type", "argmax")
    if pool_type == "argmax":
        return token_ids.argmax(dim=-1)
    if pool_type == "eos":
        return (token_ids == tower.eos_id).int().argmax(dim=-1)
    if pool_type == "last":
        return torch.full((token_ids.shape[0],), token_ids.shape[1] - 1, dtype=torch.long)
    raise ValueError(f"text pooling {pool_type!r} is not supported")


def _project(tower: nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    projection = tower.text_projection
    if projection is None:
        return pooled
    return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


class PromptedTextEncoder(nn.Module):
    """Produces the K+1 text embeddings ``E_0..E_K`` from learnable prompts and the frozen tower."""

    def __init__(self, tower: nn.Module, tokenizer: Callable[[Sequence[str]], torch.Tensor],
                 config: IpadClipConfig) -> None:
        super().__init__()
        self.tower = tower
        width = tower.transformer.width
        token_ids = tokenizer(prompt_texts(config))
        self.register_buffer("token_ids", token_ids, persistent=False)
        self.register_buffer("pool_positions", _pool_positions(tower, token_ids), persistent=False)
        with torch.no_grad():
            self.register_buffer("word_embeddings", tower.token_embedding(token_ids), persistent=False)
        count = len(config.class_names)
        self.prompt_length = config.prompt_length if config.learnable_text else 0
        self.deep_length = config.deep_prompt_length
        deep_layers = config.resolved_deep_prompt_layers(len(tower.transformer.resblocks))
        generator = torch.Generator().manual_seed(config.seed)
        self.context = (nn.Parameter(torch.randn(count, self.prompt_length, width, generator=generator) * 0.02)
                        if self.prompt_length else None)
        self.deep_prompts = (nn.Parameter(torch.randn(deep_layers - 1, self.deep_length, width,
                                                      generator=generator) * 0.02)
                             if deep_layers > 1 and self.deep_length else None)

    def forward(self) -> torch.Tensor:
        """Text embeddings (K+1, E), not normalised."""
        tower = self.tower
        tokens = self.word_embeddings
        if self.context is not None:
            tokens = torch.cat([tokens[:, :1], self.context.to(tokens.dtype), tokens[:, 1 + self.prompt_length:]], 1)
        tokens = tokens + tower.positional_embedding.to(tokens.dtype)
        for layer, block in enumerate(tower.transformer.resblocks):
            if self.deep_prompts is not None and 1 <= layer <= self.deep_prompts.shape[0]:
                deep = self.deep_prompts[layer - 1].to(tokens.dtype).expand(tokens.shape[0], -1, -1)
                tokens = torch.cat([tokens[:, :1], deep, tokens[:, 1 + self.deep_length:]], dim=1)
            tokens = block(tokens, attn_mask=tower.attn_mask)
        tokens = tower.ln_final(tokens)
        pooled = tokens[torch.arange(tokens.shape[0], device=tokens.device), self.pool_positions]
        return _project(tower, pooled)


@torch.no_grad()
def template_embeddings(tower: nn.Module, tokenizer: Callable[[Sequence[str]], torch.Tensor],
                        config: IpadClipConfig) -> torch.Tensor:
    """Zero-shot text anchors: the mean normalised CLIP embedding of fixed templates per class."""
    anchors = []
    for name in config.class_names:
        if name == config.class_names[0]:
            texts = list(ZERO_SHOT_TEMPLATES["clean"])
        else:
            texts = [t.format(config.artifact_words[name]) for t in ZERO_SHOT_TEMPLATES["artifact"]]
        ids = tokenizer(texts)
        tokens = tower.token_embedding(ids) + tower.positional_embedding
        for block in tower.transformer.resblocks:
            tokens = block(tokens, attn_mask=tower.attn_mask)
        tokens = tower.ln_final(tokens)
        pooled = tokens[torch.arange(len(texts)), _pool_positions(tower, ids)]
        anchors.append(F.normalize(_project(tower, pooled), dim=-1).mean(dim=0))
    return torch.stack(anchors)
