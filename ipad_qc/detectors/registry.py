"""Detectors by name: built-in ones and third parties' through the ``ipad_qc.detectors`` entry points.

A third-party package adds a detector by declaring, in its ``pyproject.toml``::

    [project.entry-points."ipad_qc.detectors"]
    my-detector = "my_package.detector:create"

where ``create(device: str = "cpu", **options)`` returns an object implementing
:class:`ipad_qc.detectors.base.Detector`. The built-in ``classic`` detector is registered the
same way, so it goes through the same path as anyone else's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from ipad_qc.detectors.base import Detector

ENTRY_POINT_GROUP = "ipad_qc.detectors"

DetectorFactory = Callable[..., Detector]

# Detectors of this package, so a source checkout that was never pip-installed still has them.
_BUILTIN = {"classic": "ipad_qc.detectors.classic:create", "ipad-clip": "ipad_qc.clip.detector:create"}
_registered: dict[str, DetectorFactory] = {}


class UnknownDetectorError(LookupError):
    """Asked for a detector name that nobody registered."""


@dataclass(frozen=True)
class DetectorInfo:
    """What ``ipad-qc detectors`` lists."""

    name: str
    target: str
    origin: str


def register_detector(name: str, factory: DetectorFactory) -> None:
    """Register a factory under ``name`` at run time (tests, notebooks); entry points need no call."""
    _registered[name] = factory


def available_detectors() -> list[DetectorInfo]:
    """Every detector that can be created, sorted by name; later sources override earlier ones."""
    found: dict[str, DetectorInfo] = {
        name: DetectorInfo(name, target, "built-in") for name, target in _BUILTIN.items()
    }
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist else "unknown"
        origin = "built-in" if dist == "ipad-qc" else f"{dist} (entry point)"
        found[entry.name] = DetectorInfo(entry.name, entry.value, origin)
    for name, factory in _registered.items():
        found[name] = DetectorInfo(name, f"{factory.__module__}:{factory.__qualname__}", "registered at run time")
    return sorted(found.values(), key=lambda info: info.name)


def _resolve(name: str) -> DetectorFactory:
    if name in _registered:
        return _registered[name]
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        return entry.load()
    if name in _BUILTIN:
        return metadata.EntryPoint(name, _BUILTIN[name], ENTRY_POINT_GROUP).load()
    known = ", ".join(info.name for info in available_detectors())
    raise UnknownDetectorError(f"unknown detector {name!r}; installed detectors: {known}")


def get_detector(name: str = "classic", device: str = "cpu", **options: Any) -> Detector:
    """Create the detector registered as ``name`` on ``device`` with detector-specific options."""
    factory = _resolve(name)
    try:
        detector = factory(device=device, **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise UnknownDetectorError(f"detector {name!r} does not accept {exc}".replace("() got an ", "")) from None
    if not isinstance(detector, Detector):
        raise TypeError(f"detector factory {name!r} returned {type(detector).__name__}, not a Detector")
    return detector
