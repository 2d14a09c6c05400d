"""The ``ipad-qc`` command line."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ipad_qc import __version__
from ipad_qc.classes import CLASS_NAMES
from ipad_qc.cli_errors import print_error
from ipad_qc.cli_types import FiniteFloatRange
from ipad_qc.clip.commands import model_info_command
from ipad_qc.datasets.commands import synth_command
from ipad_qc.detectors.registry import UnknownDetectorError, available_detectors
from ipad_qc.device import DEVICE_CHOICES, DeviceUnavailableError
from ipad_qc.evaluation.commands import eval_command
from ipad_qc.gating import flagged_rows, parse_fail_on
from ipad_qc.io import RAW_MODES
from ipad_qc.io.budget import DEFAULT_MAX_PIXELS
from ipad_qc.names import markup
from ipad_qc.net.commands import train_net_command
from ipad_qc.ray_engine import RayEngine
from ipad_qc.report.cli import compare_command, report_command, write_scan_report
from ipad_qc.routing.cli import plugins_command, route_after_scan, route_command, scan_route_options
from ipad_qc.runfolder import EXIT_RUN_FOLDER, RunFolderError
from ipad_qc.scanner import ItemResult, ScanError, ScanOptions, ScanSummary, scan
from ipad_qc.store import ResultStore, StoreError
from ipad_qc.training.commands import train_command

EXIT_OK, EXIT_DECODE_ERRORS, EXIT_USAGE, EXIT_FLAGGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

err_console = Console(stderr=True)


class _RateColumn(ProgressColumn):
    """Images per second since the scan started (steadier than rich's windowed speed with batches)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed or not task.completed:
            return Text("-- img/s", style="progress.data.speed")
        return Text(f"{task.completed / elapsed:.2f} img/s", style="progress.data.speed")


class RichListener:
    """Progress bar with rate and ETA; decode errors are printed above it as they happen."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
            disable=quiet, transient=False,
        )
        self.task = None

    def started(self, to_scan: int, skipped: int) -> None:
        if skipped and not self.quiet:
            self.console.print(f"{skipped} file(s) unchanged since the last scan: skipped")
        self.progress.start()
        self.task = self.progress.add_task("scan", total=to_scan)

    def advanced(self, item: ItemResult) -> None:
        if item.status == "error":
            self.progress.console.print(f"[red]error[/red] {markup(item.relpath)}: {markup(item.error)}",
                                        markup=True, highlight=False, soft_wrap=True)
        self.progress.advance(self.task)

    def stop(self) -> None:
        self.progress.stop()


def parse_detector_options(values: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--detector-option")
        try:
            options[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.strip()] = raw
    return options


def _summary_table(summary: ScanSummary) -> Table:
    table = Table(title=f"ipad-qc scan of {markup(summary.root)}", show_header=True, header_style="bold")
    table.add_column("result")
    table.add_column("images", justify="right")
    for name in CLASS_NAMES:
        table.add_row(name, str(summary.labels.get(name, 0)))
    table.add_row("decode errors", str(summary.error_count), style="red" if summary.error_count else None)
    table.add_section()
    table.add_row("scanned now", str(summary.scanned))
    table.add_row("failed now", str(summary.failed))
    table.add_row("unchanged (skipped)", str(summary.skipped))
    table.add_row("not images (ignored)", str(summary.ignored))
    if summary.excluded:
        table.add_row("excluded by filters", str(summary.excluded))
    if summary.removed:
        table.add_row("rows removed (files gone, or --prune)", str(summary.removed))
    if summary.kept_outside:
        table.add_row("rows outside this scan (kept)", str(summary.kept_outside))
    return table


def _print_summary(console: Console, summary: ScanSummary) -> None:
    console.print(_summary_table(summary))
    done = summary.scanned + summary.failed
    rate = done / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    console.print(f"{done} file(s) in {summary.elapsed_s:.1f} s ({rate:.2f} img/s); "
                  f"decode {summary.decode_s:.1f} s (summed over workers), detect {summary.detect_s:.1f} s")
    for path, reason in summary.problems:
        console.print(f"[yellow]warning[/yellow] {markup(path)}: {markup(reason)}", highlight=False, soft_wrap=True)
    for path, reason in summary.errors[:20]:
        console.print(f"[red]error[/red] {markup(path)}: {markup(reason)}", highlight=False, soft_wrap=True)
    if summary.error_count > 20:
        console.print(f"... and {summary.error_count - 20} more errors: see results.csv")
    folder = summary.run_dir
    console.print(f"results: {markup(folder / 'results.csv')}, {markup(folder / 'results.jsonl')}, "
                  f"{markup(folder / 'results.sqlite')}", highlight=False, soft_wrap=True)


def _raise_interrupt_on_sigterm() -> None:
    """Treat ``kill`` (SIGTERM) like Ctrl-C: finish the committed batches and write the exports."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ipad-qc")
