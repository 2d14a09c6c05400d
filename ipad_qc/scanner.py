"""``scan``: walk a folder, decode in worker processes, detect in batches, store every result.

The pipeline keeps a bounded window of decode jobs in flight in a process pool while the main
process runs the detector on the previous batch, so decoding and detection overlap and memory
stays bounded whatever the number of files. Results are committed to SQLite once per batch; a
re-run skips files whose content and settings are unchanged, so an interrupted scan resumes where
it stopped without losing or duplicating a row.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.detectors.base import Detection, Detector
from ipad_qc.detectors.registry import get_detector
from ipad_qc.io import DecodedImage, DecodeError, DecodeHint, load_image
from ipad_qc.outputs import (
    THUMB_DIR,
    THUMB_SIDE,
    VIEW_SIDE,
    write_exports,
    write_mask,
    write_probability_map,
    write_thumbnails,
)
from ipad_qc.store import ResultStore, StoredFile, utc_now
from ipad_qc.walker import FoundFile, walk


class ScanError(Exception):
    """A scan cannot start (bad root, bad options). The CLI turns it into exit code 2."""


@dataclass
class ScanOptions:
    """Everything that shapes a scan besides the input folder and the run folder."""

    detector: str = "classic"
    detector_options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    batch_size: int = 8
    workers: int | None = None  # None: one per CPU core; 0: decode in the main process
    raw_mode: str = "preview"
    allow_partial: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_hidden: bool = False
    force: bool = False
    retry_errors: bool = False
    write_maps: bool = True
    #: Report thumbnails from the pixels decoded for detection, so reports never decode originals again.
    write_thumbnails: bool = True
    #: Scan only these paths relative to the root (e.g. the labelled files of an evaluation); None: all.
    only: frozenset[str] | None = None


@dataclass
class ItemResult:
    """What the progress display learns about each finished file."""

    relpath: str
    status: str  # "ok" | "error" | "unchanged"
    label: str | None = None
    error: str | None = None


@dataclass
class ScanSummary:
    """Counts of one scan run, plus the state of the whole run folder afterwards."""

    run_dir: Path
    root: Path
    detector: str
    found: int = 0
    scanned: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0
    excluded: int = 0
    removed: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    decode_s: float = 0.0
    detect_s: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return len(self.errors)


class ScanListener(Protocol):
    """Progress callbacks; the CLI draws a progress bar with them, the library stays silent."""

    def started(self, to_scan: int, skipped: int) -> None: ...

    def advanced(self, item: ItemResult) -> None: ...


class _SilentListener:
    def started(self, to_scan: int, skipped: int) -> None:
        pass

    def advanced(self, item: ItemResult) -> None:
        pass


# --- decode jobs (run in worker processes) ----------------------------------------------------


@dataclass(frozen=True)
class DecodeJob:
    """One file to decode; ``known_hash`` lets a touched-but-identical file be recognised cheaply."""

    path: str
    relpath: str
    hint: DecodeHint
    raw_mode: str
    allow_partial: bool
    known_hash: str | None = None


DECODER_CRASHED = "the decoder crashed on this file (worker process died)"


@dataclass
class DecodeOutcome:
    job: DecodeJob
    image: DecodedImage | None = None
    error: str | None = None
    unchanged: bool = False
    file_size: int | None = None
    file_mtime_ns: int | None = None
    content_hash: str | None = None
    decode_ms: float = 0.0


def file_hash(path: str | Path) -> str:
    """BLAKE2b of the file's bytes: identifies content independent of name and timestamps."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def decode_job(job: DecodeJob) -> DecodeOutcome:
    """Hash and decode one file. Never raises for a bad file: the failure becomes ``error``."""
    start = time.perf_counter()
    outcome = DecodeOutcome(job)
    try:
        info = os.stat(job.path)
        outcome.file_size, outcome.file_mtime_ns = info.st_size, info.st_mtime_ns
        outcome.content_hash = file_hash(job.path)
    except OSError as exc:
        outcome.error = f"cannot read file: {exc.strerror or exc}"
        return outcome
    if job.known_hash is not None and job.known_hash == outcome.content_hash:
        outcome.unchanged = True
        return outcome
    try:
        outcome.image = load_image(job.path, job.hint, raw_mode=job.raw_mode, allow_partial=job.allow_partial)
    except DecodeError as exc:
        outcome.error = exc.reason
    except MemoryError:
        outcome.error = "not enough memory to decode this file"
    except Exception as exc:  # a decoder library bug must fail this file, not the scan
        outcome.error = f"decoder failed: {type(exc).__name__}: {exc}"
    outcome.decode_ms = (time.perf_counter() - start) * 1000.0
    return outcome


