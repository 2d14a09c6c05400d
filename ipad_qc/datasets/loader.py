"""Labelled data for training and evaluation: the IPAD format (``manifest.csv``), a ``labels.csv``
or a user's class folders, looked for in that order.

Folder layout for your own captures (no manifest needed)::

    DATA/[train|val|test/]<class>/<name>.<ext>     class in clean, ghosting, flare, moire
    DATA/masks/<same relative path>.png            optional 0/255 mask (else <stem>_mask.png beside it)

or any layout with ``DATA/labels.csv``: a header with at least ``path,label`` (paths relative to
DATA, ``/``-separated), optionally ``mask`` (a mask path; else the two conventions above) and
``split``; other columns are ignored. Rows whose label is not a class (a note such as
``stack:pingpong``) are set aside and counted, never guessed at.

Without split folders or a ``split`` column, each file goes to train/val/test (80/10/10) by a hash
of its path, so the split is stable when files are added. Augmentation is limited to what keeps artifacts intact:
horizontal flips and a global exposure gain. No blur, no JPEG re-compression and no rescaling,
because those destroy exactly the evidence the model must learn (moiré's aliasing frequencies,
the displacement of a ghost, the falloff of a glare).
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.datasets.manifest import MANIFEST_NAME, Sample, read_manifest
from ipad_qc.io import DecodeHint, is_image_path, load_image

SPLITS = ("train", "val", "test")
LABELS_NAME = "labels.csv"
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


@dataclass(frozen=True)
class LabelledData:
    """The samples of a data set folder and what was set aside while reading it."""

    samples: list[Sample]
    #: How the folder is labelled: ``manifest``, ``labels.csv`` or ``class folders``.
    layout: str
    #: True when the folder defines its own train/val/test split (manifest, split folders, split column).
    has_splits: bool
    #: Rows of ``labels.csv`` whose label is not a class, by label.
    set_aside: Counter = field(default_factory=Counter)


def _check_relative(path: Path, line: int, value: str, column: str) -> str:
    posix = value.strip().replace("\\", "/")
    parts = Path(posix).parts
    if not posix or Path(posix).is_absolute() or ".." in parts:
        raise DatasetError(f"{path}: line {line}: {column} {value!r} must be a relative path inside the folder")
    return posix


def labels_csv_samples(root: Path, class_names: tuple[str, ...] = CLASS_NAMES) -> LabelledData:
    """Samples from ``root/labels.csv`` (see the module docstring); every listed image must exist."""
    path = root / LABELS_NAME
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or ()}
        if not {"path", "label"} <= set(columns):
            raise DatasetError(f"{path}: line 1: the header needs the columns path and label, got {reader.fieldnames}")
        samples, set_aside, has_split = [], Counter(), "split" in columns
        for row in reader:
            line = reader.line_num
            label = (row[columns["label"]] or "").strip()
            if label not in class_names:
                set_aside[label] += 1
                continue
            relpath = _check_relative(path, line, row[columns["path"]] or "", "path")
            if not (root / relpath).is_file():
                raise DatasetError(f"{path}: line {line}: {root / relpath}: no such image")
            mask = (row.get(columns.get("mask", ""), "") or "").strip()
            mask = _check_relative(path, line, mask, "mask") if mask else _mask_for(root, root / relpath)
            if mask and not (root / mask).is_file():
                raise DatasetError(f"{path}: line {line}: mask {root / mask}: no such file")
            split = (row[columns["split"]] or "").strip() if has_split else _hash_split(relpath)
            if split not in SPLITS:
                raise DatasetError(f"{path}: line {line}: split {split!r} is not one of {', '.join(SPLITS)}")
            samples.append(Sample(relpath, None if label == class_names[0] else mask, label, split, "real"))
    if not samples:
        raise DatasetError(f"{path}: no rows with a class label ({', '.join(class_names)})")
    return LabelledData(samples, "labels.csv", has_split, set_aside)


def read_labelled(root: str | Path, class_names: tuple[str, ...] = CLASS_NAMES) -> LabelledData:
    """Every sample of a data set folder: from its manifest, its ``labels.csv`` or its class folders."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if (root / MANIFEST_NAME).is_file():
        data = LabelledData(read_manifest(root / MANIFEST_NAME), "manifest", True)
    elif (root / LABELS_NAME).is_file():
        data = labels_csv_samples(root, class_names)
    else:
        split_folders = any((root / split).is_dir() for split in SPLITS)
        data = LabelledData(folder_samples(root, class_names), "class folders", split_folders)
    unknown = sorted({s.label for s in data.samples} - set(class_names))
    if unknown:
        raise DatasetError(f"{root}: unknown labels {unknown}; expected {', '.join(class_names)}")
    return data


def load_samples(root: str | Path, class_names: tuple[str, ...] = CLASS_NAMES) -> list[Sample]:
    """Every sample of a data set folder (see :func:`read_labelled`)."""
    return read_labelled(root, class_names).samples


class IpadDataset(Dataset):
    """Images resized to the model's square input, CLIP-normalised, with masks and class indices.

    Items are ``(pixels, label, mask, has_mask)``. ``has_mask`` is False for an artifact image
    without a mask file (a real capture with an image-level label only): its all-zero ``mask``
    means "unknown", not "clean", and the segmentation loss and pixel metrics leave it out. A clean
    image's all-zero mask is its ground truth (paper Section 4.1), so ``has_mask`` is True for it.
    """

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

    def has_mask(self, sample: Sample) -> bool:
        return bool(sample.mask) or self.index[sample.label] == 0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, bool]:
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
                torch.from_numpy(np.ascontiguousarray(mask)), self.has_mask(sample))
