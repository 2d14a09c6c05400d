"""``--fail-on``: decide whether a scan result should fail a CI job."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ipad_qc.classes import ARTIFACT_CLASSES


def parse_fail_on(spec: str) -> dict[str, float | None]:
    """Parse ``"flare,ghosting:0.7"``: a class alone fails on its label, ``class:T`` on score >= T."""
    rules: dict[str, float | None] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, threshold = part.partition(":")
        name = name.strip().lower()
        if name not in ARTIFACT_CLASSES:
            raise ValueError(f"unknown artifact class {name!r} in --fail-on; choose from {', '.join(ARTIFACT_CLASSES)}")
        if not threshold:
            rules[name] = None
            continue
        try:
            value = float(threshold)
        except ValueError:
            raise ValueError(f"--fail-on threshold for {name} must be a number, got {threshold!r}") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--fail-on threshold for {name} must be between 0 and 1, got {value}")
        rules[name] = value
    if not rules:
        raise ValueError("--fail-on needs at least one artifact class")
    return rules


def is_flagged(row: Mapping[str, Any], name: str, threshold: float | None) -> bool:
    if row.get("status") != "ok":
        return False
    if threshold is None:
        return row.get("label") == name
    return float(row.get(f"score_{name}") or 0.0) >= threshold


def flagged_rows(rows: Iterable[Mapping[str, Any]], rules: Mapping[str, float | None]) -> list[tuple[str, str]]:
    """(path, class) for every row that trips one of the rules."""
    return [(row["path"], name) for row in rows for name, threshold in rules.items()
            if is_flagged(row, name, threshold)]
