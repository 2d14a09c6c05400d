"""Find the image files under a folder: recursive, deterministic, and safe on odd trees.

Order is the sorted relative POSIX path, so two scans of the same tree list files identically
whatever the file system returns. Directory symlinks are followed once per real directory, so
loops and duplicate mounts cannot make the walk endless or list a file twice. Folders that hold a
``results.sqlite`` are ipad-qc run folders (an old ``--out`` inside the tree): their masks and maps
are not photos, so they are not entered. Relative paths are :func:`ipad_qc.names.storable`: a name
that is not UTF-8 gets ``\\xNN`` escapes and is still scanned.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ipad_qc.io import is_image_path
from ipad_qc.names import storable
from ipad_qc.store import DB_NAME


@dataclass(frozen=True)
class FoundFile:
    """An image file: its absolute path and its path relative to the scanned root (POSIX)."""

    path: Path
    relpath: str


@dataclass
class WalkResult:
    """Images to scan, plus what the summary reports about everything else."""

    files: list[FoundFile] = field(default_factory=list)
    ignored: int = 0  # not images by extension (sidecars, README, JSON ...)
    excluded: int = 0  # images left out by --include/--exclude or hidden-file rules
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): unreadable folders, loops


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob with ``**`` (any number of folders), ``*``, ``?`` and ``[...]``, case-insensitive.

    A pattern without ``/`` matches the file name alone, as in ``.gitignore``: ``*.dng`` finds
    DNG files at any depth, ``raw/**/*.dng`` only under ``raw/``.
    """
    body = pattern if "/" in pattern else "**/" + pattern
    out, i = [], 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        elif body[i] == "[" and "]" in body[i + 1 :]:
            end = body.index("]", i + 1)
            chars = body[i + 1 : end]
            out.append("[" + ("^" + chars[1:] if chars.startswith("!") else chars) + "]")
            i = end + 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def check_patterns(patterns: Iterable[str], option: str) -> None:
    """Raise ``ValueError`` naming the option for a glob that cannot be compiled (``[z-a]``)."""
    for pattern in patterns:
        try:
            _glob_regex(pattern)
        except re.error as exc:
            raise ValueError(f"{option} {pattern!r} is not a valid pattern ({exc})") from None


def matches_any(relpath: str, patterns: Iterable[str]) -> bool:
    """True when the relative POSIX path matches one of the glob patterns."""
    return any(_glob_regex(p).match(relpath) for p in patterns)


@dataclass
class _Walk:
    root: Path
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    include_hidden: bool
    skip_dirs: frozenset[Path]
    prefix: str = ""
    result: WalkResult = field(default_factory=WalkResult)
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)

    def run(self) -> WalkResult:
        self.visit(self.root, "")
        self.result.files.sort(key=lambda found: found.relpath)
        unique: list[FoundFile] = []
        for found in self.result.files:
            if unique and unique[-1].relpath == found.relpath:  # a literal "\\xe9" beside a byte 0xE9
                self.result.problems.append((found.relpath, "name collides with another file's stored name; skipped"))
            else:
                unique.append(found)
        self.result.files = unique
        return self.result

    def visit(self, folder: Path, prefix: str) -> None:
        try:
            info = folder.stat()
            key = (info.st_dev, info.st_ino)
            if key in self.seen_dirs:
                self.result.problems.append((storable(prefix or "."),
                                             "symbolic link to a folder already scanned; skipped"))
                return
            self.seen_dirs.add(key)
            with os.scandir(folder) as entries:
                children = sorted(entries, key=lambda entry: entry.name)
        except OSError as exc:
            self.result.problems.append((storable(prefix or "."), f"cannot read folder: {exc.strerror or exc}"))
            return
        if prefix and any(entry.name == DB_NAME for entry in children):
            self.result.problems.append((storable(prefix), f"an ipad-qc run folder ({DB_NAME}); not scanned"))
            return
        for entry in children:
            self.visit_entry(entry, prefix + entry.name)

    def visit_entry(self, entry: os.DirEntry[str], relpath: str) -> None:
        hidden = entry.name.startswith(".") and not self.include_hidden
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            if hidden or matches_any(relpath, self.exclude) or Path(entry.path).resolve() in self.skip_dirs:
                return
            self.visit(Path(entry.path), relpath + "/")
            return
        if not is_image_path(entry.name):
            self.result.ignored += 1
        elif hidden or matches_any(relpath, self.exclude) or (
            self.include and not matches_any(relpath, self.include)
        ):
            self.result.excluded += 1
        else:
            self.result.files.append(FoundFile(Path(entry.path), storable(self.prefix + relpath)))


def walk(
    root: str | os.PathLike[str],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    include_hidden: bool = False,
    skip_dirs: Iterable[str | os.PathLike[str]] = (),
    prefix: str = "",
) -> WalkResult:
    """List the image files under ``root`` (or ``root`` itself when it is a file).

    ``include``/``exclude`` are globs on the path relative to ``root``; ``skip_dirs`` are folders
    never entered (the scanner passes its own output folder, so scanning ``.`` into ``./runs``
    does not scan its own masks). ``prefix`` is put before every relative path: the scanner passes
    it when ``root`` is a sub-folder of the folder a run folder was made for.
    """
    root_path = Path(root)
    if not root_path.is_dir():  # a single file: anything but a folder is left to the decoder to judge
        if is_image_path(root_path.name):
            return WalkResult(files=[FoundFile(root_path, storable(prefix + root_path.name))])
        return WalkResult(ignored=1)
    walker = _Walk(
        root=root_path,
        include=tuple(include),
        exclude=tuple(exclude),
        include_hidden=include_hidden,
        skip_dirs=frozenset(Path(d).resolve() for d in skip_dirs),
        prefix=prefix,
    )
    return walker.run()
