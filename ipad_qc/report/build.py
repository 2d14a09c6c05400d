"""``report.html`` of a run folder: every row with its thumbnail, mask overlay, label and scores.

Built from ``results.sqlite`` and the mask files only, so rebuilding never re-runs detection; the
thumbnails of the originals are cached in ``thumbs/`` (see :mod:`ipad_qc.report.assets`), so a rebuild
of an unchanged run only reads that cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.report.assets import THUMB_DIR, AssetLinker, RowAssets, asset_request, ensure_assets, inline_size, prune
from ipad_qc.report.page import choose_inline, render_page
from ipad_qc.report.run import Run, has_artifact, open_run
from ipad_qc.runfolder import atomic_write, lock

REPORT_NAME = "report.html"
PAGE_SIZE = 50
_BYTES_PER_ROW = 400  # JSON of one row without pictures, for the size estimate

REPORT_COLUMNS = ("path", "status", "error", "warning", "label", "scores", "mask_fraction", "width", "height",
                  "format", "decode_mode", "thumb", "overlay", "view", "view_overlay", "note")


@dataclass
class PageResult:
    """What was written: the page, its layout (``single`` or ``folder``), its size and the rows
    whose pictures could not be made, as ``(path, reason)``."""

    path: Path
    layout: str
    rows: int
    size_bytes: int
    problems: list[tuple[str, str]] = field(default_factory=list)


def publish(page: Path, layout: str, cache: Path, assets: Iterable[RowAssets], rows: int,
            make_data: Callable[[AssetLinker], dict[str, Any]]) -> tuple[str, int]:
    """Pick the layout by the page's estimated weight, render and write it; returns (layout, bytes)."""
    names = [name for item in assets for name in (item.thumb, item.overlay, item.view, item.view_overlay)]
    inline = choose_inline(layout, inline_size(cache, names) + rows * _BYTES_PER_ROW)
    data = make_data(AssetLinker(cache, page.parent, inline))
    text = render_page(data, folder=not inline).encode("utf-8")
    atomic_write(page, text)
    return ("single" if inline else "folder"), len(text)


def page_facts(facts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A page's header lines plus when it was generated (local time, so readers see their own clock)."""
    generated = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
    return [*facts, ("page generated", generated)]


def _row_values(row: dict[str, Any], assets: RowAssets | None, linker: AssetLinker) -> list[Any]:
    assets = assets or RowAssets()
    scores = None if row["status"] != "ok" else [round(float(row[f"score_{name}"] or 0.0), 4) for name in CLASS_NAMES]
    values = {**row, "scores": scores, "thumb": linker.url(assets.thumb), "overlay": linker.url(assets.overlay),
              "view": linker.url(assets.view), "view_overlay": linker.url(assets.view_overlay),
              "note": assets.problem}
    return [values.get(name) for name in REPORT_COLUMNS]


def build_report(run_dir: str | Path, layout: str = "auto", workers: int | None = None) -> PageResult:
    """Write ``report.html`` into the run folder (``layout``: ``auto``, ``single`` or ``folder``).

    Holds the run folder's lock (a scan writing thumbnails at the same time would race the cache
    pruning); raises :class:`~ipad_qc.runfolder.RunFolderError` when the folder is in use or unwritable.
    """
    run = open_run(run_dir)
    with lock(run.dir):
        return _build(run, layout, workers)


def _build(run: Run, layout: str, workers: int | None) -> PageResult:
    requests = {row["path"]: request for row in run.rows
                if (request := asset_request(row, run.root, run.dir, want_view=has_artifact(row))) is not None}
    cache = run.dir / THUMB_DIR
    assets = ensure_assets(requests, cache, workers)
    prune(cache, (name for item in assets.values() for name in (item.thumb, item.overlay, item.view,
                                                                 item.view_overlay) if name))

    def make_data(linker: AssetLinker) -> dict[str, Any]:
        return {
            "kind": "report", "title": f"ipad-qc report: {run.root.name if run.root else run.name}",
            "facts": page_facts(run.facts()), "classes": list(CLASS_NAMES), "artifact_classes": list(ARTIFACT_CLASSES),
            "page_size": PAGE_SIZE, "columns": list(REPORT_COLUMNS),
            "rows": [_row_values(row, assets.get(row["path"]), linker) for row in run.rows],
        }

    page = run.dir / REPORT_NAME
    chosen, size = publish(page, layout, cache, assets.values(), len(run.rows), make_data)
    problems = [(path, item.problem) for path, item in assets.items() if item.problem]
    return PageResult(page, chosen, len(run.rows), size, problems)
