"""Thumbnails of the originals and mask overlays for the HTML pages, cached in a ``thumbs/`` folder.

Reports must rebuild in seconds and never re-run detection, so every picture a page shows is made
once and kept: image thumbnails are named after the original's content hash (a renamed or copied
file reuses them), overlays after what their mask is a function of: the original's content hash,
the scan's settings hash and the label (a scan with other settings gives other names). A scan
leaves both behind (from the pixels it decoded and the detector's map), so a
report made after a scan reads neither originals nor full-size masks. The overlay is a separate
transparent PNG drawn over the thumbnail by the browser, so the page can toggle the mask without a
second copy of the image.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from ipad_qc.io import DecodeError, DecodeHint, load_image
from ipad_qc.outputs import (
    MASK_DIR,
    THUMB_DIR,
    THUMB_SIDE,
    VIEW_SIDE,
    overlay_name,
    overlay_stem,
    thumbnail_name,
    write_overlays,
    write_thumbnails,
)
from ipad_qc.runfolder import UnsafePathError, inside, original
from ipad_qc.scanning.jobs import decode_pool

_HEX_DIGEST = re.compile(r"[0-9a-f]{8,128}")
_POOL_MIN_JOBS = 6  # below this, starting worker processes costs more than it saves


@dataclass(frozen=True)
class AssetRequest:
    """What one row of a page needs drawn: its original (if reachable) and its mask (if any)."""

    source: Path | None
    content_hash: str | None
    mask: Path | None
    label: str | None
    width: int
    height: int
    want_view: bool
    refused: str | None = None  # why a path of the row was not followed (it led out of its folder)
    settings_hash: str = ""  # with the content hash, names the mask's overlays (the mask is their function)


@dataclass(frozen=True)
class RowAssets:
    """File names inside the thumbs folder (``None``: not available) and why a picture is missing."""

    thumb: str | None = None
    overlay: str | None = None
    view: str | None = None
    view_overlay: str | None = None
    problem: str | None = None


def planned_assets(request: AssetRequest) -> RowAssets:
    """The names a request's pictures have in the cache, whether or not they exist yet."""
    digest = request.content_hash
    mask_found = request.mask is not None and request.mask.is_file()
    stem = overlay_stem(digest, request.settings_hash, request.label) if mask_found and digest else None
    return RowAssets(
        thumb=thumbnail_name(digest, THUMB_SIDE) if digest else None,
        view=thumbnail_name(digest, VIEW_SIDE) if digest and request.want_view else None,
        overlay=overlay_name(stem, THUMB_SIDE) if stem else None,
        view_overlay=overlay_name(stem, VIEW_SIDE) if stem and request.want_view else None,
        problem=request.refused or (f"mask not found: {request.mask}" if request.mask and not mask_found else None),
    )


@dataclass(frozen=True)
class _Job:
    request: AssetRequest
    planned: RowAssets
    folder: str
    images_missing: bool
    overlays_missing: bool


def _make_images(job: _Job) -> None:
    request, planned = job.request, job.planned
    side = VIEW_SIDE if planned.view else THUMB_SIDE
    image = load_image(request.source, DecodeHint(long_side=side))
    sides = [size for name, size in ((planned.thumb, THUMB_SIDE), (planned.view, VIEW_SIDE)) if name]
    write_thumbnails(Path(job.folder), request.content_hash, image.pixels, sides)


