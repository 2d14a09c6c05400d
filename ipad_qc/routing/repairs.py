"""The ``repairs`` table in a run folder's ``results.sqlite``: one row per image and routed class.

Kept in its own table (created here, next to ``results``) so the scan's CSV contract and
``RESULT_COLUMNS`` stay untouched. An image's rows are replaced in one transaction when it is
routed again, so the table always describes the repaired file that is on disk. ``fingerprint``
(policy settings for that image) and ``content_hash`` (the original's bytes) decide whether a
re-run can skip the image.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ipad_qc.names import printable
from ipad_qc.runfolder import UnsafePathError, inside, writing
from ipad_qc.store import DB_NAME, StoreError

STATUSES = ("ok", "failed", "declined", "skipped")

_REPAIRS_TABLE = f"""
CREATE TABLE IF NOT EXISTS repairs (
    path TEXT NOT NULL,
    artifact TEXT NOT NULL,
    step INTEGER NOT NULL,
    hook TEXT NOT NULL,
    hook_version TEXT,
    status TEXT NOT NULL CHECK (status IN ({', '.join(repr(s) for s in STATUSES)})),
    error TEXT,
    duration_ms REAL,
    output_path TEXT,
    content_hash TEXT,
    fingerprint TEXT,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (path, artifact)
)"""


@dataclass
class RepairRecord:
    """One hook run (or sort) on one image, as stored."""

    path: str
    artifact: str
    step: int
    hook: str
    status: str
    finished_at: str
    hook_version: str | None = None
    error: str | None = None
    duration_ms: float | None = None
    output_path: str | None = None
    content_hash: str | None = None
    fingerprint: str | None = None


def _output_exists(run_dir: Path, relpath: str) -> bool:
    try:
        return inside(run_dir, relpath).exists()
    except UnsafePathError:  # a tampered row: not a finished repair, so it is redone
        return False


class RepairStore:
    """Read and write the ``repairs`` table of a run folder (its own connection, WAL like the scan's)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._db = sqlite3.connect(self.run_dir / DB_NAME)
        self._db.row_factory = sqlite3.Row
        try:
            with self._writing("opening the repairs table"):
                self._db.execute("PRAGMA journal_mode=WAL")
                with self._db:
                    self._db.execute(_REPAIRS_TABLE)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{printable(self.run_dir / DB_NAME)}: cannot hold the repairs table ({exc})") from None
        except BaseException:
            self._db.close()
            raise

    def _writing(self, what: str) -> AbstractContextManager[None]:
        """A full disk or a read-only folder is one :class:`~ipad_qc.runfolder.RunFolderError`."""
        return writing(self.run_dir, f"{DB_NAME}, {what}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RepairStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def replace(self, path: str, records: Iterable[RepairRecord]) -> None:
        """Make ``records`` the only rows of ``path`` (one transaction)."""
        rows = [asdict(record) for record in records]
        with self._writing("repair rows"), self._db:
            self._db.execute("DELETE FROM repairs WHERE path = ?", (path,))
            if rows:
                names = list(rows[0])
                self._db.executemany(f"INSERT INTO repairs ({', '.join(names)}) VALUES "
                                     f"({', '.join('?' * len(names))})", [tuple(r.values()) for r in rows])

    def for_path(self, path: str) -> list[dict[str, Any]]:
        cursor = self._db.execute("SELECT * FROM repairs WHERE path = ? ORDER BY step", (path,))
        return [dict(row) for row in cursor]

    def is_finished(self, path: str, content_hash: str | None, fingerprint: str, run_dir: Path) -> bool:
        """True when every step of ``path`` succeeded or declined with these settings and its output exists."""
        rows = self.for_path(path)
        return bool(rows) and all(
            row["status"] in ("ok", "declined") and row["fingerprint"] == fingerprint
            and row["content_hash"] == content_hash
            and (not row["output_path"] or _output_exists(run_dir, row["output_path"]))
            for row in rows
        )

    def rows(self) -> Iterator[dict[str, Any]]:
        """All rows, sorted by path and step."""
        with closing(self._db.execute("SELECT * FROM repairs ORDER BY path, step")) as cursor:
            for row in cursor:
                yield dict(row)

