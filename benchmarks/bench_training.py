"""Convergence check: train a small random-weight IPAD-CLIP from scratch on synthetic data, on the CPU.

No pretrained CLIP weights exist on these machines, so the backbone is the bundled ``ipad-small``
config (4-layer ViT, 8-px patches, 128 px input) with random frozen weights: only adapters,
projectors, heads and prompts learn, exactly as with a real backbone. The script makes clean
procedural photos, runs ``ipad-qc synth``, trains the three stages, evaluates on the held-out test
split and prints the losses per epoch next to the metrics and their chance levels.

A random frozen backbone bounds what any head can learn, so the script also prints that bound: a
logistic-regression probe fitted directly on the same frozen patch tokens (all tapped layers) of
the training split, scored on the test split. Training has converged when the model's pixel
AUROC approaches the probe's; the distance to 1.0 is the price of random features, which a
pretrained CLIP removes.

    python benchmarks/bench_training.py --count 400 --epochs 8
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from ipad_qc.cli import main as cli
from ipad_qc.clip import load_model
from ipad_qc.datasets.loader import IpadDataset, load_samples
from ipad_qc.synthetic import clean_scene


def run(*args: object) -> None:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"ipad-qc {args[0]} failed ({result.exit_code}):\n{result.output}")


def make_photos(folder: Path, count: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        scene = clean_scene(rng, 320, 240)
        cv2.imwrite(str(folder / f"photo_{i:03d}.png"), (np.clip(scene, 0, 1)[..., ::-1] * 255).astype(np.uint8))


def chance_levels(data: Path, class_names: list[str]) -> dict[str, float]:
    samples = [s for s in load_samples(data) if s.split == "test"]
    rates = [sum(s.label == name for s in samples) / len(samples) for name in class_names[1:]]
    return {"C-AUROC": 0.5, "S-AUROC": 0.5, "C-AP": float(np.mean(rates))}


def _patch_tokens(checkpoint: Path, data: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Frozen backbone tokens of every tapped layer per patch, and whether the patch is mostly artifact."""
    import torch

    model = load_model(checkpoint)
    visual = model.vision.visual
    samples = [s for s in load_samples(data) if s.split == split]
    dataset = IpadDataset(data, samples, model.config.image_size, model.image_mean, model.image_std)
    pixels = torch.stack([dataset[i][0] for i in range(len(dataset))])
    masks = torch.stack([dataset[i][2] for i in range(len(dataset))])
    with torch.no_grad():
        tokens, layers = visual._embeds(pixels), []
        for block in visual.transformer.resblocks:
            tokens = block(tokens)
            layers.append(tokens[:, 1:])
    features = torch.cat(layers, dim=-1).reshape(-1, sum(t.shape[-1] for t in layers))
    patch = visual.patch_size[0]
    labels = torch.nn.functional.avg_pool2d(masks[:, None], patch).flatten() > 0.5
    return features.numpy(), labels.numpy()


def probe_ceiling(checkpoint: Path, data: Path) -> float:
    """Test pixel AUROC (artifact vs not, per patch) of a linear probe on the frozen tokens."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    train_x, train_y = _patch_tokens(checkpoint, data, "train")
    test_x, test_y = _patch_tokens(checkpoint, data, "test")
    probe = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return float(roc_auc_score(test_y, probe.decision_function(test_x)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60, help="clean procedural photos to start from")
    parser.add_argument("--count", type=int, default=400, help="synthetic samples (all splits)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per stage")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the data set and run in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        start = time.perf_counter()
        make_photos(work / "photos", args.photos, args.seed)
        run("synth", work / "photos", "--out", work / "data", "--count", args.count, "--size", 128,
            "--seed", args.seed, "--workers", 2)
        synth_s = time.perf_counter() - start
        start = time.perf_counter()
        run("train", work / "data", "--out", work / "run", "--backbone", "ipad-small", "--pretrained", "none",
            "--image-size", 128, "--epochs", args.epochs, "--batch-size", args.batch_size, "--workers", 0,
            "--device", "cpu", "--seed", args.seed)
        train_s = time.perf_counter() - start
        run("eval", work / "data", "--checkpoint", work / "run" / "best.safetensors", "--split", "test", "--json",
            work / "eval.json", "--device", "cpu", "-q")
        report = json.loads((work / "eval.json").read_text())
        ceiling = probe_ceiling(work / "run" / "best.safetensors", work / "data")
        with open(work / "run" / "metrics.csv", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        chance = chance_levels(work / "data", ["clean", "ghosting", "flare", "moire"])

    print(f"data: {args.count} synthetic samples at 128 px from {args.photos} photos ({synth_s:.0f} s); "
          f"training {train_s:.0f} s on the CPU")
    print(f"{'stage':>5} {'epoch':>5} {'loss':>8} {'ce':>7} {'dice':>7} {'focal':>7} "
          f"{'val C-AUROC':>12} {'val S-AUROC':>12}")
    for row in rows:
        print(f"{row['stage']:>5} {row['epoch']:>5} {float(row['train_loss']):8.3f} {float(row['train_ce']):7.3f} "
              f"{float(row['train_dice']):7.3f} {float(row['train_focal']):7.3f} "
              f"{float(row['val_C-AUROC'] or 'nan'):12.3f} {float(row['val_S-AUROC'] or 'nan'):12.3f}")
    print("held-out test split (overall = mean over ghosting, flare, moire):")
    for scope, metrics in [("overall", report["overall"]), *report["per_class"].items()]:
        values = " ".join(f"{k}={v:.3f}" if v is not None else f"{k}=n/a" for k, v in metrics.items())
        print(f"  {scope:9} {values}")
    print("chance: " + " ".join(f"{k}={v:.3f}" for k, v in chance.items()))
    print(f"linear-probe ceiling of the random frozen tokens (patch-level artifact AUROC): {ceiling:.3f}")


if __name__ == "__main__":
    main()
