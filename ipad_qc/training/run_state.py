"""The run folder of a training run, written so that it can be resumed from wherever it stopped.

::

    state.json                                  where the run stands (the commit point, see below)
    checkpoints/stage<S>-epoch<E>.safetensors   the model after every epoch
    optimizer-stage<S>-epoch<E>.pt              the optimizer of the latest epoch (one file at a time)
    best.safetensors                            the selected model, with calibrated thresholds
    metrics.jsonl, metrics.csv                  one row per epoch: losses and validation metrics

``state.json`` names the checkpoint and the optimizer state that belong to the point it
describes. Every file is written to a temporary name and renamed into place, and ``state.json``
is renamed last, so a run killed at any moment leaves a ``state.json`` whose files all exist and
belong to it: files written after it are overwritten or ignored on resume. At a stage boundary
it names no optimizer (each stage starts a fresh one for its own parameters). Paths in it are
relative to the run folder, so a run folder can be moved.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

STATE_VERSION = 2


class RunFolderError(ValueError):
    """The run folder cannot be used as asked: not resumable, or already holding a run."""


@dataclass(frozen=True)
class RunState:
    """Where a run stands: the stage (index into the selected stages) and the epochs done in it."""

    stage_index: int = 0
    epoch: int = 0
    stage_best: float = -1.0
    stage_best_path: str | None = None  # the current stage's best epoch so far
    model_path: str | None = None  # the model at this point; None: as initialised
    optimizer_path: str | None = None  # the current stage's optimizer at this point; None: a fresh one
    trained_stages: tuple[int, ...] = ()  # stages that trained parameters, in order
    history: tuple[dict[str, Any], ...] = ()
    version: int = STATE_VERSION

    def next_stage(self, trained: int | None) -> RunState:
        """The state at the start of the next stage, continuing from this stage's best epoch;
        ``trained`` is the stage just finished, or None when it had nothing to learn."""
        model = self.stage_best_path or self.model_path
        stages = self.trained_stages + ((trained,) if trained is not None else ())
        return replace(self, stage_index=self.stage_index + 1, epoch=0, stage_best=-1.0, stage_best_path=None,
                       model_path=model, optimizer_path=None, trained_stages=stages)


class RunFolder:
    """Reads and writes the files of a run folder, each atomically (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def checkpoint_name(self, stage: int, epoch: int) -> str:
        return f"checkpoints/stage{stage}-epoch{epoch:03d}.safetensors"

    def optimizer_name(self, stage: int, epoch: int) -> str:
        return f"optimizer-stage{stage}-epoch{epoch:03d}.pt"

    # --- starting ---------------------------------------------------------------------------
    def start(self, resume: bool) -> RunState:
        """A fresh state for a new run, or the saved one to resume from."""
        self.root.mkdir(parents=True, exist_ok=True)
        exists = self.state_file.is_file()
        if not resume:
            if exists:
                raise RunFolderError(f"{self.root} already holds a training run; pass --resume or choose another --out")
            return RunState()
        if not exists:
            raise RunFolderError(f"{self.root}: nothing to resume (no state.json)")
        values = json.loads(self.state_file.read_text(encoding="utf-8"))
        if values.get("version") != STATE_VERSION:
            raise RunFolderError(f"{self.state_file}: written by another version of ipad-qc's trainer; "
                                 "start a new run in another --out")
        state = RunState(**{**values, "trained_stages": tuple(values["trained_stages"]),
                            "history": tuple(values["history"])})
        for relative in (state.model_path, state.optimizer_path, state.stage_best_path):
            if relative and not self.path(relative).is_file():
                raise RunFolderError(f"{self.root}: {relative} is missing; the run cannot be resumed")
        self.write_metrics(state)
        return state

    # --- writing ----------------------------------------------------------------------------
    def _atomic(self, target: Path, write: Callable[[Path], Any]) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        write(tmp)
        os.replace(tmp, target)
        return target

    def save_optimizer(self, optimizer: torch.optim.Optimizer, relative: str) -> None:
        self._atomic(self.path(relative), lambda tmp: torch.save(optimizer.state_dict(), tmp))

    def load_optimizer(self, optimizer: torch.optim.Optimizer, relative: str) -> None:
        optimizer.load_state_dict(torch.load(self.path(relative), weights_only=True))

    def copy(self, relative: str, target: str) -> None:
        self._atomic(self.path(target), lambda tmp: shutil.copyfile(self.path(relative), tmp))

    def commit(self, old: RunState, new: RunState) -> RunState:
        """Make ``new`` the resume point, then drop the optimizer file only ``old`` needed."""
        text = json.dumps(asdict(new), indent=1)
        self._atomic(self.state_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        if old.optimizer_path and old.optimizer_path != new.optimizer_path:
            self.path(old.optimizer_path).unlink(missing_ok=True)
        if new.history != old.history:
            self.write_metrics(new)
        return new

    def write_metrics(self, state: RunState) -> None:
        """``metrics.jsonl`` and ``metrics.csv`` from the state's history (so they never disagree with it)."""
        rows = list(state.history)
        lines = "".join(json.dumps(row) + "\n" for row in rows)
        self._atomic(self.root / "metrics.jsonl", lambda tmp: tmp.write_text(lines, encoding="utf-8"))
        columns = sorted({key for row in rows for key in row})

        def write_csv(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)

        self._atomic(self.root / "metrics.csv", write_csv)


def with_epoch(state: RunState, row: dict[str, Any], score: float, model_path: str, optimizer_path: str) -> RunState:
    """The state after one more epoch of the current stage, whose result is ``row``."""
    best = score > state.stage_best
    return replace(state, epoch=state.epoch + 1, history=state.history + (row,), model_path=model_path,
                   optimizer_path=optimizer_path, stage_best=score if best else state.stage_best,
                   stage_best_path=model_path if best else state.stage_best_path)