def main() -> None:
    """Find ghosting, lens flare and moiré in folders of photos, with masks, and route the flagged ones.

    \b
    Typical use:
      ipad-qc scan ./shots --out runs/today      # detect, write results.csv / .jsonl / .sqlite + masks
      ipad-qc detectors                          # list installed detectors
      ipad-qc report runs/today                  # rebuild runs/today/report.html (no re-detection)
      ipad-qc compare runs/v1 runs/v2            # what got worse from v1 to v2, per image and class
    """


@main.command("scan")
@click.argument("root", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder for results.csv/.jsonl/.sqlite and masks/. Re-using it resumes and only "
                   "re-scans new or changed files. [default: runs/<name of ROOT>]")
@click.option("--detector", default="classic", show_default=True,
              help="Detector name (see `ipad-qc detectors`). `classic` needs no model weights.")
@click.option("--detector-option", "detector_options", multiple=True, metavar="KEY=VALUE",
              help="Option passed to the detector (value parsed as JSON when possible). Repeatable.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Trained IPAD-CLIP checkpoint (.safetensors) for --detector ipad-clip. Without it, "
                   "ipad-clip runs zero-shot on pretrained CLIP weights.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where the detector runs; `auto` picks a CUDA GPU when PyTorch sees one.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per detector call; results are committed once per batch.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decode processes (0 decodes in the main process); the detector gets the cores they leave, "
                   "at least one thread. [default: CPU cores - 1]")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where decoding and detection run. `local`: processes on this machine. `ray`: a Ray "
                   "cluster (CPU tasks decode, actors detect, one GPU each) with the same results; the run "
                   "folder is written here and inputs must be readable by every node at the same path "
                   "(README: 'Scanning on a Ray cluster'). Needs pip install 'ipad-qc[ray]'.")
@click.option("--ray-address", metavar="ADDR", default=None,
              help="Ray cluster to join with --engine ray (`auto`, `ray://head:10001`). Without it, Ray is "
                   "started on this machine.")
@click.option("--ray-actors", type=click.IntRange(min=1), default=None,
              help="Most detect actors with --engine ray. [default: one per GPU of the cluster, 1 without GPUs]")
@click.option("--raw-mode", type=click.Choice(RAW_MODES), default="preview", show_default=True,
              help="RAW decoding: `preview` uses the embedded camera JPEG when it is large enough (fast, "
                   "falls back to `half`), `half` demosaics at half size, `full` at full size.")
@click.option("--allow-partial", is_flag=True,
              help="Scan what is left of truncated JPEGs (with a warning) instead of failing them.")
@click.option("--include", multiple=True, metavar="GLOB",
              help="Only scan paths matching GLOB (relative to ROOT; `**` spans folders; a pattern "
                   "without `/` matches the file name). Repeatable.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files and folders matching GLOB. Repeatable.")
@click.option("--hidden", is_flag=True, help="Also scan hidden files and folders (names starting with '.').")
@click.option("--force", is_flag=True, help="Re-scan every file, even unchanged ones.")
@click.option("--retry-errors", is_flag=True, help="Re-try files that failed to decode in an earlier scan.")
@click.option("--prune", is_flag=True,
              help="Remove the rows of files outside this scan (left out by --include/--exclude, in other "
                   "sub-folders, or of another folder scanned into --out before). Without it such rows stay, "
                   "and a row goes only when its file is gone from disk.")
@click.option("--max-megapixels", type=FiniteFloatRange(min=0.001), default=DEFAULT_MAX_PIXELS / 1e6,
              show_default=True,
              help="Decode budget per image: a picture larger than this (by its header) is an error row and is "
                   "never decoded, so a small file claiming a huge size cannot exhaust memory.")
@click.option("--no-maps", is_flag=True, help="Do not write the per-class probability maps (maps/).")
@click.option("--no-report", is_flag=True,
              help="Do not write report.html (thumbnails take extra time on big folders; `ipad-qc report` "
                   "builds it later).")
@click.option("--fail-on", "fail_on", metavar="CLASSES",
              help="Exit with code 3 when an image is flagged, for CI gating: `flare,ghosting` fails on "
                   "those labels, `flare:0.6` on a flare score >= 0.6.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary; errors still go to stderr.")
