"""``ipad-qc train``. Torch is imported only when the command runs (``ipad-qc eval`` is in ipad_qc.evaluation)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from ipad_qc.training.data import DATA_ABLATIONS

#: Table 2 ablations, by what they change: the model's configuration, the stages, the training data.
MODEL_ABLATIONS = {"w/o-LTE": "learnable_text", "w/o-CLS": "object_context", "w/o-AD": "adapters",
                   "w/o-MG": "multi_granularity"}
STAGE_ABLATIONS = {"w/o-S-II-III": (1,), "w/o-S-I": (2, 3)}
ABLATIONS = (*MODEL_ABLATIONS, *STAGE_ABLATIONS, *DATA_ABLATIONS)
DEFAULT_STAGES = "1,2,3"
err_console = Console(stderr=True)


def _stages(text: str) -> tuple[int, ...]:
    try:
        stages = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected e.g. 1,2,3, got {text!r}", param_hint="--stages") from None
    if not stages or not set(stages) <= {1, 2, 3}:
        raise click.BadParameter("stages are 1, 2 and 3", param_hint="--stages")
    return stages


def _stages_with_ablations(text: str, ablations: tuple[str, ...], explicit: bool) -> tuple[int, ...]:
    """``--stages``, or the stages a training-strategy ablation names; both must agree when both are given."""
    stages = _stages(text)
    chosen = {STAGE_ABLATIONS[name] for name in ablations if name in STAGE_ABLATIONS}
    if len(chosen) > 1:
        raise click.BadParameter("w/o-S-I and w/o-S-II-III exclude each other", param_hint="--ablation")
    if not chosen:
        return stages
    (wanted,) = chosen
    if explicit and stages != wanted:
        raise click.BadParameter(f"--stages {text} contradicts the stage ablation (stages "
                                 f"{','.join(map(str, wanted))})", param_hint="--stages")
    return wanted


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    sys.exit(2)


@click.command("train")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: checkpoints, best.safetensors, metrics.csv/.jsonl, state.json.")
@click.option("--backbone", default="ViT-L-14", show_default=True, help="open_clip ViT name (e.g. ViT-B-16).")
@click.option("--pretrained", default="openai", show_default=True,
              help="open_clip pretrained tag, a local weight file, or `none` (random weights: tests only).")
@click.option("--image-size", type=int, default=518, show_default=True)
@click.option("--stages", default=DEFAULT_STAGES, show_default=True,
              help="Training stages: `1` is the w/o S-II-III ablation, `2,3` the w/o S-I ablation.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Epochs per stage.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--lambda", "lam", type=float, default=4.0, show_default=True, help="Weight of CE in Eq. 11.")
@click.option("--ablation", multiple=True, type=click.Choice(ABLATIONS),
              help="Table 2 ablations (repeatable): w/o-LTE, w/o-CLS, w/o-AD, w/o-MG switch model parts off; "
                   "w/o-S-II-III and w/o-S-I choose the stages; w/o-Clean and w/o-Real remove the clean images or "
                   "the real captures (manifest `source` column) from the training split only.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data loading processes.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Cap on batches per epoch (quick runs).")
@click.option("--target-precision", type=float, default=0.9, show_default=True,
              help="Per-class thresholds are calibrated on the validation split at this precision.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from where it stopped (mid-stage or between stages); "
                   "the result equals an uninterrupted run.")
@click.pass_context
def train_command(ctx: click.Context, data: Path, out: Path, backbone: str, pretrained: str, image_size: int,
                  stages: str, epochs: int, batch_size: int, lr: float, lam: float, ablation: tuple[str, ...],
                  seed: int, device: str, workers: int, max_steps: int | None, target_precision: float,
                  resume: bool) -> None:
    """Train IPAD-CLIP on DATA (an `ipad-qc synth` data set or labelled class folders), in three stages.

    Defaults are the paper's: ViT-L/14 at 518 px, Adam 1e-3, 20 epochs per stage, batch 8, lambda 4,
    Dice + Focal. The best epoch on the validation split is kept as best.safetensors, with per-class
    thresholds calibrated on it; use it with `ipad-qc scan --detector ipad-clip --checkpoint`.
    Artifact images without a mask train the image-level loss only.
    """
    explicit = ctx.get_parameter_source("stages") is not click.core.ParameterSource.DEFAULT
    selected_stages = _stages_with_ablations(stages, ablation, explicit)
    from ipad_qc.clip import IpadClipConfig
    from ipad_qc.device import resolve_device
    from ipad_qc.training.recipe import IpadClipRecipe
    from ipad_qc.training.trainer import Trainer, TrainSettings

    switches = {MODEL_ABLATIONS[name]: False for name in ablation if name in MODEL_ABLATIONS}
    data_ablations = tuple(name for name in ablation if name in DATA_ABLATIONS)
    console = Console()
    try:
        config = IpadClipConfig(backbone=backbone, pretrained=None if pretrained.lower() == "none" else pretrained,
                                image_size=image_size, seed=seed, **switches)
        settings = TrainSettings(data=data, out=out, stages=selected_stages, epochs=epochs, batch_size=batch_size,
                                 lr=lr, lam=lam, seed=seed, workers=workers, max_steps=max_steps,
                                 target_precision=target_precision, resume=resume, data_ablations=data_ablations)
        trainer = Trainer(settings, IpadClipRecipe(config, resolve_device(device)))
        for line in trainer.data.describe():
            console.print(line, highlight=False, soft_wrap=True)
        best = trainer.run()
    except (ValueError, RuntimeError) as exc:  # configuration, data set, device, backbone and checkpoint errors
        _fail(str(exc))
    console.print(f"best model: {best}  (trained stages {list(trainer.state.trained_stages)}; "
                  f"metrics: {out / 'metrics.csv'})", highlight=False)
