"""``ipad-qc synth``: the command line of the data-set generator (``ipad_qc.datasets.synth``)."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES, parse_class_list
from ipad_qc.datasets.manifest import SPLITS
from ipad_qc.datasets.synth import SynthError, SynthSettings, SynthSummary, synthesize

EXIT_USAGE = 2


class NumberList(click.ParamType):
    """Comma-separated numbers: ``count`` of them, or ``a,b`` ranges where one number ``a`` means ``a,a``."""

    name = "numbers"

    def __init__(self, count: int, cast: type = float, low: float = 0.0, high: float = float("inf"),
                 is_range: bool = True) -> None:
        self.count, self.cast, self.low, self.high, self.is_range = count, cast, low, high, is_range

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(self.cast(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)
        if self.is_range and len(numbers) == 1:
            numbers = numbers * 2
        if len(numbers) != self.count:
            self.fail(f"expected {self.count} comma-separated numbers, got {value!r}", param, ctx)
        if not all(self.low <= number <= self.high for number in numbers):
            self.fail(f"values must lie in [{self.low}, {self.high}], got {value!r}", param, ctx)
        if self.is_range and numbers[0] > numbers[1]:
            self.fail(f"range {value!r} must be given as low,high", param, ctx)
        return numbers


def _parse_classes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return tuple(parse_class_list(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class RichSynthListener:
    """A progress bar per phase; warnings printed above it as they come."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console, self.quiet = console, quiet
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                                 disable=quiet)
        self.task = None

    def phase(self, name: str, total: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(name, total=total)

    def advance(self) -> None:
        self.progress.advance(self.task)

    def note(self, message: str) -> None:
        self.progress.console.print(f"[yellow]warning[/yellow] {message}", highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self.progress.stop()


def _summary_table(summary: SynthSummary) -> Table:
    counts = Counter((sample.split, sample.label) for sample in summary.samples)
    table = Table(title=f"ipad-qc synth: {summary.out}", header_style="bold")
    table.add_column("class")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for label in CLASS_NAMES:
        table.add_row(label, *(str(counts[split, label]) for split in SPLITS))
    return table


@click.command("synth")
@click.argument("clean_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Data-set folder to create (must be new or empty; see --overwrite).")
@click.option("--count", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples to generate, all classes and splits together.")
@click.option("--clean-ratio", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Share of clean samples; the artifact classes share the rest equally. Clean images "
                   "matter: without them the model learns that every photo has an artifact.")
@click.option("--classes", default=",".join(ARTIFACT_CLASSES), show_default=True, callback=_parse_classes,
              help="Artifact classes to generate.")
@click.option("--splits", metavar="TRAIN,VAL,TEST",
              type=NumberList(3, is_range=False), default="0.8,0.1,0.1", show_default=True,
              help="train,val,test fractions. Splits are made per photo: one photo's samples never "
                   "appear in two splits.")
@click.option("--size", type=click.IntRange(min=16), default=518, show_default=True,
              help="Side of the square samples: the model's input size (IPAD-CLIP: 518).")
@click.option("--crop-min", type=click.FloatRange(0.1, 1), default=0.8, show_default=True,
              help="Each sample crops a random window of this to 100 % of each side of its photo before the "
                   "resize, so a photo used several times gives different backgrounds.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed and settings give byte-identical data sets, whatever --workers is.")
@click.option("--flare-strength", metavar="LOW,HIGH",
              type=NumberList(2, high=10), default="0.5,1.5", show_default=True,
              help="Range of the flare's brightness scale (flare is added light, not an alpha blend).")
@click.option("--moire-phi", metavar="LOW,HIGH",
              type=NumberList(2, high=1), default="0.35,0.8", show_default=True,
              help="Range of the Eq. 1 blend factor φ of the aliased screen.")
@click.option("--moire-coverage", metavar="LOW,HIGH",
              type=NumberList(2, high=1), default="0.12,0.45", show_default=True,
              help="Range of the image fraction a placed screen covers (when no screen is detected).")
@click.option("--ghost-shift", metavar="LOW,HIGH",
              type=NumberList(2, high=0.5), default="0.005,0.02", show_default=True,
              help="Range of the moving object's shift per frame, as a fraction of the image side.")
@click.option("--ghost-frames", metavar="LOW,HIGH",
              type=NumberList(2, cast=int, low=2, high=9), default="2,3", show_default=True,
              help="Range of the burst length fused into a ghosted image.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes (0: generate in this process). [default: number of CPU cores]")
@click.option("--overwrite", is_flag=True,
              help="Replace a data set made earlier by ipad-qc synth in --out (other folders are never deleted).")
@click.option("--no-contact-sheet", is_flag=True, help="Do not write contact_sheet.jpg.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary; warnings still go to stderr.")
def synth_command(clean_dir: Path, out: Path, count: int, clean_ratio: float, classes: tuple[str, ...],
                  splits: tuple[float, float, float], size: int, crop_min: float, seed: int,
                  flare_strength: tuple[float, float], moire_phi: tuple[float, float],
                  moire_coverage: tuple[float, float], ghost_shift: tuple[float, float],
                  ghost_frames: tuple[int, int], workers: int | None, overwrite: bool, no_contact_sheet: bool,
                  quiet: bool) -> None:
    """Make an IPAD-format training set from a folder of clean photos (searched recursively).

    Every sample crops a photo, squashes it to SIZE x SIZE (the model's input, so nothing is
    resampled after the artifact is made) and adds one artifact with its pixel mask: lens flare
    on a detected light source, moiré on a detected bright screen-like quadrilateral (or a placed
    screen), ghosting by fusing a misaligned burst.

    \b
    Writes into --out:
      manifest.csv                           image,mask,label,split,source (paths relative to --out)
      images/<split>/<class>/<photo>_<n>.png 8-bit RGB
      masks/<split>/<class>/<photo>_<n>.png  0/255 artifact mask (none for clean samples)
      synth.json                             settings, version and every sample's drawn parameters
      contact_sheet.jpg                      a grid per class with mask outlines: look at it first

    \b
    Example:
      ipad-qc synth ~/photos/clean --out data/synth-v1 --count 3000 --workers 8

    Exit codes: 0 done (unreadable photos are skipped with a warning), 2 usage error, no decodable
    photo, or a non-empty --out without --overwrite.
    """
    try:
        settings = SynthSettings(count=count, size=size, seed=seed, clean_ratio=clean_ratio, classes=classes,
                                 splits=splits, crop_min=crop_min, flare_strength=flare_strength,
                                 moire_phi=moire_phi, moire_coverage=moire_coverage, ghost_shift=ghost_shift,
                                 ghost_frames=ghost_frames)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    console = Console(stderr=True)
    listener = RichSynthListener(console, quiet)
    try:
        summary = synthesize(clean_dir, out, settings, workers=(os.cpu_count() or 1) if workers is None else workers,
                             overwrite=overwrite, listener=listener, contact_sheet=not no_contact_sheet)
    except SynthError as exc:
        listener.stop()
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)
    listener.stop()
    if not quiet:
        Console().print(_summary_table(summary))
        Console().print(f"{len(summary.samples)} samples from {summary.sources} photo(s) in {out}; "
                        f"{len(summary.notes)} warning(s)", highlight=False)