def _make_overlays(job: _Job) -> None:
    """Overlays from the full-size mask file, for rows whose scan did not leave them (older scans,
    a deleted ``thumbs/``); a scan writes them from the detector's map."""
    request, planned = job.request, job.planned
    mask = cv2.imread(str(request.mask), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise OSError(f"cannot read mask {request.mask}")
    sides = [side for name, side in ((planned.overlay, THUMB_SIDE), (planned.view_overlay, VIEW_SIDE)) if name]
    write_overlays(Path(job.folder), overlay_stem(request.content_hash, request.settings_hash, request.label), mask,
                   mask.shape[1::-1], request.label, sides)


def _run_job(job: _Job) -> str | None:
    """Make the missing pictures of one row; returns why something could not be made (never raises)."""
    problems = []
    for needed, make in ((job.images_missing, _make_images), (job.overlays_missing, _make_overlays)):
        if not needed:
            continue
        try:
            make(job)
        except DecodeError as exc:
            problems.append(exc.reason)
        except (OSError, ValueError, cv2.error, MemoryError) as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
    return "; ".join(problems) or None


def _listing(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries}


def ensure_assets(requests: Mapping[str, AssetRequest], folder: Path, workers: int | None = None,
                  ) -> dict[str, RowAssets]:
    """Make every picture the requests need that the cache folder lacks; returns what each row has.

    Decoding originals is the slow part, so missing pictures are made in worker processes when there
    are enough of them, and only once for identical files (same content hash). Rows whose pictures
    cannot be made get ``problem`` set and ``None`` names.
    """
    folder.mkdir(parents=True, exist_ok=True)
    present = _listing(folder)
    planned = {key: planned_assets(request) for key, request in requests.items()}
    jobs: dict[str, _Job] = {}
    problems: dict[str, str | None] = {}
    for key, request in requests.items():
        job, problems[key] = _plan_job(request, planned[key], folder, present)
        if job is not None:
            jobs[key] = job
    for key, problem in _run_jobs(jobs, workers).items():
        problems[key] = "; ".join(text for text in (problems[key], problem) if text) or None
    present = _listing(folder)
    return {key: _available(plan, present, problems[key]) for key, plan in planned.items()}


def _plan_job(request: AssetRequest, plan: RowAssets, folder: Path,
              present: set[str]) -> tuple[_Job | None, str | None]:
    """The job that makes what ``plan`` lacks (marking it as made in ``present``), and what cannot be made."""
    images = [name for name in (plan.thumb, plan.view) if name and name not in present]
    overlays = [name for name in (plan.overlay, plan.view_overlay) if name and name not in present]
    problem = plan.problem
    if plan.thumb is None:
        problem = "no thumbnail: the results row has no content hash"
    elif images and not (request.source and request.source.is_file()):
        problem = request.refused or f"original not found: {request.source or 'scanned folder unknown'}"
        images = []
    if not images and not overlays:
        return None, problem
    present.update(images + overlays)
    return _Job(request, plan, str(folder), bool(images), bool(overlays)), problem


def _run_jobs(jobs: Mapping[str, _Job], workers: int | None) -> dict[str, str | None]:
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    if workers < 1 or len(jobs) < _POOL_MIN_JOBS:
        return {key: _run_job(job) for key, job in jobs.items()}
    with decode_pool(workers) as pool:  # the scan's worker setup: one OpenCV thread, exit with this process
        futures = {key: pool.submit(_run_job, job) for key, job in jobs.items()}
        return {key: _outcome(future) for key, future in futures.items()}


def _outcome(future: Future[str | None]) -> str | None:
    try:
        return future.result()
    except BrokenProcessPool:  # a decoder crashed its process: lose these thumbnails, not the report
        return "thumbnail worker crashed (decoder failure on this or another file in flight)"


def _available(plan: RowAssets, present: set[str], problem: str | None) -> RowAssets:
    def keep(name: str | None) -> str | None:
        return name if name in present else None

    return RowAssets(thumb=keep(plan.thumb), overlay=keep(plan.overlay), view=keep(plan.view),
                     view_overlay=keep(plan.view_overlay), problem=problem)


def asset_request(row: Mapping[str, Any], root: Path | None, run_dir: Path, want_view: bool) -> AssetRequest | None:
    """The pictures a result row needs, or ``None`` for rows with nothing to draw (decode errors).

    The row's paths are data from a database someone may have edited: the original must lie under
    the scanned folder and the mask under ``masks/``, else the picture is left out and the row says why.
    """
    if row.get("status") != "ok":
        return None
    source = mask = refused = None
    try:
        source = original(root, row["path"]) if root is not None else None
        mask = inside(run_dir, row["mask_path"], under=MASK_DIR) if row.get("mask_path") else None
    except UnsafePathError as exc:
        refused = f"refused: {exc}"
    digest = row.get("content_hash")  # names cached pictures: only a hash, never a path
    digest = digest if isinstance(digest, str) and _HEX_DIGEST.fullmatch(digest) else None
    try:
        width, height = int(row.get("width") or 0), int(row.get("height") or 0)
    except (TypeError, ValueError):
        width = height = 0
    return AssetRequest(source, digest, mask, row.get("label"), width, height, want_view, refused,
                        str(row.get("settings_hash") or ""))


def prune(folder: Path, keep: Iterable[str]) -> int:
    """Delete cached pictures no row refers to any more (files of older scans); returns how many."""
    wanted = set(keep)
    removed = 0
    for name in _listing(folder) if folder.is_dir() else ():
        if name not in wanted and not name.startswith("."):
            (folder / name).unlink(missing_ok=True)
            removed += 1
    return removed


class AssetLinker:
    """Turns cached picture names into URLs: data URIs (single-file page) or relative paths (folder page).

    In folder mode, pictures from a cache folder other than the page's own ``thumbs/`` are copied there,
    so the page folder is self-contained.
    """

    def __init__(self, cache: Path, page_dir: Path, inline: bool) -> None:
        self.cache = cache
        self.inline = inline
        self.target = page_dir / THUMB_DIR
        self.copy = not inline and cache.resolve() != self.target.resolve()

    def url(self, name: str | None) -> str | None:
        if not name:
            return None
        if self.inline:
            kind = "image/png" if name.endswith(".png") else "image/jpeg"
            return f"data:{kind};base64," + base64.b64encode((self.cache / name).read_bytes()).decode("ascii")
        if self.copy and not (self.target / name).exists():
            self.target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.cache / name, self.target / name)
        return f"{THUMB_DIR}/{name}"


def inline_size(cache: Path, names: Iterable[str | None]) -> int:
    """Bytes the named pictures take as base64 data URIs in a single-file page (each use counts)."""
    with os.scandir(cache) as entries:
        sizes = {entry.name: entry.stat().st_size for entry in entries}
    return sum((sizes.get(name, 0) + 2) // 3 * 4 + 24 for name in names if name)
