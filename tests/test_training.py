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
from safetensors import safe_open
from safetensors.torch import load_file
from training_fixtures import REAL_ROWS, invoke, make_dataset, make_mixed, train_args

from ipad_qc.cli import main
from ipad_qc.clip import IpadClipConfig, read_checkpoint
from ipad_qc.datasets.loader import IpadDataset, folder_samples, load_samples
from ipad_qc.evaluation import IpadEvaluator
from ipad_qc.training import trainer as trainer_module
from ipad_qc.training.calibrate import calibrate, pick_threshold
from ipad_qc.training.data import TrainingData
from ipad_qc.training.losses import dice_loss, focal_loss, ipad_loss, target_class_map
from ipad_qc.training.recipe import IpadClipRecipe


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def mixed(dataset: Path, tmp_path_factory) -> Path:
    return make_mixed(dataset, tmp_path_factory.mktemp("mixed") / "ipad")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


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


def test_artifact_images_without_a_mask_train_the_image_level_loss_only() -> None:
    """An unknown mask is not an empty one: no Dice or Focal, and no gradient into its map."""
    labels, has_mask = torch.tensor([2, 1, 0]), torch.tensor([True, False, True])
    masks = torch.zeros(3, 8, 8)
    masks[0, 2:5, 2:5] = 1
    class_logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    seg_logits = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    terms = ipad_loss(class_logits, seg_logits, labels, masks, lam=4.0, has_mask=has_mask)
    known = has_mask.nonzero().flatten()
    target = target_class_map(labels[known], masks[known])
    expected = (4.0 * torch.nn.functional.cross_entropy(class_logits, labels)
                + dice_loss(seg_logits[known].softmax(1), target) + focal_loss(seg_logits[known], target))
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-6) and terms.seg_images == 2
    terms.total.backward()
    assert seg_logits.grad[1].abs().max() == 0 and seg_logits.grad[0].abs().max() > 0
    nothing = ipad_loss(class_logits, seg_logits, labels, masks, has_mask=torch.zeros(3, dtype=torch.bool))
    assert nothing.seg_images == 0 and nothing.total.item() == pytest.approx(4 * nothing.ce, rel=1e-6)


def test_dice_averages_over_the_classes_in_the_target() -> None:
    """As its docstring says: a class only predicted, never in the target, adds no Dice term of its own."""
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    probs = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float()
    probs[0, :, 3, 3] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # a clean pixel predicted as class 3
    per_class = [1 - (2 * (probs[:, c] * (target == c)).sum() + 1) / (probs[:, c].sum() + (target == c).sum() + 1)
                 for c in (0, 1)]
    assert dice_loss(probs, target).item() == pytest.approx(float(sum(per_class) / 2))


def test_dataset_and_validation_know_which_images_have_a_mask(mixed: Path, weights: Path, tmp_path: Path,
                                                              monkeypatch) -> None:
    samples = load_samples(mixed)
    dataset = IpadDataset(mixed, samples, 64, (0.5,) * 3, (0.5,) * 3)
    flags = {s.image: dataset[i][3] for i, s in enumerate(samples)}
    assert all(flags[s.image] == (s.label == "clean" or s.mask is not None) for s in samples)
    assert sum(not f for f in flags.values()) == sum(drop for *_, drop in REAL_ROWS)

    seen = []

    class Recording(IpadEvaluator):
        def update(self, *args, has_mask=None):
            seen.extend(has_mask)
            super().update(*args, has_mask=has_mask)

    monkeypatch.setattr(trainer_module, "IpadEvaluator", Recording)
    config = IpadClipConfig(backbone=TINY, pretrained=str(weights), image_size=64, prompt_length=4,
                            deep_prompt_length=2)
    run = trainer_module.Trainer(trainer_module.TrainSettings(data=mixed, out=tmp_path, workers=0),
                                 IpadClipRecipe(config, "cpu"))
    run.validate()
    val = run.data.splits["val"]
    assert seen == [s.label == "clean" or s.mask is not None for s in val] and not all(seen)


def test_data_ablations_filter_the_training_split_only(mixed: Path) -> None:
    names = ("clean", "ghosting", "flare", "moire")
    full = TrainingData.load(mixed, names)
    for ablation, removed in (("w/o-Clean", lambda s: s.label == "clean"), ("w/o-Real", lambda s: s.source == "real")):
        data = TrainingData.load(mixed, names, (ablation,))
        assert data.splits["train"] == [s for s in full.splits["train"] if not removed(s)]
        assert data.splits["val"] == full.splits["val"] and data.splits["test"] == full.splits["test"]
        assert data.removed == len(full.splits["train"]) - len(data.splits["train"]) > 0
    assert full.summary()["splits"]["val"]["images"]["clean"] > 0
    assert full.summary()["splits"]["train"]["without_mask"] == 2


@pytest.mark.parametrize(("ablations", "stages", "switches"), [
    (("w/o-LTE", "w/o-Clean"), [1, 3], {"learnable_text": False}),
    (("w/o-CLS", "w/o-Real"), [1, 2, 3], {"object_context": False}),
    (("w/o-AD", "w/o-S-I"), [2, 3], {"adapters": False}),
    (("w/o-MG", "w/o-S-II-III"), [1], {"multi_granularity": False}),
])
def test_every_table2_variant_trains_from_the_cli(mixed: Path, weights: Path, tmp_path: Path,
                                                  ablations: tuple[str, ...], stages: list[int],
                                                  switches: dict[str, bool]) -> None:
    options = [part for name in ablations for part in ("--ablation", name)]
    result = CliRunner().invoke(main, [str(a) for a in train_args(mixed, tmp_path, weights, 1, *options)])
    assert result.exit_code == 0, result.output
    if "w/o-Real" not in ablations:
        assert "2 artifact image(s) without a mask: image-level label only, segmentation loss ignored" in result.output
    assert "1 artifact image(s) without a mask: image-level label only, left out of the pixel metrics" in result.output
    checkpoint = read_checkpoint(tmp_path / "best.safetensors")
    assert checkpoint.stages == stages
    assert all(getattr(checkpoint.config, key) == value for key, value in switches.items())
    with safe_open(str(tmp_path / "best.safetensors"), framework="pt") as handle:
        summary = json.loads(handle.metadata()["extra"])["data"]
    train, val = summary["splits"]["train"], summary["splits"]["val"]
    if "w/o-Clean" in ablations:
        assert train["images"]["clean"] == 0 and val["images"]["clean"] > 0
    if "w/o-Real" in ablations:
        assert train["real"] == 0 and summary["removed_from_train"] == 3 and val["real"] == 1


def test_contradicting_stage_ablations_are_refused(mixed: Path, weights: Path, tmp_path: Path) -> None:
    for options in (("--ablation", "w/o-S-I", "--stages", "1"),
                    ("--ablation", "w/o-S-I", "--ablation", "w/o-S-II-III")):
        result = CliRunner().invoke(main, [str(a) for a in train_args(mixed, tmp_path, weights, 1, *options)])
        assert result.exit_code == 2 and ("contradicts" in result.output or "exclude" in result.output)


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
