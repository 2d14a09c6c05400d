"""``scan``: walk a folder, decode in worker processes, detect in batches, store every result.

This module puts the parts in :mod:`ipad_qc.scanning` together and is their public face. A scan
holds the run folder's lock, places its ROOT within the run folder's scanned folder (see
:mod:`ipad_qc.scanning.selection`), walks it, plans which files need work, lets an engine decode
and detect them (committed once per batch), and records the scan in the history. Re-running skips
files whose content and settings are unchanged, so an interrupted scan resumes where it stopped
without losing or duplicating a row. A run folder that cannot be written stops the scan with
:class:`~ipad_qc.runfolder.RunFolderError`: the rows committed before stay.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ipad_qc.detectors.base import Detector
from ipad_qc.io import RAW_MODES
from ipad_qc.io.files import file_hash
from ipad_qc.names import printable
from ipad_qc.outputs import write_exports
from ipad_qc.runfolder import RunFolderError, lock, writing
from ipad_qc.scanning.jobs import DECODER_CRASHED, DecodeJob, DecodeOutcome, decode_job, decode_pool
from ipad_qc.scanning.pipeline import LocalEngine, LocalPipeline, ScanEngine, detect_batch
from ipad_qc.scanning.selection import plan_jobs, rows_to_remove, select
from ipad_qc.scanning.types import (
    DetectorSetup,
    ItemResult,
    ScanError,
    ScanListener,
    ScanOptions,
    ScanSummary,
    SilentListener,
)
from ipad_qc.scanning.writer import Finished, ResultWriter
from ipad_qc.store import ResultStore
from ipad_qc.walker import check_patterns, walk

#: The names other code imports from here: this module is the scan's public face.
__all__ = [
    "DECODER_CRASHED", "DecodeJob", "DecodeOutcome", "DetectorSetup", "Finished", "ItemResult", "LocalEngine",
    "LocalPipeline", "ResultWriter", "RunFolderError", "ScanEngine", "ScanError", "ScanListener", "ScanOptions",
    "ScanSummary", "SilentListener", "decode_job", "decode_pool", "detect_batch", "file_hash", "plan_jobs", "scan",
]


def _check_options(root: Path, run_dir: Path, options: ScanOptions) -> None:
    if not os.path.lexists(root):
        raise ScanError(f"{printable(root)}: no such file or folder")
    if options.batch_size < 1:
        raise ScanError("--batch-size must be at least 1")
    if options.raw_mode not in RAW_MODES:
        raise ScanError(f"unknown RAW mode {options.raw_mode!r}; choose from {', '.join(RAW_MODES)}")
    if options.max_pixels is not None and options.max_pixels < 1:
        raise ScanError("--max-megapixels must be positive")
    try:
        check_patterns(options.include, "--include")
        check_patterns(options.exclude, "--exclude")
    except ValueError as exc:
        raise ScanError(str(exc)) from None
    target, out = root.resolve(), run_dir.resolve()
    if target == out:
        raise ScanError(f"--out {printable(run_dir)} is the scanned folder itself: its masks and maps would be "
                        "scanned as photos; choose a run folder outside it (or a sub-folder such as ROOT/runs/x)")
    if target.is_relative_to(out):
        raise ScanError(f"{printable(root)} lies inside the run folder {printable(run_dir)}: a scan does not scan "
                        "its own outputs; choose another --out")


def _finish_summary(summary: ScanSummary, store: ResultStore) -> None:
    for row in store.rows():
        if row["status"] == "ok":
            summary.labels[row["label"]] += 1
        else:
            summary.errors.append((row["path"], row["error"]))


def _record_end(store: ResultStore, run_dir: Path, scan_id: int, summary: ScanSummary, outcome: str) -> None:
    """History and exports after the scan; a run folder that cannot take them is a RunFolderError."""
    counts = {"scanned": summary.scanned, "failed": summary.failed, "skipped": summary.skipped,
              "removed": summary.removed}
    store.end_scan(scan_id, outcome, counts)
    with writing(run_dir, "writing results.csv / results.jsonl"):
        write_exports(run_dir, store.rows())


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
    Raises :class:`ScanError` for bad options, :class:`~ipad_qc.store.StoreError` for a run folder
    whose database is unusable, and :class:`RunFolderError` when the run folder cannot be written
    (in use by another scan, full, read-only).
    """
    options = options or ScanOptions()
    root_path, run_dir = Path(root), Path(out)
    _check_options(root_path, run_dir, options)
    if engine is not None and detector is not None:
        raise ScanError("pass a detector (for the local engine) or an engine, not both")
    engine = engine or LocalEngine(detector)
    setup = engine.prepare(options)
    listener = listener or SilentListener()
    started = time.perf_counter()
    with lock(run_dir), ResultStore(run_dir) as store:
        selection = select(root_path, run_dir, store.scanned_folder(), options.prune)
        found = walk(root_path, options.include, options.exclude, options.include_hidden, skip_dirs=[run_dir],
                     prefix=selection.prefix)
        if options.only is not None:
            chosen = [file for file in found.files if file.relpath in options.only]
            found.excluded += len(found.files) - len(chosen)
            found.files = chosen
        summary = ScanSummary(run_dir, root_path, setup.name, found=len(found.files), ignored=found.ignored,
                              excluded=found.excluded, problems=found.problems)
        store.set_meta("root", str(selection.base))
        stale, summary.kept_outside = rows_to_remove(store.known_files(), {f.relpath for f in found.files},
                                                     selection, options.prune)
        store.delete(stale)
        summary.removed = len(stale)
        known = store.known_files()
        jobs, summary.skipped = plan_jobs(found.files, known, setup.settings_hash, options, setup.decode_hint)
        scan_id = store.begin_scan(str(root_path.resolve()), setup.name, setup.settings)
        listener.started(len(jobs), summary.skipped)
        failure: RunFolderError | None = None
        try:
            engine.run(jobs, store, setup.settings_hash, listener, summary)
        except KeyboardInterrupt:
            summary.interrupted = True
        except RunFolderError as exc:
            failure = exc
        summary.elapsed_s = time.perf_counter() - started
        _finish_summary(summary, store)
        outcome = "failed" if failure else "interrupted" if summary.interrupted else "completed"
        try:
            _record_end(store, run_dir, scan_id, summary, outcome)
        except RunFolderError as exc:
            failure = failure or exc
        if failure:
            raise failure
    return summary
