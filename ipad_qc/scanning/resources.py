"""How a scan shares the machine: decode workers, detector threads, and the memory allocator.

**Cores.** Decode workers and the detector's threads never outnumber the cores a scan may use:
by default the detector process keeps one core and every other core gets a decode worker;
``--workers N`` gives the detector the cores the workers leave (``cores - N``, at least one).
Oversubscribed, each stage slows down more than the overlap gains: decoding a 12 MP JPEG took
2.5x longer with two workers and the detector on two cores. The detector's share is applied to
OpenCV and, when the detector uses them, PyTorch and scipy.fft, for the scan's duration only; each
decode worker runs one thread.

**Allocator.** A detector makes large temporary arrays (FFT tiles, float copies of the image) on
every image. glibc's malloc hands such blocks back to the kernel when they are freed and faults
fresh zeroed pages in for the next image: 17,000 page faults and ~100 ms of system time per 12 MP
image. :func:`keep_freed_memory` raises its thresholds, so freed blocks up to 32 MB are reused and
up to 256 MB of freed memory stays with the process; blocks above 32 MB (a 100-megapixel decode, a
full-size mask) are still mapped and unmapped on their own, so large images do not pin memory.
PyTorch's large tensors, above that limit too, are put on 2 MB pages, faulted in 512 times less often.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap and are reused; larger ones are mapped and unmapped.
MMAP_THRESHOLD = 32 * 2**20
#: Freed memory the heap keeps before returning any to the kernel.
TRIM_THRESHOLD = 256 * 2**20


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def share_cores(workers: int | None, cores: int | None = None) -> tuple[int, int]:
    """(decode workers, detector threads) for a ``--workers`` value (``None``: the default).

    Default: one core for the detector, one worker on each other core (at least one worker, which
    keeps a crashing decoder from taking the scan down). ``workers=0`` decodes in the detector's
    process, which then has every core.
    """
    cores = cores or usable_cores()
    count = max(1, cores - 1) if workers is None else max(0, workers)
    return count, max(1, cores - count)


@contextlib.contextmanager
def detector_threads(threads: int) -> Iterator[None]:
    """Limit OpenCV's and, when loaded, PyTorch's thread pools in this process to ``threads`` for
    the duration of the block, then restore them; scipy.fft's default worker count (of the calling
    thread, the one that detects) is set to the same. PyTorch and SciPy are never imported here: a
    detector that does not use them does not pay for loading them."""
    import cv2

    torch, fft = sys.modules.get("torch"), sys.modules.get("scipy.fft")
    saved_cv2 = cv2.getNumThreads()
    saved_torch = torch.get_num_threads() if torch is not None else None
    cv2.setNumThreads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with fft.set_workers(threads) if fft is not None else contextlib.nullcontext():
            yield
    finally:
        cv2.setNumThreads(saved_cv2)
        if torch is not None and saved_torch is not None:
            torch.set_num_threads(saved_torch)


def keep_freed_memory() -> bool:
    """Set glibc malloc's thresholds for a process that allocates and frees the same large arrays
    on every image (see the module docstring), and put PyTorch's CPU tensors of 2 MB and more on
    transparent huge pages (``THP_MEM_ALLOC_ENABLE``, read when PyTorch first allocates one): a
    network's activations above malloc's 32 MB limit are still mapped afresh per batch, but in 2 MB
    pages, 40 times fewer faults (ipad-net at 768 px: 50,000 -> 1,300 per image, half its system
    time). Returns False where the C library is not glibc.

    The settings last for the process (malloc has no way to ask for its old values); they only
    change when freed memory is returned, never what a program can allocate.
    """
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
