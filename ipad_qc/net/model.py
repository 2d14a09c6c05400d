"""``ipad-net``: a compact fully-convolutional artifact detector, trained from scratch.

Why this shape. IPAD-CLIP's strength is CLIP's pretrained priors, which cannot be had offline; a
network small enough to train here on synthetic artifacts over real photos must instead be built
around what the artifacts are made of:

* **moiré lives at the finest scales** (a colour lattice a few pixels across, beats tens of pixels
  wide), so the first layer reads every RGB pixel of the analysis image: a 3x3 convolution on RGB
  (stride 2: it still sees each pixel's neighbourhood, it only emits half as many outputs, which
  halves the training cost) followed by a separable block at 1/2. The luma-unexplained chroma that
  sets screen beats apart from textures is a function of neighbouring RGB pixels; a grey stem, or
  one that pooled before its first convolution, would not see it;
* **flare and ghosting need context**: a glare is a fall-off around a source hundreds of pixels
  away, a ghost a duplicate displaced by tens. Depthwise-separable blocks halve the resolution five
  times (to 1/32), with dilated blocks at the end, so the deepest features see most of the frame;
* **maps and scores agree**: the segmentation head fuses 1/8, 1/16 and 1/32 features (an FPN-like
  top-down sum) into per-class logits at 1/8; the image head reads the globally pooled deepest
  features *and* the top of each class map, so an image is called flare because some of it is.

The network returns logits; probabilities are always computed in fp32 (see
:meth:`NetOutput.probabilities`), whatever precision the forward pass ran in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ipad_qc.classes import CLASS_NAMES

#: Input normalisation: fixed, so a checkpoint needs no dataset statistics.
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


@dataclass
class IpadNetConfig:
    """Everything that shapes the network and how it is fed; stored in every checkpoint."""

    #: Long side, in pixels, that images are resized to before the network sees them.
    input_side: int = 384
    #: Channels of the first convolution, then at 1/2, 1/4, 1/8, 1/16, 1/32.
    widths: tuple[int, ...] = (16, 24, 40, 64, 96, 128)
    #: Channels of the fused segmentation features.
    fuse_width: int = 64
    #: Share of each class map whose mean logit the image head reads (the "most suspicious" area).
    top_share: float = 0.02
    class_names: tuple[str, ...] = CLASS_NAMES
    #: Per-class decision thresholds on the image scores, calibrated after training; empty: argmax.
    thresholds: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.class_names = tuple(self.class_names)
        if len(self.widths) != 6 or min(self.widths) < 4:
            raise ValueError(f"widths must be 6 channel counts >= 4, got {self.widths}")
        if self.input_side < 64 or self.input_side % 32:
            raise ValueError(f"input_side must be a multiple of 32 and at least 64, got {self.input_side}")
        if not 0.0 < self.top_share <= 1.0:
            raise ValueError(f"top_share must lie in (0, 1], got {self.top_share}")
        if len(self.class_names) < 2 or self.class_names[0] != CLASS_NAMES[0]:
            raise ValueError(f"class_names must start with {CLASS_NAMES[0]!r} and name at least one artifact")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IpadNetConfig:
        values = json.loads(text)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ipad-net configuration keys {unknown}")
        return cls(**values)


@dataclass
class NetOutput:
    """Image logits (B, K+1) and pixel logits (B, K+1, H, W) at the input resolution."""

    class_logits: torch.Tensor
    seg_logits: torch.Tensor

    def probabilities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax in fp32 (bf16 logits would leave about three significant digits and many ties)."""
        return self.class_logits.float().softmax(dim=1), self.seg_logits.float().softmax(dim=1)


def _conv(inputs: int, outputs: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride, dilation, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


def _separable(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1: a 3x3 receptive field at a ninth of a full convolution's cost."""
    return nn.Sequential(_conv(inputs, inputs, stride, groups=inputs, dilation=dilation),
                         nn.Conv2d(inputs, outputs, 1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class IpadNet(nn.Module):
    """See the module docstring. ``forward`` takes normalised RGB (B, 3, H, W), H and W multiples of 32."""

    def __init__(self, config: IpadNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or IpadNetConfig()
        w0, w1, w2, w3, w4, w5 = self.config.widths
        classes = len(self.config.class_names)
        fuse = self.config.fuse_width
        self.stem = nn.Sequential(_conv(3, w0, stride=2), _separable(w0, w1))              # 1/2
        self.down4 = nn.Sequential(_separable(w1, w2, 2), _separable(w2, w2))              # 1/4
        self.down8 = nn.Sequential(_separable(w2, w3, 2), _separable(w3, w3))              # 1/8
        self.down16 = nn.Sequential(_separable(w3, w4, 2), _separable(w4, w4, dilation=2))  # 1/16
        self.down32 = nn.Sequential(_separable(w4, w5, 2), _separable(w5, w5, dilation=2),
                                    _separable(w5, w5, dilation=4))                        # 1/32
        self.lateral = nn.ModuleList([nn.Conv2d(w, fuse, 1) for w in (w3, w4, w5)])
        self.seg_head = nn.Sequential(_conv(fuse, fuse), nn.Conv2d(fuse, classes, 1))
        self.class_head = nn.Linear(2 * w5 + classes, classes)

    def forward(self, pixels: torch.Tensor) -> NetOutput:
        if pixels.shape[-1] % 32 or pixels.shape[-2] % 32:
            raise ValueError(f"input height and width must be multiples of 32, got {tuple(pixels.shape[-2:])}")
        f8 = self.down8(self.down4(self.stem(pixels)))
        f16 = self.down16(f8)
        f32 = self.down32(f16)
        fused = self.lateral[0](f8)
        for lateral, features in zip(self.lateral[1:], (f16, f32), strict=True):
            fused = fused + F.interpolate(lateral(features), size=f8.shape[-2:], mode="bilinear", align_corners=False)
        seg = self.seg_head(fused)
        flat = seg.flatten(2)
        count = max(1, int(flat.shape[-1] * self.config.top_share))
        top = flat.topk(count, dim=-1).values.mean(dim=-1)
        pooled = torch.cat([f32.mean(dim=(2, 3)), f32.amax(dim=(2, 3)), top], dim=1)
        seg = F.interpolate(seg, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
        return NetOutput(self.class_head(pooled), seg)
