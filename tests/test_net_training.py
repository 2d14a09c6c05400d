"""ipad-net through the shared trainer: a tiny instance measurably learns a task it can solve, the weights
it writes load in the detector and score well above chance on held-out images, and data sets combine."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ipad_qc.cli import main
from ipad_qc.datasets.combine import combine
from ipad_qc.datasets.loader import load_samples
from ipad_qc.net import IpadNetConfig, read_net
from ipad_qc.net.recipe import IpadNetRecipe
from ipad_qc.training.trainer import Trainer, TrainSettings

SIDE = 64
COUNTS = {"train": 16, "val": 6, "test": 8}  # per class


def _artifact(label: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth noisy background with one artifact the tiny network can learn, and its mask."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    base = 0.35 + 0.2 * np.sin(xs / rng.uniform(9, 20) + rng.uniform(0, 6))[..., None] * rng.uniform(0.5, 1, 3)
    image = np.clip(base + rng.normal(0, 0.02, (SIDE, SIDE, 3)), 0, 1).astype(np.float32)
    mask = np.zeros((SIDE, SIDE), bool)
    cy, cx = rng.uniform(16, 48, 2)
    if label == "flare":  # a clipped source with a wide glow
        glow = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * rng.uniform(6, 10) ** 2))
        image = np.clip(image + 0.9 * glow[..., None], 0, 1)
        mask = glow > 0.2
    elif label == "moire":  # coloured stripes, each channel with its own phase, in a square
        half = int(rng.uniform(12, 20))
        region = (abs(ys - cy) < half) & (abs(xs - cx) < half)
        period = rng.uniform(3, 5)
        stripes = np.stack([np.sin((xs + ys * 0.3) * 2 * np.pi / period + shift) for shift in (0, 2.1, 4.2)], -1)
        image = np.where(region[..., None], np.clip(image + 0.25 * stripes, 0, 1), image)
        mask = region
    elif label == "ghosting":  # a dark disc and its half-transparent copy a few pixels away
        r, dx = rng.uniform(6, 9), rng.uniform(7, 11)
        disc = ((ys - cy) ** 2 + (xs - cx) ** 2) < r * r
        copy = ((ys - cy) ** 2 + (xs - cx - dx) ** 2) < r * r
        image = np.where(disc[..., None], 0.05, image)
        image = np.where(copy[..., None] & ~disc[..., None], 0.5 * image + 0.025, image)
        mask = disc | copy
    return image.astype(np.float32), mask


def make_folder(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in COUNTS.items():
        for label in ("clean", "ghosting", "flare", "moire"):
            for index in range(count):
                image, mask = _artifact(label, rng)
                path = root / split / label / f"{label}_{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), cv2.cvtColor((image * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))
                if label != "clean":
                    mask_path = root / "masks" / split / label / f"{label}_{index}.png"
                    mask_path.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 255)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = make_folder(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("run")
    config = IpadNetConfig(input_side=SIDE, widths=(8, 12, 16, 24, 32, 32), fuse_width=16, seed=3)
    settings = TrainSettings(data=data, out=out, stages=(1,), epochs=8, batch_size=8, lr=3e-3, seed=3, workers=0)
    best = Trainer(settings, IpadNetRecipe(config, "cpu")).run()
    return data, best


def test_a_tiny_ipad_net_learns_and_its_weights_score_held_out_images(trained: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    data, best = trained
    checkpoint = read_net(best)
    assert checkpoint.training["stages"] == [1] and set(checkpoint.config.thresholds) <= {"ghosting", "flare", "moire"}
    report_path = tmp_path / "eval.json"
    result = CliRunner().invoke(main, ["eval", str(data), "--detector", "ipad-net", "--detector-option",
                                       f"weights={best}", "--split", "test", "--out", str(tmp_path / "scan"),
                                       "--workers", "0", "--json", str(report_path), "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["labels"]["images"] == 4 * COUNTS["test"]
    assert report["protocols"]["one-vs-rest"]["overall"]["C-AUROC"] > 0.8, report["protocols"]["one-vs-rest"]
    assert report["labels"]["accuracy"] > 0.55, report["labels"]["confusion"]  # chance: 0.25


def test_validation_improves_over_training(trained: tuple[Path, Path]) -> None:
    rows = [json.loads(line) for line in (trained[1].parent / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert max(row["val_C-AUROC"] for row in rows) > rows[0]["val_C-AUROC"] + 0.1


def test_train_net_cli_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "data", seed=1)
    args = ["train-net", str(data), "--input-side", "64", "--epochs", "2", "--batch-size", "16", "--workers", "0",
            "--seed", "5"]
    for run in ("a", "b"):
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / run)])
        assert result.exit_code == 0, result.output
        assert "best model:" in result.output and "weights=" in result.output
    a, b = (read_net(tmp_path / run / "best.safetensors") for run in ("a", "b"))
    assert a.tensors.keys() == b.tensors.keys()
    assert all(np.array_equal(a.tensors[k].numpy(), b.tensors[k].numpy()) for k in a.tensors)
    refused = CliRunner().invoke(main, ["train-net", "--out", str(tmp_path / "c")])
    assert refused.exit_code == 2 and "--synth-from" in refused.output


def test_combine_links_data_sets_under_one_manifest(tmp_path: Path) -> None:
    first, second = make_folder(tmp_path / "one", seed=2), make_folder(tmp_path / "two", seed=3)
    combined = combine([first, second], tmp_path / "both")
    samples = load_samples(combined)
    assert len(samples) == 2 * 4 * sum(COUNTS.values())
    assert {s.image.split("/")[0] for s in samples} == {"src0", "src1"}
    assert all((combined / s.image).is_file() and (s.mask is None or (combined / s.mask).is_file()) for s in samples)
    assert {s.split for s in samples} == {"train", "val", "test"}
    combine([second], tmp_path / "both")  # made anew: the stale link goes
    assert {s.image.split("/")[0] for s in load_samples(tmp_path / "both")} == {"src0"}
