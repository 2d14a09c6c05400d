"""Helpers for report and comparison tests: run folders made by a real scan with the test detector,
or written straight into a ResultStore when a test only needs rows (no images, no detector)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scan_fixtures import BrightSpotDetector, write_jpeg

from ipad_qc.scanner import ScanOptions, scan
from ipad_qc.store import ResultStore

# A real, legal Linux path whose components together spell an HTML/script injection.
EVIL_PATH = "x</script><script>window.pwned=1</script>.jpg"  # "/" makes folders: still a legal path
EVIL_NAME = "<img src=x onerror=window.pwned=2>.jpg"


def make_shots(root: Path, spec: dict[str, str]) -> Path:
    """Write ``{relpath: kind}`` with kind ``clean``, ``bright`` (flagged as flare) or ``broken``."""
    for index, (relpath, kind) in enumerate(spec.items()):
        path = root / relpath
        if kind == "broken":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not an image")
        else:
            write_jpeg(path, bright=kind == "bright", seed=index)
    return root


def scan_run(shots: Path, run_dir: Path) -> Path:
    """Scan with the deterministic test detector in-process (fast, no worker start-up)."""
    scan(shots, run_dir, ScanOptions(workers=0), detector=BrightSpotDetector())
    return run_dir


def result_row(path: str, label: str = "clean", **scores: float) -> dict[str, Any]:
    """A results row as a scan writes it; unnamed artifact scores are 0 and clean takes the rest."""
    values = {name: float(scores.get(name, 0.0)) for name in ("ghosting", "flare", "moire")}
    row: dict[str, Any] = {"path": path, "status": "ok", "label": label, "detector": "test",
                           "width": 400, "height": 300, "mask_fraction": 0.0, "format": "jpeg"}
    row.update({f"score_{name}": value for name, value in values.items()})
    row["score_clean"] = max(0.0, 1.0 - sum(values.values()))
    return row


def error_row(path: str, reason: str = "not an image") -> dict[str, Any]:
    return {"path": path, "status": "error", "error": reason, "detector": "test", "format": "jpeg"}


def store_rows(run_dir: Path, rows: list[dict[str, Any]], root: Path | None = None) -> Path:
    with ResultStore(run_dir) as store:
        if root is not None:
            store.set_meta("root", str(root))
        store.put_batch(rows)
    return run_dir
