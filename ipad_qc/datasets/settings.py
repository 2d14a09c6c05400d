"""Every choice that decides the bytes of an ``ipad-qc synth`` data set, stored in its ``synth.json``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.datasets.manifest import SPLITS
from ipad_qc.io import DecodeHint
from ipad_qc.synthetic.capture import TailSettings
from ipad_qc.synthetic.negatives import RECIPES

Range = tuple[float, float]
CLEAN = CLASS_NAMES[0]
#: Default mix of clean recipes (see :mod:`ipad_qc.synthetic.negatives`): a third plain photos, the rest
#: hard negatives for each artifact class.
CLEAN_RECIPES: tuple[tuple[str, float], ...] = (("photo", 0.35), ("screen", 0.2), ("lamps", 0.1), ("fused", 0.15),
                                                ("texture", 0.1), ("text", 0.1))


@dataclass(frozen=True)
class SynthSettings:
    """The generator's settings; ``synth.json`` holds them so a set can be regenerated exactly."""

    count: int = 1000
    size: int = 518
    seed: int = 0
    clean_ratio: float = 0.25
    classes: tuple[str, ...] = ARTIFACT_CLASSES
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    crop_min: float = 0.8
    flare_strength: Range = (0.5, 1.5)
    moire_phi: Range = (0.6, 1.0)
    moire_coverage: Range = (0.08, 0.35)
    moire_fullframe: float = 0.6
    moire_placed: bool = True
    moire_blur: Range = (0.25, 0.55)
    screen_min_area: float = 0.04
    ghost_shift: Range = (0.02, 0.1)
    ghost_frames: tuple[int, int] = (2, 4)
    clean_recipes: tuple[tuple[str, float], ...] = CLEAN_RECIPES
    tail: TailSettings = TailSettings()
    min_mask_fraction: float = 0.001
    attempts: int = 5

    def __post_init__(self) -> None:
        unknown = set(self.classes) - set(ARTIFACT_CLASSES)
        if unknown or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct names from {', '.join(ARTIFACT_CLASSES)}")
        if not 0 <= self.clean_ratio <= 1 or (not self.classes and self.clean_ratio < 1):
            raise ValueError("clean ratio must be in [0, 1] (and 1 when no artifact class is chosen)")
        if len(self.splits) != len(SPLITS) or min(self.splits) < 0 or sum(self.splits) <= 0:
            raise ValueError(f"splits must be {len(SPLITS)} non-negative fractions ({'/'.join(SPLITS)})")
        if self.count < 1 or self.size < 16 or not 0 < self.crop_min <= 1:
            raise ValueError("count must be >= 1, size >= 16 and crop-min in (0, 1]")
        if self.attempts < 1 or not 2 <= self.ghost_frames[0] <= self.ghost_frames[1]:
            raise ValueError("attempts must be >= 1 and ghost frames a range of integers >= 2 (a burst)")
        if not 0 <= self.moire_fullframe <= 1:
            raise ValueError("the full-frame moiré share must be in [0, 1]")
        names, weights = [name for name, _ in self.clean_recipes], [weight for _, weight in self.clean_recipes]
        if set(names) - set(RECIPES) or len(set(names)) != len(names) or min(weights, default=-1) < 0 \
                or sum(weights) <= 0:
            raise ValueError(f"clean recipes must be distinct names from {', '.join(RECIPES)} with weights >= 0, "
                             "not all zero")

    def class_weights(self) -> dict[str, float]:
        """Clean gets ``clean_ratio``; the artifact classes share the rest equally."""
        weights = {CLEAN: self.clean_ratio}
        weights.update({name: (1 - self.clean_ratio) / len(self.classes) for name in self.classes})
        return {name: weight for name, weight in weights.items() if weight > 0}

    def decode_hint(self) -> DecodeHint:
        """Decode just large enough that the smallest crop still has ``size`` pixels on its short side."""
        return DecodeHint(short_side=math.ceil(self.size / self.crop_min))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values for ``synth.json``; ``from_json`` reads them back."""
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> SynthSettings:
        """The settings stored in a ``synth.json`` (JSON lists become the tuples they were), to regenerate a set."""
        values = dict(values)
        tail = TailSettings(**{key: _tuples(value) for key, value in values.pop("tail", {}).items()})
        return cls(tail=tail, **{key: _tuples(value) for key, value in values.items()})


def _tuples(value: Any) -> Any:
    """JSON lists back to (nested) tuples."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value
