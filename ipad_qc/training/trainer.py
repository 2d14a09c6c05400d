"""Three-stage IPAD-CLIP training (paper Section 4.4) with checkpoints, resume and model selection.

Stage I trains adapters, projectors and FC heads; Stage II the text prompts (Eq. 12 head);
Stage III adapters and projectors against the frozen anchors. Each stage runs ``epochs`` epochs of
Adam; after every epoch the model is validated, a checkpoint is written and the stage's best
epoch (by ``selection_score``: the mean of overall C-AP and S-AP on the validation split) is
remembered; the next stage starts from that best state. ``--stages`` selects the ablations
"w/o S-I" (2,3) and "w/o S-II-III" (1). A run folder holds::

    checkpoints/stage<S>-epoch<E>.safetensors   every epoch
    last.safetensors, optimizer.pt, state.json  what --resume continues from
    best.safetensors                            the selected model, with calibrated thresholds
    metrics.jsonl, metrics.csv                  one row per epoch: losses and validation metrics
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from ipad_qc.clip.checkpoint import save_checkpoint
from ipad_qc.clip.config import IpadClipConfig
from ipad_qc.clip.model import IpadClip
from ipad_qc.datasets.loader import IpadDataset, load_samples
from ipad_qc.device import resolve_device
from ipad_qc.evaluation import IpadEvaluator
from ipad_qc.training.calibrate import calibrate
from ipad_qc.training.losses import ipad_loss
from ipad_qc.training.predict import autocast_for, predictions


@dataclass
class TrainSettings:
    """How to train; the model itself is described by an :class:`IpadClipConfig`."""

    data: Path
    out: Path
    stages: tuple[int, ...] = (1, 2, 3)
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    lam: float = 4.0
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    max_steps: int | None = None  # cap on batches per epoch, for smoke runs
    target_precision: float = 0.9
    resume: bool = False


@dataclass
class RunState:
    """What ``state.json`` remembers between epochs, so ``--resume`` continues exactly."""

    stage_index: int = 0
    epoch: int = 0  # epochs finished in the current stage
    stage_best: float = -1.0
    stage_best_path: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


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
    def __init__(self, settings: TrainSettings, config: IpadClipConfig) -> None:
        if not settings.stages or any(s not in (1, 2, 3) for s in settings.stages):
            raise TrainingError(f"--stages must be a subset of 1,2,3, got {settings.stages}")
        self.settings = settings
        self.device = resolve_device(settings.device)
        seed_everything(settings.seed)
        self.model = IpadClip(config).to(self.device)
        samples = load_samples(settings.data, config.class_names)
        self.splits = {split: [s for s in samples if s.split == split] for split in ("train", "val", "test")}
        for split in ("train", "val"):
            if not self.splits[split]:
                raise TrainingError(f"{settings.data}: the {split} split is empty")
        self.out = Path(settings.out)
        self.state = RunState()

    # --- data -----------------------------------------------------------------------------------
    def loader(self, split: str, shuffle: bool, epoch: int = 0) -> DataLoader:
        config = self.model.config
        dataset = IpadDataset(self.settings.data, self.splits[split], config.image_size, self.model.image_mean,
                              self.model.image_std, config.class_names, augment=shuffle)
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
        self.model.train()
        for step, (pixels, labels, masks) in enumerate(loader):
            if step >= steps:
                break
            with autocast_for(self.device):
                output = self.model(pixels.to(self.device))
            terms = ipad_loss(output.class_logits, output.seg_logits, labels.to(self.device), masks.to(self.device),
                              self.settings.lam)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            for key, value in (("loss", float(terms.total.detach())), ("ce", terms.ce), ("dice", terms.dice),
                               ("focal", terms.focal)):
                totals[key] += value
            progress.update(task, advance=1, description=f"stage {self.current_stage} epoch {epoch + 1} "
                                                         f"loss {totals['loss'] / (step + 1):.3f}")
        progress.remove_task(task)
        return {f"train_{k}": v / max(1, steps) for k, v in totals.items()}

    def validate(self) -> dict[str, float]:
        evaluator = IpadEvaluator(self.model.config.class_names)
        for batch in predictions(self.model, self.loader("val", shuffle=False), self.device):
            evaluator.update(*batch)
        return {f"val_{k}": v for k, v in evaluator.compute().overall.items()}

    @property
    def current_stage(self) -> int:
        return self.settings.stages[self.state.stage_index]

    # --- persistence ----------------------------------------------------------------------------
    def save_epoch(self, optimizer: torch.optim.Optimizer, epoch: int) -> Path:
        stages = list(self.settings.stages[: self.state.stage_index + 1])
        path = save_checkpoint(self.model, self.out / "checkpoints" / f"stage{self.current_stage}-epoch{epoch + 1:03d}"
                               ".safetensors", stages=stages)
        shutil.copyfile(path, self.out / "last.safetensors")
        torch.save(optimizer.state_dict(), self.out / "optimizer.pt")
        (self.out / "state.json").write_text(json.dumps(asdict(self.state), indent=1))
        return path

    def load_trained(self, path: Path) -> None:
        """Load a checkpoint's trained tensors into the training model (backbone untouched)."""
        missing, unexpected = self.model.load_state_dict(load_file(str(path), device=self.device), strict=False)
        if unexpected:
            raise TrainingError(f"{path}: does not match this model ({unexpected[:3]})")

    def resume(self) -> torch.optim.Optimizer | None:
        state_path = self.out / "state.json"
        if not state_path.is_file():
            raise TrainingError(f"{self.out}: nothing to resume (no state.json)")
        self.state = RunState(**json.loads(state_path.read_text()))
        if self.state.stage_index >= len(self.settings.stages):
            return None
        self.load_trained(self.out / "last.safetensors")
        optimizer = torch.optim.Adam(self.model.set_stage(self.current_stage), lr=self.settings.lr)
        optimizer.load_state_dict(torch.load(self.out / "optimizer.pt", weights_only=True))
        return optimizer

    def log(self, row: dict[str, Any]) -> None:
        self.state.history.append(row)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        columns = sorted({key for entry in self.state.history for key in entry})
        with open(self.out / "metrics.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.state.history)

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train every selected stage; returns the path of ``best.safetensors``."""
        self.out.mkdir(parents=True, exist_ok=True)
        optimizer = self.resume() if self.settings.resume else None
        if not self.settings.resume and (self.out / "state.json").exists():
            raise TrainingError(f"{self.out} already holds a training run; pass --resume or choose another --out")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()) as progress:
            while self.state.stage_index < len(self.settings.stages):
                self.run_stage(optimizer, progress)
                optimizer = None
        return self.finish()

    def run_stage(self, optimizer: torch.optim.Optimizer | None, progress: Progress) -> None:
        """Run the current stage's remaining epochs (all of them unless resuming mid-stage)."""
        if optimizer is None:
            parameters = self.model.set_stage(self.current_stage)
            if not parameters:  # e.g. Stage II of the "w/o LTE" ablation: fixed templates, nothing to learn
                self.model.freeze_text_embeddings()
                self.state = RunState(self.state.stage_index + 1, 0, -1.0, None, self.state.history)
                return
            optimizer = torch.optim.Adam(parameters, lr=self.settings.lr)
        while self.state.epoch < self.settings.epochs:
            epoch, start = self.state.epoch, time.perf_counter()
            row = {"stage": self.current_stage, "epoch": epoch + 1, **self.train_epoch(optimizer, epoch, progress)}
            row.update(self.validate())
            row["seconds"] = round(time.perf_counter() - start, 2)
            self.state.epoch += 1
            score = selection_score({k[4:]: v for k, v in row.items() if k.startswith("val_")})
            self.log(row)
            path = self.save_epoch(optimizer, epoch)
            if score > self.state.stage_best:
                self.state.stage_best, self.state.stage_best_path = score, str(path)
                (self.out / "state.json").write_text(json.dumps(asdict(self.state), indent=1))
        self.end_stage()

    def end_stage(self) -> None:
        """Continue from the stage's best epoch, as model selection on validation data demands."""
        if self.state.stage_best_path:
            self.load_trained(Path(self.state.stage_best_path))
            shutil.copyfile(self.state.stage_best_path, self.out / "best.safetensors")
        self.state = RunState(self.state.stage_index + 1, 0, -1.0, None, self.state.history)
        (self.out / "state.json").write_text(json.dumps(asdict(self.state), indent=1))
        if self.state.stage_index < len(self.settings.stages):
            shutil.copyfile(self.out / "best.safetensors", self.out / "last.safetensors")

    def finish(self) -> Path:
        """Calibrate thresholds on validation data and write them into ``best.safetensors``."""
        best = self.out / "best.safetensors"
        self.load_trained(best)
        self.model.set_stage(self.settings.stages[-1])
        batches = list(predictions(self.model, self.loader("val", shuffle=False), self.device))
        class_probs = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        thresholds = calibrate(class_probs, labels, self.model.config.class_names, self.settings.target_precision)
        self.model.config.thresholds = {name: t.value for name, t in thresholds.items() if np.isfinite(t.precision)}
        save_checkpoint(self.model, best, stages=list(self.settings.stages),
                        extra={"thresholds": {n: asdict(t) for n, t in thresholds.items()}})
        return best
