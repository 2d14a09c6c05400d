"""The routing policy: which images go to which hook, in which order, and what happens to the result.

It lives in a versionable ``ipad-qc.toml`` next to a team's capture scripts (section ``[route]``),
and CLI flags override it. Example::

    [route]
    order = ["ghosting", "moire", "flare"]   # an image flagged for several classes: hooks run in this order
    mask_threshold = 0.5                     # per-pixel probability that puts a pixel in a class's mask
    timeout_s = 300                          # per image and hook
    references = "{dir}/burst/{stem}_*"      # deghost: other frames of the burst (glob, optional)
    # sort = "copy"                          # only sort flagged files into sorted/<class>/ (copy|hardlink|symlink)

    [route.thresholds]                       # image-level score that routes a class; unlisted: the label decides
    flare = 0.4

    [route.hooks]                            # plugin name, external command (argument list), or false
    flare = "deflare"
    moire = ["my_demoire", "--strength", "2", "{input}", "{mask}", "{output}"]
    ghosting = false

    [route.options.deflare]                  # keyword options for a plugin's factory
    keep_source = true
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.gating import is_flagged

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAME = "ipad-qc.toml"
SORT_MODES = ("copy", "hardlink", "symlink")
#: Built-in hook per class; the default policy routes every class to its built-in hook.
DEFAULT_HOOKS = {"ghosting": "deghost", "flare": "deflare", "moire": "demoire"}
#: Ghosting first: deghosting compares against the burst's reference frames, which carry the same
#: flare and moiré as the image. Moiré before flare: the veil estimate reads local minima that
#: moiré bands would disturb.
DEFAULT_ORDER = ("ghosting", "moire", "flare")
PLACEHOLDERS = ("input", "mask", "map", "output", "source", "class")
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # beyond a week "no timeout" is meant; waits longer than that overflow
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


class PolicyError(ValueError):
    """The routing configuration is invalid; the message names the setting and the reason."""


@dataclass(frozen=True)
class HookSpec:
    """One class's hook: a plugin (``plugin`` + ``options``) or an external ``command`` (argument list)."""

    artifact: str
    plugin: str | None = None
    command: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the repairs table and the CLI name this hook."""
        return self.plugin if self.plugin else f"command:{Path(self.command[0]).name}"

    def fingerprint(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "command": self.command, "options": dict(self.options)}


@dataclass(frozen=True)
class RoutingPolicy:
    """Everything that decides what ``route`` does; see the module docstring for the file format."""

    hooks: Mapping[str, HookSpec] = field(
        default_factory=lambda: {name: HookSpec(name, plugin) for name, plugin in DEFAULT_HOOKS.items()})
    thresholds: Mapping[str, float] = field(default_factory=dict)
    order: tuple[str, ...] = DEFAULT_ORDER
    mask_threshold: float = 0.5
    timeout_s: float = 300.0
    references: str | None = None
    sort: str | None = None

    def classes_for(self, row: Mapping[str, Any]) -> list[str]:
        """Artifact classes this result row is routed for, in policy order.

        Clean verdicts never route: their mask is empty by definition and "leave clean images
        alone" is the point of detecting first. A class with a threshold routes on its score,
        others on the label (the same rule as ``--fail-on``).
        """
        if row.get("status") != "ok" or row.get("label") == "clean":
            return []
        return [name for name in self.order
                if name in self.hooks and is_flagged(row, name, self.thresholds.get(name))]

    def fingerprint(self, classes: list[str], versions: Mapping[str, str]) -> str:
        """Hash of what shapes one image's repair (hooks and their versions, mask threshold, references,
        sort mode); when it changes, a finished repair is redone."""
        settings = {"hooks": [self.hooks[name].fingerprint() for name in classes], "classes": classes,
                    "versions": [versions.get(name) for name in classes], "mask_threshold": self.mask_threshold,
                    "references": self.references, "sort": self.sort}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- parsing ----------------------------------------------------------------------------------


def _check_class(name: str, where: str) -> str:
    if name not in ARTIFACT_CLASSES:
        raise PolicyError(f"{where}: unknown artifact class {name!r}; choose from {', '.join(ARTIFACT_CLASSES)}")
    return name


def parse_command(argv: Any, where: str) -> tuple[str, ...]:
    """Validate an external command: a non-empty list of strings, known placeholders, ``{output}`` present."""
    if not isinstance(argv, list | tuple) or not argv or not all(isinstance(a, str) for a in argv):
        raise PolicyError(f"{where}: an external command must be a non-empty list of strings")
    used = {match for arg in argv for match in _PLACEHOLDER.findall(arg)}
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        raise PolicyError(f"{where}: unknown placeholder {{{unknown[0]}}}; "
                          f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    if "output" not in used:
        raise PolicyError(f"{where}: the command must write its result to {{output}}")
    return tuple(argv)


def _hook_spec(name: str, value: Any) -> HookSpec | None:
    where = f"route.hooks.{name}"
    if value is False:
        return None
    if isinstance(value, str) and value.strip():
        return HookSpec(name, plugin=value.strip())
    if isinstance(value, list):
        return HookSpec(name, command=parse_command(value, where))
    raise PolicyError(f"{where}: expected a plugin name, a command (list of strings) or false, got {value!r}")


def _with_options(spec: HookSpec, options: Mapping[str, Any]) -> HookSpec:
    """Attach ``[route.options.<plugin>]`` to a plugin hook (built-in defaults included)."""
    if not spec.plugin:
        return spec
    plugin_options = options.get(spec.plugin, {})
    if not isinstance(plugin_options, Mapping):
        raise PolicyError(f"route.options.{spec.plugin}: must be a table of keyword options")
    return replace(spec, options=dict(plugin_options))


def _number(value: Any, where: str, low: float, high: float | None = None) -> float:
    """A finite number in [low, high]: nan, inf, booleans and strings are configuration errors."""
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < low
            or (high is not None and value > high)):
        bounds = f"between {low:g} and {high:g}" if high else f"at least {low:g}"
        raise PolicyError(f"{where}: must be a number {bounds}, got {value!r}")
    return float(value)


def _table(section: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``[route.<key>]``, which must be a table (``hooks = 5`` is a configuration error, not a crash)."""
    value = section.get(key, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"route.{key}: must be a table ([route.{key}]), got {value!r}")
    return value