def _init_worker() -> None:
    """Workers leave Ctrl-C to the main process and use one OpenCV thread each (no oversubscription)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    cv2.setNumThreads(1)


def decode_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of decode workers started by a fork server (spawn where there is none).

    Never plain ``fork``: the scanning process has OpenCV's and PyTorch's thread pools running, and a
    child forked from a multi-threaded process can deadlock on a lock some other thread held.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)


# --- planning ---------------------------------------------------------------------------------


def settings_fingerprint(detector: Detector, options: ScanOptions) -> tuple[dict[str, Any], str]:
    """The settings that decide a file's result; their hash marks rows that a re-scan may keep."""
    settings = {
        "detector": detector.name,
        "detector_settings": detector.settings(),
        "decode_hint": asdict(detector.decode_hint),
        "raw_mode": options.raw_mode,
        "allow_partial": options.allow_partial,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return settings, digest[:16]


@dataclass(frozen=True)
class DetectorSetup:
    """What the scan driver must know about the detector, wherever it runs: its name, the resolution
    to decode at, and the settings (with their hash) that decide whether a stored row can be kept."""

    name: str
    decode_hint: DecodeHint
    settings: dict[str, Any]
    settings_hash: str

    @classmethod
    def of(cls, detector: Detector, options: ScanOptions) -> DetectorSetup:
        settings, settings_hash = settings_fingerprint(detector, options)
        return cls(detector.name, detector.decode_hint, settings, settings_hash)


def _can_skip(stored: StoredFile | None, settings_hash: str, options: ScanOptions) -> bool:
    if stored is None or options.force or stored.settings_hash != settings_hash:
        return False
    return stored.status == "ok" or not options.retry_errors


def plan_jobs(
    files: Iterable[FoundFile],
    known: Mapping[str, StoredFile],
    settings_hash: str,
    options: ScanOptions,
    hint: DecodeHint,
) -> tuple[list[DecodeJob], int]:
    """Decide which files need work. Unchanged size and mtime skip without reading the file;
    changed ones carry the stored hash so the worker can still skip them if the bytes are equal."""
    jobs, skipped = [], 0
    for found in files:
        stored = known.get(found.relpath)
        known_hash = None
        if _can_skip(stored, settings_hash, options):
            try:
                info = found.path.stat()
            except OSError:
                info = None
            if info and (info.st_size, info.st_mtime_ns) == (stored.file_size, stored.file_mtime_ns):
                skipped += 1
                continue
            known_hash = stored.content_hash
        jobs.append(DecodeJob(str(found.path), found.relpath, hint, options.raw_mode, options.allow_partial,
                              known_hash))
    return jobs, skipped


# --- the pipeline -----------------------------------------------------------------------------


def _format_from_name(relpath: str) -> str:
    suffix = Path(relpath).suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "jpe": "jpeg", "jfif": "jpeg", "tif": "tiff", "heic": "heif", "hif": "heif"}.get(
        suffix, suffix
    )


@dataclass
class Finished:
    """One file at the end of the pipeline, on its way into the store.

    ``result`` is the detection, or the reason the detector failed on this image; ``None`` means
    the file never reached the detector (``outcome.error`` says why it could not be decoded).
    """

    outcome: DecodeOutcome
    result: Detection | str | None = None
    detect_ms: float | None = None


