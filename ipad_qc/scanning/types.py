"""Value types of a scan: its options, its summary, and the callbacks that report progress."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ipad_qc.detectors.base import Detector
from ipad_qc.io import DecodeHint
from ipad_qc.io.budget import DEFAULT_MAX_PIXELS


class ScanError(Exception):
    """A scan cannot start (bad root, bad options). The CLI turns it into exit code 2."""


@dataclass
class ScanOptions:
    """Everything that shapes a scan besides the input folder and the run folder."""

    detector: str = "classic"
    detector_options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    batch_size: int = 8
    workers: int | None = None  # None: cores - 1 (see scanning.resources); 0: decode in the main process
    raw_mode: str = "preview"
    allow_partial: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_hidden: bool = False
    force: bool = False
    retry_errors: bool = False
    write_maps: bool = True
    #: Report thumbnails from the pixels decoded for detection, so reports never decode originals again.
    write_thumbnails: bool = True
    #: The decode budget: larger pictures (by their header) are error rows, never decoded. ``None``: no limit.
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    #: Remove the rows of files outside this scan's selection (other filters, another folder).
    prune: bool = False
    #: Scan only these paths relative to the root (e.g. the labelled files of an evaluation); None: all.
    only: frozenset[str] | None = None


@dataclass
class ItemResult:
    """What the progress display learns about each finished file."""

    relpath: str
    status: str  # "ok" | "error" | "unchanged"
    label: str | None = None
    error: str | None = None


@dataclass
class ScanSummary:
    """Counts of one scan run, plus the state of the whole run folder afterwards."""

    run_dir: Path
    root: Path
    detector: str
    found: int = 0
    scanned: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0
    excluded: int = 0
    removed: int = 0
    #: Rows of files this scan did not cover (filtered out, another sub-folder) that stay in the run folder.
    kept_outside: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    decode_s: float = 0.0
    detect_s: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return len(self.errors)


class ScanListener(Protocol):
    """Progress callbacks; the CLI draws a progress bar with them, the library stays silent."""

    def started(self, to_scan: int, skipped: int) -> None: ...

    def advanced(self, item: ItemResult) -> None: ...


class SilentListener:
    def started(self, to_scan: int, skipped: int) -> None:
        pass

    def advanced(self, item: ItemResult) -> None:
        pass


def settings_fingerprint(detector: Detector, options: ScanOptions) -> tuple[dict[str, Any], str]:
    """The settings that decide a file's result; their hash marks rows that a re-scan may keep."""
    settings = {
        "detector": detector.name,
        "detector_settings": detector.settings(),
        "decode_hint": detector.decode_hint.settings(),
        "raw_mode": options.raw_mode,
        "allow_partial": options.allow_partial,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return settings, digest[:16]


@dataclass(frozen=True)
class DetectorSetup:
    """What the scan driver must know about the detector, wherever it runs: its name, the resolution
    to decode at, and the settings (with their hash) that decide whether a stored row can be kept."""

    name: str
    decode_hint: DecodeHint
    settings: dict[str, Any]
    settings_hash: str

    @classmethod
    def of(cls, detector: Detector, options: ScanOptions) -> DetectorSetup:
        settings, settings_hash = settings_fingerprint(detector, options)
        return cls(detector.name, detector.decode_hint, settings, settings_hash)
