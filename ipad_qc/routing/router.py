"""``route``: send the images a scan flagged to the removal hook of each flagged class.

Reads the results database of a run folder (never re-detects), decodes each flagged original at
full resolution, runs its classes' hooks in policy order (each on the previous hook's output),
writes one repaired file per image under ``repaired/`` and records every step in the ``repairs``
table. Images are committed one by one, so an interrupted run keeps what it finished, and a re-run
skips images whose original, settings and hook versions are unchanged. Originals are only read.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import numpy as np

from ipad_qc.io import DecodedImage, DecodeError, load_image
from ipad_qc.io.budget import DEFAULT_MAX_PIXELS
from ipad_qc.io.files import file_hash
from ipad_qc.names import printable
from ipad_qc.routing.api import RepairRequest, from_float, to_float
from ipad_qc.routing.external import ExternalCommandHook
from ipad_qc.routing.isolation import HookResult, IsolatedHook
from ipad_qc.routing.masks import MaskError, class_region
from ipad_qc.routing.policy import HookSpec, RoutingPolicy
from ipad_qc.routing.registry import create_hook, resolve_factory
from ipad_qc.routing.repairs import RepairRecord, RepairStore
from ipad_qc.routing.writer import write_repaired
from ipad_qc.runfolder import UnsafePathError, inside, lock, original, stop_if_folder_failed
from ipad_qc.store import ResultStore, StoreError, utc_now

SORTED_DIR = "sorted"
SCRATCH_DIR = ".routing-tmp"
MAX_REFERENCES = 8
_REFERENCE_PLACEHOLDER = re.compile(r"\{(dir|stem|name|ext)\}")


class RouteError(Exception):
    """Routing cannot start (no scan in the run folder, unknown hook). The CLI exits with code 2."""


@dataclass
class RouteSummary:
    """What one ``route`` run did."""

    run_dir: Path
    plan: list[tuple[str, list[str]]] = field(default_factory=list)
    routed: int = 0
    skipped: int = 0
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)  # (hook, status) -> count
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (path, class, reason)
    dry_run: bool = False
    interrupted: bool = False
    elapsed_s: float = 0.0


class RouteListener(Protocol):
    """Progress callbacks; the CLI draws a progress bar, the library stays silent."""

    def started(self, total: int) -> None: ...

    def advanced(self, path: str, records: list[RepairRecord]) -> None: ...


class _SilentListener:
    def started(self, total: int) -> None:
        pass

    def advanced(self, path: str, records: list[RepairRecord]) -> None:
        pass


# --- hooks ------------------------------------------------------------------------------------


@dataclass
class _Hook:
    """A configured hook, ready to run: its label and version for the record, and the runner."""

    label: str
    version: str
    runner: IsolatedHook | ExternalCommandHook | None  # None when only sorting


def _open_hook(spec: HookSpec, policy: RoutingPolicy, scratch: Path) -> _Hook:
    """Validate a hook before any image is touched (unknown plugin, bad options) and prepare its runner."""
    if spec.command:
        return _Hook(spec.label, "external", ExternalCommandHook(spec.command, policy.timeout_s, scratch))
    try:
        hook = create_hook(spec.plugin, **spec.options)
    except LookupError as exc:
        raise RouteError(str(exc)) from None
    except Exception as exc:
        raise RouteError(f"removal hook {spec.plugin!r} cannot be created with options {dict(spec.options)}: "
                         f"{type(exc).__name__}: {exc}") from None
    if hook.artifact != spec.artifact:
        raise RouteError(f"route.hooks.{spec.artifact}: hook {spec.plugin!r} removes {hook.artifact}, "
                         f"not {spec.artifact}")
    runner = IsolatedHook(resolve_factory(spec.plugin), dict(spec.options), policy.timeout_s)
    return _Hook(spec.label, str(hook.version), runner)


def _open_hooks(policy: RoutingPolicy, classes: list[str], scratch: Path) -> dict[str, _Hook]:
    """One ready hook per routed class; sorting needs no hook, only a label for the records."""
    if policy.sort:
        return {name: _Hook(f"sort:{policy.sort}", policy.sort, None) for name in classes}
    return {name: _open_hook(policy.hooks[name], policy, scratch) for name in classes}


def _normalise(result: HookResult, like: np.ndarray) -> HookResult:
    """A hook's pixels in the input's shape and dtype, or an error saying what was wrong."""
    pixels = result.pixels
    if result.error or pixels is None:
        return result
    if not isinstance(pixels, np.ndarray) or pixels.shape != like.shape:
        shape = getattr(pixels, "shape", type(pixels).__name__)
        return HookResult(error=f"hook returned {shape}, expected an array of shape {like.shape}")
    if pixels.dtype == like.dtype:
        return result
    values = pixels.astype(np.float32) if pixels.dtype.kind == "f" else to_float(pixels)
    return HookResult(pixels=from_float(values, like))


# --- per image --------------------------------------------------------------------------------


@dataclass
class _Context:
    run_dir: Path
    root: Path
    policy: RoutingPolicy
    hooks: dict[str, _Hook]
    repairs: RepairStore
    force: bool

    def fingerprint(self, classes: list[str]) -> str:
        return self.policy.fingerprint(classes, {name: self.hooks[name].version for name in classes})


def _references(ctx: _Context, relpath: str) -> tuple[DecodedImage, ...]:
    """Other frames of the burst matched by ``policy.references`` (glob, relative to the scanned root)."""
    if not ctx.policy.references:
        return ()
    rel = PurePosixPath(relpath)
    values = {"dir": str(rel.parent), "stem": rel.stem, "name": rel.name, "ext": rel.suffix.lstrip(".")}
    pattern = _REFERENCE_PLACEHOLDER.sub(lambda m: glob.escape(values[m.group(1)]), ctx.policy.references)
    me = (ctx.root / relpath).resolve()
    found = sorted(p for p in glob.glob(str(ctx.root / pattern)) if Path(p).resolve() != me and Path(p).is_file())
    return tuple(load_image(path, None, raw_mode="full") for path in found[:MAX_REFERENCES])


def _source(ctx: _Context, row: Mapping[str, Any]) -> Path:
    """The original a row names, inside the scanned folder (a tampered row cannot name another file)."""
    try:
        return original(ctx.root, row["path"])
    except UnsafePathError as exc:
        raise DecodeError(printable(row["path"]), f"refused: {exc}") from None


def _decode_original(ctx: _Context, row: Mapping[str, Any]) -> DecodedImage:
    """Full-resolution pixels of the original, refusing a file that changed since the scan.

    The decode budget is the scan's: at least the default, and at least the size the scan decoded.
    """
    source = _source(ctx, row)
    try:
        changed = bool(row.get("content_hash")) and source.is_file() and file_hash(source) != row["content_hash"]
    except OSError as exc:
        raise DecodeError(str(source), f"cannot read the original ({exc.strerror or exc})") from None
    if changed:
        raise DecodeError(str(source), "the file changed since the scan; scan it again before routing")
    try:
        budget = max(DEFAULT_MAX_PIXELS, int(row.get("width") or 0) * int(row.get("height") or 0))
    except (TypeError, ValueError):  # an edited row: the default budget
        budget = DEFAULT_MAX_PIXELS
    image = load_image(source, None, raw_mode="full", max_pixels=budget)
    if (image.meta.width, image.meta.height) != (row["width"], row["height"]):
        raise DecodeError(str(source), f"decoded at {image.size}, but the scan saw {row['width']}x{row['height']}")
    return image


def _run_step(ctx: _Context, row: Mapping[str, Any], image: DecodedImage, artifact: str) -> tuple[HookResult, float]:
    """Build the request for one class (its own mask, references for ghosting) and run its hook."""
    started = time.perf_counter()
    try:
        mask, probability = class_region(ctx.run_dir, row, artifact, image.size, ctx.policy.mask_threshold)
        references = _references(ctx, row["path"]) if artifact == "ghosting" else ()
    except (MaskError, DecodeError) as exc:
        return HookResult(error=str(exc)), 0.0
    if not mask.any():
        return HookResult(error="skipped: empty mask"), 0.0
    scores = {name[len("score_"):]: row[name] for name in row if name.startswith("score_")}
    request = RepairRequest(image=image, mask=mask, probability=probability, artifact=artifact, label=row["label"],
                            scores=scores, relpath=row["path"], metadata=dict(row), references=references)
    result = _normalise(ctx.hooks[artifact].runner.repair(request), image.pixels)
    return result, (time.perf_counter() - started) * 1000.0


def _status(result: HookResult) -> str:
    if result.error:
        return "skipped" if result.error.startswith("skipped:") else "failed"
    return "declined" if result.pixels is None else "ok"


def _repair_image(ctx: _Context, row: Mapping[str, Any], classes: list[str]) -> list[RepairRecord]:
    """Run the chain of hooks on one image, write the result, and return the records (not yet stored)."""
    base = {"path": row["path"], "content_hash": row.get("content_hash"), "fingerprint": ctx.fingerprint(classes)}
    records = [RepairRecord(**base, artifact=name, step=index, hook=ctx.hooks[name].label,
                            hook_version=ctx.hooks[name].version, status="failed", finished_at=utc_now())
               for index, name in enumerate(classes)]
    try:
        image = _decode_original(ctx, row)
    except DecodeError as exc:
        for record in records:
            record.error = f"cannot decode the original: {exc.reason}"
        return records
    for record in records:
        result, record.duration_ms = _run_step(ctx, row, image, record.artifact)
        record.status, record.error = _status(result), result.error or result.reason
        if record.status == "ok":
            image = DecodedImage(result.pixels, image.meta)
        record.finished_at = utc_now()
    if any(record.status == "ok" for record in records):
        try:
            output = write_repaired(ctx.run_dir, row["path"], row["format"], image.pixels, _source(ctx, row))
        except (OSError, UnsafePathError) as exc:
            stop_if_folder_failed(ctx.run_dir, exc, "writing a repaired image")
            output = None
            for record in records:
                if record.status == "ok":
                    record.status, record.error = "failed", f"cannot write the repaired image: {exc}"
        for record in records:
            record.output_path = output if record.status == "ok" else None
    return records


def _sort_image(ctx: _Context, row: Mapping[str, Any], classes: list[str]) -> list[RepairRecord]:
    """Copy or link the original into ``sorted/<class>/<path>`` for each flagged class."""
    records = []
    for index, name in enumerate(classes):
        target_rel = f"{SORTED_DIR}/{name}/{row['path']}"
        record = RepairRecord(path=row["path"], artifact=name, step=index, hook=ctx.hooks[name].label,
                              status="ok", finished_at=utc_now(), output_path=target_rel,
                              content_hash=row.get("content_hash"), fingerprint=ctx.fingerprint(classes))
        try:
            _place(original(ctx.root, row["path"]), inside(ctx.run_dir, target_rel, under=SORTED_DIR), ctx.policy.sort)
        except (OSError, UnsafePathError) as exc:
            stop_if_folder_failed(ctx.run_dir, exc, f"sorting into {SORTED_DIR}/")
            record.status, record.error, record.output_path = "failed", f"cannot {ctx.policy.sort}: {exc}", None
        records.append(record)
    return records


def _place(source: Path, target: Path, mode: str) -> None:
    """Copy or link ``source`` to ``target`` (a path :func:`inside` the run folder's ``sorted/``).

    An earlier ``target`` is unlinked first: for a hard link or symbolic link that removes only the
    link, never what it points at, and a copy never writes through an old link into an original.
    """
    if not source.is_file():
        raise FileNotFoundError(f"original not found: {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    if mode == "copy":
        shutil.copy2(source, target)
    elif mode == "hardlink":
        os.link(source, target)
    else:
        target.symlink_to(source.resolve())


# --- entry point ------------------------------------------------------------------------------


def plan(run_dir: str | os.PathLike[str], policy: RoutingPolicy) -> list[tuple[dict[str, Any], list[str]]]:
    """(result row, classes in order) for every image the policy routes."""
    with ResultStore(run_dir, readonly=True) as store:
        return [(row, classes) for row in store.rows() if (classes := policy.classes_for(row))]


def _root_of(run_dir: Path) -> Path:
    if not (run_dir / "results.sqlite").is_file():
        raise RouteError(f"{printable(run_dir)}: no results.sqlite here; run `ipad-qc scan ROOT --out "
                         f"{printable(run_dir)}` first")
    try:
        with ResultStore(run_dir, readonly=True) as store:
            root = store.scanned_folder()
    except StoreError as exc:
        raise RouteError(str(exc)) from None
    if root is None or not root.exists():
        raise RouteError(f"{printable(run_dir)}: the scanned folder {printable(root or '(unknown)')} is gone; "
                         "originals are needed")
    return root


def route(
    run_dir: str | os.PathLike[str],
    policy: RoutingPolicy | None = None,
    *,
    dry_run: bool = False,
    force: bool = False,
    listener: RouteListener | None = None,
) -> RouteSummary:
    """Route the flagged images of a scanned run folder; see the module docstring.

    ``dry_run`` only fills ``summary.plan``. ``force`` redoes finished repairs. A hook that fails
    (raises, crashes, times out, exits non-zero) fails that image's step only; the run completes and
    the failure is in the ``repairs`` table and ``summary.failures``. Routing holds the run folder's
    lock and raises :class:`~ipad_qc.runfolder.RunFolderError` when it cannot write there.
    """
    run_dir, policy = Path(run_dir), policy or RoutingPolicy()
    root, listener = _root_of(run_dir), listener or _SilentListener()
    started = time.perf_counter()
    todo = plan(run_dir, policy)
    summary = RouteSummary(run_dir, plan=[(row["path"], classes) for row, classes in todo], dry_run=dry_run)
    if dry_run:
        return summary
    with lock(run_dir):
        _route_locked(run_dir, root, policy, todo, summary, listener, force)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _route_locked(run_dir: Path, root: Path, policy: RoutingPolicy, todo: list[tuple[dict[str, Any], list[str]]],
                  summary: RouteSummary, listener: RouteListener, force: bool) -> None:
    scratch = run_dir / SCRATCH_DIR
    hooks = _open_hooks(policy, sorted({name for _, classes in todo for name in classes}), scratch)
    with RepairStore(run_dir) as repairs:
        ctx = _Context(run_dir, root, policy, hooks, repairs, force)
        listener.started(len(todo))
        try:
            _route_all(ctx, todo, summary, listener)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            for hook in hooks.values():
                if hook.runner is not None:
                    hook.runner.close()
            shutil.rmtree(scratch, ignore_errors=True)


def _route_all(ctx: _Context, todo: list[tuple[dict[str, Any], list[str]]], summary: RouteSummary,
               listener: RouteListener) -> None:
    handle = _sort_image if ctx.policy.sort else _repair_image
    for row, classes in todo:
        if not ctx.force and ctx.repairs.is_finished(row["path"], row.get("content_hash"),
                                                     ctx.fingerprint(classes), ctx.run_dir):
            summary.skipped += 1
            listener.advanced(row["path"], [])
            continue
        records = handle(ctx, row, classes)
        ctx.repairs.replace(row["path"], records)
        summary.routed += 1
        for record in records:
            summary.statuses[(record.hook, record.status)] += 1
            if record.status == "failed":
                summary.failures.append((record.path, record.artifact, record.error or "unknown error"))
        listener.advanced(row["path"], records)
