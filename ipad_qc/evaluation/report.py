"""The result of an evaluation: the paper's seven metrics overall and per artifact class, per protocol."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from rich.table import Table

#: The paper's metric names (Section 5.1, Table 1): three image-level, four pixel-level.
IMAGE_METRICS: tuple[str, ...] = ("C-AUROC", "C-AP", "C-F1max")
PIXEL_METRICS: tuple[str, ...] = ("S-AUROC", "S-AP", "S-F1max", "S-AUPRO")
METRIC_NAMES: tuple[str, ...] = IMAGE_METRICS + PIXEL_METRICS

#: Which images are a class's negatives (see :mod:`ipad_qc.evaluation.metrics`): the paper's
#: ``vs-clean`` (class-k images against clean ones) and ``one-vs-rest`` (against all others).
PROTOCOLS: tuple[str, ...] = ("vs-clean", "one-vs-rest")
DEFAULT_PROTOCOL = "vs-clean"

OVERALL_ROW = "overall (macro)"


@dataclass(frozen=True)
class ProtocolMetrics:
    """One protocol's metrics: per artifact class and their macro mean, with notes on what is undefined.

    ``error_bounds`` holds, per class and pixel metric, a proven bound on how far the figure can be
    from the one computed on every pixel score exactly (pixel scores are counted in cells, see
    :mod:`ipad_qc.evaluation.metrics`); image-level metrics are exact.
    """

    overall: dict[str, float]
    per_class: dict[str, dict[str, float]]
    notes: tuple[str, ...] = ()
    error_bounds: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def overall_error_bounds(self) -> dict[str, float]:
        """Bounds of the macro means: the mean of the bounds of the classes each mean is taken over."""
        bounds = {}
        for metric in PIXEL_METRICS:
            used = [self.error_bounds[name][metric] for name, values in self.per_class.items()
                    if math.isfinite(values[metric]) and name in self.error_bounds]
            bounds[metric] = sum(used) / len(used) if used else float("nan")
        return bounds

    def to_dict(self) -> dict[str, Any]:
        """Plain data with NaN written as ``None`` (``null``): standard JSON has no NaN."""
        return {
            "overall": _finite_or_none(self.overall),
            "per_class": {name: _finite_or_none(values) for name, values in self.per_class.items()},
            "notes": list(self.notes),
            "error_bounds": {
                "overall": _finite_or_none(self.overall_error_bounds),
                "per_class": {name: _finite_or_none(values) for name, values in self.error_bounds.items()},
            },
        }


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics as fractions in [0, 1] (NaN where undefined) in every protocol, the counts behind them.

    ``overall``, ``per_class`` and ``notes`` are those of ``protocol``, the one shown first;
    ``by_protocol`` holds all. ``overall`` is the macro mean over the artifact classes for which each
    metric is defined; ``notes`` say which classes were left out of which means, so a reader never
    mistakes a mean over two classes for one over three.
    """

    by_protocol: dict[str, ProtocolMetrics]
    protocol: str = DEFAULT_PROTOCOL
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def overall(self) -> dict[str, float]:
        return self.by_protocol[self.protocol].overall

    @property
    def per_class(self) -> dict[str, dict[str, float]]:
        return self.by_protocol[self.protocol].per_class

    @property
    def notes(self) -> tuple[str, ...]:
        return self.by_protocol[self.protocol].notes

    def shown_as(self, protocol: str) -> EvaluationReport:
        """The same report with ``protocol`` first."""
        if protocol not in self.by_protocol:
            raise ValueError(f"protocol must be one of {', '.join(self.by_protocol)}, got {protocol!r}")
        return replace(self, protocol=protocol)

    def to_dict(self) -> dict[str, Any]:
        """The shown protocol's metrics at the top level (as before protocols existed), every protocol
        under ``protocols``, and the counts."""
        shown = self.by_protocol[self.protocol].to_dict()
        return {
            "protocol": self.protocol,
            **shown,
            "protocols": {name: metrics.to_dict() for name, metrics in self.by_protocol.items()},
            "counts": self.counts,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, title: str | None = None) -> Table:
        """A table shaped like the paper's Tables 1 and 3: one row per class, the 7 metrics in %."""
        table = Table(title=title or f"IPAD evaluation (%), {self.protocol}", caption="\n".join(self.notes) or None)
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
