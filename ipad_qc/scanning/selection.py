"""What one scan covers in its run folder: the folder rows are relative to, the files it selects,
the rows it may remove, and the files that need work.

A run folder belongs to one scanned folder (its ``root``). A later scan of that folder, of one of
its sub-folders or of a single file inside it is a *selection* within it: rows are keyed by the
path relative to the run folder's root either way, and rows of files the selection did not cover
(other sub-folders, files left out by ``--include``/``--exclude``, folders that could not be read)
stay. A row is removed only when its file is gone from disk under that root, or when ``--prune``
asks for the rows outside the selection to go. Scanning an unrelated folder into a run folder
would mix the two, so it needs ``--prune`` (which replaces the old rows).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ipad_qc.io import DecodeHint
from ipad_qc.names import printable
from ipad_qc.runfolder import UnsafePathError, original
from ipad_qc.scanning.jobs import DecodeJob
from ipad_qc.scanning.types import ScanError, ScanOptions
from ipad_qc.store import StoredFile
from ipad_qc.walker import FoundFile


@dataclass(frozen=True)
class Selection:
    """``base``: the folder row paths are relative to; ``prefix``: where the scanned ROOT lies in it;
    ``replaces``: the run folder held another folder's rows, which ``--prune`` replaces."""

    base: Path
    prefix: str = ""
    replaces: bool = False


def select(root: Path, run_dir: Path, base: Path | None, prune: bool) -> Selection:
    """Place ``root`` (a folder or a file) inside ``base``, the run folder's scanned folder, or refuse."""
    target = root.resolve()
    folder = target if target.is_dir() else target.parent
    if base is not None:
        if folder.is_relative_to(base):
            inner = folder.relative_to(base).as_posix()
            return Selection(base, "" if inner == "." else inner + "/")
        if not prune:
            raise ScanError(f"{printable(run_dir)} holds the results of {printable(base)}, not of "
                            f"{printable(folder)}: scanning it there would mix the two. Use another --out, or add "
                            "--prune to replace the run folder's rows with this folder's")
        return Selection(folder, replaces=True)
    return Selection(folder)


def _gone(base: Path, relpath: str) -> bool:
    """True only when the file is certainly not there: a folder that cannot be read proves nothing."""
    try:
        os.lstat(original(base, relpath))
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, UnsafePathError):
        return False
    return False


def rows_to_remove(known: Iterable[str], selected: set[str], selection: Selection,
                   prune: bool) -> tuple[list[str], int]:
    """Rows this scan removes (files gone from disk; with ``prune``, every row outside the selection,
    and every row of a folder it replaces), and how many rows outside the selection it keeps."""
    if selection.replaces:
        return list(known), 0
    outside = [path for path in known if path not in selected]
    if prune:
        return outside, 0
    gone = [path for path in outside if _gone(selection.base, path)]
    return gone, len(outside) - len(gone)


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
                              known_hash, options.max_pixels))
    return jobs, skipped
