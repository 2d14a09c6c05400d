"""The label-level view of an evaluation: what a user sees per image, not per threshold.

Rank metrics say whether a score *orders* images well; a team acting on the tool's labels also
needs to know how often the label itself is right. This module counts the confusion matrix of
true against predicted labels, the accuracy, the clean photos that were flagged (each one is a
photo sent to a removal step for nothing) and lists the worst mistakes, the ones the detector was
most sure of, with their paths so a person can open them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from ipad_qc.classes import CLASS_NAMES


@dataclass(frozen=True)
class ImageVerdict:
    """One labelled image: its true label, the detector's label and its four class scores."""

    path: str
    truth: str
    predicted: str
    scores: dict[str, float]

    @property
    def wrong(self) -> bool:
        return self.truth != self.predicted

    @property
    def margin(self) -> float:
        """How much more the detector believed its (wrong) label than the truth: the worse, the larger."""
        return self.scores[self.predicted] - self.scores[self.truth]

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "truth": self.truth, "predicted": self.predicted,
                "scores": {name: round(value, 6) for name, value in self.scores.items()}}


@dataclass(frozen=True)
class VerdictSummary:
    """Confusion matrix (``confusion[truth][predicted]``), accuracy and the mistakes, worst first."""

    class_names: tuple[str, ...]
    confusion: dict[str, dict[str, int]]
    mistakes: tuple[ImageVerdict, ...]

    @classmethod
    def of(cls, verdicts: Iterable[ImageVerdict], class_names: Sequence[str] = CLASS_NAMES) -> VerdictSummary:
        names = tuple(class_names)
        confusion = {truth: dict.fromkeys(names, 0) for truth in names}
        mistakes = []
        for verdict in verdicts:
            confusion[verdict.truth][verdict.predicted] += 1
            if verdict.wrong:
                mistakes.append(verdict)
        mistakes.sort(key=lambda v: (-v.margin, v.path))
        return cls(names, confusion, tuple(mistakes))

    @property
    def total(self) -> int:
        return sum(sum(row.values()) for row in self.confusion.values())

    @property
    def accuracy(self) -> float:
        correct = sum(self.confusion[name][name] for name in self.class_names)
        return correct / self.total if self.total else float("nan")

    @property
    def clean_total(self) -> int:
        return sum(self.confusion[self.class_names[0]].values())

    @property
    def clean_flagged(self) -> int:
        """Clean images given an artifact label."""
        clean = self.class_names[0]
        return self.clean_total - self.confusion[clean][clean]

    def recall(self, name: str) -> float:
        """Share of the images of class ``name`` that got that label."""
        row = self.confusion[name]
        count = sum(row.values())
        return row[name] / count if count else float("nan")

    def to_dict(self, mistakes: int | None = None) -> dict[str, object]:
        return {
            "images": self.total,
            "accuracy": self.accuracy if self.total else None,
            "clean_flagged": self.clean_flagged,
            "clean_images": self.clean_total,
            "confusion": self.confusion,
            "mistakes": [verdict.to_dict() for verdict in self.mistakes[:mistakes]],
            "mistake_count": len(self.mistakes),
        }

    def confusion_table(self) -> Table:
        table = Table(title=f"Labels: accuracy {self.accuracy:.3f} over {self.total} images",
                      caption=f"rows: true label, columns: the detector's label; "
                              f"{self.clean_flagged} of {self.clean_total} clean images flagged")
        table.add_column("truth \\ label")
        for name in self.class_names:
            table.add_column(name, justify="right")
        table.add_column("recall", justify="right")
        for truth in self.class_names:
            row = self.confusion[truth]
            recall = self.recall(truth)
            cells = [f"[bold]{row[name]}[/bold]" if name == truth else str(row[name]) for name in self.class_names]
            table.add_row(truth, *cells, f"{recall:.2f}" if recall == recall else "–")
        return table

    def mistakes_table(self, limit: int) -> Table:
        """Path, true label, the detector's label and the scores of both (all four scores are in the JSON)."""
        shown = self.mistakes[:limit]
        table = Table(title=f"Worst mistakes ({len(shown)} of {len(self.mistakes)}), most confident first")
        longest = max((len(verdict.path) for verdict in shown), default=4)
        table.add_column("path", min_width=min(longest, 56), overflow="fold")
        for column in ("truth", "label", "p(label)", "p(truth)"):
            table.add_column(column, justify="right" if column.startswith("p(") else "left")
        for verdict in shown:
            # File names are data: Text() keeps a name like 'x[/red].jpg' from being read as markup.
            table.add_row(Text(verdict.path), verdict.truth, verdict.predicted,
                          f"{verdict.scores[verdict.predicted]:.3f}", f"{verdict.scores[verdict.truth]:.3f}")
        return table
