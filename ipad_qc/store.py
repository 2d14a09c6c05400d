"""The results database of a run folder (``results.sqlite``): one row per input file.

SQLite in WAL mode, committed once per batch: a scan killed at any point (Ctrl-C or ``kill -9``)
keeps every committed row, and because rows are keyed by the relative path and written with an
upsert, a re-run can never duplicate one. Routing, reports and comparisons read this database;
``results.csv`` and ``results.jsonl`` are exports of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ipad_qc.names import printable, storable
from ipad_qc.runfolder import writing

SCHEMA_VERSION = 1
DB_NAME = "results.sqlite"

# Column name -> SQL type. The first columns are the CSV contract other tools rely on.
RESULT_COLUMNS: dict[str, str] = {
    "path": "TEXT PRIMARY KEY",
    "status": "TEXT NOT NULL CHECK (status IN ('ok', 'error'))",
    "error": "TEXT",
    "label": "TEXT",
    "score_clean": "REAL",
    "score_ghosting": "REAL",
    "score_flare": "REAL",
    "score_moire": "REAL",
    "mask_fraction": "REAL",
    "mask_path": "TEXT",
    "width": "INTEGER",
    "height": "INTEGER",
    "format": "TEXT",
    "detector": "TEXT",
    "warning": "TEXT",
    "map_path": "TEXT",
    "bit_depth": "INTEGER",
    "decode_mode": "TEXT",
    "settings_hash": "TEXT",
    "file_size": "INTEGER",
    "file_mtime_ns": "INTEGER",
    "content_hash": "TEXT",
    "decode_ms": "REAL",
    "detect_ms": "REAL",
    "scanned_at": "TEXT",
}

_SCANS_TABLE = """
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    root TEXT NOT NULL,
    detector TEXT NOT NULL,
    settings TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'running',
    counts TEXT
)"""


class StoreError(Exception):
    """The run folder's ``results.sqlite`` cannot be used: not a results database, or a newer schema."""


@dataclass(frozen=True)
class StoredFile:
    """What the store knows about a file, enough to decide whether a re-scan can skip it."""

    status: str
    settings_hash: str | None
    file_size: int | None
    file_mtime_ns: int | None
    content_hash: str | None


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open without writing anything.

    Without a ``-wal`` file (every writer closed cleanly) the database file holds every row, and
    ``immutable=1`` reads it without creating SQLite's side files. A ``-wal`` file means a scan is
    running or was killed with rows not yet checkpointed: those rows are only visible through a
    read-only WAL connection (``mode=ro``), which needs the ``-shm`` file the writer made.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results database")
    uri = path.resolve().as_uri()
    if path.with_name(path.name + "-wal").exists():
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True)
            db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError:  # e.g. a read-only folder without the -shm file
            pass
    return sqlite3.connect(f"{uri}?immutable=1", uri=True)


