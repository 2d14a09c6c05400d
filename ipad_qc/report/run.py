"""Read a run folder for the pages: its rows and what it says about itself. Never runs a detector."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipad_qc.names import printable
from ipad_qc.store import DB_NAME, ResultStore, StoreError


class ReportError(Exception):
    """A report or comparison cannot be built; the message names the file and the reason."""


@dataclass
class Run:
    """The rows of one run folder (sorted by path) plus the scanned folder they are relative to."""

    dir: Path
    root: Path | None
    rows: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.dir.resolve().name

    def facts(self) -> list[tuple[str, str]]:
        """Header lines of a page: where the images came from and when they were scanned."""
        detectors = sorted({row["detector"] for row in self.rows if row.get("detector")})
        times = [row["scanned_at"] for row in self.rows if row.get("scanned_at")]
        return [("scanned folder", str(self.root or "unknown")), ("run folder", str(self.dir.resolve())),
                ("detector", ", ".join(detectors) or "unknown"), ("last scanned", max(times, default="never"))]


def open_run(run_dir: str | Path) -> Run:
    """Load a run folder's results; a folder without a results database is a one-line error."""
    folder = Path(run_dir)
    if not (folder / DB_NAME).is_file():
        raise ReportError(f"{printable(folder)}: not an ipad-qc run folder (no {DB_NAME}); run `ipad-qc scan` first")
    try:
        with ResultStore(folder, readonly=True) as store:
            root = store.scanned_folder()
            rows = list(store.rows())
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        raise ReportError(f"{printable(folder / DB_NAME)}: cannot read the results ({exc})") from None
    return Run(folder, root, rows)


def has_artifact(row: dict[str, Any]) -> bool:
    """Decoded and labelled with an artifact: the rows a page offers a large view and a mask for."""
    return row.get("status") == "ok" and row.get("label") not in (None, "clean")
