"""Three-stage training as the paper describes it, and --resume from anywhere, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from clip_fixtures import TINY, write_tiny_weights
from safetensors import safe_open
from safetensors.torch import load_file
from training_fixtures import make_dataset

from ipad_qc.clip import IpadClip, IpadClipConfig
from ipad_qc.clip.checkpoint import trained_state
from ipad_qc.training.recipe import IpadClipRecipe
from ipad_qc.training.run_state import RunFolder
from ipad_qc.training.trainer import Trainer, TrainingError, TrainSettings

EPOCHS = 2


class Killed(Exception):
    """Stands for the process dying: nothing after it runs."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def config(weights: Path, **switches: bool) -> IpadClipConfig:
    return IpadClipConfig(backbone=TINY, pretrained=str(weights), image_size=64, prompt_length=4,
                          deep_prompt_length=2, **switches)


def trainer(dataset: Path, weights: Path, out: Path, resume: bool = False, **switches: bool) -> Trainer:
    settings = TrainSettings(data=dataset, out=out, epochs=EPOCHS, batch_size=4, max_steps=1, workers=0,
                             resume=resume)
    return Trainer(settings, IpadClipRecipe(config(weights, **switches), "cpu"))


@pytest.fixture(scope="module")
def straight(dataset: Path, weights: Path, tmp_path_factory) -> Path:
    """An uninterrupted run of the three stages: the reference every resumed run must equal."""
    out = tmp_path_factory.mktemp("straight")
    trainer(dataset, weights, out).run()
    return out


def history(run: Path) -> list[dict]:
    rows = json.loads((run / "state.json").read_text())["history"]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def assert_same_run(run: Path, reference: Path) -> None:
    a, b = load_file(str(run / "best.safetensors")), load_file(str(reference / "best.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "not bit-identical"
    assert history(run) == history(reference)
    optimizers = [sorted(p.name for p in folder.glob("optimizer-*.pt")) for folder in (run, reference)]
    assert optimizers[0] == optimizers[1]


def kill_at_commit(run: Trainer, number: int, before: bool) -> None:
    """Make the run die at its ``number``-th state commit: just before it (its files written, the state
    not) or just after it."""
    original, calls = run.folder.commit, []

    def commit(old, new):
        calls.append(1)
        if before and len(calls) == number:
            raise Killed
        committed = original(old, new)
        if len(calls) == number:
            raise Killed
        return committed

    run.folder.commit = commit


# Commits per stage: one per epoch, then the stage's end. With 2 epochs, commit 3 ends stage I.
@pytest.mark.parametrize(("number", "before", "where"), [
    (3, True, "stage I finished, the boundary not yet committed"),
    (3, False, "at the stage I/II boundary (optimizer.pt held stage I's optimizer: crashed)"),
    (4, False, "mid-stage II"),
    (8, True, "mid-stage III, the epoch's files written but not committed"),
])
def test_resume_from_any_point_equals_an_uninterrupted_run(dataset: Path, weights: Path, straight: Path,
                                                           tmp_path: Path, number: int, before: bool,
                                                           where: str) -> None:
    run = trainer(dataset, weights, tmp_path)
    kill_at_commit(run, number, before)
    with pytest.raises(Killed):
        run.run()
    trainer(dataset, weights, tmp_path, resume=True).run()
    assert_same_run(tmp_path, straight)


def test_resume_mid_epoch_redoes_the_epoch(dataset: Path, weights: Path, straight: Path, tmp_path: Path) -> None:
    run = trainer(dataset, weights, tmp_path)
    original, calls = run.validate, []

    def validate_then_die():
        calls.append(1)
        if len(calls) == 2:
            raise Killed  # during the second epoch, after the first was committed
        return original()

    run.validate = validate_then_die
    with pytest.raises(Killed):
        run.run()
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 1
    trainer(dataset, weights, tmp_path, resume=True).run()
    assert_same_run(tmp_path, straight)


def test_each_stage_changes_exactly_the_parameters_the_paper_names(straight: Path, weights: Path) -> None:
    """Between two epochs of one stage only that stage's parameters move (Section 4.4); the
    frozen CLIP is never in a checkpoint at all."""
    model = IpadClip(config(weights))
    expected = {1: {n for n, _ in model.named_parameters() if n.startswith(("vision.", "cls_head.", "seg_head."))
                    and not n.startswith("vision.visual.")},
                2: {"prompts.context", "prompts.deep_prompts", "text_embeddings"},
                3: {n for n, _ in model.named_parameters() if n.startswith(("vision.adapters.", "vision.projectors."))}}
    assert set(trained_state(model)) >= expected[1] | expected[2]
    for stage, names in expected.items():
        first = load_file(str(straight / f"checkpoints/stage{stage}-epoch001.safetensors"))
        second = load_file(str(straight / f"checkpoints/stage{stage}-epoch002.safetensors"))
        assert {k for k in first if not torch.equal(first[k], second[k])} == names, f"stage {stage}"
        assert not any(k.startswith(("vision.visual.", "prompts.tower.")) for k in first)


def test_checkpoints_record_the_stages_actually_trained(dataset: Path, weights: Path, tmp_path: Path) -> None:
    """w/o LTE has nothing to learn in Stage II (fixed templates): it is skipped and not recorded."""
    run = trainer(dataset, weights, tmp_path, learnable_text=False)
    best = run.run()
    with safe_open(str(best), framework="pt") as handle:
        assert json.loads(handle.metadata()["stages"]) == [1, 3]
    with safe_open(str(tmp_path / "checkpoints/stage3-epoch001.safetensors"), framework="pt") as handle:
        assert json.loads(handle.metadata()["stages"]) == [1, 3]
    assert not list(tmp_path.glob("checkpoints/stage2-*"))
    assert json.loads((tmp_path / "state.json").read_text())["trained_stages"] == [1, 3]


def test_resume_refuses_a_run_folder_it_cannot_continue(dataset: Path, weights: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="nothing to resume"):
        trainer(dataset, weights, tmp_path, resume=True).run()
    RunFolder(tmp_path).state_file.write_text(json.dumps({"stage_index": 1, "epoch": 0}))
    with pytest.raises(TrainingError, match="another version"):
        trainer(dataset, weights, tmp_path, resume=True).run()
    with pytest.raises(TrainingError, match="already holds a training run"):
        trainer(dataset, weights, tmp_path).run()
