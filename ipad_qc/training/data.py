"""What a training run learns from and is validated on: the splits, the data ablations, the counts.

The paper's data ablations (Table 2, Section 5.3.4) change the training set only: "w/o Clean"
removes the clean images from it, "w/o Real" the real captures (the manifest's ``source``
column). Validation and test stay whole, so every variant is measured on the same images as the
full model; a clean-free test set would make C-AUROC undefined and flatter the variant. Shared by
every detector family the trainer trains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipad_qc.datasets.manifest import Sample

SPLITS = ("train", "val", "test")

#: Data ablations of Table 2: which training samples each one removes.
DATA_ABLATIONS = {
    "w/o-Clean": lambda sample, class_names: sample.label == class_names[0],
    "w/o-Real": lambda sample, class_names: sample.source == "real",
}


class TrainingDataError(ValueError):
    """The data set cannot be trained on as asked (empty split, unknown ablation)."""


@dataclass(frozen=True)
class TrainingData:
    """Samples per split after the data ablations, and what the ablations removed."""

    root: Path
    splits: dict[str, list[Sample]]
    class_names: tuple[str, ...]
    ablations: tuple[str, ...] = ()
    removed: int = 0

    @classmethod
    def load(cls, root: Path, class_names: tuple[str, ...], ablations: tuple[str, ...] = ()) -> TrainingData:
        unknown = sorted(set(ablations) - set(DATA_ABLATIONS))
        if unknown:
            raise TrainingDataError(f"unknown data ablations {unknown}; known: {', '.join(DATA_ABLATIONS)}")
        from ipad_qc.datasets.loader import load_samples  # cv2 and torch: not at `ipad-qc --help` time

        samples = load_samples(root, class_names)
        splits = {split: [s for s in samples if s.split == split] for split in SPLITS}
        kept = [s for s in splits["train"]
                if not any(DATA_ABLATIONS[name](s, class_names) for name in ablations)]
        data = cls(Path(root), {**splits, "train": kept}, tuple(class_names), tuple(ablations),
                   len(splits["train"]) - len(kept))
        for split in ("train", "val"):
            if not data.splits[split]:
                reason = f" after {', '.join(ablations)}" if split == "train" and ablations else ""
                raise TrainingDataError(f"{root}: the {split} split is empty{reason}")
        return data

    def summary(self) -> dict[str, Any]:
        """Counts per split: images per class, artifact images without a mask, real captures."""
        rows: dict[str, Any] = {}
        for split, samples in self.splits.items():
            labels = Counter(s.label for s in samples)
            rows[split] = {
                "images": {name: labels[name] for name in self.class_names},
                "without_mask": sum(1 for s in samples if s.label != self.class_names[0] and not s.mask),
                "real": sum(1 for s in samples if s.source == "real"),
            }
        return {"splits": rows, "ablations": list(self.ablations), "removed_from_train": self.removed}

    def describe(self) -> list[str]:
        """One line per fact a person training on this data should know."""
        summary = self.summary()
        lines = []
        for split, row in summary["splits"].items():
            per_class = ", ".join(f"{name} {count}" for name, count in row["images"].items())
            lines.append(f"{split}: {sum(row['images'].values())} images ({per_class})")
            if row["without_mask"]:
                what = ("segmentation loss ignored on them" if split == "train"
                        else "left out of the pixel metrics")
                lines.append(f"  {row['without_mask']} artifact image(s) without a mask: image-level label only, "
                             f"{what}")
        if self.ablations:
            lines.append(f"{', '.join(self.ablations)}: {self.removed} image(s) removed from the training split "
                         "(val and test untouched)")
            if not self.removed:
                lines.append("  (nothing to remove: this variant trains on the same data as the full model)")
        return lines
