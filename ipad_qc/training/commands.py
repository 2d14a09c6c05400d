"""``ipad-qc train``. Torch is imported only when the command runs (``ipad-qc eval`` is in ipad_qc.evaluation)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

ABLATIONS = {"w/o-LTE": "learnable_text", "w/o-CLS": "object_context", "w/o-AD": "adapters",
             "w/o-MG": "multi_granularity"}
err_console = Console(stderr=True)


def _stages(text: str) -> tuple[int, ...]:
    try:
        stages = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected e.g. 1,2,3, got {text!r}", param_hint="--stages") from None
    if not stages or not set(stages) <= {1, 2, 3}:
        raise click.BadParameter("stages are 1, 2 and 3", param_hint="--stages")
    return stages


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(2)


@click.command("train")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: checkpoints, best.safetensors, metrics.csv/.jsonl.")
@click.option("--backbone", default="ViT-L-14", show_default=True, help="open_clip ViT name (e.g. ViT-B-16).")
@click.option("--pretrained", default="openai", show_default=True,
              help="open_clip pretrained tag, a local weight file, or `none` (random weights: tests only).")
@click.option("--image-size", type=int, default=518, show_default=True)
@click.option("--stages", default="1,2,3", show_default=True,
              help="Training stages: `1` is the w/o S-II-III ablation, `2,3` the w/o S-I ablation.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Epochs per stage.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--lambda", "lam", type=float, default=4.0, show_default=True, help="Weight of CE in Eq. 11.")
@click.option("--ablation", multiple=True, type=click.Choice(sorted(ABLATIONS)),
              help="Table 2 ablations (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data loading processes.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap on batches per epoch (quick runs).")
@click.option("--target-precision", type=float, default=0.9, show_default=True,
              help="Per-class thresholds are calibrated on the validation split at this precision.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last finished epoch.")
def train_command(data: Path, out: Path, backbone: str, pretrained: str, image_size: int, stages: str, epochs: int,
                  batch_size: int, lr: float, lam: float, ablation: tuple[str, ...], seed: int, device: str,
                  workers: int, max_steps: int | None, target_precision: float, resume: bool) -> None:
    """Train IPAD-CLIP on DATA (an `ipad-qc synth` data set or labelled class folders), in three stages.

    Defaults are the paper's: ViT-L/14 at 518 px, Adam 1e-3, 20 epochs per stage, batch 8, lambda 4,
    Dice + Focal. The best epoch on the validation split is kept as best.safetensors, with per-class
    thresholds calibrated on it; use it with `ipad-qc scan --detector ipad-clip --checkpoint`.
    """
    from ipad_qc.clip import IpadClipConfig
    from ipad_qc.training.trainer import Trainer, TrainSettings

    switches = {ABLATIONS[name]: False for name in ablation}
    try:
        config = IpadClipConfig(backbone=backbone, pretrained=None if pretrained.lower() == "none" else pretrained,
                                image_size=image_size, seed=seed, **switches)
        settings = TrainSettings(data=data, out=out, stages=_stages(stages), epochs=epochs, batch_size=batch_size,
                                 lr=lr, lam=lam, seed=seed, device=device, workers=workers, max_steps=max_steps,
                                 target_precision=target_precision, resume=resume)
        best = Trainer(settings, config).run()
    except ValueError as exc:  # configuration, data set, backbone and checkpoint errors
        _fail(str(exc))
    Console().print(f"best model: {best}  (metrics: {out / 'metrics.csv'})")
