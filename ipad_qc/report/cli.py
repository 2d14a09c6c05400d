"""``ipad-qc report`` and ``ipad-qc compare``, and the report a scan writes when it finishes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ipad_qc.classes import ARTIFACT_CLASSES, parse_class_list
from ipad_qc.cli_errors import fail
from ipad_qc.names import markup
from ipad_qc.report.build import PageResult, build_report
from ipad_qc.report.compare import COMPARE_CSV, COMPARE_PAGE, DEFAULT_TOLERANCE, Comparison, compare_runs, key_function
from ipad_qc.report.page import LAYOUTS, SINGLE_FILE_LIMIT
from ipad_qc.report.run import ReportError
from ipad_qc.report.screenshot import screenshot
from ipad_qc.runfolder import EXIT_RUN_FOLDER, RunFolderError

EXIT_REGRESSION = 3  # the same code as `scan --fail-on`: "CI gate tripped"
_LAYOUT_HELP = (f"`single`: one HTML file with the thumbnails embedded (mail it, attach it to a ticket); `folder`: "
                f"the page plus a thumbs/ folder next to it (share both); `auto`: single up to "
                f"{SINGLE_FILE_LIMIT // 2**20} MB, folder above.")

err_console = Console(stderr=True)


def _describe(page: PageResult, console: Console) -> None:
    size = page.size_bytes / 2**20
    where = "one file" if page.layout == "single" else f"folder layout: share it with {page.path.parent / 'thumbs'}"
    console.print(f"{markup(page.path)} ({page.rows} rows, {size:.1f} MB, {markup(where)})", highlight=False,
                  soft_wrap=True)
    for path, reason in page.problems[:5]:
        console.print(f"[yellow]no thumbnail[/yellow] {markup(path)}: {markup(reason)}", highlight=False,
                      soft_wrap=True)
    if len(page.problems) > 5:
        console.print(f"... and {len(page.problems) - 5} more rows without thumbnails")


def write_scan_report(run_dir: Path, quiet: bool, layout: str = "auto") -> None:
    """The report a scan leaves in its run folder. A failure is a warning: the scan results stand."""
    try:
        with Console(stderr=True, quiet=quiet).status("writing report.html (thumbnails of new images)"):
            page = build_report(run_dir, layout)
    except (ReportError, RunFolderError, OSError) as exc:
        err_console.print(f"[yellow]warning:[/yellow] report not written: {markup(exc)}", highlight=False,
                          soft_wrap=True)
        return
    console = Console(quiet=quiet)
    console.print("report: ", end="")
    _describe(page, console)


layout_option = click.option("--layout", type=click.Choice(LAYOUTS), default="auto", show_default=True,
                             help=_LAYOUT_HELP)
workers_option = click.option("--workers", type=click.IntRange(min=0), default=None,
                              help="Processes that make missing thumbnails (0: in this process). [default: up to 4]")


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@layout_option
@workers_option
@click.option("--screenshot", "screenshot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save a PNG of the page as headless Chromium shows it (needs chromium).")
@click.option("--browser", default=None, metavar="PATH",
              help="Chromium/Chrome executable for --screenshot. [default: chromium on PATH]")
def report_command(run_dir: Path, layout: str, workers: int | None, screenshot_path: Path | None,
                   browser: str | None) -> None:
    """(Re)build RUN_DIR/report.html from the results of a scan, without re-running detection.

    \b
    The page works offline and loads nothing from the network. It shows counts and score
    histograms per class, then every image with its thumbnail and mask overlay, label, scores,
    mask area and decode errors: filter by class and status, sort by clicking a column, search
    paths with `/`, click a thumbnail for a large view (arrow keys: next/previous, `m`: mask).

    \b
    Thumbnails are cached in RUN_DIR/thumbs/ (by content), so rebuilding is fast. Originals are
    read from the scanned folder recorded in the run; rows whose original moved keep their mask.

    \b
    Exit codes: 0 written, 2 not a readable run folder, 4 the run folder could not be written
    (disk full, read-only, or in use by a scan).
    """
    try:
        page = build_report(run_dir, layout, workers)
        _describe(page, Console())
        if screenshot_path:
            click.echo(f"screenshot: {screenshot(page.path, screenshot_path, browser)}")
    except ReportError as exc:
        fail(exc)
    except RunFolderError as exc:
        fail(exc, EXIT_RUN_FOLDER)


def _summary_table(comparison: Comparison) -> Table:
    table = Table(title="what changed from A to B, per class", header_style="bold")
    for column in ("class", "newly flagged", "no longer flagged", "score up", "score down"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, counts in comparison.summary["classes"].items():
        worse = counts["newly_flagged"] + counts["score_up"]
        table.add_row(name, *(str(counts[key]) for key in ("newly_flagged", "no_longer_flagged", "score_up",
                                                           "score_down")), style="red" if worse else None)
    return table


def _print_comparison(comparison: Comparison, console: Console) -> None:
    s = comparison.summary
    console.print(_summary_table(comparison))
    console.print(f"matched {s['matched']}, unchanged {s['unchanged']}, only in A {s['only_a']}, only in B "
                  f"{s['only_b']}, new decode errors {s['new_error']}, fixed decode errors {s['fixed_error']}")
    for side, paths in comparison.ignored.items():
        if paths:
            console.print(f"[yellow]{len(paths)} path(s) of run {side} do not match --key and were left out[/yellow]"
                          f" (first: {markup(paths[0])})", highlight=False, soft_wrap=True)
    for pair in comparison.pairs[:10]:
        if pair.verdict == "regression":
            worse = ", ".join(f"{name} {change.replace('_', ' ')}" for name, change in pair.changes.items()
                              if change in ("newly_flagged", "score_up"))
            console.print(f"[red]regression[/red] {markup(pair.key)}: {worse}", highlight=False, soft_wrap=True)
    console.print("page: ", end="")
    _describe(comparison.page, console)
    console.print(f"table: {markup(comparison.csv_path)}", highlight=False, soft_wrap=True)


def _parse_gate(value: str | None) -> list[str] | None:
    if value is None:
        return None
    try:
        return parse_class_list(value) or list(ARTIFACT_CLASSES)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on-regression") from None


@click.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder for {COMPARE_PAGE} and {COMPARE_CSV}. [default: runs/compare-<A>-vs-<B>]")
@click.option("--key", "key_pattern", metavar="REGEX", default=None,
              help="Match images by a key taken from their relative path: the first group of REGEX (or the whole "
                   "match). E.g. '^(.*)_(?:out|final)\\.jpg$' pairs burst_001_out.jpg with burst_001_final.jpg. "
                   "[default: the relative path itself]")
@click.option("--tolerance", type=click.FloatRange(min=0.0, max=1.0), default=DEFAULT_TOLERANCE, show_default=True,
              help="A class score must change by more than this to count as 'score up' or 'score down'.")
@click.option("--fail-on-regression", "fail_on", metavar="[CLASSES]", is_flag=False, flag_value="",
              default=None,
              help="Exit with code 3 when an image got worse in one of CLASSES (comma-separated; all classes "
                   "when given without a value): newly flagged, or its score rose by more than --tolerance.")
@layout_option
@workers_option
def compare_command(run_a: Path, run_b: Path, out: Path | None, key_pattern: str | None, tolerance: float,
                    fail_on: str | None, layout: str, workers: int | None) -> None:
    """Compare two scans (e.g. algorithm v1 vs v2 on the same bursts): what got worse, per image and class.

    \b
    Per class, an image is 'newly flagged' / 'no longer flagged' when its label changes to / from
    that class, and 'score up' / 'score down' when the class score changes by more than
    --tolerance. Images present in only one run and new decode errors are listed too.
    Writes compare.html (regressions first, side-by-side thumbnails with masks) and compare.csv
    (every image, changed or not). Reads only the two results databases: nothing is re-detected.

    \b
    CI example (exit 3 when v2 adds ghosting anywhere):
      ipad-qc compare runs/v1 runs/v2 --fail-on-regression ghosting
    """
    classes = _parse_gate(fail_on)
    try:
        key_function(key_pattern)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from None
    target = out or Path("runs") / f"compare-{run_a.resolve().name}-vs-{run_b.resolve().name}"
    try:
        comparison = compare_runs(run_a, run_b, target, key_pattern, tolerance, layout, workers)
    except ReportError as exc:
        fail(exc)
    _print_comparison(comparison, Console())
    if classes is not None:
        hits = comparison.regressions(classes)
        if hits:
            err_console.print(f"--fail-on-regression: {len(hits)} regression(s) in {', '.join(classes)}")
            sys.exit(EXIT_REGRESSION)
