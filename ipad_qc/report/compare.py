"""``ipad-qc compare RUN_A RUN_B``: what changed per image and per class between two scans.

Images are matched by their path relative to the scanned folder, or by a key that a regular
expression extracts from it (``--key``), so the outputs of two algorithm versions can be matched
even when their file names differ. Like the report, the comparison reads only the two results
databases and mask files.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.outputs import formula_safe
from ipad_qc.report.assets import THUMB_DIR, AssetLinker, asset_request, ensure_assets
from ipad_qc.report.build import PAGE_SIZE, PageResult, page_facts, publish
from ipad_qc.report.run import ReportError, Run, open_run
from ipad_qc.runfolder import atomic_write

COMPARE_PAGE = "compare.html"
COMPARE_CSV = "compare.csv"
DEFAULT_TOLERANCE = 0.1
WORSE = ("newly_flagged", "score_up")
BETTER = ("no_longer_flagged", "score_down")
# Page and CSV order: what needs attention first.
VERDICT_ORDER = ("regression", "new_error", "only_a", "only_b", "improvement", "fixed_error", "unchanged")


@dataclass
class Pair:
    """One image key and its rows in run A and run B (``None``: absent on that side)."""

    key: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    verdict: str = "unchanged"
    changes: dict[str, str] = field(default_factory=dict)  # class -> one of WORSE + BETTER, or ""
    deltas: dict[str, float | None] = field(default_factory=dict)  # class -> score B - score A

    def worst_increase(self) -> float:
        return max((delta for delta in self.deltas.values() if delta is not None), default=0.0)


@dataclass
class Comparison:
    """Every pair (in page order), per-class counts, and the pages written."""

    pairs: list[Pair]
    summary: dict[str, Any]
    ignored: dict[str, list[str]]  # side -> paths the key pattern did not match
    page: PageResult | None = None
    csv_path: Path | None = None

    def regressions(self, classes: Iterable[str] = ARTIFACT_CLASSES) -> list[tuple[str, str]]:
        """(key, class) for every image that got worse in one of ``classes``: the CI gate."""
        wanted = set(classes)
        return [(pair.key, name) for pair in self.pairs for name, change in pair.changes.items()
                if name in wanted and change in WORSE]


def key_function(pattern: str | None) -> Any:
    """Path -> key: the path itself, or the first group (else the whole match) of ``pattern``."""
    if not pattern:
        return lambda path: path
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"--key {pattern!r} is not a valid regular expression: {exc}") from None

    def key(path: str) -> str | None:
        match = regex.search(path)
        if match is None:
            return None
        return match.group(1) if regex.groups else match.group(0)

    return key


def _index(run: Run, key: Any, side: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    rows: dict[str, dict[str, Any]] = {}
    ignored = []
    for row in run.rows:
        name = key(row["path"])
        if name is None:
            ignored.append(row["path"])
        elif name in rows:
            raise ReportError(f"{run.dir}: the key pattern gives two images of run {side} the same key {name!r}: "
                              f"{rows[name]['path']} and {row['path']}; make --key capture more of the path")
        else:
            rows[name] = row
    if run.rows and not rows:
        raise ReportError(f"{run.dir}: --key matches no path of run {side} (first path: {run.rows[0]['path']})")
    return rows, ignored


def classify(pair: Pair, tolerance: float) -> Pair:
    """Fill in the per-class changes and the image's verdict."""
    a, b = pair.a, pair.b
    if a is None or b is None:
        pair.verdict = "only_b" if a is None else "only_a"
        return pair
    if a["status"] != "ok" or b["status"] != "ok":
        both_bad = a["status"] != "ok" and b["status"] != "ok"
        pair.verdict = "unchanged" if both_bad else ("new_error" if b["status"] != "ok" else "fixed_error")
        return pair
    for name in ARTIFACT_CLASSES:
        delta = float(b[f"score_{name}"] or 0.0) - float(a[f"score_{name}"] or 0.0)
        pair.deltas[name] = round(delta, 4)
        flagged_a, flagged_b = a["label"] == name, b["label"] == name
        if flagged_a != flagged_b:
            pair.changes[name] = "newly_flagged" if flagged_b else "no_longer_flagged"
        elif abs(delta) > tolerance:
            pair.changes[name] = "score_up" if delta > 0 else "score_down"
        else:
            pair.changes[name] = ""
    found = set(pair.changes.values())
    pair.verdict = "regression" if found & set(WORSE) else "improvement" if found & set(BETTER) else "unchanged"
    return pair


def _summary(pairs: Sequence[Pair]) -> dict[str, Any]:
    verdicts = Counter(pair.verdict for pair in pairs)
    per_class = {name: Counter(pair.changes.get(name, "") for pair in pairs) for name in ARTIFACT_CLASSES}
    return {
        "matched": sum(1 for pair in pairs if pair.a is not None and pair.b is not None),
        "regressions": verdicts["regression"], "improvements": verdicts["improvement"],
        **{name: verdicts[name] for name in ("unchanged", "only_a", "only_b", "new_error", "fixed_error")},
        "classes": {name: {change: per_class[name][change] for change in (*WORSE, *BETTER)}
                    for name in ARTIFACT_CLASSES},
    }


