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
from ipad_qc.datasets.settings import CLEAN_RECIPES, SynthSettings
from ipad_qc.datasets.synth import SynthError, SynthSummary, synthesize
from ipad_qc.synthetic.capture import TailSettings
from ipad_qc.synthetic.negatives import RECIPES

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


def _parse_recipes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[tuple[str, float], ...]:
    """``photo=0.4,screen=0.2``: recipe names with weights (checked against the recipes by SynthSettings)."""
    recipes = []
    for part in (item.strip() for item in value.split(",") if item.strip()):
        name, equals, weight = part.partition("=")
        try:
            recipes.append((name.strip(), float(weight) if equals else 1.0))
        except ValueError:
            raise click.BadParameter(f"{part!r}: expected NAME=WEIGHT") from None
    return tuple(recipes)


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
              help="Range of the flare's brightness scale (flare is light added in linear light).")
@click.option("--moire-phi", metavar="LOW,HIGH",
              type=NumberList(2, high=1), default="0.6,1", show_default=True,
              help="Range of the display grid's modulation depth φ (the paper's Eq. 1 factor, on the raw frame).")
@click.option("--moire-fullframe", type=click.FloatRange(0, 1), default=0.6, show_default=True,
              help="Share of moiré samples that are photos of a screen filling the frame; the others are a "
                   "screen the photo shows or, failing that, a placed device.")
@click.option("--moire-coverage", metavar="LOW,HIGH",
              type=NumberList(2, high=1), default="0.08,0.35", show_default=True,
              help="Range of the frame a placed device's screen covers.")
@click.option("--no-placed-screens", is_flag=True,
              help="Never place a device into a photo: moiré samples without a screen of their own are "
                   "full-frame screen photos.")
@click.option("--moire-blur", metavar="LOW,HIGH",
              type=NumberList(2, high=3), default="0.25,0.55", show_default=True,
              help="Range of the lens blur (Gaussian sigma, sensor pixels) of screen photos with moiré.")
@click.option("--ghost-shift", metavar="LOW,HIGH",
              type=NumberList(2, high=0.5), default="0.02,0.1", show_default=True,
              help="Range of the moving region's shift per frame, as a fraction of the image side.")
@click.option("--ghost-frames", metavar="LOW,HIGH",
              type=NumberList(2, cast=int, low=2, high=9), default="2,4", show_default=True,
              help="Range of the burst length fused into a ghosted image.")
@click.option("--clean-recipes", metavar="NAME=WEIGHT,...", callback=_parse_recipes, show_default=True,
              default=",".join(f"{name}={weight:g}" for name, weight in CLEAN_RECIPES),
              help=f"Mix of clean samples: {', '.join(RECIPES)} (hard negatives; see README).")
@click.option("--jpeg-quality", metavar="LOW,HIGH", type=NumberList(2, cast=int, low=1, high=100),
              default="60,98", show_default=True, help="Range of the capture tail's JPEG quality.")
@click.option("--jpeg-share", type=click.FloatRange(0, 1), default=0.85, show_default=True,
              help="Share of samples (every class alike) that the capture tail JPEG-compresses.")
@click.option("--letterbox-share", type=click.FloatRange(0, 1), default=0.06, show_default=True,
              help="Share of samples (every class alike) framed with black bars.")
@click.option("--no-capture-tail", is_flag=True,
              help="No resampling, noise, sharpening, JPEG or letterboxing after the synthesis.")
@click.option("--compare", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of real photos in class subfolders (e.g. realdev): also write comparison_sheet.jpg, "
                   "synthetic beside real per class. Only looked at, never trained on.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Worker processes (0: generate in this process). [default: number of CPU cores]")
@click.option("--overwrite", is_flag=True,
              help="Replace a data set made earlier by ipad-qc synth in --out (other folders are never deleted).")
