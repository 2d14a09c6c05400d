"""Class names shared by every part of ipad-qc (CLI, CSV, JSON, checkpoints).

The order is the paper's: index 0 is the clean class, 1..K the artifact types.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("clean", "ghosting", "flare", "moire")
ARTIFACT_CLASSES: tuple[str, ...] = CLASS_NAMES[1:]


def parse_class_list(text: str) -> list[str]:
    """Parse a comma-separated list of artifact class names, refusing unknown ones."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in ARTIFACT_CLASSES]
    if unknown:
        raise ValueError(
            f"unknown artifact class {', '.join(unknown)!s}; choose from {', '.join(ARTIFACT_CLASSES)}"
        )
    return names
