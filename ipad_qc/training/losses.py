"""The training loss of Eq. 11: ``lambda * CE + Dice + Focal`` on K+1-way image and pixel predictions.

The segmentation target is a class map: pixels inside an image's artifact mask carry the image's
class, every other pixel is ``clean`` (0). Dice and Focal both act on the softmax over the K+1
classes, so the same loss serves the Stage-I FC heads and the Eq. 12 cosine heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossTerms:
    total: torch.Tensor
    ce: float
    dice: float
    focal: float


def target_class_map(labels: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B, H, W) long: the image's class inside its mask, 0 (clean) elsewhere."""
    return (masks > 0.5).long() * labels.view(-1, 1, 1)


def dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice averaged over the classes present in the batch (prediction or target).

    Averaging only over present classes keeps an all-clean batch from rewarding a model that
    predicts nothing, and keeps rare classes from being drowned by the clean background.
    """
    one_hot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    union = probs.sum(dims) + one_hot.sum(dims)
    dice = 1.0 - (2.0 * intersection + smooth) / (union + smooth)
    present = one_hot.sum(dims) > 0
    return dice[present].mean() if present.any() else dice.mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Multi-class focal loss (Lin et al.): down-weights the many easy clean pixels."""
    log_probs = F.log_softmax(logits, dim=1)
    picked = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
    return (-((1.0 - picked.exp()) ** gamma) * picked).mean()


def ipad_loss(class_logits: torch.Tensor, seg_logits: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
              lam: float = 4.0) -> LossTerms:
    """Eq. 11: ``lam * CE(y_hat, y) + Dice(S_hat, S) + Focal(S_hat, S)``."""
    target = target_class_map(labels, masks)
    ce = F.cross_entropy(class_logits.float(), labels)
    seg = seg_logits.float()
    dice = dice_loss(seg.softmax(dim=1), target)
    focal = focal_loss(seg, target)
    total = lam * ce + dice + focal
    return LossTerms(total, float(ce.detach()), float(dice.detach()), float(focal.detach()))