@scan_route_options
def scan_command(root: Path, out: Path | None, detector: str, detector_options: tuple[str, ...],
                 checkpoint: Path | None, device: str,
                 batch_size: int, workers: int | None, raw_mode: str, allow_partial: bool,
                 include: tuple[str, ...], exclude: tuple[str, ...], hidden: bool, force: bool,
                 retry_errors: bool, prune: bool, max_megapixels: float, no_maps: bool, no_report: bool,
                 fail_on: str | None, quiet: bool, route_config: str | None, engine: str, ray_address: str | None,
                 ray_actors: int | None) -> None:
    """Scan ROOT (a folder, searched recursively, or one image) for ghosting, flare and moiré.

    \b
    Writes into the run folder:
      results.csv / results.jsonl   one row per image: label, class scores, mask fraction, ...
      results.sqlite                the same rows; later steps (reports, routing) read it
      masks/<path>.png              binary artifact mask at the original size (flagged images)
      maps/<path>.png               per-class probability maps (R ghosting, G flare, B moiré)
      report.html                   the page to look at: thumbnails, masks, filters (--no-report)

    \b
    Exit codes: 0 all files scanned, 1 some files could not be decoded (they are listed as
    error rows), 2 usage error, 3 --fail-on matched, 4 the run folder could not be written
    (disk full, read-only, or in use by another scan; rows committed before stay),
    130 interrupted (re-run to resume).
    """
    try:
        rules = parse_fail_on(fail_on) if fail_on else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fail-on") from None
    if engine != "ray" and (ray_address or ray_actors):
        raise click.UsageError("--ray-address and --ray-actors need --engine ray")
    parsed_options = parse_detector_options(detector_options)
    if checkpoint is not None:
        parsed_options["checkpoint"] = str(checkpoint)
    options = ScanOptions(detector=detector, detector_options=parsed_options,
                          device=device, batch_size=batch_size, workers=workers, raw_mode=raw_mode,
                          allow_partial=allow_partial, include=include, exclude=exclude, include_hidden=hidden,
                          force=force, retry_errors=retry_errors, write_maps=not no_maps,
                          write_thumbnails=not no_report, max_pixels=round(max_megapixels * 1e6), prune=prune)
    run_dir = out or Path("runs") / (root.resolve().name or "root")
    console = Console(stderr=True)
    listener = RichListener(console, quiet)
    _raise_interrupt_on_sigterm()
    try:
        scan_engine = RayEngine(ray_address, ray_actors) if engine == "ray" else None
        summary = scan(root, run_dir, options, listener=listener, engine=scan_engine)
    except (ScanError, StoreError, UnknownDetectorError, DeviceUnavailableError, ValueError) as exc:
        listener.stop()
        print_error(exc)
        sys.exit(EXIT_USAGE)
    except RunFolderError as exc:
        listener.stop()
        print_error(exc)
        sys.exit(EXIT_RUN_FOLDER)
    listener.stop()
    if not quiet:
        _print_summary(Console(), summary)
    if not (no_report or summary.interrupted):
        write_scan_report(run_dir, quiet)
    code = _exit_code(summary, run_dir, rules)
    if not summary.interrupted:
        code = max(code, route_after_scan(run_dir, route_config, quiet))
    sys.exit(code)


def _exit_code(summary: ScanSummary, run_dir: Path, rules: dict[str, float | None] | None) -> int:
    if summary.interrupted:
        err_console.print("interrupted: finished batches are saved; run the same command again to resume")
        return EXIT_INTERRUPTED
    if rules:
        with ResultStore(run_dir, readonly=True) as store:
            hits = flagged_rows(store.rows(), rules)
        if hits:
            for path, name in hits[:20]:
                err_console.print(f"[yellow]flagged[/yellow] {name}: {markup(path)}", highlight=False, soft_wrap=True)
            err_console.print(f"--fail-on: {len(hits)} flagged image(s)")
            return EXIT_FLAGGED
    return EXIT_DECODE_ERRORS if summary.error_count else EXIT_OK


@main.command("detectors")
def detectors_command() -> None:
    """List the installed detectors (built-in and from the `ipad_qc.detectors` entry-point group)."""
    table = Table(show_header=True, header_style="bold")
    for column in ("name", "origin", "factory"):
        table.add_column(column)
    for info in available_detectors():
        table.add_row(info.name, info.origin, info.target)
    Console().print(table)


main.add_command(model_info_command)
main.add_command(train_command)
main.add_command(train_net_command)
main.add_command(eval_command)
main.add_command(report_command)
main.add_command(compare_command)
main.add_command(route_command)
main.add_command(plugins_command)
main.add_command(synth_command)

if __name__ == "__main__":
    main()