@click.option("--no-contact-sheet", is_flag=True, help="Do not write contact_sheet.jpg.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary; warnings still go to stderr.")
def synth_command(clean_dir: Path, out: Path, count: int, clean_ratio: float, classes: tuple[str, ...],
                  splits: tuple[float, float, float], size: int, crop_min: float, seed: int,
                  flare_strength: tuple[float, float], moire_phi: tuple[float, float], moire_fullframe: float,
                  moire_coverage: tuple[float, float], no_placed_screens: bool, moire_blur: tuple[float, float],
                  ghost_shift: tuple[float, float], ghost_frames: tuple[int, int],
                  clean_recipes: tuple[tuple[str, float], ...], jpeg_quality: tuple[int, int], jpeg_share: float,
                  letterbox_share: float, no_capture_tail: bool, compare: Path | None, workers: int | None,
                  overwrite: bool, no_contact_sheet: bool, quiet: bool) -> None:
    """Make an IPAD-format training set from a folder of clean photos (searched recursively).

    Every sample crops a photo, squashes it to SIZE x SIZE (the model's input, so the artifact is
    made at the scale it is stored at) and makes one artifact with its pixel mask, as a camera would:
    moiré by simulating a photo of a screen (sub-pixel grid, lens, Bayer sampling, demosaicing);
    flare from a light the photo offers (its lamps, a lamp in a night scene, the sun in its sky);
    ghosting by fusing a synthetic burst in which a segmented region moved or the camera shook.
    Clean samples include hard negatives (screens without moiré, lamps without flare, fused bursts
    without motion, fine textures, text). Every sample then passes the same capture tail
    (resampling, noise, sharpening, JPEG, letterboxing), whatever its class.

    \b
    Writes into --out:
      manifest.csv                           image,mask,label,split,source (paths relative to --out)
      images/<split>/<class>/<photo>_<n>.png 8-bit RGB
      masks/<split>/<class>/<photo>_<n>.png  0/255 artifact mask (none for clean samples)
      synth.json                             settings, version and every sample's drawn parameters
      contact_sheet.jpg                      a grid per class with mask outlines: look at it first
      comparison_sheet.jpg                   with --compare: synthetic beside real, whole and 1:1

    \b
    Example:
      ipad-qc synth ~/photos/clean --out data/synth-v1 --count 3000 --size 512 --compare ~/photos/real

    Exit codes: 0 done (unreadable photos and samples without a plausible site are skipped with a
    warning), 2 usage error, no decodable photo, a --compare folder without labelled photos, or a
    non-empty --out without --overwrite.
    """
    tail = TailSettings(jpeg_share=jpeg_share, jpeg_quality=jpeg_quality, letterbox_share=letterbox_share)
    if no_capture_tail:
        tail = TailSettings(jpeg_share=0, noise_share=0, resample_share=0, sharpen_share=0, letterbox_share=0)
    try:
        settings = SynthSettings(count=count, size=size, seed=seed, clean_ratio=clean_ratio, classes=classes,
                                 splits=splits, crop_min=crop_min, flare_strength=flare_strength,
                                 moire_phi=moire_phi, moire_fullframe=moire_fullframe, moire_coverage=moire_coverage,
                                 moire_placed=not no_placed_screens, moire_blur=moire_blur, ghost_shift=ghost_shift,
                                 ghost_frames=ghost_frames, clean_recipes=clean_recipes, tail=tail)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    console = Console(stderr=True)
    listener = RichSynthListener(console, quiet)
    try:
        summary = synthesize(clean_dir, out, settings, workers=(os.cpu_count() or 1) if workers is None else workers,
                             overwrite=overwrite, listener=listener, contact_sheet=not no_contact_sheet,
                             compare=compare)
    except SynthError as exc:
        listener.stop()
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USAGE)
    listener.stop()
    if not quiet:
        Console().print(_summary_table(summary))
        Console().print(f"{len(summary.samples)} samples from {summary.sources} photo(s) in {out}; "
                        f"{len(summary.notes)} warning(s)", highlight=False)
