"""Finished files into the run folder: masks, maps and thumbnails, then result rows, once per batch.

Every engine hands its finished files to :class:`ResultWriter`, so rows and files are identical
whether the files were decoded and detected by local processes or on a Ray cluster.

Writing is off the scan's critical path: a batch's masks, maps and thumbnails are encoded in
background threads (OpenCV releases the GIL; ISA-L deflates a map in ~2 ms) while the engine
detects the next batch, and the batch's rows are committed when the next batch is handed over, or
at :meth:`ResultWriter.close`. One batch at most is in flight, so memory stays bounded;
:meth:`~ResultWriter.close` always settles it, so an interrupted scan still commits every file it
finished.

What a failure costs is decided here. A file the decoder or detector failed on is an error row. A
mask that cannot be written is an error row too (the mask is part of the result; ``--retry-errors``
redoes it). A probability map or report thumbnail that cannot be written is only a warning on the
finished row: the detection stands. A run folder that cannot take writes at all (disk full,
read-only) stops the scan with :class:`~ipad_qc.runfolder.RunFolderError` before more work is lost.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.detectors.base import Detection
from ipad_qc.io.types import DecodeHint
from ipad_qc.outputs import (
    THUMB_DIR,
    THUMB_SIDE,
    VIEW_SIDE,
    overlay_stem,
    write_mask,
    write_overlays,
    write_probability_map,
    write_thumbnails,
)
from ipad_qc.runfolder import stop_if_folder_failed
from ipad_qc.scanning.jobs import DecodeOutcome
from ipad_qc.scanning.types import ItemResult, ScanListener, ScanOptions, ScanSummary
from ipad_qc.store import ResultStore, utc_now

_OUTPUT_ERRORS = (OSError, cv2.error, ValueError)


@dataclass
class Finished:
    """One file at the end of the pipeline, on its way into the store.

    ``result`` is the detection, or the reason the detector failed on this image; ``None`` means
    the file never reached the detector (``outcome.error`` says why it could not be decoded).
    """

    outcome: DecodeOutcome
    result: Detection | str | None = None
    detect_ms: float | None = None


def format_from_name(relpath: str) -> str:
    """The format an error row reports for a file that never decoded: what its extension says."""
    suffix = Path(relpath).suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "jpe": "jpeg", "jfif": "jpeg", "tif": "tiff", "heic": "heif", "hif": "heif"}.get(
        suffix, suffix
    )


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or f"{type(exc).__name__}: {exc}"


class ResultWriter:
    """Turns finished files into output files (masks, maps, thumbnails) and result rows."""

    def __init__(self, store: ResultStore, detector_name: str, settings_hash: str, options: ScanOptions,
                 listener: ScanListener, summary: ScanSummary) -> None:
        self.store = store
        self.detector_name = detector_name
        self.settings_hash = settings_hash
        self.options = options
        self.listener = listener
        self.summary = summary
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ipad-qc-writer")
        self._pending: tuple[list[Finished], list[Future[dict[str, Any]]]] | None = None

    def close(self) -> None:
        """Commit the batch still in flight, then stop the threads."""
        try:
            self._settle()
        finally:
            self._threads.shutdown(wait=True)

    def unchanged(self, outcome: DecodeOutcome) -> None:
        """The content hash proved the file unchanged: keep its row, record its new size and mtime."""
        self.summary.decode_s += outcome.decode_ms / 1000.0
        self.store.update_stat(outcome.job.relpath, outcome.file_size, outcome.file_mtime_ns)
        self.summary.skipped += 1
        self.listener.advanced(ItemResult(outcome.job.relpath, "unchanged"))

    def commit(self, items: list[Finished]) -> None:
        """Start writing the batch's masks, maps and thumbnails in the background and return; first,
        commit the previous batch's rows (in one transaction) once its files are written.

        A run folder that failed while writing the previous batch raises
        :class:`~ipad_qc.runfolder.RunFolderError` here.
        """
        self._settle()
        if items:
            self._pending = (items, [self._threads.submit(self._row, item) for item in items])

    def _settle(self) -> None:
        """Wait for the batch in flight, upsert its rows in one commit, count and report them."""
        if self._pending is None:
            return
        items, futures = self._pending
        try:
            rows = [future.result() for future in futures]
        except Exception:  # the run folder failed: raised once; Ctrl-C instead leaves the batch for close()
            self._pending = None
            raise
        self.store.put_batch(rows)
        self._pending = None
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
        except _OUTPUT_ERRORS as exc:
            stop_if_folder_failed(run_dir, exc, "writing a mask")
            return self._error_row(outcome, f"cannot write the mask: {_reason(exc)}")
        warnings = list(outcome.image.meta.warnings)
        map_path = ""
        if self.options.write_maps:
            try:
                map_path = write_probability_map(run_dir, relpath, result)
            except _OUTPUT_ERRORS as exc:
                stop_if_folder_failed(run_dir, exc, "writing a probability map")
                warnings.append(f"probability map not written: {_reason(exc)}")
        if self.options.write_thumbnails:
            try:
                self._report_pictures(outcome, result, mask_path)
            except _OUTPUT_ERRORS as exc:
                stop_if_folder_failed(run_dir, exc, "writing a report thumbnail")
                warnings.append(f"report thumbnail not written: {_reason(exc)}")
        return self._ok_row(outcome, result, mask_path, map_path, item.detect_ms, warnings)

    def _report_pictures(self, outcome: DecodeOutcome, detection: Detection, mask_path: str) -> None:
        """Thumbnails from the pixels decoded for detection and, for a flagged image, the mask overlays
        from the detector's map, thresholded at the largest overlay's size as the full-size mask is at
        the original's (so they match it scaled down): the report then reads neither the original
        nor the mask."""
        folder = self.store.run_dir / THUMB_DIR
        sides = (THUMB_SIDE, VIEW_SIDE) if mask_path else (THUMB_SIDE,)
        write_thumbnails(folder, outcome.content_hash, outcome.image.pixels, sides)
        if mask_path:
            stem = overlay_stem(outcome.content_hash, self.settings_hash, detection.label)
            largest = DecodeHint(long_side=max(sides)).target_size(*detection.original_size)
            write_overlays(folder, stem, detection.mask_image(largest), detection.original_size,
                           detection.label, sides)

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
                "format": format_from_name(outcome.job.relpath)}

    def _ok_row(self, outcome: DecodeOutcome, detection: Detection, mask_path: str, map_path: str,
                detect_ms: float | None, warnings: list[str]) -> dict[str, Any]:
        meta = outcome.image.meta
        row = {**self._base_row(outcome), "status": "ok", "label": detection.label,
               "mask_fraction": round(detection.mask_fraction, 6), "mask_path": mask_path, "map_path": map_path,
               "width": meta.width, "height": meta.height, "format": meta.format, "bit_depth": meta.bit_depth,
               "decode_mode": meta.decode_mode, "warning": "; ".join(warnings) or None, "detect_ms": detect_ms}
        row.update({f"score_{name}": round(float(detection.scores[name]), 6) for name in CLASS_NAMES})
        return row

    def _count(self, row: dict[str, Any]) -> None:
        if row["status"] == "ok":
            self.summary.scanned += 1
        else:
            self.summary.failed += 1
        self.listener.advanced(ItemResult(row["path"], row["status"], row.get("label"), row.get("error")))
