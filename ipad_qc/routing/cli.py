"""``ipad-qc route`` and ``ipad-qc plugins``, plus the ``--route`` options of ``ipad-qc scan``."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ipad_qc.cli_errors import print_error
from ipad_qc.cli_types import FiniteFloatRange
from ipad_qc.gating import parse_fail_on
from ipad_qc.names import markup
from ipad_qc.routing.policy import (
    MAX_TIMEOUT_S,
    SORT_MODES,
    HookSpec,
    PolicyError,
    RoutingPolicy,
    load_policy,
    parse_command,
    parse_order,
)
from ipad_qc.routing.registry import available_hooks
from ipad_qc.routing.repairs import RepairRecord
from ipad_qc.routing.router import RouteError, RouteSummary, route
from ipad_qc.runfolder import EXIT_RUN_FOLDER, RunFolderError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
err_console = Console(stderr=True)


class _RouteProgress:
    """Progress bar; failed repairs are printed above it as they happen, one line each."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]routing"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, disable=quiet)
        self.task = None

    def started(self, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("route", total=total)

    def advanced(self, path: str, records: list[RepairRecord]) -> None:
        for record in records:
            if record.status == "failed":
                self.progress.console.print(f"[red]failed[/red] {markup(path)} ({record.artifact}, "
                                            f"{markup(record.hook)}): {markup(record.error)}", highlight=False,
                                            soft_wrap=True)
        self.progress.advance(self.task)

    def stop(self) -> None:
        self.progress.stop()


def _override(policy: RoutingPolicy, hooks: tuple[str, ...], commands: tuple[str, ...], classes: str | None,
              order: str | None, sort: str | None, timeout: float | None, references: str | None) -> RoutingPolicy:
    """Apply the CLI flags on top of the configuration file."""
    specs = dict(policy.hooks)
    for item in hooks:
        name, plugin = _class_value(item, "--hook")
        specs[name] = HookSpec(name, plugin=plugin)
    for item in commands:
        name, argv = _class_value(item, "--command")
        specs[name] = HookSpec(name, command=parse_command(shlex.split(argv), f"--command {name}"))
    changes: dict[str, Any] = {"hooks": specs}
    if classes:
        rules = parse_fail_on(classes)
        changes["hooks"] = {name: spec for name, spec in specs.items() if name in rules}
        changes["thresholds"] = {name: value for name, value in rules.items() if value is not None}
    if order:
        changes["order"] = parse_order(order)
    for key, value in (("sort", sort), ("timeout_s", timeout), ("references", references)):
        if value is not None:
            changes[key] = value
    return replace(policy, **changes)


def _class_value(item: str, option: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    name = name.strip().lower()
    if not sep or not value.strip():
        raise PolicyError(f"{option}: expected CLASS=VALUE, got {item!r}")
    if name not in RoutingPolicy().hooks:
        raise PolicyError(f"{option}: unknown artifact class {name!r}; choose from ghosting, flare, moire")
    return name, value.strip()


def _print_plan(console: Console, summary: RouteSummary, policy: RoutingPolicy) -> None:
    table = Table(title=f"route plan for {markup(summary.run_dir)} (dry run: nothing written)", header_style="bold")
    for column in ("image", "classes (in order)", "hooks"):
        table.add_column(column)
    for path, classes in summary.plan:
        hooks = [f"sort:{policy.sort}" if policy.sort else policy.hooks[name].label for name in classes]
        table.add_row(markup(path), ", ".join(classes), markup(" -> ".join(hooks)))
    console.print(table)
    console.print(f"{len(summary.plan)} image(s) would be routed")


def _print_summary(console: Console, summary: RouteSummary) -> None:
    table = Table(title=f"ipad-qc route of {markup(summary.run_dir)}", header_style="bold")
    for column in ("hook", "ok", "failed", "declined", "skipped"):
        table.add_column(column, justify="right" if column != "hook" else "left")
    for hook in sorted({hook for hook, _ in summary.statuses}):
        table.add_row(markup(hook), *(str(summary.statuses[(hook, status)]) for status in ("ok", "failed", "declined",
                                                                                           "skipped")))
    console.print(table)
    console.print(f"{summary.routed} image(s) routed, {summary.skipped} already finished (skipped), "
                  f"{len(summary.failures)} failed step(s) in {summary.elapsed_s:.1f} s; "
                  f"outputs under {markup(summary.run_dir)}/repaired or sorted/, details in the `repairs` table",
                  highlight=False)


def run_route(run_dir: Path, policy: RoutingPolicy, *, dry_run: bool, force: bool, quiet: bool) -> int:
    """Route with progress and summary; returns the exit code (0 ok, 1 failed steps, 2 usage, 4 the run
    folder could not be written, 130 interrupted)."""
    progress = _RouteProgress(Console(stderr=True), quiet or dry_run)
    try:
        summary = route(run_dir, policy, dry_run=dry_run, force=force, listener=progress)
    except RouteError as exc:
        print_error(exc)
        return EXIT_USAGE
    except RunFolderError as exc:
        print_error(exc)
        return EXIT_RUN_FOLDER
    finally:
        progress.stop()
    if dry_run:
        _print_plan(Console(), summary, policy)
    elif not quiet:
        _print_summary(Console(), summary)
    if summary.interrupted:
        err_console.print("interrupted: finished images are saved; run the same command again to resume")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failures else EXIT_OK


def _load(config: Path | None) -> RoutingPolicy:
    try:
        return load_policy(config)
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from None


@click.command("route")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Routing policy ([route] section of a TOML file). [default: ./ipad-qc.toml if present]")
@click.option("--hook", "hooks", multiple=True, metavar="CLASS=PLUGIN",
              help="Plugin for a class, e.g. `flare=deflare` (see `ipad-qc plugins`). Repeatable.")
@click.option("--command", "commands", multiple=True, metavar="CLASS=COMMAND",
              help="External command for a class, e.g. `flare=my_deflare {input} {mask} {output}`; split like a "
                   "shell would but run without one. Placeholders: {input} {mask} {map} {output} {source} {class}.")
@click.option("--classes", metavar="SPEC",
              help="Route only these classes: `flare,moire` on the label, `flare:0.4` on a score >= 0.4.")
@click.option("--order", metavar="CLASSES", help="Hook order for images flagged for several classes "
                                                 "[default: ghosting,moire,flare].")
@click.option("--sort", type=click.Choice(SORT_MODES), default=None,
              help="Do not repair: copy or link flagged originals into sorted/<class>/ for a downstream tool.")
@click.option("--timeout", type=FiniteFloatRange(min=0.001, max=MAX_TIMEOUT_S), default=None,
              help="Seconds one hook may take on one image before it is killed. [default: 300]")
@click.option("--references", metavar="GLOB",
              help="Burst frames for deghost, relative to the scanned root; {dir} {stem} {name} {ext} are the "
                   "image's, e.g. `{dir}/burst/{stem}_*`.")
@click.option("--dry-run", is_flag=True, help="Show which images would go to which hook; write nothing.")
@click.option("--force", is_flag=True, help="Redo repairs that are already finished.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary; failures still go to stderr.")
def route_command(run_dir: Path, config: Path | None, hooks: tuple[str, ...], commands: tuple[str, ...],
                  classes: str | None, order: str | None, sort: str | None, timeout: float | None,
                  references: str | None, dry_run: bool, force: bool, quiet: bool) -> None:
    """Send the images a scan flagged in RUN_DIR to the removal hook of each flagged class.

    \b
    No re-detection: the scan's results.sqlite, maps/ and masks/ decide. Each class gets its own
    region as the mask; clean images are never touched, and originals are only read.
    Writes repaired/<path> (input format and bit depth; RAW -> 16-bit TIFF) and the `repairs`
    table in results.sqlite. Re-running skips finished repairs.

    \b
    Exit codes: 0 done, 1 some repairs failed (listed, and in the table), 2 usage error,
    4 the run folder could not be written (disk full, read-only, in use), 130 interrupted (re-run to resume).
    """
    try:
        policy = _override(_load(config), hooks, commands, classes, order, sort, timeout, references)
    except (PolicyError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(run_route(run_dir, policy, dry_run=dry_run, force=force, quiet=quiet))


@click.command("plugins")
def plugins_command() -> None:
    """List installed removal hooks (built-in and from the `ipad_qc.removal_hooks` entry-point group)."""
    table = Table(show_header=True, header_style="bold")
    for column in ("name", "class", "version", "origin", "factory"):
        table.add_column(column)
    for info in available_hooks():
        table.add_row(info.name, info.artifact, info.version, info.origin, info.target)
    Console().print(table)


def scan_route_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add ``--route`` and ``--route-config`` to ``scan``; they reach it as one ``route_config`` argument.

    ``route_config`` is ``None`` without ``--route``, else the policy file (or ``""`` for the default).
    """

    @click.option("--route", "route_flag", is_flag=True,
                  help="After the scan, send flagged images to removal hooks (as `ipad-qc route` does).")
    @click.option("--route-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                  help="Routing policy for --route. [default: ./ipad-qc.toml if present]")
    @functools.wraps(command)
    def wrapper(*args: Any, route_flag: bool, route_config: Path | None, **kwargs: Any) -> None:
        kwargs["route_config"] = (str(route_config) if route_config else "") if route_flag else None
        command(*args, **kwargs)

    return wrapper


def route_after_scan(run_dir: Path, route_config: str | None, quiet: bool) -> int:
    """Route a run that was just scanned; returns this step's exit code (0 when not asked to route)."""
    if route_config is None:
        return EXIT_OK
    policy = _load(Path(route_config) if route_config else None)
    return run_route(run_dir, policy, dry_run=False, force=False, quiet=quiet)
