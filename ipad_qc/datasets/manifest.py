"""The IPAD data-set format: one ``manifest.csv`` listing images, masks, labels and splits.

A data set is a folder::

    DATASET/
      manifest.csv                             image,mask,label,split,source
      images/<split>/<label>/<stem>_<n>.png    8-bit RGB, lossless (JPEG blocking would look like moiré)
      masks/<split>/<label>/<stem>_<n>.png     8-bit 0/255 single channel, the image's size

Paths in the manifest are relative to the data-set folder and use ``/``, so a data set can be moved,
zipped or shared between operating systems. ``mask`` is empty for ``clean`` images. ``source`` says
whether a row was generated (``synthetic``, always with a mask) or is a copied-in real capture
(``real``; an artifact image without a mask is allowed there: it carries an image-level label only).
Every writer and reader of data sets goes through this module, so the rules live in one place.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path, PurePosixPath

from ipad_qc.classes import CLASS_NAMES

MANIFEST_NAME = "manifest.csv"
FIELDS: tuple[str, ...] = ("image", "mask", "label", "split", "source")
SPLITS: tuple[str, ...] = ("train", "val", "test")
SOURCES: tuple[str, ...] = ("synthetic", "real")


class ManifestError(ValueError):
    """A manifest that breaks the format; the message names the file, the line and the rule."""


@dataclass(frozen=True)
class Sample:
    """One row of ``manifest.csv``: paths relative to the data-set folder, ``mask`` ``None`` when absent."""

    image: str
    mask: str | None
    label: str
    split: str
    source: str

    def problem(self) -> str | None:
        """Why this row breaks the format, or ``None`` when it is valid."""
        if self.label not in CLASS_NAMES:
            return f"label {self.label!r} is not one of {', '.join(CLASS_NAMES)}"
        if self.split not in SPLITS:
            return f"split {self.split!r} is not one of {', '.join(SPLITS)}"
        if self.source not in SOURCES:
            return f"source {self.source!r} is not one of {', '.join(SOURCES)}"
        if self.label == CLASS_NAMES[0] and self.mask:
            return "a clean image has a mask"
        if self.source == "synthetic" and self.label != CLASS_NAMES[0] and not self.mask:
            return f"a synthetic {self.label} image has no mask"
        return _path_problem(self.image, "image") or (_path_problem(self.mask, "mask") if self.mask else None)


def _path_problem(path: str, column: str) -> str | None:
    """Paths must stay inside the data set and be portable: relative, POSIX, no ``..``."""
    if not path or "\\" in path or PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
        return f"{column} path {path!r} must be a relative POSIX path inside the data set"
    return None


def manifest_path(dataset: str | os.PathLike[str]) -> Path:
    """``dataset/manifest.csv``, or ``dataset`` itself when it already names the CSV file."""
    path = Path(dataset)
    return path if path.suffix.lower() == ".csv" else path / MANIFEST_NAME


def write_manifest(dataset: str | os.PathLike[str], samples: Iterable[Sample]) -> Path:
    """Write ``manifest.csv`` (``\\n`` line ends, so identical rows give identical bytes everywhere)."""
    path = manifest_path(dataset)
    rows = list(samples)
    for number, sample in enumerate(rows, start=2):
        if problem := sample.problem():
            raise ManifestError(f"{path}: row {number}: {problem}")
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows(tuple("" if value is None else value for value in astuple(sample)) for sample in rows)
    return path


def read_manifest(dataset: str | os.PathLike[str]) -> list[Sample]:
    """Read and check ``manifest.csv``; raises :class:`ManifestError` naming the first bad line."""
    path = manifest_path(dataset)
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None or tuple(name.strip() for name in header) != FIELDS:
            raise ManifestError(f"{path}: line 1: header must be {','.join(FIELDS)}, got {header}")
        return [_parse_row(path, reader.line_num, row) for row in reader if row]


def _parse_row(path: Path, line: int, row: list[str]) -> Sample:
    if len(row) != len(FIELDS):
        raise ManifestError(f"{path}: line {line}: expected {len(FIELDS)} columns, got {len(row)}")
    image, mask, label, split, source = (value.strip() for value in row)
    sample = Sample(image=image, mask=mask or None, label=label, split=split, source=source)
    if problem := sample.problem():
        raise ManifestError(f"{path}: line {line}: {problem}")
    return sample
