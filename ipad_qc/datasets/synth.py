"""``ipad-qc synth``: turn a folder of clean photos into an IPAD-format training set.

Each output sample takes one clean photo, crops a random 80–100 % window of it, resizes that to
exactly ``size`` x ``size`` and then synthesises the artifact *at that resolution*:

* The model squashes every input to a square anyway, so the trainer sees these pixels unchanged. An
  artifact made at a different resolution and resampled afterwards would lose what defines it:
  moiré is aliasing at the sensor's pixel pitch, a ghost is a displacement of a few pixels, a flare's
  streaks are a pixel or two wide. The random crop keeps a photo that is used several times from
  giving identical backgrounds.
* Flare is additive light in linear space (``add_flare``), not an Eq. 1 alpha blend: light cannot make
  a bright background darker. It is centred on a detected light source (a near-saturated compact
  blob) when the photo has one; otherwise the generator's own fallback (brightest spot or a random
  point) is used. Outside its mask the photo is untouched, as with Eq. 1.
* Moiré is the Eq. 1 blend of a rendered, aliased screen into a detected bright quadrilateral (a
  lit screen) or, when there is none, a placed perspective-warped one.
* Ghosting is the fusion of a misaligned burst; its mask is where the fusion departs from the
  de-ghosted reference.

Reproducibility: the plan (which photo, class and split each sample gets) comes from one seeded
stream, and every sample draws from its own stream derived from ``(seed, index)``, so the bytes do
not depend on the number of worker processes or on the order they finish in.

Splits are made by photo: all samples of one clean photo land in the same split, so a validation
score is never flattered by a background the model trained on (unless there are fewer photos than
splits, which is warned about).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ipad_qc import __version__
from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.datasets.contact_sheet import write_contact_sheet
from ipad_qc.datasets.manifest import MANIFEST_NAME, SPLITS, Sample, write_manifest
from ipad_qc.io import DecodeError, DecodeHint, load_image
from ipad_qc.synthetic.artifacts import add_flare, add_ghosting, add_moire, find_screen, light_sources
from ipad_qc.walker import walk

SETTINGS_NAME = "synth.json"
CONTACT_SHEET_NAME = "contact_sheet.jpg"
#: What ``--overwrite`` removes: only what a previous run wrote, never anything else in the folder.
OUTPUTS = ("images", "masks", MANIFEST_NAME, SETTINGS_NAME, CONTACT_SHEET_NAME)
_PLAN_STREAM, _SAMPLE_STREAM = 0, 1
_CLEAN = CLASS_NAMES[0]

Range = tuple[float, float]


class SynthError(Exception):
    """The data set cannot be made (no usable photos, an output folder that is not ours to replace)."""


@dataclass(frozen=True)
class SynthSettings:
    """Every choice that decides the bytes of a data set; stored in ``synth.json``."""

    count: int = 1000
    size: int = 518
    seed: int = 0
    clean_ratio: float = 0.25
    classes: tuple[str, ...] = ARTIFACT_CLASSES
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    crop_min: float = 0.8
    flare_strength: Range = (0.5, 1.5)
    moire_phi: Range = (0.35, 0.8)
    moire_coverage: Range = (0.12, 0.45)
    screen_min_area: float = 0.04
    ghost_shift: Range = (0.005, 0.02)
    ghost_frames: tuple[int, int] = (2, 3)
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

    def class_weights(self) -> dict[str, float]:
        """Clean gets ``clean_ratio``; the artifact classes share the rest equally."""
        weights = {_CLEAN: self.clean_ratio}
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
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


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


@dataclass
class Outcome:
    """What a worker did with a job: the written sample and its details, or why it was skipped."""

    job: Job
    sample: Sample | None = None
    details: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass
class SynthSummary:
    """The result of a run: written samples, skipped files and samples, where it all went."""

    out: Path
    samples: list[Sample]
    notes: list[str]
    sources: int


class SynthListener(Protocol):
    """Progress hooks, so the library needs no terminal (the CLI draws a rich progress bar)."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self) -> None: ...

    def note(self, message: str) -> None: ...


class SilentListener:
    """Listener for library use: no output; notes still end up in the summary."""

    def phase(self, name: str, total: int) -> None:
        """Ignore phase changes."""

    def advance(self) -> None:
        """Ignore progress."""

    def note(self, message: str) -> None:
        """Ignore notes."""


# --- planning ---------------------------------------------------------------------------------


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index``: independent of every other sample and of the plan."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SAMPLE_STREAM, index)))


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


