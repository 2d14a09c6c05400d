"""One file's work in a decode worker: check it is a regular file, hash it, decode it within budget.

Decode workers are processes (a decoder library that crashes takes only its worker down). They
ignore Ctrl-C, which is the main process's business, and they exit on their own as soon as the
scanning process is gone, even after ``kill -9``. Nothing else would end them: a fork server's
workers hold the fork server's "alive" pipe and their own job queue open, so after the scanning
process dies they and the fork server wait for each other forever, ~170 MB each.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext

from ipad_qc.io import DecodedImage, DecodeError, DecodeHint, load_image
from ipad_qc.io.budget import DEFAULT_MAX_PIXELS, largest_plausible_file
from ipad_qc.io.files import NotRegularFileError, hash_fd, open_regular
from ipad_qc.io.loader import check_budget
from ipad_qc.scanning.resources import keep_freed_memory

DECODER_CRASHED = "the decoder crashed on this file (worker process died)"


@dataclass(frozen=True)
class DecodeJob:
    """One file to decode; ``known_hash`` lets a touched-but-identical file be recognised cheaply."""

    path: str
    relpath: str
    hint: DecodeHint
    raw_mode: str
    allow_partial: bool
    known_hash: str | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS


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


def _read_identity(job: DecodeJob, outcome: DecodeOutcome) -> bool:
    """Fill in size, mtime and content hash; False (with ``outcome.error``) when the file is not
    worth reading: not a regular file, unreadable, or larger than any image within the budget."""
    try:
        with open_regular(job.path) as (fd, info):
            outcome.file_size, outcome.file_mtime_ns = info.st_size, info.st_mtime_ns
            largest = largest_plausible_file(job.max_pixels)
            if largest is not None and info.st_size > largest:
                outcome.error = (f"file is {info.st_size / 2**30:,.1f} GB, larger than any image within the "
                                 f"{job.max_pixels / 1e6:g} MP limit can be (--max-megapixels); not read")
                return False
            check_budget(job.path, job.max_pixels)
            outcome.content_hash = hash_fd(fd)
    except DecodeError as exc:  # the header already fails the budget: not worth a pass over the bytes
        outcome.error = exc.reason
        return False
    except NotRegularFileError as exc:  # a FIFO or device: its size and time let re-scans skip the row
        outcome.file_size, outcome.file_mtime_ns = exc.info.st_size, exc.info.st_mtime_ns
        outcome.error = f"is {exc}"
        return False
    except OSError as exc:
        outcome.error = f"cannot read file: {exc.strerror or exc}"
        return False
    return True


def decode_job(job: DecodeJob) -> DecodeOutcome:
    """Hash and decode one file. Never raises for a bad file: the failure becomes ``error``."""
    start = time.perf_counter()
    outcome = DecodeOutcome(job)
    if not _read_identity(job, outcome):
        return outcome
    if job.known_hash is not None and job.known_hash == outcome.content_hash:
        outcome.unchanged = True
        return outcome
    try:
        outcome.image = load_image(job.path, job.hint, raw_mode=job.raw_mode, allow_partial=job.allow_partial,
                                   max_pixels=job.max_pixels)
    except DecodeError as exc:
        outcome.error = exc.reason
    except MemoryError:
        outcome.error = "not enough memory to decode this file"
    except Exception as exc:  # a decoder library bug must fail this file, not the scan
        outcome.error = f"decoder failed: {type(exc).__name__}: {exc}"
    outcome.decode_ms = (time.perf_counter() - start) * 1000.0
    return outcome


_LIFELINE: tuple[Connection, Connection] | None = None


def _lifeline(context: BaseContext) -> Connection:
    """The read end of a pipe whose only write end this process holds until it exits.

    A worker that reads EOF from it knows the scanning process is gone, however it died: the kernel
    closes a dead process's descriptors at once, even while it is a zombie nobody has reaped yet
    (``kill -9`` from a parent that waits on the scan's output would otherwise deadlock with the workers).
    """
    global _LIFELINE
    if _LIFELINE is None:
        _LIFELINE = context.Pipe(duplex=False)
    return _LIFELINE[0]


def _exit_with_scan(lifeline: Connection) -> None:
    """Worker thread: wait for EOF on the lifeline, then end the process."""
    with contextlib.suppress(EOFError, OSError):
        while True:
            lifeline.recv()
    os._exit(1)


def _init_worker(lifeline: Connection) -> None:
    """Workers leave Ctrl-C to the main process, decode with one thread each (the pool is the
    parallelism: see :mod:`ipad_qc.scanning.resources`), reuse freed memory, keep OpenCV's own error
    log off the terminal (errors become rows), and die with the scan."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2
    import tifffile

    cv2.setNumThreads(1)
    tifffile.TIFF.MAXWORKERS = 1
    keep_freed_memory()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    threading.Thread(target=_exit_with_scan, args=(lifeline,), name="ipad-qc-lifeline", daemon=True).start()


def decode_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of decode workers started by a fork server (spawn where there is none).

    Never plain ``fork``: the scanning process has OpenCV's and PyTorch's thread pools running, and a
    child forked from a multi-threaded process can deadlock on a lock some other thread held.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(_lifeline(context),))


def stop_pool(pool: ProcessPoolExecutor, kill: bool = False) -> None:
    """Shut the pool down without waiting; ``kill`` also ends workers still busy (Ctrl-C, a failed run
    folder), so the scan stops now rather than after the slowest decode in flight."""
    workers = list((getattr(pool, "_processes", None) or {}).values()) if kill else []
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.kill()
