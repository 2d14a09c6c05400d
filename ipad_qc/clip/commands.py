"""``ipad-qc model-info``: what IPAD-CLIP trains and freezes on a given backbone.

Kept apart from ``ipad_qc.cli`` and importing torch only when run, so ``ipad-qc --help`` and
scans with the classic detector start fast.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table


@click.command("model-info")
@click.option("--backbone", default="ViT-L-14", show_default=True, help="open_clip ViT model name.")
@click.option("--image-size", type=int, default=518, show_default=True, help="Input size (positional grid).")
def model_info_command(backbone: str, image_size: int) -> None:
    """Print IPAD-CLIP's trainable parameters per training stage next to the frozen CLIP count.

    Builds the model with random weights (no download), which has the same shapes as the real one.
    """
    from ipad_qc.clip import IpadClip, IpadClipConfig, parameter_counts

    config = IpadClipConfig(backbone=backbone, pretrained=None, image_size=image_size)
    model = IpadClip(config)
    counts = parameter_counts(model)
    depth = len(model.vision.visual.transformer.resblocks)
    table = Table(title=f"IPAD-CLIP on {backbone} @ {image_size}px", header_style="bold")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for name, count in counts.items():
        table.add_row(name.replace("_", " "), f"{count:,}")
    table.add_row("trainable / frozen (stage I)", f"{counts['stage_1_trainable'] / counts['frozen_backbone']:.2%}")
    console = Console()
    console.print(table)
    text_layers = config.resolved_deep_prompt_layers(model.prompts.tower.transformer.layers)
    console.print(f"adapters in layers {list(config.resolved_adapter_layers(depth))} of {depth}; "
                  f"multi-granularity taps at {list(config.resolved_tap_layers(depth))}; "
                  f"deep text prompts in the first {text_layers} text layers")