def detect_batch(detector: Detector, images: list[DecodedImage]) -> tuple[list[Detection | str], float]:
    """Detect a batch; if the batch fails, retry image by image so one bad input fails alone.

    Returns one detection or error message per image, and the detection time per image in ms.
    """
    start = time.perf_counter()
    try:
        results: list[Detection | str] = list(detector.detect(images))
    except Exception:
        results = []
        for image in images:
            try:
                results.append(detector.detect([image])[0])
            except Exception as exc:
                results.append(f"detector failed: {type(exc).__name__}: {exc}")
    return results, (time.perf_counter() - start) * 1000.0 / max(1, len(images))


class ResultWriter:
    """Turns finished files into output files (masks, maps) and result rows, committed once per batch.

    Every engine hands its finished files to this class, so rows and files are identical whether
    the files were decoded and detected by local processes or on a Ray cluster.
    """

    def __init__(self, store: ResultStore, detector_name: str, settings_hash: str, options: ScanOptions,
                 listener: ScanListener, summary: ScanSummary) -> None:
        self.store = store
        self.detector_name = detector_name
        self.settings_hash = settings_hash
        self.options = options
        self.listener = listener
        self.summary = summary
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ipad-qc-writer")

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    def unchanged(self, outcome: DecodeOutcome) -> None:
        """The content hash proved the file unchanged: keep its row, record its new size and mtime."""
        self.summary.decode_s += outcome.decode_ms / 1000.0
        self.store.update_stat(outcome.job.relpath, outcome.file_size, outcome.file_mtime_ns)
        self.summary.skipped += 1
        self.listener.advanced(ItemResult(outcome.job.relpath, "unchanged"))

    def commit(self, items: list[Finished]) -> None:
        """Write the batch's masks and maps (PNG encoding in threads), then upsert its rows in one commit."""
        if not items:
            return
        rows = list(self._threads.map(self._row, items))
        self.store.put_batch(rows)
        for item, row in zip(items, rows, strict=True):
            self.summary.decode_s += item.outcome.decode_ms / 1000.0
            self.summary.detect_s += (item.detect_ms or 0.0) / 1000.0
            self._count(row)

    def _row(self, item: Finished) -> dict[str, Any]:
        outcome, result = item.outcome, item.result
        if not isinstance(result, Detection):
            return self._error_row(outcome, result or outcome.error)
        run_dir, relpath = self.store.run_dir, outcome.job.relpath
        try:
            mask_path = write_mask(run_dir, relpath, result)
            map_path = write_probability_map(run_dir, relpath, result) if self.options.write_maps else ""
            if self.options.write_thumbnails:
                sides = (THUMB_SIDE, VIEW_SIDE) if not result.is_clean else (THUMB_SIDE,)
                write_thumbnails(run_dir / THUMB_DIR, outcome.content_hash, outcome.image.pixels, sides)
        except OSError as exc:
            return self._error_row(outcome, f"cannot write mask: {exc}")
        return self._ok_row(outcome, result, mask_path, map_path, item.detect_ms)

    def _base_row(self, outcome: DecodeOutcome) -> dict[str, Any]:
        return {
            "path": outcome.job.relpath,
            "detector": self.detector_name,
            "settings_hash": self.settings_hash,
            "file_size": outcome.file_size,
            "file_mtime_ns": outcome.file_mtime_ns,
            "content_hash": outcome.content_hash,
            "decode_ms": round(outcome.decode_ms, 2),
            "scanned_at": utc_now(),
        }

    def _error_row(self, outcome: DecodeOutcome, reason: str | None) -> dict[str, Any]:
        return {**self._base_row(outcome), "status": "error", "error": reason or "unknown error",
                "format": _format_from_name(outcome.job.relpath)}

    def _ok_row(self, outcome: DecodeOutcome, detection: Detection, mask_path: str, map_path: str,
                detect_ms: float | None) -> dict[str, Any]:
        meta = outcome.image.meta
        row = {**self._base_row(outcome), "status": "ok", "label": detection.label,
               "mask_fraction": round(detection.mask_fraction, 6), "mask_path": mask_path, "map_path": map_path,
               "width": meta.width, "height": meta.height, "format": meta.format, "bit_depth": meta.bit_depth,
               "decode_mode": meta.decode_mode, "warning": "; ".join(meta.warnings) or None, "detect_ms": detect_ms}
        row.update({f"score_{name}": round(float(detection.scores[name]), 6) for name in CLASS_NAMES})
        return row

    def _count(self, row: dict[str, Any]) -> None:
        if row["status"] == "ok":
            self.summary.scanned += 1
        else:
            self.summary.failed += 1
        self.listener.advanced(ItemResult(row["path"], row["status"], row.get("label"), row.get("error")))