def plan_jobs(sources: list[tuple[str, str]], settings: SynthSettings) -> tuple[list[Job], list[str]]:
    """Assign every sample a photo, a class and a split. ``sources`` are ``(path, relpath)`` pairs.

    Returns the jobs and notes for the user (e.g. photos shared between splits).
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
    jobs = []
    for split, pool, count in zip(active, pools, counts, strict=True):
        block = [next(labels) for _ in range(count)]
        for position, label in enumerate(rng.permutation(block)):
            path, relpath = pool[position % len(pool)]
            index = len(jobs)
            jobs.append(Job(index, path, relpath, str(label), split, f"{_safe_stem(relpath)}_{index:0{width}d}"))
    return jobs, notes


# --- one sample ---------------------------------------------------------------------------------


def load_source(path: str | os.PathLike[str], settings: SynthSettings) -> np.ndarray:
    """The clean photo as float32 RGB in [0, 1], decoded no larger than the crops need."""
    return load_image(path, settings.decode_hint()).to_float()


def draw_crop(rng: np.random.Generator, height: int, width: int, crop_min: float) -> tuple[int, int, int, int]:
    """A random window ``(x0, y0, x1, y1)`` covering ``crop_min``–100 % of each side."""
    crop_w = max(1, round(width * rng.uniform(crop_min, 1.0)))
    crop_h = max(1, round(height * rng.uniform(crop_min, 1.0)))
    x0 = int(rng.integers(0, width - crop_w + 1))
    y0 = int(rng.integers(0, height - crop_h + 1))
    return x0, y0, x0 + crop_w, y0 + crop_h


def crop_resize(photo: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The window ``box`` squashed to ``size`` x ``size`` (the model's input shape), area-averaged."""
    x0, y0, x1, y1 = box
    return cv2.resize(photo[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def quantise(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] to the 8-bit values that are stored."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _flare(clean: np.ndarray, rng: np.random.Generator, s: SynthSettings) -> tuple[np.ndarray, np.ndarray, dict]:
    found = light_sources(clean)
    source = found[0][:2] if found else None  # the largest light: it dominates the flare
    strength = _uniform(rng, s.flare_strength)
    image, mask = add_flare(clean, rng, source=source, strength=strength)
    return image, mask, {"placement": "detected" if found else "generator", "source_xy": source, "strength": strength}


def _moire(clean: np.ndarray, rng: np.random.Generator, s: SynthSettings) -> tuple[np.ndarray, np.ndarray, dict]:
    quad = find_screen(clean, min_fraction=s.screen_min_area)
    phi, coverage = _uniform(rng, s.moire_phi), _uniform(rng, s.moire_coverage)
    image, mask = add_moire(clean, rng, quad=quad, phi=phi, coverage=coverage)
    details = {"placement": "detected" if quad is not None else "placed", "phi": phi}
    if quad is not None:
        details["quad"] = quad.round(1).tolist()
    return image, mask, details


def _ghosting(clean: np.ndarray, rng: np.random.Generator, s: SynthSettings) -> tuple[np.ndarray, np.ndarray, dict]:
    shift = _uniform(rng, s.ghost_shift)
    frames = int(rng.integers(s.ghost_frames[0], s.ghost_frames[1] + 1))
    image, mask = add_ghosting(clean, rng, displacement=shift, frames=frames)
    return image, mask, {"shift": shift, "frames": frames}


_MAKERS: dict[str, Callable[[np.ndarray, np.random.Generator, SynthSettings], tuple[np.ndarray, np.ndarray, dict]]]
_MAKERS = {"flare": _flare, "moire": _moire, "ghosting": _ghosting}


def render(job: Job, settings: SynthSettings) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Make one sample in memory: ``(uint8 RGB image, bool mask or None, details)``.

    An artifact whose mask comes out smaller than ``min_mask_fraction`` (a flare on a white sky, a
    ghost that moved off-frame) is drawn again from the same stream, up to ``attempts`` times; after
    that the mask is returned as it is and the caller skips the sample.
    """
    rng = sample_rng(settings.seed, job.index)
    photo = load_source(job.source, settings)
    box = draw_crop(rng, *photo.shape[:2], settings.crop_min)
    clean = crop_resize(photo, box, settings.size)
    details: dict[str, Any] = {"decoded_size": list(photo.shape[1::-1]), "crop": list(box)}
    if job.label == _CLEAN:
        return quantise(clean), None, details
    attempts = 0
    while True:
        attempts += 1
        image, mask, drawn = _MAKERS[job.label](clean, rng, settings)
        if mask.mean() >= settings.min_mask_fraction or attempts == settings.attempts:
            return quantise(image), mask, {**details, **drawn, "attempts": attempts}


def _write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f"{path}: could not write PNG")


def make_sample(job: Job, settings: SynthSettings, out: str) -> Outcome:
    """Render one job and write its image (and mask); a failure becomes a note, never a crash."""
    try:
        image, mask, details = render(job, settings)
    except DecodeError as exc:
        return Outcome(job, note=f"sample {job.index} skipped: {exc}")
    if mask is not None and mask.mean() < settings.min_mask_fraction:
        return Outcome(job, note=f"sample {job.index} ({job.label} on {job.source_rel}) skipped: the artifact "
                                 f"left no visible mask in {settings.attempts} attempts")
    sample = job.sample(with_mask=mask is not None)
    _write_png(Path(out, sample.image), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if sample.mask:
        _write_png(Path(out, sample.mask), mask.astype(np.uint8) * 255)
    return Outcome(job, sample, details)


def check_source(path: str, settings: SynthSettings) -> str | None:
    """Why ``path`` cannot serve as a clean photo, or ``None`` when it decodes."""
    try:
        load_source(path, settings)
    except DecodeError as exc:
        return str(exc)
    return None


# --- the run ------------------------------------------------------------------------------------


def _init_worker() -> None:
    """Workers leave Ctrl-C to the main process and use one OpenCV thread each (no oversubscription)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def _map(function: Callable[..., Any], items: list[Any], args: tuple, workers: int,
         listener: SynthListener) -> Iterator[Any]:
    """``function(item, *args)`` for every item, in order, in ``workers`` processes (0: in this one)."""
    if workers < 1 or len(items) < 2:
        for item in items:
            yield function(item, *args)
            listener.advance()
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=context, initializer=_init_worker)
    try:
        futures = [pool.submit(function, item, *args) for item in items]
        for future in futures:
            yield future.result()
            listener.advance()
    finally:  # on Ctrl-C or an error, drop the queued jobs instead of finishing them
        pool.shutdown(cancel_futures=True)


def prepare_out(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready: new or empty, or a previous data set when ``overwrite`` is given."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SynthError(f"{out}: folder is not empty; pass --overwrite to replace a previous data set")
        if not (out / SETTINGS_NAME).is_file():
            raise SynthError(f"{out}: not empty and holds no {SETTINGS_NAME}, so it is not a data set made by "
                             "ipad-qc synth; refusing to delete anything in it")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def find_sources(clean_dir: Path, out: Path, settings: SynthSettings, workers: int,
                 listener: SynthListener) -> tuple[list[tuple[str, str]], list[str]]:
    """The decodable photos under ``clean_dir`` (``(path, relpath)``) and warnings about the rest."""
    found = walk(clean_dir.resolve(), skip_dirs=[out])  # absolute paths: workers need not share our cwd
    notes = [f"{path}: {reason}" for path, reason in found.problems]
    listener.phase("checking photos", len(found.files))
    paths = [str(item.path) for item in found.files]
    sources = []
    for item, problem in zip(found.files, _map(check_source, paths, (settings,), workers, listener), strict=True):
        if problem is None:
            sources.append((str(item.path), item.relpath))
        else:
            notes.append(f"skipped {problem}")
    if not sources:
        raise SynthError(f"{clean_dir}: no decodable photos found ({len(found.files)} image file(s) tried)")
    return sources, notes


def synthesize(clean_dir: str | os.PathLike[str], out: str | os.PathLike[str], settings: SynthSettings, *,
               workers: int = 0, overwrite: bool = False, listener: SynthListener | None = None,
               contact_sheet: bool = True) -> SynthSummary:
    """Write a data set made from the photos in ``clean_dir`` into ``out`` (see the module docstring).

    Raises :class:`SynthError` when there is no usable photo or ``out`` is not ours to write into.
    """
    listener = listener or SilentListener()
    clean_dir, out = Path(clean_dir), Path(out)
    if not clean_dir.exists():
        raise SynthError(f"{clean_dir}: no such file or folder")
    prepare_out(out, overwrite)
    sources, notes = find_sources(clean_dir, out, settings, workers, listener)
    jobs, plan_notes = plan_jobs(sources, settings)
    notes += plan_notes
    for message in notes:
        listener.note(message)
    listener.phase("generating", len(jobs))
    outcomes = []
    for outcome in _map(make_sample, jobs, (settings, str(out)), workers, listener):
        outcomes.append(outcome)
        if outcome.note:
            notes.append(outcome.note)
            listener.note(outcome.note)
    samples = [outcome.sample for outcome in outcomes if outcome.sample]
    write_manifest(out, samples)
    _write_settings(out / SETTINGS_NAME, clean_dir, settings, __version__, sources, outcomes)
    if contact_sheet and samples:
        write_contact_sheet(out, samples, out / CONTACT_SHEET_NAME)
    return SynthSummary(out, samples, notes, len(sources))


def _write_settings(path: Path, clean_dir: Path, settings: SynthSettings, version: str,
                    sources: list[tuple[str, str]], outcomes: list[Outcome]) -> None:
    """``synth.json``: the settings, the photos and each sample's drawn parameters, to regenerate or audit."""
    record = {
        "generator": "ipad-qc synth",
        "ipad_qc_version": version,
        "clean_dir": str(clean_dir.resolve()),
        "settings": settings.to_json(),
        "sources": [relpath for _, relpath in sources],
        "samples": [
            {"index": o.job.index, "image": o.sample.image if o.sample else None, "label": o.job.label,
             "split": o.job.split, "source": o.job.source_rel, **o.details, "skipped": o.note}
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