def _storable(value: Any) -> Any:
    """Text as SQLite takes it: a name or message with bytes that are not UTF-8 gets ``\\xNN`` escapes."""
    return storable(value) if isinstance(value, str) else value


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultStore:
    """Open (creating if needed) the results database of a run folder.

    ``readonly=True`` is for readers (reports, comparisons) of run folders they must not change, such
    as CI artifacts: nothing is created or written, not even SQLite's WAL side files.

    A file that is not a results database, or one of a newer schema, raises :class:`StoreError`; a
    database that cannot be written (full disk, read-only folder) raises
    :class:`~ipad_qc.runfolder.RunFolderError`, on opening or on any later write.
    """

    def __init__(self, run_dir: str | Path, readonly: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / DB_NAME
        self._db: sqlite3.Connection | None = None
        try:
            if readonly:
                self._db = _connect_readonly(self.path)
            else:
                with self._writing("opening the results database"):
                    self.run_dir.mkdir(parents=True, exist_ok=True)
                    self._db = sqlite3.connect(self.path)
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA synchronous=NORMAL")
                    self._create_schema()
            self._db.row_factory = sqlite3.Row
            self._check_version()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{printable(self.path)}: not an ipad-qc results database ({exc}); "
                             "move it away or use another run folder") from None
        except BaseException:
            self.close()
            raise

    def _writing(self, what: str) -> AbstractContextManager[None]:
        """Turn "disk full", "read-only" and the like into one :class:`RunFolderError` naming the file."""
        return writing(self.run_dir, f"{DB_NAME}, {what}")

    def _create_schema(self) -> None:
        columns = ",\n    ".join(f"{name} {kind}" for name, kind in RESULT_COLUMNS.items())
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS results (\n    {columns}\n)")
            self._db.execute(_SCANS_TABLE)
        if self.get_meta("schema_version") is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def _check_version(self) -> None:
        version = self.get_meta("schema_version")
        if version is not None and (not version.isdigit() or int(version) > SCHEMA_VERSION):
            raise StoreError(f"{printable(self.path)} was written by a newer ipad-qc (schema {printable(version)}); "
                             "upgrade ipad-qc to read it")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- metadata -----------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._writing("metadata"), self._db:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def scanned_folder(self) -> Path | None:
        """The folder row paths are relative to (``None`` before the first scan).

        Run folders made by scanning a single file once recorded the file itself; its folder is meant.
        """
        root = self.get_meta("root")
        if root is None:
            return None
        path = Path(root)
        return path.parent if path.is_file() else path

    # --- scan history -------------------------------------------------------------------------
    def begin_scan(self, root: str, detector: str, settings: Mapping[str, Any]) -> int:
        """Record a scan as ``running``. Called under the run folder's lock, so scans still marked
        ``running`` were killed before they could say so: they are marked ``interrupted``."""
        with self._writing("scan history"), self._db:
            self._db.execute("UPDATE scans SET outcome = 'interrupted' WHERE outcome = 'running'")
            cursor = self._db.execute(
                "INSERT INTO scans (started_at, root, detector, settings) VALUES (?, ?, ?, ?)",
                (utc_now(), storable(root), detector, json.dumps(settings, sort_keys=True)),
            )
        return int(cursor.lastrowid)

    def end_scan(self, scan_id: int, outcome: str, counts: Mapping[str, int]) -> None:
        with self._writing("scan history"), self._db:
            self._db.execute(
                "UPDATE scans SET finished_at = ?, outcome = ?, counts = ? WHERE id = ?",
                (utc_now(), outcome, json.dumps(dict(counts), sort_keys=True), scan_id),
            )

    # --- results ------------------------------------------------------------------------------
    def known_files(self) -> dict[str, StoredFile]:
        """Everything needed to decide, per relative path, whether a re-scan can skip the file."""
        rows = self._db.execute(
            "SELECT path, status, settings_hash, file_size, file_mtime_ns, content_hash FROM results"
        )
        return {row["path"]: StoredFile(*tuple(row)[1:]) for row in rows}

    def put_batch(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Upsert a batch of result rows in one transaction (one commit per batch)."""
        names = list(RESULT_COLUMNS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
        sql = (f"INSERT INTO results ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT(path) DO UPDATE SET {updates}")
        values = [tuple(_storable(row.get(name)) for name in names) for row in rows]
        with self._writing("result rows"), self._db:
            self._db.executemany(sql, values)

    def update_stat(self, path: str, file_size: int, file_mtime_ns: int) -> None:
        """Record a new size/mtime for a file whose content hash proved it unchanged."""
        with self._writing("result rows"), self._db:
            self._db.execute("UPDATE results SET file_size = ?, file_mtime_ns = ? WHERE path = ?",
                             (file_size, file_mtime_ns, path))

    def delete(self, paths: Iterable[str]) -> None:
        """Drop the rows of ``paths`` (the scan decides which: files gone from disk, or ``--prune``)."""
        with self._writing("result rows"), self._db:
            self._db.executemany("DELETE FROM results WHERE path = ?", [(path,) for path in paths])

    def rows(self) -> Iterator[dict[str, Any]]:
        """All result rows, sorted by path."""
        with closing(self._db.execute("SELECT * FROM results ORDER BY path")) as cursor:
            for row in cursor:
                yield dict(row)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
