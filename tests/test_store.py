from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ipad_qc.runfolder import RunFolderError
from ipad_qc.store import DB_NAME, SCHEMA_VERSION, ResultStore, StoreError


def row(path: str, **values) -> dict:
    return {"path": path, "status": "ok", "label": "clean", "settings_hash": "s1", "file_size": 10,
            "file_mtime_ns": 5, "content_hash": "h", **values}


def test_upsert_never_duplicates(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        store.put_batch([row("a.jpg"), row("b.jpg")])
        store.put_batch([row("a.jpg", label="flare")])
        rows = list(store.rows())
    assert [r["path"] for r in rows] == ["a.jpg", "b.jpg"]
    assert rows[0]["label"] == "flare"


def test_wal_mode_and_reopen(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        store.put_batch([row("a.jpg")])
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with ResultStore(tmp_path) as store:
        assert store.count() == 1
        assert store.known_files()["a.jpg"].content_hash == "h"


def test_status_is_constrained(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store, pytest.raises(sqlite3.IntegrityError):
        store.put_batch([row("a.jpg", status="maybe")])


def test_delete_and_update_stat(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        store.put_batch([row("a.jpg"), row("b.jpg")])
        store.delete(["b.jpg"])
        store.update_stat("a.jpg", 99, 77)
        known = store.known_files()
    assert list(known) == ["a.jpg"]
    assert (known["a.jpg"].file_size, known["a.jpg"].file_mtime_ns) == (99, 77)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        store.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    with pytest.raises(StoreError, match="newer ipad-qc"):
        ResultStore(tmp_path)


def test_scan_history(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as store:
        scan_id = store.begin_scan("/data", "classic", {"a": 1})
        store.end_scan(scan_id, "completed", {"scanned": 3})
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        outcome, counts = db.execute("SELECT outcome, counts FROM scans WHERE id = ?", (scan_id,)).fetchone()
    assert outcome == "completed" and '"scanned": 3' in counts


def test_readonly_store_writes_nothing(tmp_path: Path) -> None:
    import hashlib
    import os

    with ResultStore(tmp_path) as store:
        store.put_batch([row("a.jpg")])
    before = {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in os.listdir(tmp_path)}
    with ResultStore(tmp_path, readonly=True) as store:
        assert [r["path"] for r in store.rows()] == ["a.jpg"]
        with pytest.raises(RunFolderError):
            store.put_batch([row("b.jpg")])
    after = {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in os.listdir(tmp_path)}
    assert after == before, "a read-only reader must not create or change any file"
    with pytest.raises(FileNotFoundError):
        ResultStore(tmp_path / "missing", readonly=True)


def test_readonly_store_sees_rows_of_a_live_writer(tmp_path: Path) -> None:
    writer = ResultStore(tmp_path)
    writer.put_batch([row("a.jpg"), row("b.jpg")])  # committed, still in the WAL file
    try:
        with ResultStore(tmp_path, readonly=True) as reader:
            assert [r["path"] for r in reader.rows()] == ["a.jpg", "b.jpg"]
    finally:
        writer.close()
