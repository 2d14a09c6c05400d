"""Removal hooks by name: the built-in ones and third parties' through the ``ipad_qc.removal_hooks`` entry points.

A package adds a hook by declaring, in its ``pyproject.toml``::

    [project.entry-points."ipad_qc.removal_hooks"]
    my-deflare = "my_package.deflare:create"

where ``create(**options)`` returns a :class:`ipad_qc.routing.api.RemovalHook`. The built-in
``deflare``, ``demoire`` and ``deghost`` (package ``ipad_qc_plugins``, in ``plugins/``) are
registered exactly that way in ipad-qc's own ``pyproject.toml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.routing.api import RemovalHook

ENTRY_POINT_GROUP = "ipad_qc.removal_hooks"

HookFactory = Callable[..., RemovalHook]

# The built-in hooks' entry points, also used when ipad-qc's own metadata is missing or stale (a source
# checkout that was never pip-installed, or a leftover ``ipad_qc.egg-info`` that shadows the installed one).
_BUILTIN = {name: f"ipad_qc_plugins.{name}:create" for name in ("deflare", "demoire", "deghost")}
_registered: dict[str, HookFactory] = {}


class UnknownHookError(LookupError):
    """Asked for a hook name that nobody registered."""


@dataclass(frozen=True)
class HookInfo:
    """What ``ipad-qc plugins`` lists."""

    name: str
    artifact: str
    version: str
    origin: str
    target: str


def register_hook(name: str, factory: HookFactory) -> None:
    """Register a factory under ``name`` at run time (tests, notebooks); entry points need no call.

    Hooks run in a worker process started with ``spawn``, so ``factory`` must be a module-level
    function of an importable module (it is pickled by reference).
    """
    _registered[name] = factory


def _sources() -> dict[str, tuple[str, str, Callable[[], HookFactory]]]:
    """name -> (origin, target, loader); run-time registrations override entry points."""
    found: dict[str, tuple[str, str, Callable[[], HookFactory]]] = {
        name: ("built-in", target, metadata.EntryPoint(name, target, ENTRY_POINT_GROUP).load)
        for name, target in _BUILTIN.items()
    }
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist else "unknown"
        origin = "built-in" if dist == "ipad-qc" else f"{dist} {entry.dist.version if entry.dist else ''}".strip()
        found[entry.name] = (origin, entry.value, entry.load)
    for name, factory in _registered.items():
        target = f"{factory.__module__}:{factory.__qualname__}"
        found[name] = ("registered at run time", target, lambda factory=factory: factory)
    return found


def resolve_factory(name: str) -> HookFactory:
    """The factory registered as ``name``; raises :class:`UnknownHookError` naming the installed ones."""
    source = _sources().get(name)
    if source is None:
        known = ", ".join(sorted(_sources())) or "none"
        raise UnknownHookError(f"unknown removal hook {name!r}; installed hooks: {known} (see `ipad-qc plugins`)")
    return source[2]()


def create_hook(name: str, **options: Any) -> RemovalHook:
    """Create the hook registered as ``name`` and check that it is one."""
    hook = resolve_factory(name)(**options)
    if not isinstance(hook, RemovalHook):
        raise TypeError(f"removal hook factory {name!r} returned {type(hook).__name__}, not a RemovalHook")
    if hook.artifact not in ARTIFACT_CLASSES:
        raise ValueError(f"removal hook {name!r} declares unknown artifact class {hook.artifact!r}")
    return hook


def available_hooks() -> list[HookInfo]:
    """Every installed hook, sorted by name; a hook that fails to load is listed with the reason."""
    infos = []
    for name, (origin, target, _load) in _sources().items():
        try:
            hook = create_hook(name)
            artifact, version = hook.artifact, str(hook.version)
        except Exception as exc:  # one broken plugin must not hide the others
            artifact, version = "?", f"cannot load: {type(exc).__name__}: {exc}"
        infos.append(HookInfo(name, artifact, version, origin, target))
    return sorted(infos, key=lambda info: info.name)
