"""``ipad-qc synth``: turn a folder of clean photos into an IPAD-format training set.

The run: find the decodable photos (and, for each, the flare sites it offers), plan every sample
(:mod:`.plan`: photo, class and split, per-photo splits), render the samples in worker processes
(:mod:`.recipes`: crop, artifact or hard negative, capture tail), write images, masks, the manifest,
``synth.json`` (the settings and every sample's drawn parameters, a trainer's sidecar to filter or
ablate by) and a contact sheet. The same seed and settings give byte-identical sets whatever the
number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ipad_qc import __version__
from ipad_qc.datasets.contact_sheet import write_comparison_sheet, write_contact_sheet
from ipad_qc.datasets.manifest import MANIFEST_NAME, Sample, write_manifest
from ipad_qc.datasets.plan import Job, Source, plan_jobs
from ipad_qc.datasets.recipes import load_source, render
from ipad_qc.datasets.settings import SynthSettings
from ipad_qc.io import DecodeError
from ipad_qc.synthetic.survey import flare_sites
from ipad_qc.walker import walk

SETTINGS_NAME = "synth.json"
CONTACT_SHEET_NAME = "contact_sheet.jpg"
COMPARISON_NAME = "comparison_sheet.jpg"
#: What ``--overwrite`` removes: only what a previous run wrote, never anything else in the folder.
OUTPUTS = ("images", "masks", MANIFEST_NAME, SETTINGS_NAME, CONTACT_SHEET_NAME, COMPARISON_NAME)


class SynthError(Exception):
    """The data set cannot be made (no usable photos, an output folder that is not ours to replace)."""


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


# --- one sample ------------------------------------------------------------------------------


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
        why = details.get("params", {}).get("no_site") or "the artifact left no visible mask"
        return Outcome(job, details=details, note=f"sample {job.index} ({job.label} on {job.source_rel}) skipped "
                                                  f"after {settings.attempts} attempts: {why}")
    sample = job.sample(with_mask=mask is not None)
    _write_png(Path(out, sample.image), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if sample.mask:
        _write_png(Path(out, sample.mask), mask.astype(np.uint8) * 255)
    return Outcome(job, sample, details)


def check_source(path: str, settings: SynthSettings) -> tuple[str | None, tuple[str, ...]]:
    """Why ``path`` cannot serve as a clean photo (``None`` when it decodes), and the flare sites it offers."""
    try:
        photo = load_source(path, settings)
    except DecodeError as exc:
        return str(exc), ()
    return None, tuple(flare_sites(cv2.resize(photo, (settings.size, settings.size), interpolation=cv2.INTER_AREA)))


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
                 listener: SynthListener) -> tuple[list[Source], list[str]]:
    """The decodable photos under ``clean_dir``, surveyed for flare sites, and warnings about the rest."""
    found = walk(clean_dir.resolve(), skip_dirs=[out])  # absolute paths: workers need not share our cwd
    notes = [f"{path}: {reason}" for path, reason in found.problems]
    listener.phase("checking photos", len(found.files))
    paths = [str(item.path) for item in found.files]
    sources = []
    for item, (problem, sites) in zip(found.files, _map(check_source, paths, (settings,), workers, listener),
                                      strict=True):
        if problem is None:
            sources.append(Source(str(item.path), item.relpath, sites))
        else:
            notes.append(f"skipped {problem}")
    if not sources:
        raise SynthError(f"{clean_dir}: no decodable photos found ({len(found.files)} image file(s) tried)")
    return sources, notes


def real_samples(folder: Path) -> list[Sample]:
    """The labelled photos of a real folder (``<class>/`` subfolders, as ``realdev``) to compare against."""
    from ipad_qc.datasets.loader import DatasetError, folder_samples  # torch comes with the loader: only on demand

    try:
        return folder_samples(folder)
    except DatasetError as exc:
        raise SynthError(str(exc)) from None


def synthesize(clean_dir: str | os.PathLike[str], out: str | os.PathLike[str], settings: SynthSettings, *,
               workers: int = 0, overwrite: bool = False, listener: SynthListener | None = None,
               contact_sheet: bool = True, compare: str | os.PathLike[str] | None = None) -> SynthSummary:
    """Write a data set made from the photos in ``clean_dir`` into ``out`` (see the module docstring).

    With ``compare`` (a folder of real photos in class subfolders), also write ``comparison_sheet.jpg``:
    synthetic samples beside real ones, per class. Raises :class:`SynthError` when there is no usable
    photo, ``compare`` has no labelled photos, or ``out`` is not ours to write into.
    """
    listener = listener or SilentListener()
    clean_dir, out = Path(clean_dir), Path(out)
    if not clean_dir.exists():
        raise SynthError(f"{clean_dir}: no such file or folder")
    real = real_samples(Path(compare)) if compare is not None else None
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
    if real is not None and samples:
        write_comparison_sheet(out, samples, Path(compare), real, out / COMPARISON_NAME)
    return SynthSummary(out, samples, notes, len(sources))


def _write_settings(path: Path, clean_dir: Path, settings: SynthSettings, version: str,
                    sources: list[Source], outcomes: list[Outcome]) -> None:
    """``synth.json``: the settings, the photos and each sample's drawn parameters, to regenerate or audit."""
    record = {
        "generator": "ipad-qc synth",
        "ipad_qc_version": version,
        "clean_dir": str(clean_dir.resolve()),
        "settings": settings.to_json(),
        "sources": [source.relpath for source in sources],
        "samples": [
            {"index": o.job.index, "image": o.sample.image if o.sample else None, "label": o.job.label,
             "split": o.job.split, "source": o.job.source_rel, **o.details, "skipped": o.note}
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(record, indent=1, default=_plain) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays in drawn parameters as plain JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_records(dataset: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every written sample's record from a data set's ``synth.json``, by image path (as in the manifest):
    the recipe, the synthesiser's drawn parameters and the capture tail, for a trainer to filter or ablate by."""
    record = json.loads((Path(dataset) / SETTINGS_NAME).read_text(encoding="utf-8"))
    return {sample["image"]: sample for sample in record["samples"] if sample.get("image")}