class _Pipeline:
    """Runs decode jobs through a local process pool and detection batches through the detector."""

    def __init__(self, detector: Detector, store: ResultStore, settings_hash: str, options: ScanOptions,
                 listener: ScanListener, summary: ScanSummary,
                 decode: Callable[[DecodeJob], DecodeOutcome] = decode_job) -> None:
        self.decode = decode
        self.detector = detector
        self.options = options
        self.writer = ResultWriter(store, detector.name, settings_hash, options, listener, summary)
        self.workers = (os.cpu_count() or 1) if options.workers is None else max(0, options.workers)
        self.window = max(2, self.workers * 2) + options.batch_size
        self.images: list[DecodeOutcome] = []
        self.failures: list[DecodeOutcome] = []

    # decode side
    def run(self, jobs: list[DecodeJob]) -> None:
        try:
            if self.workers == 0:
                for job in jobs:
                    self._accept(self.decode(job))
            else:
                self._run_pool(jobs)
            self._flush()
        finally:
            self.writer.close()

    def _run_pool(self, jobs: list[DecodeJob]) -> None:
        pending = deque(jobs)
        in_flight: deque[tuple[DecodeJob, Future[DecodeOutcome]]] = deque()
        pool = decode_pool(self.workers)
        try:
            while pending or in_flight:
                while pending and len(in_flight) < self.window:
                    job = pending.popleft()
                    in_flight.append((job, pool.submit(self.decode, job)))
                job, future = in_flight[0]
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._isolate_crash([job for job, _ in in_flight])
                    in_flight.clear()
                    continue
                in_flight.popleft()
                self._accept(outcome)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _isolate_crash(self, suspects: list[DecodeJob]) -> ProcessPoolExecutor:
        """A worker died (e.g. a decoder library crashed). Re-run each job that was in flight on its
        own, so only the file that really kills the decoder is reported as failed."""
        for job in suspects:
            pool = decode_pool(self.workers)
            try:
                outcome = pool.submit(self.decode, job).result()
            except BrokenProcessPool:
                outcome = DecodeOutcome(job, error=DECODER_CRASHED)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            self._accept(outcome)
        return decode_pool(self.workers)

    def _accept(self, outcome: DecodeOutcome) -> None:
        if outcome.unchanged:
            self.writer.unchanged(outcome)
            return
        (self.images if outcome.image is not None else self.failures).append(outcome)
        if len(self.images) >= self.options.batch_size or len(self.failures) >= self.options.batch_size:
            self._flush()

    # detect side
    def _flush(self) -> None:
        if not self.images and not self.failures:
            return
        batch, self.images = self.images, []
        results, detect_ms = detect_batch(self.detector, [outcome.image for outcome in batch]) if batch else ([], 0)
        failures, self.failures = self.failures, []
        detected = [Finished(outcome, result, detect_ms) for outcome, result in zip(batch, results, strict=True)]
        self.writer.commit(detected + [Finished(outcome) for outcome in failures])


# --- engines ----------------------------------------------------------------------------------


class ScanEngine(Protocol):
    """Where decoding and detection run. Walking, planning, the scan history and the exports are the
    same for every engine (see :func:`scan`): an engine only turns planned jobs into committed rows,
    through a :class:`ResultWriter`, so every engine writes the same run folder."""

    def prepare(self, options: ScanOptions) -> DetectorSetup:
        """Make the detector (or check it can be made) for this scan and describe it; called once, first."""
        ...

    def run(self, jobs: list[DecodeJob], store: ResultStore, settings_hash: str, listener: ScanListener,
            summary: ScanSummary) -> None:
        """Decode and detect ``jobs``, committing every finished file to ``store``."""
        ...


