"""Small data sets and CLI arguments for the training tests (tiny random-weight backbone, 64 px)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner
from clip_fixtures import TINY

from ipad_qc.cli import main
from ipad_qc.datasets.manifest import read_manifest, write_manifest
from ipad_qc.synthetic import clean_scene


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def make_dataset(root: Path) -> Path:
    """``ipad-qc synth`` of 32 samples at 64 px from 6 procedural photos (all synthetic, all masked)."""
    clean = root / "clean_photos"
    clean.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        scene = clean_scene(rng, 160, 120)
        cv2.imwrite(str(clean / f"photo_{i}.png"), (scene[..., ::-1] * 255).astype(np.uint8))
    result = invoke("synth", clean, "--out", root / "ipad", "--count", 32, "--size", 64, "--seed", 0, "--workers", 0)
    assert result.exit_code == 0, result.output
    return root / "ipad"


#: How :func:`make_mixed` relabels rows as real captures: (split, label, drop the mask).
REAL_ROWS = (("train", "ghosting", True), ("train", "flare", True), ("train", "clean", False), ("val", "moire", True))


def make_mixed(dataset: Path, target: Path) -> Path:
    """A copy of ``dataset`` where a few rows are real captures, the artifact ones with an image-level
    label only (no mask), as a team's own photos are."""
    shutil.copytree(dataset, target)
    samples = read_manifest(target)
    for split, label, drop_mask in REAL_ROWS:
        index = next(i for i, s in enumerate(samples) if (s.split, s.label, s.source) == (split, label, "synthetic"))
        samples[index] = replace(samples[index], source="real", mask=None if drop_mask else samples[index].mask)
    write_manifest(target, samples)
    return target


def train_args(data: Path, out: Path, weights: Path, epochs: int, *extra: object) -> list:
    return ["train", data, "--out", out, "--backbone", TINY, "--pretrained", weights, "--image-size", 64,
            "--epochs", epochs, "--batch-size", 4, "--max-steps", 2, "--workers", 0, "--device", "cpu", *extra]
