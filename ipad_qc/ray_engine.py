"""``--engine ray``: the same scan, with decoding and detection spread over a Ray cluster.

The driver (the machine running ``ipad-qc scan``) walks and plans exactly as the local engine does,
then streams the planned jobs through Ray Data::

    jobs ──► decode tasks (CPU workers) ──► detect actors (model loaded once; one GPU each) ──► driver

Ray Data's streaming executor applies back-pressure between the stages, so only a bounded number of
decoded images exist at any time, whatever the number of files. The driver writes masks, maps,
thumbnails and rows through the scanner's :class:`~ipad_qc.scanning.writer.ResultWriter`, committing once
per batch, so the run folder is identical to a local scan's and a killed driver resumes the same way.
Workers only need to *read* the inputs: the run folder is only guaranteed to exist on the driver.

Failures: a decode or detect worker that dies is retried by Ray (its block's rows are only emitted
by the attempt that succeeds, so nothing is lost or duplicated). Files of a block that failed on
every retry are run again one file per block, so only a file that really kills the worker ends as
an error row, as with the local engine's process pool.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from ipad_qc.scanner import (
    DecodeJob,
    DecodeOutcome,
    DetectorSetup,
    Finished,
    ResultWriter,
    ScanError,
    ScanListener,
    ScanOptions,
    ScanSummary,
    decode_job,
    detect_batch,
)
from ipad_qc.scanning.pipeline import make_detector
from ipad_qc.store import ResultStore

RAY_MISSING = "--engine ray needs Ray, which is not installed: pip install 'ipad-qc[ray]'"
#: How often Ray re-runs a decode task or detect call whose worker died before the block counts as failed
#: (Ray Data's default is forever, which would hang a scan on a file that always crashes its decoder).
RETRIES = 3
WORKER_DIED = f"a Ray worker died on this file {RETRIES + 1} times (decoder or detector crash; see the Ray logs)"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (Ray core without the [data] extra lacks it)
    except ImportError:
        raise ScanError(RAY_MISSING) from None
    return ray


# --- what travels between driver, tasks and actors --------------------------------------------
# Rows carry our own objects pickled into one binary column: Arrow stores bytes natively, so Ray
# neither guesses a schema for nested dataclasses nor warns about falling back to pickling itself.


def _pack(values: list[Any]) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = [pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) for value in values]
    return column


def _unpack(column: np.ndarray) -> list[Any]:
    return [pickle.loads(data) for data in column]


def _describe(options: ScanOptions) -> DetectorSetup:
    """Ray task: build the detector where the actors will, so a detector that cannot be made on the
    cluster (not installed there, registered only in the driver, no weights) fails before any file is read."""
    return DetectorSetup.of(make_detector(options), options)


def _decode_batch(batch: dict[str, np.ndarray], decode: Callable[[DecodeJob], DecodeOutcome]) -> dict[str, Any]:
    """Ray task on a CPU worker: decode a block of jobs. A bad file becomes an error outcome, never an exception."""
    import cv2

    cv2.setNumThreads(1)  # one task per CPU: OpenCV must not oversubscribe the node
    return {"outcome": _pack([decode(job) for job in _unpack(batch["job"])])}


class _DetectActor:
    """Ray actor: builds the detector once (the expensive part with a large model), then detects batches."""

    def __init__(self, options: ScanOptions) -> None:
        self.detector = make_detector(options)
        self.keep_pixels = options.write_thumbnails

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        outcomes: list[DecodeOutcome] = _unpack(batch["outcome"])
        decoded = [outcome for outcome in outcomes if outcome.image is not None]
        results, detect_ms = detect_batch(self.detector, [outcome.image for outcome in decoded]) if decoded else ([], 0)
        by_path = {outcome.job.relpath: result for outcome, result in zip(decoded, results, strict=True)}
        finished = [Finished(self._compact(outcome), by_path[outcome.job.relpath], detect_ms)
                    if outcome.image is not None else Finished(outcome) for outcome in outcomes]
        return {"finished": _pack(finished)}

    def _compact(self, outcome: DecodeOutcome) -> DecodeOutcome:
        """The driver needs the pixels only for report thumbnails; without them, send just the metadata."""
        if self.keep_pixels:
            return outcome
        return replace(outcome, image=replace(outcome.image, pixels=np.empty((0, 0, 3), np.uint8)))


@contextmanager
def _data_context(**settings: Any) -> Iterator[None]:
    """Ray Data reads its settings from a process-wide context: set ours for this scan, restore after.

    Ray Data's INFO/WARNING lines (execution plans, "progress bars disabled") are silenced too, as they
    would break the scan's own progress bar; errors, such as a worker that died, still show.
    """
    from ray.data import DataContext

    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    context = DataContext.get_current()
    settings = {name: value for name, value in settings.items() if hasattr(context, name)}  # older Ray lacks some
    saved = {name: getattr(context, name) for name in settings}
    for name, value in settings.items():
        setattr(context, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        data_logger.setLevel(level)


class RayEngine:
    """Run a scan's decoding and detection on a Ray cluster (see the module docstring).

    ``address`` is passed to ``ray.init`` (``"auto"``, ``"ray://head:10001"``, ...); without it a
    local Ray instance is started, unless this process is already connected. ``actors`` is the most
    detect actors to run: by default one per GPU of the cluster, or one on a cluster without GPUs.
    ``decode`` stands in for the decoder (tests use it to crash workers).
    """

    def __init__(self, address: str | None = None, actors: int | None = None,
                 decode: Callable[[DecodeJob], DecodeOutcome] = decode_job) -> None:
        self.ray = _import_ray()
        if actors is not None and actors < 1:
            raise ScanError("--ray-actors must be at least 1")
        self.address = address
        self.actors = actors
        self.decode = decode
        self.options = ScanOptions()
        self.setup: DetectorSetup | None = None
        self.gpus_per_actor = 0

    # --- ScanEngine -----------------------------------------------------------------------------
    def prepare(self, options: ScanOptions) -> DetectorSetup:
        self.options = options
        self._connect()
        self.gpus_per_actor = self._gpus_per_actor(options.device)
        describe = self.ray.remote(num_gpus=self.gpus_per_actor, max_retries=RETRIES)(_describe)
        try:
            self.setup = self.ray.get(describe.remote(options))
        except self.ray.exceptions.RayTaskError as exc:
            raise exc.cause from None  # the detector's own one-line error, not a remote traceback
        return self.setup

    def run(self, jobs: list[DecodeJob], store: ResultStore, settings_hash: str, listener: ScanListener,
            summary: ScanSummary) -> None:
        writer = ResultWriter(store, self.setup.name, settings_hash, self.options, listener, summary)
        try:
            failed = self._stream(jobs, writer, jobs_per_block=self.options.batch_size)
            if failed:  # find the file that kills the worker: alone in its block, only it fails
                failed = self._stream(failed, writer, jobs_per_block=1)
            writer.commit([Finished(DecodeOutcome(job, error=WORKER_DIED)) for job in failed])
        finally:
            writer.close()

    # --- internals ------------------------------------------------------------------------------
    def _connect(self) -> None:
        """Join ``address``, or start Ray here; a process already connected (a notebook, tests) stays so."""
        if self.ray.is_initialized():
            return
        try:
            self.ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise ScanError(f"cannot connect to the Ray cluster at {self.address}: {exc}") from None

    def _gpus_per_actor(self, device: str) -> int:
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if device.startswith("cuda") and not gpus:
            raise ScanError(f"--device {device} was requested but the Ray cluster has no GPU; use --device auto or cpu")
        return 1 if gpus and device != "cpu" else 0

    def _actor_count(self) -> int:
        if self.actors is not None:
            return self.actors
        return max(1, int(self.ray.cluster_resources().get("GPU", 0))) if self.gpus_per_actor else 1

    def _dataset(self, jobs: list[DecodeJob], jobs_per_block: int) -> Any:
        """jobs → decode tasks → detect actors, as a lazy Ray dataset of finished files."""
        data = self.ray.data
        items = [{"job": job} for job in _pack(jobs)]
        with warnings.catch_warnings():
            # Recent Ray deprecates the retry caps passed as remote args but offers no named parameter yet.
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            return (
                data.from_items(items, override_num_blocks=-(-len(jobs) // jobs_per_block))
                .map_batches(_decode_batch, fn_kwargs={"decode": self.decode}, batch_size=None,
                             batch_format="numpy", num_cpus=1, max_retries=RETRIES)
                .map_batches(_DetectActor, fn_constructor_kwargs={"options": self.options},
                             batch_size=self.options.batch_size, batch_format="numpy",
                             compute=data.ActorPoolStrategy(min_size=1, max_size=self._actor_count()),
                             num_cpus=1, num_gpus=self.gpus_per_actor, max_task_retries=RETRIES)
            )

    def _stream(self, jobs: list[DecodeJob], writer: ResultWriter, jobs_per_block: int) -> list[DecodeJob]:
        """Stream ``jobs`` through the cluster, committing per batch; returns the jobs whose block failed."""
        if not jobs:
            return []
        done: set[str] = set()
        with _data_context(max_errored_blocks=-1, enable_progress_bars=False, print_on_execution_start=False):
            batches = self._dataset(jobs, jobs_per_block).iter_batches(
                batch_size=self.options.batch_size, batch_format="numpy")
            for batch in batches:
                finished: list[Finished] = _unpack(batch["finished"])
                for item in finished:
                    if item.outcome.unchanged:
                        writer.unchanged(item.outcome)
                writer.commit([item for item in finished if not item.outcome.unchanged])
                done.update(item.outcome.job.relpath for item in finished)
        return [job for job in jobs if job.relpath not in done]