class LocalEngine:
    """The default engine: decode in local worker processes, detect in this process."""

    def __init__(self, detector: Detector | None = None) -> None:
        self.detector = detector
        self.options = ScanOptions()

    def prepare(self, options: ScanOptions) -> DetectorSetup:
        self.options = options
        if self.detector is None:
            self.detector = get_detector(options.detector, device=options.device, **options.detector_options)
        return DetectorSetup.of(self.detector, options)

    def run(self, jobs: list[DecodeJob], store: ResultStore, settings_hash: str, listener: ScanListener,
            summary: ScanSummary) -> None:
        _Pipeline(self.detector, store, settings_hash, self.options, listener, summary).run(jobs)


# --- entry point ------------------------------------------------------------------------------


def _check_options(root: Path, options: ScanOptions) -> None:
    if not root.exists():
        raise ScanError(f"{root}: no such file or folder")
    if options.batch_size < 1:
        raise ScanError("--batch-size must be at least 1")
    from ipad_qc.io import RAW_MODES

    if options.raw_mode not in RAW_MODES:
        raise ScanError(f"unknown RAW mode {options.raw_mode!r}; choose from {', '.join(RAW_MODES)}")


def _finish_summary(summary: ScanSummary, store: ResultStore) -> None:
    for row in store.rows():
        if row["status"] == "ok":
            summary.labels[row["label"]] += 1
        else:
            summary.errors.append((row["path"], row["error"]))


def scan(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: ScanOptions | None = None,
    *,
    detector: Detector | None = None,
    listener: ScanListener | None = None,
    engine: ScanEngine | None = None,
) -> ScanSummary:
    """Scan ``root`` (a folder or one file) into the run folder ``out`` and return the summary.

    ``detector`` overrides ``options.detector`` with an already-built instance (handy in a
    pipeline that scans several folders with one model). ``engine`` runs decoding and detection
    elsewhere, e.g. :class:`ipad_qc.ray_engine.RayEngine` on a Ray cluster; the default
    :class:`LocalEngine` runs them on this machine. ``KeyboardInterrupt`` stops the scan
    cleanly: finished batches are kept, exports are written, and ``summary.interrupted`` is set.
    """
    options = options or ScanOptions()
    root_path, run_dir = Path(root), Path(out)
    _check_options(root_path, options)
    if engine is not None and detector is not None:
        raise ScanError("pass a detector (for the local engine) or an engine, not both")
    engine = engine or LocalEngine(detector)
    setup = engine.prepare(options)
    listener = listener or _SilentListener()
    started = time.perf_counter()
    found = walk(root_path, options.include, options.exclude, options.include_hidden, skip_dirs=[run_dir])
    if options.only is not None:
        selected = [file for file in found.files if file.relpath in options.only]
        found.excluded += len(found.files) - len(selected)
        found.files = selected
    summary = ScanSummary(run_dir, root_path, setup.name, found=len(found.files), ignored=found.ignored,
                          excluded=found.excluded, problems=found.problems)
    with ResultStore(run_dir) as store:
        store.set_meta("root", str(root_path.resolve()))
        summary.removed = len(store.delete_missing({f.relpath for f in found.files}))
        jobs, summary.skipped = plan_jobs(found.files, store.known_files(), setup.settings_hash, options,
                                          setup.decode_hint)
        scan_id = store.begin_scan(str(root_path.resolve()), setup.name, setup.settings)
        listener.started(len(jobs), summary.skipped)
        try:
            engine.run(jobs, store, setup.settings_hash, listener, summary)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            summary.elapsed_s = time.perf_counter() - started
            _finish_summary(summary, store)
            counts = {"scanned": summary.scanned, "failed": summary.failed, "skipped": summary.skipped}
            store.end_scan(scan_id, "interrupted" if summary.interrupted else "completed", counts)
            write_exports(run_dir, store.rows())
    return summary
