"""``ipad-qc train-net``: train ipad-net from scratch, or fine-tune it on a team's own captures.

One command, one seed, the same result: optionally synthesise a data set from clean photos first
(``--synth-from``, made with the same seed), combine it with any labelled folders given, and train
with the shared trainer (Eq. 11 loss, validation, best-epoch selection, per-class thresholds
calibrated on the validation split, resumable). The result is ``OUT/best.safetensors``, which
``ipad-qc scan --detector ipad-net --detector-option weights=OUT/best.safetensors`` loads.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from ipad_qc.cli_errors import fail

err_console = Console(stderr=True)
#: The synthetic set the shipped weights were trained on (``training/README.md`` "ipad-net").
SYNTH_COUNT, SYNTH_SIZE = 4000, 512
#: Training (and inference) side: 384 px trains at under a third of 512's cost on the CPU.
INPUT_SIDE = 384


@click.command("train-net")
@click.argument("data", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: best.safetensors, per-epoch checkpoints, metrics.csv/.jsonl, state.json.")
@click.option("--synth-from", "synth_from", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="First make a synthetic data set from the clean photos in this folder "
                                 "(into OUT/synth, with --seed), and train on it too.")
@click.option("--synth-count", type=click.IntRange(min=8), default=SYNTH_COUNT, show_default=True,
              help="Samples to synthesise with --synth-from.")
@click.option("--init", default=None, metavar="bundled|FILE",
              help="Start from these weights (fine-tuning): `bundled` for the weights shipped with ipad-qc. "
                   "[default: random weights, seeded]")
@click.option("--input-side", type=int, default=INPUT_SIDE, show_default=True,
              help="Side of the square training images and long side at inference (a multiple of 32).")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Adam learning rate.")
@click.option("--lambda", "lam", type=float, default=4.0, show_default=True, help="Weight of CE in Eq. 11.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the synthesis, the initial weights, shuffling and augmentation.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Data loading (and synthesis) processes.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the network. [default: PyTorch's]")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap on batches per epoch (quick runs).")
@click.option("--target-precision", type=float, default=0.9, show_default=True,
              help="Per-class thresholds are calibrated on the validation split at this precision.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from where it stopped.")
def train_net_command(data: tuple[Path, ...], out: Path, synth_from: Path | None, synth_count: int, init: str | None,
                      input_side: int, epochs: int, batch_size: int, lr: float, lam: float, seed: int, device: str,
                      workers: int, threads: int | None, max_steps: int | None, target_precision: float,
                      resume: bool) -> None:
    """Train ipad-net on DATA (synth data sets, labelled folders) and/or synthesis from clean photos.

    \b
    From scratch (seed 0, ~1.2 h on 2 CPU cores; the shipped weights continue it for 6 epochs, see
    training/README.md "ipad-net"):
      ipad-qc train-net --synth-from ../shared/clean-corpus --out runs/ipad-net
    \b
    Fine-tune on your own labelled captures plus synthesis on your clean photos:
      ipad-qc train-net ~/captures/labelled --synth-from ~/photos/clean --init bundled --epochs 5 --out runs/mine
      ipad-qc scan shots/ --detector ipad-net --detector-option weights=runs/mine/best.safetensors
    \b
    DATA folders are read like `ipad-qc eval` reads them (manifest.csv, labels.csv or class folders); labelled
    folders without splits are split 80/10/10 by a hash of each path. Artifact images without a mask train the
    image-level loss only.
    """
    if not data and synth_from is None:
        raise click.UsageError("give DATA folders, --synth-from CLEAN_DIR, or both")
    import torch

    from ipad_qc.datasets.combine import combine
    from ipad_qc.device import resolve_device
    from ipad_qc.net.checkpoint import BUNDLED_WEIGHTS
    from ipad_qc.net.model import IpadNetConfig
    from ipad_qc.net.recipe import IpadNetRecipe
    from ipad_qc.training.trainer import Trainer, TrainSettings

    if threads:
        torch.set_num_threads(threads)
    console = Console()
    try:
        roots = list(data)
        if synth_from is not None:
            roots.append(_synthesise(synth_from, out / "synth", synth_count, SYNTH_SIZE, seed, workers, resume))
        root = roots[0] if len(roots) == 1 else combine(roots, out / "data")
        recipe = IpadNetRecipe(IpadNetConfig(input_side=input_side, seed=seed), resolve_device(device),
                               init=BUNDLED_WEIGHTS if init == "bundled" else init)
        settings = TrainSettings(data=root, out=out, stages=(1,), epochs=epochs, batch_size=batch_size, lr=lr,
                                 lam=lam, seed=seed, workers=workers, max_steps=max_steps,
                                 target_precision=target_precision, resume=resume)
        trainer = Trainer(settings, recipe)
        for line in trainer.data.describe():
            console.print(line, highlight=False, soft_wrap=True)
        best = trainer.run()
    except (ValueError, RuntimeError, OSError) as exc:
        fail(exc)
    console.print(f"best model: {best}  (metrics: {out / 'metrics.csv'}); use it with "
                  f"--detector ipad-net --detector-option weights={best}", highlight=False, soft_wrap=True)


def _synthesise(clean: Path, target: Path, count: int, size: int, seed: int, workers: int, resume: bool) -> Path:
    """The synthetic set in ``target`` (made unless a resumed run already has it)."""
    from ipad_qc.datasets.synth import SynthSettings, synthesize

    if resume and (target / "manifest.csv").is_file():
        return target
    summary = synthesize(clean, target, SynthSettings(count=count, size=size, seed=seed), workers=workers)
    for note in summary.notes[:5]:
        err_console.print(f"[yellow]warning[/yellow] {note}", highlight=False, soft_wrap=True)
    return target
