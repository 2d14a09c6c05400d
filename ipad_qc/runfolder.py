"""The run folder as a place to write safely: one writer at a time, files only inside, never half a file.

Every command that writes a run folder (``scan``, ``route``, ``report``) holds its lock, so two scans
into one ``--out`` cannot interleave rows and files. Every path read back from a run folder's
database (a row's ``path``, ``mask_path``, ``map_path``, a repair's ``output_path``) is data someone
may have edited (a CI artifact handed over, a tampered ``results.sqlite``), so it is resolved through
:func:`inside`, which refuses absolute paths, ``..`` and symbolic links that lead out. Files are
written through :func:`atomic_write`: a temporary name unique to the writer, renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ipad_qc.names import printable, undecodable_name

#: Exit code of every command when the run folder could not be written (full, read-only, in use).
EXIT_RUN_FOLDER = 4
LOCK_NAME = ".ipad-qc.lock"
_TEMPORARY = re.compile(r"\.[0-9a-f]{12}\.tmp")  # the names atomic_write gives its temporary files
# errno values that say the run folder as a whole cannot take writes, not that one name is bad.
_FOLDER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                            errno.EIO})

try:  # POSIX advisory locks; elsewhere the lock is a no-op (documented in the README)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class RunFolderError(Exception):
    """The run folder cannot be written: full, read-only, or in use by another ipad-qc process.

    Rows committed before the failure stay; running the same command again resumes.
    """


class UnsafePathError(ValueError):
    """A path read from a run folder would lead outside the folder it must stay in."""


def is_folder_failure(exc: BaseException) -> bool:
    """True for errors that mean the run folder cannot take writes at all (disk full, read-only)."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(word in text for word in ("disk is full", "readonly", "read-only", "disk i/o", "unable to open"))
    return isinstance(exc, OSError) and exc.errno in _FOLDER_ERRNOS


def folder_error(run_dir: Path, exc: BaseException, what: str) -> RunFolderError:
    """A one-line :class:`RunFolderError` naming the run folder, what was being written and why."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return RunFolderError(f"cannot write the run folder {printable(run_dir)} ({what}: {printable(reason)}); "
                          "rows committed so far are kept: fix that and run the same command again")


def stop_if_folder_failed(run_dir: Path, exc: BaseException, what: str) -> None:
    """Raise :func:`folder_error` when ``exc`` says the run folder cannot take writes; else return, so
    the caller handles a failure of one file its own way."""
    if is_folder_failure(exc):
        raise folder_error(run_dir, exc, what) from None


@contextmanager
def writing(run_dir: Path, what: str) -> Iterator[None]:
    """Writes to the run folder inside this block that fail for the whole folder raise :class:`RunFolderError`."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:
        stop_if_folder_failed(run_dir, exc, what)
        raise


@contextmanager
def lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the run folder's lock (creating the folder) for one writing command, or refuse at once.

    A second writer gets :class:`RunFolderError` naming the process that holds the lock. The lock is
    an advisory ``flock`` on ``.ipad-qc.lock``: the kernel drops it when its holder dies, even by
    ``kill -9``, so a crashed scan never leaves the folder locked; the temporary files such a
    writer left behind are swept when the next one takes the lock.
    """
    folder = Path(run_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_NAME, "a+", encoding="ascii")  # noqa: SIM115 (held across the yield)
    except OSError as exc:
        raise folder_error(folder, exc, "creating the folder and its lock file") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise RunFolderError(f"{printable(folder)} is in use by another ipad-qc process (pid {holder}); "
                                     "wait for it to finish, or use another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        sweep_temporaries(folder)
        yield folder
    finally:
        handle.close()


def sweep_temporaries(folder: Path) -> int:
    """Remove temporary files a writer killed mid-write left behind; returns how many.

    Called with the lock held, so no live writer owns them. Only names :func:`atomic_write` makes
    are touched.
    """
    removed = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            if _TEMPORARY.fullmatch(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(parent, name))
                    removed += 1
    return removed


def _parts(relpath: object) -> list[str]:
    """The ``/``-separated parts of a relative path; absolute paths and ``..`` are refused (on Windows
    also with backslashes and drive letters, which it reads as separators and roots)."""
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath:
        raise UnsafePathError(f"not a relative path: {printable(relpath)!r}")
    seen = relpath.replace("\\", "/") if os.name == "nt" else relpath
    if seen.startswith("/") or ".." in seen.split("/") or (os.name == "nt" and seen[1:2] == ":"):
        raise UnsafePathError(f"path leaves its folder: {printable(relpath)!r}")
    return [part for part in seen.split("/") if part not in ("", ".")]


def inside(base: Path, relpath: object, under: str | None = None) -> Path:
    """``base / relpath`` for a relative path read from a run folder, guaranteed to stay in ``base``.

    Refuses absolute paths, ``..`` components and (as far as they exist) symbolic links that lead
    out of ``base``; ``under`` is the sub-folder the path must begin with (``masks``, ``sorted``).
    Raises :class:`UnsafePathError`.
    """
    parts = _parts(relpath)
    if not parts or (under is not None and parts[0] != under):
        raise UnsafePathError(f"path is not under {under or 'its folder'}/: {printable(relpath)!r}")
    target = base.joinpath(*parts)
    root = base.resolve()
    if not target.resolve().is_relative_to(root):
        raise UnsafePathError(f"path leads out of {printable(base)} through a symbolic link: {printable(relpath)!r}")
    return target


def original(root: Path, relpath: object) -> Path:
    """The original file a row's ``path`` names under the scanned ``root``.

    The path must be relative and free of ``..`` (a tampered row cannot name a file elsewhere);
    symbolic links inside the scanned folder are followed, as the scan followed them. A key with
    ``\\xNN`` escapes (a name that was not UTF-8) leads to the file with those bytes.
    """
    target = root.joinpath(*_parts(relpath))
    if not os.path.lexists(target):
        name = undecodable_name(str(relpath))
        if name is not None:
            return root.joinpath(*_parts(name))
    return target


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name, creating folders: readers never see half a file.

    The temporary name is random and short (``.<12 hex>.tmp``): unique to each writer, so two threads
    writing the same content-named file cannot collide, and it fits beside a name of 255 bytes. On
    failure the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
