"""The training loss of Eq. 11: ``lambda * CE + Dice + Focal`` on K+1-way image and pixel predictions.

The segmentation target is a class map: pixels inside an image's artifact mask carry the image's
class, every other pixel is ``clean`` (0). Dice and Focal both act on the softmax over the K+1
classes, so the same loss serves the Stage-I FC heads and the Eq. 12 cosine heads.

Image-level-only samples (an artifact image without a mask, ``has_mask`` False) have no pixel
target: an all-zero map would teach "no artifact here" on exactly the photos that show one. They
count in CE only. Clean images keep their all-zero target, which is their ground truth. The loss
is written for any model with these two heads, so a second detector family can share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossTerms:
    """The loss and its parts; ``seg_images`` is how many images the Dice and Focal terms saw."""

    total: torch.Tensor
    ce: float
    dice: float
    focal: float
    seg_images: int


def target_class_map(labels: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B, H, W) long: the image's class inside its mask, 0 (clean) elsewhere."""
    return (masks > 0.5).long() * labels.view(-1, 1, 1)


def dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice over the whole batch, averaged over the classes that occur in the target.

    A class absent from the batch's target would score ``1 - smooth / (sum of its probabilities +
    smooth)``, a penalty on any probability mass at all that outweighs the classes actually there;
    it is left out. Its false positives still cost: they take probability away from the pixels of
    the classes present (clean included), lowering those classes' Dice, and Focal sees every pixel.
    Averaging over classes rather than pixels keeps rare classes from being drowned by the clean
    background.
    """
    one_hot = F.one_hot(target, probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    union = probs.sum(dims) + one_hot.sum(dims)
    dice = 1.0 - (2.0 * intersection + smooth) / (union + smooth)
    present = one_hot.sum(dims) > 0
    return dice[present].mean()


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Multi-class focal loss (Lin et al.): down-weights the many easy clean pixels."""
    log_probs = F.log_softmax(logits, dim=1)
    picked = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
    return (-((1.0 - picked.exp()) ** gamma) * picked).mean()


def ipad_loss(class_logits: torch.Tensor, seg_logits: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
              lam: float = 4.0, has_mask: torch.Tensor | None = None) -> LossTerms:
    """Eq. 11: ``lam * CE(y_hat, y) + Dice(S_hat, S) + Focal(S_hat, S)``, the pixel terms over the
    images that have a pixel target (``has_mask``, default all)."""
    ce = F.cross_entropy(class_logits.float(), labels)
    known = torch.ones_like(labels, dtype=torch.bool) if has_mask is None else has_mask.to(labels.device).bool()
    total = lam * ce
    dice = focal = 0.0
    if known.any():
        seg, target = seg_logits[known].float(), target_class_map(labels[known], masks[known])
        dice_term, focal_term = dice_loss(seg.softmax(dim=1), target), focal_loss(seg, target)
        total = total + dice_term + focal_term
        dice, focal = float(dice_term.detach()), float(focal_term.detach())
    return LossTerms(total, float(ce.detach()), dice, focal, int(known.sum()))
