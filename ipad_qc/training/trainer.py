"""The training loop shared by every detector family: data, loss, validation, selection, calibration, resume.

A :class:`~ipad_qc.training.recipe.ModelRecipe` supplies the model, its stages and its checkpoints
(IPAD-CLIP's: Stage I adapters, projectors and FC heads; Stage II the text prompts; Stage III
adapters and projectors against the frozen anchors, paper Section 4.4). Each selected stage runs
``epochs`` epochs of Adam on the Eq. 11 loss; after every epoch the model is validated, a
checkpoint is written and the run folder's state committed (:mod:`ipad_qc.training.run_state`),
and the stage's best epoch (by ``selection_score``: the mean of the validation split's overall
C-AP and S-AP, paper protocol) is remembered; the next stage starts from that best state. A stage
with nothing to learn (Stage II of "w/o LTE") is skipped and not recorded as trained.

``--resume`` continues from the last commit, also across stage boundaries, and the result is
bit-identical to an uninterrupted run: shuffling and augmentation are seeded per (stage, epoch),
the model and optimizer are restored from the files the state names, and each stage's optimizer
starts fresh exactly where an uninterrupted run starts it.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from ipad_qc.datasets.loader import IpadDataset
from ipad_qc.device import autocast_for
from ipad_qc.evaluation import IpadEvaluator
from ipad_qc.training.calibrate import calibrate
from ipad_qc.training.data import TrainingData
from ipad_qc.training.losses import ipad_loss
from ipad_qc.training.predict import predictions
from ipad_qc.training.recipe import ModelRecipe
from ipad_qc.training.run_state import RunFolder, RunState, with_epoch


@dataclass
class TrainSettings:
    """How to train; the model itself is described by the recipe."""

    data: Path
    out: Path
    stages: tuple[int, ...] = (1, 2, 3)
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    lam: float = 4.0
    seed: int = 0
    workers: int = 2
    max_steps: int | None = None  # cap on batches per epoch, for smoke runs
    target_precision: float = 0.9
    resume: bool = False
    data_ablations: tuple[str, ...] = ()  # "w/o-Clean", "w/o-Real": training split only


class TrainingError(ValueError):
    """Training cannot start: bad settings, empty splits, a run folder that is not resumable."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def selection_score(metrics: dict[str, float]) -> float:
    values = [metrics.get("C-AP", float("nan")), metrics.get("S-AP", float("nan"))]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else 0.0


