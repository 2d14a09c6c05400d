"""The result of an evaluation: the paper's seven metrics overall and per artifact class."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

#: The paper's metric names (Section 5.1, Table 1): three image-level, four pixel-level.
IMAGE_METRICS: tuple[str, ...] = ("C-AUROC", "C-AP", "C-F1max")
PIXEL_METRICS: tuple[str, ...] = ("S-AUROC", "S-AP", "S-F1max", "S-AUPRO")
METRIC_NAMES: tuple[str, ...] = IMAGE_METRICS + PIXEL_METRICS

OVERALL_ROW = "overall (macro)"


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics as fractions in [0, 1] (NaN where undefined), the counts behind them and notes.

    ``overall`` is the macro mean over the artifact classes for which each metric is defined;
    ``notes`` say which classes were left out of which means, so a reader never mistakes a mean
    over two classes for one over three.
    """

    overall: dict[str, float]
    per_class: dict[str, dict[str, float]]
    counts: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data with NaN written as ``None`` (``null``): standard JSON has no NaN."""
        return {
            "overall": _finite_or_none(self.overall),
            "per_class": {name: _finite_or_none(values) for name, values in self.per_class.items()},
            "counts": self.counts,
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, title: str = "IPAD evaluation (%)") -> Table:
        """A table shaped like the paper's Tables 1 and 3: one row per class, the 7 metrics in %."""
        table = Table(title=title, caption="\n".join(self.notes) or None)
        table.add_column("Class")
        for name in METRIC_NAMES:
            table.add_column(name, justify="right")
        table.add_row(OVERALL_ROW, *_percentages(self.overall), style="bold")
        for name, values in self.per_class.items():
            table.add_row(name, *_percentages(values))
        return table


def _finite_or_none(values: dict[str, float]) -> dict[str, float | None]:
    return {name: (value if math.isfinite(value) else None) for name, value in values.items()}


def _percentages(values: dict[str, float]) -> list[str]:
    return [f"{100.0 * values[name]:.2f}" if math.isfinite(values[name]) else "–" for name in METRIC_NAMES]
