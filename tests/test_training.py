from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from clip_fixtures import TINY, write_tiny_weights
from safetensors.torch import load_file

from ipad_qc.cli import main
from ipad_qc.datasets.loader import folder_samples, load_samples
from ipad_qc.synthetic import clean_scene
from ipad_qc.training.calibrate import calibrate, pick_threshold
from ipad_qc.training.losses import dice_loss, focal_loss, ipad_loss, target_class_map


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    clean = root / "clean_photos"
    clean.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        scene = clean_scene(rng, 160, 120)
        cv2.imwrite(str(clean / f"photo_{i}.png"), (scene[..., ::-1] * 255).astype(np.uint8))
    result = invoke("synth", clean, "--out", root / "ipad", "--count", 32, "--size", 64, "--seed", 0,
                    "--workers", 0)
    assert result.exit_code == 0, result.output
    return root / "ipad"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def train_args(data: Path, out: Path, weights: Path, epochs: int, *extra: str) -> list:
    return ["train", data, "--out", out, "--backbone", TINY, "--pretrained", weights, "--image-size", 64,
            "--epochs", epochs, "--batch-size", 4, "--max-steps", 2, "--workers", 0, "--device", "cpu", *extra]


def test_end_to_end_train_resume_eval_scan(dataset: Path, weights: Path, tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    assert invoke(*train_args(dataset, full, weights, 2)).exit_code == 0
    with open(full / "metrics.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["stage"], r["epoch"]) for r in rows] == [(s, e) for s in "123" for e in "12"]
    assert all(np.isfinite(float(r["train_loss"])) and "val_C-AUROC" in r for r in rows)
    assert len(list((full / "checkpoints").glob("*.safetensors"))) == 6

    assert invoke(*train_args(dataset, part, weights, 2)).exit_code == 0  # same seed, second run
    assert json.loads((part / "state.json").read_text())["stage_index"] == 3
    finished = invoke(*train_args(dataset, part, weights, 2, "--resume"))
    assert finished.exit_code == 0, "resuming a finished run only re-calibrates the thresholds"
    refused = CliRunner().invoke(main, [str(a) for a in train_args(dataset, full, weights, 2)])
    assert refused.exit_code == 2 and "--resume" in refused.output

    a, b = load_file(str(full / "best.safetensors")), load_file(str(part / "best.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "training must be deterministic"

    report_path = tmp_path / "eval.json"
    evaluated = invoke("eval", dataset, "--checkpoint", full / "best.safetensors", "--split", "test", "--json",
                       report_path, "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(report_path.read_text())
    assert {"C-AUROC", "C-AP", "C-F1max", "S-AUROC", "S-AP", "S-F1max", "S-AUPRO"} <= set(report["overall"])
    assert report["protocol"] == "vs-clean" and set(report["protocols"]) == {"vs-clean", "one-vs-rest"}
    test_images = sum(sample.split == "test" for sample in load_samples(dataset))
    assert report["labels"]["images"] == test_images

    shots = tmp_path / "shots"
    shots.mkdir()
    for sample in load_samples(dataset)[:3]:
        (shots / Path(sample.image).name).write_bytes((dataset / sample.image).read_bytes())
    scanned = CliRunner().invoke(main, ["scan", str(shots), "--out", str(tmp_path / "run"), "--detector",
                                        "ipad-clip", "--checkpoint", str(full / "best.safetensors"), "--device",
                                        "cpu", "-q", "--no-report"])
    assert scanned.exit_code == 0, scanned.output


def test_resume_mid_stage_reproduces_uninterrupted_run(dataset: Path, weights: Path, tmp_path: Path) -> None:
    from ipad_qc.clip import IpadClipConfig
    from ipad_qc.training.trainer import Trainer, TrainSettings

    def settings(out: Path, resume: bool = False) -> TrainSettings:
        return TrainSettings(data=dataset, out=out, stages=(1,), epochs=2, batch_size=4, max_steps=2, workers=0,
                             device="cpu", resume=resume)

    config = dict(backbone=TINY, pretrained=str(weights), image_size=64, prompt_length=4, deep_prompt_length=2)
    straight = Trainer(settings(tmp_path / "a"), IpadClipConfig(**config)).run()

    class Interrupted(Exception):
        pass

    trainer = Trainer(settings(tmp_path / "b"), IpadClipConfig(**config))
    original = trainer.validate
    calls = []

    def validate_then_stop():
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted  # dies during the second epoch, after the first was checkpointed
        return original()

    trainer.validate = validate_then_stop
    with pytest.raises(Interrupted):
        trainer.run()
    assert json.loads((tmp_path / "b" / "state.json").read_text())["epoch"] == 1
    resumed = Trainer(settings(tmp_path / "b", resume=True), IpadClipConfig(**config)).run()
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_loss_terms() -> None:
    labels = torch.tensor([2, 0])
    masks = torch.zeros(2, 8, 8)
    masks[0, 2:5, 2:5] = 1
    target = target_class_map(labels, masks)
    assert target[0, 3, 3] == 2 and target[0, 0, 0] == 0 and target[1].max() == 0
    perfect = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 40 - 20
    assert dice_loss(perfect.softmax(1), target) < 1e-3
    assert focal_loss(perfect, target) < 1e-6 < focal_loss(torch.zeros_like(perfect), target)
    class_logits = torch.tensor([[0.0, 0.0, 5.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    terms = ipad_loss(class_logits, perfect, labels, masks, lam=4.0)
    assert terms.total.item() == pytest.approx(4 * terms.ce + terms.dice + terms.focal, rel=1e-5)


def test_threshold_calibration_hits_target_precision() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    positive = np.array([1, 1, 0, 1, 1, 0, 0, 0], bool)
    chosen = pick_threshold(scores, positive, target_precision=0.75)
    assert chosen.rule == "precision>=target" and chosen.value == 0.6 and chosen.recall == 1.0
    strict = pick_threshold(scores, positive, target_precision=0.99)
    assert strict.value == 0.9 and strict.precision == 1.0
    fallback = pick_threshold(np.array([0.9, 0.8]), np.array([False, True]), target_precision=0.99)
    assert fallback.rule == "f1-max"
    probs = np.array([[0.1, 0.8, 0.05, 0.05], [0.7, 0.1, 0.1, 0.1]])
    assert set(calibrate(probs, np.array([1, 0]), ("clean", "ghosting", "flare", "moire"))) == {
        "ghosting", "flare", "moire"}


def test_folder_dataset_with_masks_and_stable_split(tmp_path: Path) -> None:
    for label in ("clean", "flare"):
        for i in range(5):
            path = tmp_path / label / f"{label}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    mask = tmp_path / "masks" / "flare" / "flare0.png"
    mask.parent.mkdir(parents=True)
    cv2.imwrite(str(mask), np.full((8, 8), 255, np.uint8))
    samples = folder_samples(tmp_path)
    assert len(samples) == 10 and {s.source for s in samples} == {"real"}
    assert next(s for s in samples if s.image == "flare/flare0.png").mask == "masks/flare/flare0.png"
    assert folder_samples(tmp_path) == samples
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no manifest.csv"):
        load_samples(tmp_path)