def match_runs(run_a: Run, run_b: Run, key_pattern: str | None = None,
               tolerance: float = DEFAULT_TOLERANCE) -> Comparison:
    """Pair the images of two runs and classify every pair; regressions come first."""
    if tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0, got {tolerance}")
    key = key_function(key_pattern)
    rows_a, ignored_a = _index(run_a, key, "A")
    rows_b, ignored_b = _index(run_b, key, "B")
    pairs = [classify(Pair(name, rows_a.get(name), rows_b.get(name)), tolerance)
             for name in sorted(rows_a.keys() | rows_b.keys())]
    pairs.sort(key=lambda pair: (VERDICT_ORDER.index(pair.verdict), -pair.worst_increase(), pair.key))
    return Comparison(pairs, _summary(pairs), {"A": ignored_a, "B": ignored_b})


# --- outputs ----------------------------------------------------------------------------------------

def _get(row: dict[str, Any] | None, name: str) -> Any:
    return None if row is None else row.get(name)


def csv_columns() -> list[str]:
    per_class = [f"{column}_{name}" if column in ("delta", "change") else f"score_{name}_{column}"
                 for name in ARTIFACT_CLASSES for column in ("a", "b", "delta", "change")]
    return ["key", "verdict", "path_a", "path_b", "status_a", "status_b", "label_a", "label_b", *per_class,
            "error_a", "error_b"]


def csv_text(comparison: Comparison) -> str:
    """``compare.csv``: one line per image key (unchanged ones too), in page order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns())
    for pair in comparison.pairs:
        per_class = []
        for name in ARTIFACT_CLASSES:
            delta = pair.deltas.get(name)
            per_class += [_get(pair.a, f"score_{name}"), _get(pair.b, f"score_{name}"),
                          "" if delta is None else f"{delta:.4f}", pair.changes.get(name, "")]
        sides = [_get(row, name) for name in ("path", "status", "label") for row in (pair.a, pair.b)]
        errors = [_get(row, "error") for row in (pair.a, pair.b)]
        writer.writerow([formula_safe(value) for value in (pair.key, pair.verdict, *sides, *per_class, *errors)])
    return buffer.getvalue()


COMPARE_COLUMNS = ("key", "verdict", "rank", "path_a", "path_b", "status_a", "status_b", "label_a", "label_b",
                   "error_a", "error_b", "deltas", "changes",
                   "thumb_a", "overlay_a", "view_a", "view_overlay_a", "note_a",
                   "thumb_b", "overlay_b", "view_b", "view_overlay_b", "note_b")


def compare_runs(run_a: str | Path, run_b: str | Path, out: str | Path, key_pattern: str | None = None,
                 tolerance: float = DEFAULT_TOLERANCE, layout: str = "auto", workers: int | None = None,
                 ) -> Comparison:
    """Compare two run folders and write ``compare.html`` and ``compare.csv`` into ``out``."""
    first, second = open_run(run_a), open_run(run_b)
    comparison = match_runs(first, second, key_pattern, tolerance)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = [pair for pair in comparison.pairs if pair.verdict != "unchanged"]
    requests = {}
    for pair in changed:
        for side, row, run in (("a", pair.a, first), ("b", pair.b, second)):
            request = asset_request(row, run.root, run.dir, want_view=True) if row else None
            if request is not None:
                requests[f"{side}:{pair.key}"] = request
    cache = out_dir / THUMB_DIR
    assets = ensure_assets(requests, cache, workers)
    side_names = [f"A: {first.name}", f"B: {second.name}"]

    def pair_values(pair: Pair, linker: AssetLinker) -> list[Any]:
        values: dict[str, Any] = {"key": pair.key, "verdict": pair.verdict,
                                  "rank": VERDICT_ORDER.index(pair.verdict),
                                  "deltas": [pair.deltas.get(name) for name in ARTIFACT_CLASSES],
                                  "changes": [pair.changes.get(name, "") for name in ARTIFACT_CLASSES]}
        for side, row in (("a", pair.a), ("b", pair.b)):
            for name in ("path", "status", "label", "error"):
                values[f"{name}_{side}"] = _get(row, name)
            item = assets.get(f"{side}:{pair.key}")
            for name in ("thumb", "overlay", "view", "view_overlay"):
                values[f"{name}_{side}"] = linker.url(getattr(item, name)) if item else None
            values[f"note_{side}"] = item.problem if item else None
        return [values[name] for name in COMPARE_COLUMNS]

    def make_data(linker: AssetLinker) -> dict[str, Any]:
        facts = [(f"A {label}", value) for label, value in first.facts()[:2]]
        facts += [(f"B {label}", value) for label, value in second.facts()[:2]]
        facts += [("matched by", f"key pattern {key_pattern}" if key_pattern else "relative path"),
                  ("tolerance", f"score change beyond ±{tolerance}")]
        return {
            "kind": "compare", "title": f"ipad-qc compare: {first.name} → {second.name}",
            "facts": page_facts(facts), "classes": [], "artifact_classes": list(ARTIFACT_CLASSES),
            "side_names": side_names, "tolerance": tolerance, "summary": comparison.summary,
            "page_size": PAGE_SIZE, "columns": list(COMPARE_COLUMNS),
            "rows": [pair_values(pair, linker) for pair in changed],
        }

    page = out_dir / COMPARE_PAGE
    chosen, size = publish(page, layout, cache, assets.values(), len(changed), make_data)
    problems = [(key, item.problem) for key, item in assets.items() if item.problem]
    comparison.page = PageResult(page, chosen, len(changed), size, problems)
    comparison.csv_path = out_dir / COMPARE_CSV
    atomic_write(comparison.csv_path, csv_text(comparison).encode("utf-8"))
    return comparison