class Trainer:
    def __init__(self, settings: TrainSettings, recipe: ModelRecipe) -> None:
        if not settings.stages or any(s not in recipe.stages for s in settings.stages):
            raise TrainingError(f"--stages must be a subset of {','.join(map(str, recipe.stages))}, "
                                f"got {settings.stages}")
        self.settings = settings
        self.recipe = recipe
        self.device = recipe.device
        seed_everything(settings.seed)
        self.data = TrainingData.load(settings.data, recipe.class_names, settings.data_ablations)
        self.folder = RunFolder(settings.out)
        self.state = RunState()

    @property
    def current_stage(self) -> int:
        return self.settings.stages[self.state.stage_index]

    # --- data -----------------------------------------------------------------------------------
    def loader(self, split: str, shuffle: bool, epoch: int = 0) -> DataLoader:
        recipe = self.recipe
        dataset = IpadDataset(self.settings.data, self.data.splits[split], recipe.image_size, recipe.image_mean,
                              recipe.image_std, recipe.class_names, augment=shuffle)
        generator = torch.Generator().manual_seed(self.settings.seed * 1000 + epoch)
        return DataLoader(dataset, batch_size=self.settings.batch_size, shuffle=shuffle, generator=generator,
                          num_workers=self.settings.workers, persistent_workers=False)

    # --- one epoch ------------------------------------------------------------------------------
    def train_epoch(self, optimizer: torch.optim.Optimizer, epoch: int, progress: Progress) -> dict[str, float]:
        # Seeding per (stage, epoch) makes shuffling and augmentation independent of how the run got
        # here, so a resumed run reproduces an uninterrupted one exactly.
        torch.manual_seed(self.settings.seed * 100_003 + self.current_stage * 1_009 + epoch)
        loader = self.loader("train", shuffle=True, epoch=self.current_stage * 1_000 + epoch)
        steps = min(len(loader), self.settings.max_steps or len(loader))
        task = progress.add_task(f"stage {self.current_stage} epoch {epoch + 1}", total=steps)
        totals = {"loss": 0.0, "ce": 0.0, "dice": 0.0, "focal": 0.0}
        seg_steps = 0
        model = self.recipe.model
        model.train()
        for step, (pixels, labels, masks, has_mask) in enumerate(loader):
            if step >= steps:
                break
            with autocast_for(self.device):
                output = model(pixels.to(self.device))
            terms = ipad_loss(output.class_logits, output.seg_logits, labels.to(self.device), masks.to(self.device),
                              self.settings.lam, has_mask.to(self.device))
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            totals["loss"] += float(terms.total.detach())
            totals["ce"] += terms.ce
            if terms.seg_images:
                totals["dice"] += terms.dice
                totals["focal"] += terms.focal
                seg_steps += 1
            progress.update(task, advance=1, description=f"stage {self.current_stage} epoch {epoch + 1} "
                                                         f"loss {totals['loss'] / (step + 1):.3f}")
        progress.remove_task(task)
        # Dice and Focal are means over the batches that had a pixel target (see losses).
        divisors = {"loss": steps, "ce": steps, "dice": seg_steps, "focal": seg_steps}
        return {f"train_{k}": (v / divisors[k] if divisors[k] else float("nan")) for k, v in totals.items()}

    def validate(self) -> dict[str, float]:
        evaluator = IpadEvaluator(self.recipe.class_names)
        for class_probs, labels, seg_probs, masks, has_mask in predictions(self.recipe.model,
                                                                           self.loader("val", shuffle=False),
                                                                           self.device):
            evaluator.update(class_probs, labels, seg_probs, masks, has_mask=has_mask)
        return {f"val_{k}": v for k, v in evaluator.compute().overall.items()}

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train every selected stage; returns the path of ``best.safetensors``."""
        try:
            self.state = self.folder.start(self.settings.resume)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        optimizer = self.restore()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()) as progress:
            while self.state.stage_index < len(self.settings.stages):
                self.run_stage(optimizer, progress)
                optimizer = None
        return self.finish()

    def restore(self) -> torch.optim.Optimizer | None:
        """The model and the current stage's optimizer as the state describes them (None: a fresh start)."""
        if self.state.model_path:
            self.recipe.load(self.folder.path(self.state.model_path))
        if self.state.optimizer_path is None or self.state.stage_index >= len(self.settings.stages):
            return None
        optimizer = self.optimizer(self.recipe.start_stage(self.current_stage))
        self.folder.load_optimizer(optimizer, self.state.optimizer_path)
        return optimizer

    def optimizer(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """Adam (paper Section 5.1), a fresh one per stage."""
        return torch.optim.Adam(parameters, lr=self.settings.lr)

    def run_stage(self, optimizer: torch.optim.Optimizer | None, progress: Progress) -> None:
        """Run the current stage's remaining epochs (all of them unless resuming mid-stage)."""
        stage = self.current_stage
        if optimizer is None:
            parameters = self.recipe.start_stage(stage)
            if not parameters:  # nothing to learn: skipped, and not recorded as trained
                self.state = self.folder.commit(self.state, self.state.next_stage(None))
                return
            optimizer = self.optimizer(parameters)
        while self.state.epoch < self.settings.epochs:
            epoch, start = self.state.epoch, time.perf_counter()
            row: dict[str, Any] = {"stage": stage, "epoch": epoch + 1, **self.train_epoch(optimizer, epoch, progress)}
            row.update(self.validate())
            row["seconds"] = round(time.perf_counter() - start, 2)
            score = selection_score({k[4:]: v for k, v in row.items() if k.startswith("val_")})
            model_path = self.folder.checkpoint_name(stage, epoch + 1)
            self.recipe.save(self.folder.path(model_path), stages=[*self.state.trained_stages, stage])
            optimizer_path = self.folder.optimizer_name(stage, epoch + 1)
            self.folder.save_optimizer(optimizer, optimizer_path)
            self.state = self.folder.commit(self.state, with_epoch(self.state, row, score, model_path, optimizer_path))
        self.end_stage(stage)

    def end_stage(self, stage: int) -> None:
        """Continue from the stage's best epoch, as model selection on validation data demands."""
        if self.state.stage_best_path:
            self.recipe.load(self.folder.path(self.state.stage_best_path))
            self.folder.copy(self.state.stage_best_path, "best.safetensors")
        self.state = self.folder.commit(self.state, self.state.next_stage(stage))

    def finish(self) -> Path:
        """Calibrate thresholds on validation data and write them into ``best.safetensors``."""
        if not self.state.trained_stages or self.state.model_path is None:
            raise TrainingError(f"stages {','.join(map(str, self.settings.stages))} have nothing to learn "
                                "with this configuration")
        self.recipe.load(self.folder.path(self.state.model_path))
        self.recipe.start_stage(self.settings.stages[-1])  # the last stage's prediction head
        batches = list(predictions(self.recipe.model, self.loader("val", shuffle=False), self.device))
        class_probs = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        thresholds = calibrate(class_probs, labels, self.recipe.class_names, self.settings.target_precision)
        self.recipe.set_thresholds({name: t.value for name, t in thresholds.items() if np.isfinite(t.precision)})
        extra = {"thresholds": {n: asdict(t) for n, t in thresholds.items()}, "data": self.data.summary()}
        return self.recipe.save(self.folder.path("best.safetensors"), stages=list(self.state.trained_stages),
                                extra=extra)
