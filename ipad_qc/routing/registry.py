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
from typing import Any

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.entry_points import EntryPointRegistry
from ipad_qc.routing.api import RemovalHook

ENTRY_POINT_GROUP = "ipad_qc.removal_hooks"

HookFactory = Callable[..., RemovalHook]


class UnknownHookError(LookupError):
    """Asked for a hook name that nobody registered."""


# The built-in hooks' entry points, also used when ipad-qc's own metadata is missing or stale.
_REGISTRY = EntryPointRegistry(
    ENTRY_POINT_GROUP,
    {name: f"ipad_qc_plugins.{name}:create" for name in ("deflare", "demoire", "deghost")},
    "removal hook",
    UnknownHookError,
)


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
    _REGISTRY.register(name, factory)


def resolve_factory(name: str) -> HookFactory:
    """The factory registered as ``name``; raises :class:`UnknownHookError` naming the installed ones."""
    return _REGISTRY.factory(name)


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
    for name, source in _REGISTRY.sources().items():
        try:
            hook = create_hook(name)
            artifact, version = hook.artifact, str(hook.version)
        except Exception as exc:  # one broken plugin must not hide the others
            artifact, version = "?", f"cannot load: {type(exc).__name__}: {exc}"
        infos.append(HookInfo(name, artifact, version, source.origin, source.target))
    return sorted(infos, key=lambda info: info.name)
