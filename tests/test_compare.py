"""ipad-qc compare: matching by path or key, per-class changes, compare.csv, CI exit codes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_fixtures import error_row, make_shots, result_row, scan_run, store_rows

from ipad_qc.cli import main
from ipad_qc.report import ReportError, compare_runs
from ipad_qc.report.compare import Pair, classify, key_function


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[Path, Path]:
    """v1 -> v2: one image gains ghosting, one loses flare, one's moiré score rises within the label,
    one stays, one disappears, one appears, one stops decoding."""
    first = [result_row("gains.jpg"), result_row("loses.jpg", "flare", flare=0.8), result_row("same.jpg"),
             result_row("rises.jpg", moire=0.1), result_row("gone.jpg"), result_row("breaks.jpg")]
    second = [result_row("gains.jpg", "ghosting", ghosting=0.7), result_row("loses.jpg", flare=0.2),
              result_row("same.jpg", flare=0.05), result_row("rises.jpg", moire=0.35), result_row("new.jpg"),
              error_row("breaks.jpg")]
    return store_rows(tmp_path / "v1", first), store_rows(tmp_path / "v2", second)


def compare(*args: str):
    return CliRunner().invoke(main, ["compare", *args], catch_exceptions=False)


def test_per_class_changes_and_verdicts(runs: tuple[Path, Path], tmp_path: Path) -> None:
    comparison = compare_runs(*runs, tmp_path / "cmp")
    verdicts = {pair.key: pair.verdict for pair in comparison.pairs}
    assert verdicts == {"gains.jpg": "regression", "rises.jpg": "regression", "loses.jpg": "improvement",
                        "same.jpg": "unchanged", "gone.jpg": "only_a", "new.jpg": "only_b", "breaks.jpg": "new_error"}
    by_key = {pair.key: pair for pair in comparison.pairs}
    assert by_key["gains.jpg"].changes == {"ghosting": "newly_flagged", "flare": "", "moire": ""}
    assert by_key["rises.jpg"].changes["moire"] == "score_up" and by_key["loses.jpg"].changes["flare"] == (
        "no_longer_flagged")
    assert by_key["same.jpg"].changes["flare"] == "", "a change within the tolerance is no change"
    assert [pair.verdict for pair in comparison.pairs][:3] == ["regression", "regression", "new_error"]
    assert comparison.pairs[0].key == "gains.jpg", "the biggest score increase comes first"
    summary = comparison.summary
    assert summary["classes"]["ghosting"]["newly_flagged"] == 1 and summary["classes"]["moire"]["score_up"] == 1
    assert (summary["matched"], summary["only_a"], summary["only_b"], summary["new_error"]) == (5, 1, 1, 1)
    assert comparison.regressions(["flare"]) == []
    assert sorted(comparison.regressions()) == [("gains.jpg", "ghosting"), ("rises.jpg", "moire")]


def test_tolerance_decides_score_changes() -> None:
    pair = Pair("k", result_row("k", moire=0.1), result_row("k", moire=0.25))
    assert classify(pair, 0.1).changes["moire"] == "score_up"
    pair = Pair("k", result_row("k", moire=0.1), result_row("k", moire=0.25))
    assert classify(pair, 0.2).changes["moire"] == "" and pair.verdict == "unchanged"


def test_compare_csv_lists_every_image(runs: tuple[Path, Path], tmp_path: Path) -> None:
    comparison = compare_runs(*runs, tmp_path / "cmp")
    with open(comparison.csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["key"] for row in rows][:2] == ["gains.jpg", "rises.jpg"] and len(rows) == 7
    gains = rows[0]
    assert (gains["verdict"], gains["label_a"], gains["label_b"], gains["change_ghosting"]) == (
        "regression", "clean", "ghosting", "newly_flagged")
    assert float(gains["delta_ghosting"]) == pytest.approx(0.7)
    breaks = next(row for row in rows if row["key"] == "breaks.jpg")
    assert breaks["status_b"] == "error" and breaks["error_b"] == "not an image"
    assert comparison.page.rows == 6, "the page lists changed images only"


def test_fail_on_regression_exit_codes(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "cmp")]
    assert compare(*map(str, runs), *out).exit_code == 0
    gated = compare(*map(str, runs), *out, "--fail-on-regression", "ghosting")
    assert gated.exit_code == 3 and "gains.jpg" in gated.output
    assert compare(*map(str, runs), *out, "--fail-on-regression", "flare").exit_code == 0
    assert compare(*map(str, runs), *out, "--fail-on-regression").exit_code == 3, "no value: every class"
    assert compare(*map(str, runs), *out, "--fail-on-regression", "smudge").exit_code == 2


def test_key_pattern_matches_renamed_outputs(tmp_path: Path) -> None:
    first = store_rows(tmp_path / "v1", [result_row("v1/burst_001_out.jpg"), result_row("v1/burst_002_out.jpg")])
    second = store_rows(tmp_path / "v2", [result_row("v2/burst_001_final.jpg", "flare", flare=0.9),
                                          result_row("v2/burst_002_final.jpg"), result_row("v2/notes.jpg")])
    comparison = compare_runs(first, second, tmp_path / "cmp", key_pattern=r"(burst_\d+)")
    assert {pair.key: pair.verdict for pair in comparison.pairs} == {"burst_001": "regression",
                                                                      "burst_002": "unchanged"}
    assert comparison.ignored == {"A": [], "B": ["v2/notes.jpg"]}
    assert key_function(r"burst_\d+")("x/burst_7_out.jpg") == "burst_7", "no group: the whole match"


def test_key_pattern_errors_name_the_problem(tmp_path: Path) -> None:
    first = store_rows(tmp_path / "v1", [result_row("a/1.jpg"), result_row("b/1.jpg")])
    with pytest.raises(ReportError, match=r"same key '1.jpg': a/1.jpg and b/1.jpg"):
        compare_runs(first, first, tmp_path / "cmp", key_pattern=r"[^/]+$")
    with pytest.raises(ReportError, match="matches no path"):
        compare_runs(first, first, tmp_path / "cmp", key_pattern="nothing-like-this")
    result = CliRunner().invoke(main, ["compare", str(first), str(first), "--key", "(unclosed"])
    assert result.exit_code == 2 and "not a valid regular expression" in result.output
    assert compare(str(first), str(tmp_path)).exit_code == 2


def test_compare_real_scans_draws_both_sides(tmp_path: Path) -> None:
    first = scan_run(make_shots(tmp_path / "s1", {"x.jpg": "clean", "y.jpg": "clean"}), tmp_path / "v1")
    second = scan_run(make_shots(tmp_path / "s2", {"x.jpg": "bright", "y.jpg": "clean"}), tmp_path / "v2")
    comparison = compare_runs(first, second, tmp_path / "cmp")
    assert comparison.regressions() == [("x.jpg", "flare")]
    assert comparison.page.layout == "single" and not comparison.page.problems
    text = comparison.page.path.read_text("utf-8")
    assert text.count("data:image/jpeg;base64,") == 4 and text.count("data:image/png;base64,") == 2
