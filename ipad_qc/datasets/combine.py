"""Train on several data sets at once: one folder that links to each and one manifest over all.

A team fine-tunes on its own labelled captures *and* synthetic data made from its clean photos;
the trainer reads one data-set folder. :func:`combine` makes that folder: ``src<i>`` links to the
i-th data set and ``manifest.csv`` lists every sample of all of them with its path prefixed, its
split and source kept (labelled folders without splits are split by a hash of the path, as the
loader always does). Nothing is copied, so combining is instant and costs no disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.datasets.loader import DatasetError, load_samples
from ipad_qc.datasets.manifest import MANIFEST_NAME, write_manifest


def combine(roots: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
            class_names: tuple[str, ...] = CLASS_NAMES) -> Path:
    """The folder ``out`` holding links to ``roots`` and a manifest over all their samples (made anew)."""
    target = Path(out)
    if target.exists() and any(p.name != MANIFEST_NAME and not p.is_symlink() for p in target.iterdir()):
        raise DatasetError(f"{target}: exists and holds files that are not links of a combined data set")
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("src*"):
        if old.is_symlink():
            old.unlink()
    samples = []
    for index, root in enumerate(roots):
        link = target / f"src{index}"
        link.symlink_to(Path(root).resolve(), target_is_directory=True)
        for sample in load_samples(root, class_names):
            samples.append(replace(sample, image=f"{link.name}/{sample.image}",
                                   mask=f"{link.name}/{sample.mask}" if sample.mask else None))
    write_manifest(target, samples)
    return target
