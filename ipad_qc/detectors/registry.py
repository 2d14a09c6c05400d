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
from typing import Any

from ipad_qc.detectors.base import Detector
from ipad_qc.entry_points import EntryPointRegistry

ENTRY_POINT_GROUP = "ipad_qc.detectors"

DetectorFactory = Callable[..., Detector]


class UnknownDetectorError(LookupError):
    """Asked for a detector name that nobody registered, or for an option it does not take."""


_REGISTRY = EntryPointRegistry(
    ENTRY_POINT_GROUP,
    {"classic": "ipad_qc.detectors.classic:create", "ipad-clip": "ipad_qc.clip.detector:create",
     "ipad-net": "ipad_qc.net.detector:create"},
    "detector",
    UnknownDetectorError,
)


@dataclass(frozen=True)
class DetectorInfo:
    """What ``ipad-qc detectors`` lists."""

    name: str
    target: str
    origin: str


def register_detector(name: str, factory: DetectorFactory) -> None:
    """Register a factory under ``name`` at run time (tests, notebooks); entry points need no call."""
    _REGISTRY.register(name, factory)


def available_detectors() -> list[DetectorInfo]:
    """Every detector that can be created, sorted by name."""
    return [DetectorInfo(s.name, s.target, s.origin) for s in _REGISTRY.sources().values()]


def get_detector(name: str = "classic", device: str = "cpu", **options: Any) -> Detector:
    """Create the detector registered as ``name`` on ``device`` with detector-specific options."""
    factory = _REGISTRY.factory(name)
    try:
        detector = factory(device=device, **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise UnknownDetectorError(f"detector {name!r} does not accept {exc}".replace("() got an ", "")) from None
    if not isinstance(detector, Detector):
        raise TypeError(f"detector factory {name!r} returned {type(detector).__name__}, not a Detector")
    return detector