def _sort_mode(value: Any) -> str | None:
    if value is None or value in SORT_MODES:
        return value
    raise PolicyError(f"route.sort: must be one of {', '.join(SORT_MODES)}, got {value!r}")


def policy_from_mapping(section: Mapping[str, Any]) -> RoutingPolicy:
    """Build a policy from the ``[route]`` table of an ``ipad-qc.toml``."""
    known = {"hooks", "thresholds", "order", "mask_threshold", "timeout_s", "references", "sort", "options"}
    extra = sorted(set(section) - known)
    if extra:
        raise PolicyError(f"route.{extra[0]}: unknown setting; known: {', '.join(sorted(known))}")
    options = _table(section, "options")
    hooks = dict(RoutingPolicy().hooks)
    for name, value in _table(section, "hooks").items():
        spec = _hook_spec(_check_class(name, f"route.hooks.{name}"), value)
        if spec is None:
            hooks.pop(name, None)
        else:
            hooks[name] = spec
    hooks = {name: _with_options(spec, options) for name, spec in hooks.items()}
    thresholds = {_check_class(name, f"route.thresholds.{name}"): _number(value, f"route.thresholds.{name}", 0, 1)
                  for name, value in _table(section, "thresholds").items()}
    references = section.get("references")
    if references is not None and not isinstance(references, str):
        raise PolicyError(f"route.references: must be a glob (a string), got {references!r}")
    return RoutingPolicy(
        hooks=hooks, thresholds=thresholds, order=parse_order(section.get("order", list(DEFAULT_ORDER))),
        mask_threshold=_number(section.get("mask_threshold", 0.5), "route.mask_threshold", 0, 1),
        timeout_s=_number(section.get("timeout_s", 300), "route.timeout_s", 0.001, MAX_TIMEOUT_S),
        references=references, sort=_sort_mode(section.get("sort")),
    )


def parse_order(value: Any) -> tuple[str, ...]:
    """An order list: every artifact class at most once; classes left out go last in the default order."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple):
        raise PolicyError("route.order: must be a list of artifact classes")
    order = [_check_class(str(name).strip().lower(), "route.order") for name in names if str(name).strip()]
    if len(set(order)) != len(order):
        raise PolicyError("route.order: a class is listed twice")
    return tuple(order) + tuple(name for name in DEFAULT_ORDER if name not in order)


def load_policy(path: str | Path | None) -> RoutingPolicy:
    """The policy in ``path`` (``[route]`` section); ``None``: ``./ipad-qc.toml`` if present, else defaults."""
    if path is None:
        if not Path(CONFIG_NAME).is_file():
            return RoutingPolicy()
        path = CONFIG_NAME
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from None
    try:
        section = document.get("route", {})
        if not isinstance(section, Mapping):
            raise PolicyError(f"route: must be a table ([route]), got {section!r}")
        return policy_from_mapping(section)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
