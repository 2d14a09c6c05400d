"""Factories found by name: built-ins, installed entry points, and run-time registrations.

Detectors (``ipad_qc.detectors``) and removal hooks (``ipad_qc.removal_hooks``) are both plugins of
this kind. The built-ins are listed here too, because a source checkout that was never
pip-installed (or a stale ``*.egg-info`` that shadows the installed metadata) has no entry points,
and a tool that cannot find its own default detector is broken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

Factory = Callable[..., Any]


@dataclass(frozen=True)
class PluginSource:
    """Where a named factory comes from, and how to load it."""

    name: str
    origin: str  # "built-in", "<distribution> <version>", or "registered at run time"
    target: str  # "module:attribute"
    load: Callable[[], Factory]


class EntryPointRegistry:
    """Named factories of one entry-point group; later sources override earlier ones."""

    def __init__(self, group: str, builtin: Mapping[str, str], what: str, error: type[LookupError]) -> None:
        self.group = group
        self.builtin = dict(builtin)
        self.what = what
        self.error = error
        self._registered: dict[str, Factory] = {}

    def register(self, name: str, factory: Factory) -> None:
        """Add a factory at run time (tests, notebooks); installed packages use entry points instead."""
        self._registered[name] = factory

    def sources(self) -> dict[str, PluginSource]:
        found = {name: PluginSource(name, "built-in", target, metadata.EntryPoint(name, target, self.group).load)
                 for name, target in self.builtin.items()}
        for entry in metadata.entry_points(group=self.group):
            dist = entry.dist
            origin = "built-in" if dist and dist.name == "ipad-qc" else (
                f"{dist.name} {dist.version}" if dist else "unknown distribution")
            found[entry.name] = PluginSource(entry.name, origin, entry.value, entry.load)
        for name, factory in self._registered.items():
            found[name] = PluginSource(name, "registered at run time", f"{factory.__module__}:{factory.__qualname__}",
                                       lambda factory=factory: factory)
        return dict(sorted(found.items()))

    def factory(self, name: str) -> Factory:
        """The factory registered as ``name``; the error names every installed alternative."""
        sources = self.sources()
        if name not in sources:
            known = ", ".join(sources) or "none"
            raise self.error(f"unknown {self.what} {name!r}; installed: {known}")
        return sources[name].load()
