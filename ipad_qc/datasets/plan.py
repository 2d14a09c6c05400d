"""The plan of a data set: which photo, class and split each sample gets, fixed before any pixel is made.

The plan comes from one seeded stream and every sample then draws from its own stream derived from
``(seed, index)``, so the bytes depend neither on the number of worker processes nor on the order
they finish in. Splits are made by photo: all samples of one photo land in the same split, so a
validation score is never flattered by a background the model trained on. Flare samples go only to
photos that offer a plausible light (:func:`~ipad_qc.synthetic.survey.flare_sites`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ipad_qc.datasets.manifest import SPLITS, Sample
from ipad_qc.datasets.settings import SynthSettings

_PLAN_STREAM, _SAMPLE_STREAM, _TAIL_STREAM = 0, 1, 2


@dataclass(frozen=True)
class Source:
    """A usable clean photo: absolute path, path relative to the clean folder, and the flare sites it offers."""

    path: str
    relpath: str
    flare_sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """One planned sample: everything a worker needs, nothing it must agree on with other workers."""

    index: int
    source: str  # absolute path of the clean photo
    source_rel: str  # its path relative to the clean folder, for synth.json
    label: str
    split: str
    name: str  # file stem: <photo stem>_<index>

    def sample(self, with_mask: bool) -> Sample:
        folder = f"{self.split}/{self.label}/{self.name}.png"
        mask = f"masks/{folder}" if with_mask else None
        return Sample(f"images/{folder}", mask, self.label, self.split, "synthetic")


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index``: independent of every other sample and of the plan."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SAMPLE_STREAM, index)))


def tail_rng(seed: int, index: int) -> np.random.Generator:
    """The stream of sample ``index``'s capture tail: apart from the scene's, so it does not depend on the label."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_TAIL_STREAM, index)))


def allocate(total: int, weights: Iterable[float], *, at_least_one: bool = False) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (largest remainder).

    With ``at_least_one``, every positive weight gets one item first when ``total`` allows, so a
    10 % test split of a small set is never empty.
    """
    share = np.asarray(list(weights), float)
    share = share / share.sum()
    counts = np.floor(share * total).astype(int)
    if at_least_one and total >= (share > 0).sum():
        counts = np.maximum(counts, (share > 0).astype(int))
    while counts.sum() > total:
        counts[np.argmax(np.where(counts > 1, counts - share * total, -np.inf))] -= 1
    while counts.sum() < total:
        counts[np.argmax(np.where(share > 0, share * total - counts, -np.inf))] += 1
    return counts.tolist()


def label_sequence(total: int, weights: dict[str, float]) -> list[str]:
    """Labels in an evenly interleaved order (always the label furthest behind its share).

    Any contiguous run of it, such as one split's block, holds the classes in proportion to within
    one sample each, which independent rounding per split cannot promise for small sets.
    """
    names, shares = list(weights), np.asarray(list(weights.values())) / sum(weights.values())
    given = np.zeros(len(names))
    labels = []
    for step in range(1, total + 1):
        choice = int(np.argmax(shares * step - given))
        given[choice] += 1
        labels.append(names[choice])
    return labels


def _safe_stem(path: str) -> str:
    """The photo's file stem with anything but letters, digits, ``-``, ``_`` and ``.`` replaced."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "photo"


def _flare_weight(source: Source) -> int:
    """How many times a photo enters the flare pool: 0 without a site, 2 with lamps or at night, else 1."""
    if not source.flare_sites:
        return 0
    return 2 if {"detected", "lamp"} & set(source.flare_sites) else 1


def plan_jobs(sources: list[Source], settings: SynthSettings) -> tuple[list[Job], list[str]]:
    """Assign every sample a photo, a class and a split. Returns the jobs and notes for the user.

    Within a split, each class cycles through its own pool of photos (flare: those with a flare site,
    night and lamp-lit ones twice); a flare sample in a split whose photos offer no light source is
    left out, with a note.
    """
    rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(_PLAN_STREAM,)))
    active = [split for split, ratio in zip(SPLITS, settings.splits, strict=True) if ratio > 0]
    ratios = [ratio for ratio in settings.splits if ratio > 0]
    shuffled = [sources[i] for i in rng.permutation(len(sources))]
    notes = []
    if len(sources) >= len(active):
        bounds = np.cumsum([0, *allocate(len(sources), ratios, at_least_one=True)])
        pools = [shuffled[start:end] for start, end in zip(bounds[:-1], bounds[1:], strict=True)]
    else:
        notes.append(f"only {len(sources)} usable photo(s) for {len(active)} splits: the splits share photos, "
                     "so validation and test scores will be optimistic")
        pools = [shuffled] * len(active)
    counts = allocate(settings.count, ratios, at_least_one=True)
    labels = iter(label_sequence(settings.count, settings.class_weights()))
    width = max(4, len(str(settings.count - 1)))
    jobs: list[Job] = []
    for split, pool, count in zip(active, pools, counts, strict=True):
        block = [str(label) for label in rng.permutation([next(labels) for _ in range(count)])]
        # flare photos are mostly night shots: a photo with its own lamps or a night scene counts twice
        lit = [source for source in pool for _ in range(_flare_weight(source))]
        used: dict[str, int] = {}
        skipped = 0
        for label in block:
            candidates = lit if label == "flare" else pool
            if not candidates:
                skipped += 1
                continue
            source = candidates[used.get(label, 0) % len(candidates)]
            used[label] = used.get(label, 0) + 1
            index = len(jobs)
            jobs.append(Job(index, source.path, source.relpath, label, split,
                            f"{_safe_stem(source.relpath)}_{index:0{width}d}"))
        if skipped:
            notes.append(f"{skipped} flare sample(s) of the {split} split left out: none of its {len(pool)} photo(s) "
                         "has a light source, a night scene or a sky to make a flare plausible")
    return jobs, notes
