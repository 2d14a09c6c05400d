"""The local engine: decode in a window of worker processes while this process detects in batches.

A bounded window of decode jobs stays in flight in a process pool while the main process runs the
detector on the previous batch, so decoding and detection overlap and memory stays bounded whatever
the number of files. Finished files go to a :class:`~ipad_qc.scanning.writer.ResultWriter`, which
commits once per batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from ipad_qc.detectors.base import Detection, Detector
from ipad_qc.detectors.registry import get_detector
from ipad_qc.io import DecodedImage
from ipad_qc.scanning.jobs import DECODER_CRASHED, DecodeJob, DecodeOutcome, decode_job, decode_pool, stop_pool
from ipad_qc.scanning.resources import detector_threads, keep_freed_memory, share_cores
from ipad_qc.scanning.types import DetectorSetup, ScanError, ScanListener, ScanOptions, ScanSummary
from ipad_qc.scanning.writer import Finished, ResultWriter
from ipad_qc.store import ResultStore


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


def make_detector(options: ScanOptions) -> Detector:
    """The detector ``options`` name; options it cannot take are a :class:`ScanError` (exit code 2)."""
    try:
        return get_detector(options.detector, device=options.device, **options.detector_options)
    except (TypeError, ValueError) as exc:
        given = ", ".join(f"{key}={value!r}" for key, value in options.detector_options.items()) or "no options"
        raise ScanError(f"--detector {options.detector} cannot be made with {given}: {exc}") from None


class LocalPipeline:
    """Runs decode jobs through a local process pool and detection batches through the detector."""

    def __init__(self, detector: Detector, store: ResultStore, settings_hash: str, options: ScanOptions,
                 listener: ScanListener, summary: ScanSummary,
                 decode: Callable[[DecodeJob], DecodeOutcome] = decode_job) -> None:
        self.decode = decode
        self.detector = detector
        self.options = options
        self.writer = ResultWriter(store, detector.name, settings_hash, options, listener, summary)
        self.workers, self.threads = share_cores(options.workers)
        self.window = max(2, self.workers * 2) + options.batch_size
        self.images: list[DecodeOutcome] = []
        self.failures: list[DecodeOutcome] = []

    # decode side
    def run(self, jobs: list[DecodeJob]) -> None:
        keep_freed_memory()
        try:
            with detector_threads(self.threads):
                self._run(jobs)
        finally:
            self.writer.close()

    def _run(self, jobs: list[DecodeJob]) -> None:
        if self.workers == 0:
            for job in jobs:
                self._accept(self.decode(job))
        else:
            self._run_pool(jobs)
        self._flush()

    def _run_pool(self, jobs: list[DecodeJob]) -> None:
        pending = deque(jobs)
        in_flight: deque[tuple[DecodeJob, Future[DecodeOutcome]]] = deque()
        pool = decode_pool(self.workers)
        finished = False
        try:
            while pending or in_flight:
                while pending and len(in_flight) < self.window:
                    job = pending.popleft()
                    in_flight.append((job, pool.submit(self.decode, job)))
                job, future = in_flight[0]
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    stop_pool(pool)
                    pool = self._isolate_crash([job for job, _ in in_flight])
                    in_flight.clear()
                    continue
                in_flight.popleft()
                self._accept(outcome)
            finished = True
        finally:
            stop_pool(pool, kill=not finished)

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
                stop_pool(pool)
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


class ScanEngine(Protocol):
    """Where decoding and detection run. Walking, planning, the scan history and the exports are the
    same for every engine (see :func:`ipad_qc.scanner.scan`): an engine only turns planned jobs into
    committed rows, through a :class:`ResultWriter`, so every engine writes the same run folder."""

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
            keep_freed_memory()  # before the detector allocates: PyTorch reads its page setting once
            self.detector = make_detector(options)
        return DetectorSetup.of(self.detector, options)

    def run(self, jobs: list[DecodeJob], store: ResultStore, settings_hash: str, listener: ScanListener,
            summary: ScanSummary) -> None:
        LocalPipeline(self.detector, store, settings_hash, self.options, listener, summary).run(jobs)
