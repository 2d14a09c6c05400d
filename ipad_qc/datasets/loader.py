"""Training data for IPAD-CLIP: the IPAD format (``manifest.csv``) or a user's labelled folders.

Folder layout for your own captures (no manifest needed)::

    DATA/[train|val|test/]<class>/<name>.<ext>     class in clean, ghosting, flare, moire
    DATA/masks/<same relative path>.png            optional 0/255 mask (else <stem>_mask.png beside it)

Without split folders, each file goes to train/val/test (80/10/10) by a hash of its path, so the
split is stable when files are added. Augmentation is limited to what keeps artifacts intact:
horizontal flips and a global exposure gain. No blur, no JPEG re-compression and no rescaling,
because those destroy exactly the evidence the model must learn (moiré's aliasing frequencies,
the displacement of a ghost, the falloff of a glare).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.datasets.manifest import Sample, read_manifest
from ipad_qc.io import DecodeHint, is_image_path, load_image

SPLITS = ("train", "val", "test")
_HASH_SPLIT = ((0.8, "train"), (0.9, "val"), (1.0, "test"))


class DatasetError(ValueError):
    """The data set folder is not usable (no manifest, no class folders, unknown labels)."""


def _hash_split(relpath: str) -> str:
    fraction = int(hashlib.sha1(relpath.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return next(split for bound, split in _HASH_SPLIT if fraction <= bound)


def _mask_for(root: Path, image: Path) -> str | None:
    relative = image.relative_to(root)
    for candidate in (root / "masks" / relative.with_suffix(".png"), image.with_name(f"{image.stem}_mask.png")):
        if candidate.is_file():
            return candidate.relative_to(root).as_posix()
    return None


def folder_samples(root: Path, class_names: tuple[str, ...] = CLASS_NAMES) -> list[Sample]:
    """Samples from ``<split>/<class>/`` or ``<class>/`` folders (see the module docstring)."""
    split_dirs = [root / split for split in SPLITS if (root / split).is_dir()]
    samples = []
    for base in split_dirs or [root]:
        for label in class_names:
            folder = base / label
            for image in sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p.name)):
                if image.stem.endswith("_mask"):
                    continue
                relpath = image.relative_to(root).as_posix()
                split = base.name if split_dirs else _hash_split(relpath)
                samples.append(Sample(relpath, _mask_for(root, image), label, split, "real"))
    if not samples:
        raise DatasetError(f"{root}: no manifest.csv and no images in class folders ({', '.join(class_names)})")
    return samples


def load_samples(root: str | Path, class_names: tuple[str, ...] = CLASS_NAMES) -> list[Sample]:
    """Every sample of a data set folder, from its manifest or its class folders."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    manifest = root / "manifest.csv"
    samples = read_manifest(manifest) if manifest.is_file() else folder_samples(root, class_names)
    unknown = sorted({s.label for s in samples} - set(class_names))
    if unknown:
        raise DatasetError(f"{root}: unknown labels {unknown}; expected {', '.join(class_names)}")
    return samples


class IpadDataset(Dataset):
    """Images resized to the model's square input, CLIP-normalised, with masks and class indices."""

    def __init__(self, root: str | Path, samples: list[Sample], image_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], class_names: tuple[str, ...] = CLASS_NAMES, augment: bool = False) -> None:
        self.root = Path(root)
        self.samples = samples
        self.size = image_size
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.index = {name: i for i, name in enumerate(class_names)}
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def _mask(self, sample: Sample) -> np.ndarray:
        if not sample.mask:
            return np.zeros((self.size, self.size), np.float32)
        data = np.fromfile(self.root / sample.mask, dtype=np.uint8)
        mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DatasetError(f"{self.root / sample.mask}: unreadable mask")
        return (cv2.resize(mask, (self.size, self.size), interpolation=cv2.INTER_NEAREST) > 127).astype(np.float32)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        sample = self.samples[index]
        image = load_image(self.root / sample.image, DecodeHint(short_side=self.size)).to_float()
        image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        mask = self._mask(sample)
        if self.augment:
            if torch.rand(()) < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            image = np.clip(image * float(0.85 + 0.3 * torch.rand(())), 0.0, 1.0)
        pixels = ((image - self.mean) / self.std).transpose(2, 0, 1)
        return (torch.from_numpy(np.ascontiguousarray(pixels)), self.index[sample.label],
                torch.from_numpy(np.ascontiguousarray(mask)))
