"""Opening inputs safely: only regular files are read, and nothing blocks on a FIFO or a device.

A scanned folder can hold anything with an image's name: a FIFO, a link to ``/dev/zero``, a socket.
Opening a FIFO for reading blocks until a writer appears (forever, in practice), and a device never
ends, so every input is opened without blocking and checked on the open descriptor (no race between
the check and the read) before a byte is read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_CHUNK = 1 << 20


class NotRegularFileError(OSError):
    """The path exists but is not a regular file; ``str()`` says what it is instead, ``info`` is its stat."""

    def __init__(self, info: os.stat_result) -> None:
        super().__init__(f"{kind_of(info.st_mode)}, not an image file")
        self.info = info


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words (``a FIFO (named pipe)``, ``a character device`` ...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@contextmanager
def open_regular(path: str | os.PathLike[str]) -> Iterator[tuple[int, os.stat_result]]:
    """Open ``path`` read-only without blocking; yields ``(fd, fstat)`` of a regular file.

    Raises :class:`NotRegularFileError` for FIFOs, devices, sockets and folders (symbolic links are
    followed: a link to ``/dev/zero`` is a character device), ``OSError`` when it cannot be opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(info)
        yield fd, info
    finally:
        os.close(fd)


def hash_fd(fd: int) -> str:
    """BLAKE2b of an open file's bytes from its start: identifies content independent of name and times."""
    digest = hashlib.blake2b(digest_size=16)
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    """:func:`hash_fd` of the regular file at ``path`` (raises for FIFOs and devices instead of hanging)."""
    with open_regular(path) as (fd, _):
        return hash_fd(fd)
