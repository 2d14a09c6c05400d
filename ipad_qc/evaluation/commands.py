"""``ipad-qc eval``: how good is a detector on labelled photos.

Three ways to get the predictions, one way to score them:

* ``--detector NAME`` (default ``classic``) scans DATA's labelled files into a run folder and
  scores that scan: any registered detector, the same decoding and settings as ``ipad-qc scan``,
  and a report.html of the evaluation set to look at the mistakes in;
* ``--run RUN_DIR`` scores an existing scan of DATA (or of a folder holding it): nothing is detected;
* ``--checkpoint FILE`` runs an IPAD-CLIP checkpoint on DATA in-process at its input size with
  float maps (the paper's evaluation of a trained model).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ipad_qc.evaluation.report import DEFAULT_PROTOCOL, IMAGE_METRICS, PIXEL_METRICS, PROTOCOLS

err_console = Console(stderr=True)
SPLIT_CHOICES = ("all", "train", "val", "test")


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {Text(message).markup}", highlight=False, soft_wrap=True)
    sys.exit(2)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}" if math.isfinite(value) else "–"


def image_table(evaluation: Any) -> Table:
    """Image-level metrics per class in both protocols side by side (%)."""
    report = evaluation.report
    table = Table(title="Image level (%)", caption="vc: against clean images (vs-clean, the paper's protocol); "
                                                   "ovr: against all other images (one-vs-rest)")
    table.add_column("class (images)")
    columns = [(metric, protocol) for metric in IMAGE_METRICS for protocol in PROTOCOLS]
    for metric, protocol in columns:
        table.add_column(f"{metric.removeprefix('C-')}\n{'vc' if protocol == 'vs-clean' else 'ovr'}", justify="right")
    counts = report.counts["images"]
    for name in (*report.per_class, "mean"):
        cells = []
        for metric, protocol in columns:
            metrics = report.by_protocol[protocol]
            cells.append(_percent((metrics.overall if name == "mean" else metrics.per_class[name])[metric]))
        table.add_row("mean" if name == "mean" else f"{name} ({counts[name]})", *cells,
                      style="bold" if name == "mean" else None)
    return table


def print_evaluation(console: Console, evaluation: Any, protocol: str, mistakes: int) -> None:
    """The tables a person reads: image metrics, pixel metrics where there are masks, labels, mistakes."""
    console.print(image_table(evaluation))
    report = evaluation.report.shown_as(protocol)
    if any(math.isfinite(report.overall[metric]) for metric in PIXEL_METRICS):
        console.print(report.table(title=f"Paper metrics (%), {protocol}"))
    else:
        console.print("pixel metrics: none (no ground-truth masks among the labelled images)")
    console.print(evaluation.verdicts.confusion_table())
    if mistakes and evaluation.verdicts.mistakes:
        console.print(evaluation.verdicts.mistakes_table(mistakes))
    for path, reason in evaluation.unscored[:20]:
        console.print(Text(f"not scored: {path}: {reason}", style="yellow"))
    if len(evaluation.unscored) > 20:
        console.print(f"... and {len(evaluation.unscored) - 20} more not scored (see the JSON)")
    if evaluation.set_aside:
        listed = ", ".join(f"{label} x{count}" for label, count in sorted(evaluation.set_aside.items()))
        console.print(Text(f"labels.csv rows whose label is not a class, left out: {listed}"))


def _default_run_dir(data: Path, detector: str) -> Path:
    return Path("runs") / f"eval-{data.resolve().name or 'data'}-{detector}"


@click.command("eval")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--detector", default=None,
              help="Detector to evaluate (see `ipad-qc detectors`): DATA's labelled files are scanned into "
                   "--out and scored. [default: classic]")
@click.option("--detector-option", "detector_options", multiple=True, metavar="KEY=VALUE",
              help="Option passed to the detector, as in `ipad-qc scan`. Repeatable.")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Score this existing scan of DATA (or of a folder holding DATA) instead of detecting.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Evaluate an IPAD-CLIP checkpoint in-process at its input size, with float maps.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder of the evaluation scan (re-used: unchanged files are not detected again). "
                   "[default: runs/eval-<DATA>-<detector>]")
@click.option("--split", type=click.Choice(SPLIT_CHOICES), default=None,
              help="Which images: a split of a data set that defines splits (manifest.csv, train/val/test "
                   "folders, a split column), or all. [default: test where DATA defines splits, else all]")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default=DEFAULT_PROTOCOL, show_default=True,
              help="Negatives of class k shown first in the paper table and at the top of the JSON: clean images "
                   "(vs-clean, the paper's Table 3) or all other images (one-vs-rest). The JSON holds both.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write everything (both protocols, confusion, all mistakes) as JSON here.")
@click.option("--mistakes", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the worst mistakes to list (most confident first).")
@click.option("--device", default="auto", show_default=True, help="Where the detector runs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Decode processes for the evaluation scan. [default: number of CPU cores]")
@click.option("--pretrained", default=None, help="With --checkpoint: where the backbone weights are now.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def eval_command(data: Path, detector: str | None, detector_options: tuple[str, ...], run_dir: Path | None,
                 checkpoint: Path | None, out: Path | None, split: str | None, protocol: str, json_path: Path | None,
                 mistakes: int, device: str, batch_size: int, workers: int | None, pretrained: str | None,
                 quiet: bool) -> None:
    """Score a detector on DATA, a folder of labelled photos: how good is it on my captures?

    \b
    DATA is labelled by one of (looked for in this order):
      manifest.csv        an `ipad-qc synth` data set (image,mask,label,split,source)
      labels.csv          a header with path,label (+ optional mask, split); other columns ignored
      class folders       clean/ flare/ moire/ ghosting/ (optionally under train/ val/ test/)
    Masks are optional (masks/<path>.png or <stem>_mask.png); without them only image metrics exist,
    and images without masks are never counted as "all pixels clean".

    \b
    Prints per class and overall: AUROC, AP and F1-max against clean images (the paper's protocol) and
    one-vs-rest, the paper's pixel metrics where masks exist, the label confusion matrix with accuracy
    and clean images flagged, and the worst mistakes with their paths.

    \b
    Examples:
      ipad-qc eval ~/captures/labelled                        # the default detector (classic)
      ipad-qc eval ~/captures/labelled --run runs/today       # score an existing scan, no detection
      ipad-qc eval data/ipad --checkpoint best.safetensors    # IPAD-CLIP on the test split
    """
    from ipad_qc.datasets.loader import DatasetError, read_labelled

    if sum(x is not None for x in (detector, run_dir, checkpoint)) > 1:
        raise click.UsageError("choose one of --detector, --run and --checkpoint")
    try:
        labelled = read_labelled(data)
    except (DatasetError, OSError, UnicodeDecodeError) as exc:
        _fail(str(exc))
    chosen_split = split or ("test" if labelled.has_splits else "all")
    samples = [s for s in labelled.samples if chosen_split == "all" or s.split == chosen_split]
    if not samples:
        _fail(f"{data}: no labelled images in the {chosen_split} split")
    console = Console()
    try:
        if checkpoint is not None:
            from ipad_qc.training.evaluate import evaluate_checkpoint

            evaluation = evaluate_checkpoint(checkpoint, data, samples, batch_size, device, pretrained, protocol)
        else:
            if run_dir is None:
                run_dir = out or _default_run_dir(data, detector or "classic")
                _scan_labelled(data, samples, run_dir, detector or "classic", detector_options, device, batch_size,
                               workers, quiet)
            from ipad_qc.evaluation.run_scoring import score_run

            evaluation = score_run(run_dir, data, samples, protocol, labelled.set_aside)
    except (DatasetError, ValueError, OSError) as exc:
        _fail(str(exc))
    source = f"run {evaluation.run_dir}" if evaluation.run_dir else "in-process"
    console.print(Text(f"{data} ({labelled.layout}, split {chosen_split}): {evaluation.verdicts.total} images scored "
                       f"by {', '.join(evaluation.detectors)} ({source})"))
    print_evaluation(console, evaluation, protocol, mistakes)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(evaluation.to_dict(), indent=1))
        console.print(Text(f"metrics written to {json_path}"))


def _scan_labelled(data: Path, samples: list, run_dir: Path, detector: str, detector_options: tuple[str, ...],
                   device: str, batch_size: int, workers: int | None, quiet: bool) -> None:
    """Scan exactly the labelled files of ``data`` into ``run_dir`` (a usage error ends the command)."""
    from ipad_qc.cli import RichListener, parse_detector_options
    from ipad_qc.detectors.registry import UnknownDetectorError
    from ipad_qc.device import DeviceUnavailableError
    from ipad_qc.evaluation.run_scoring import scan_labelled
    from ipad_qc.report.cli import write_scan_report
    from ipad_qc.scanner import ScanError, ScanOptions

    options = ScanOptions(detector=detector, detector_options=parse_detector_options(detector_options),
                          device=device, batch_size=batch_size, workers=workers)
    listener = RichListener(Console(stderr=True), quiet)
    try:
        summary = scan_labelled(data, samples, run_dir, options, listener)
    except (ScanError, UnknownDetectorError, DeviceUnavailableError, ValueError) as exc:
        listener.stop()
        _fail(str(exc))
    listener.stop()
    if summary.interrupted:
        _fail("interrupted: run the same command again to resume the evaluation scan")
    write_scan_report(run_dir, quiet)
