"""How good is a detector on my photos: a scan's results scored against a labelled folder.

Any detector is evaluated the same way, through the run folder a scan writes: its rows give the
image-level scores and labels, its ``maps/`` the per-class probability maps for pixel metrics
where the labelled folder has masks. So ``ipad-qc eval DATA --detector X`` is a scan of DATA's
labelled files followed by this scoring, and ``--run RUN_DIR`` scores an existing scan without
detecting again. Pixel metrics are computed at the maps' resolution (the detector's analysis
size; masks are resized to it) from their 8-bit levels, which is what the run folder keeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.datasets.loader import DatasetError
from ipad_qc.datasets.manifest import Sample
from ipad_qc.evaluation.metrics import IpadEvaluator
from ipad_qc.evaluation.report import DEFAULT_PROTOCOL, EvaluationReport
from ipad_qc.evaluation.verdicts import ImageVerdict, VerdictSummary
from ipad_qc.store import ResultStore

#: The image-level scores of a result row, in class order.
SCORE_COLUMNS = tuple(f"score_{name}" for name in CLASS_NAMES)
#: Channel of each artifact class in a map PNG as OpenCV reads it (BGR): red ghosting, green flare, blue moiré.
_MAP_CHANNELS = {"ghosting": 2, "flare": 1, "moire": 0}


@dataclass(frozen=True)
class DetectorEvaluation:
    """Rank metrics in both protocols, the label view, and what could not be scored and why."""

    data: Path
    run_dir: Path | None
    detectors: tuple[str, ...]
    report: EvaluationReport
    verdicts: VerdictSummary
    unscored: tuple[tuple[str, str], ...] = ()
    set_aside: dict[str, int] = field(default_factory=dict)

    def to_dict(self, mistakes: int | None = None) -> dict[str, Any]:
        return {
            "data": str(self.data),
            "run": str(self.run_dir) if self.run_dir else None,
            "detectors": list(self.detectors),
            **self.report.to_dict(),
            "labels": self.verdicts.to_dict(mistakes),
            "unscored": [{"path": path, "reason": reason} for path, reason in self.unscored],
            "set_aside": self.set_aside,
        }


def _path_prefix(run_root: str | None, data: Path, run_dir: Path) -> str:
    """What the run's row paths have in front of a path relative to ``data`` ('' when it scanned data)."""
    if not run_root:
        return ""
    root, wanted = Path(run_root), data.resolve()
    if wanted == root:
        return ""
    if wanted.is_relative_to(root):
        return wanted.relative_to(root).as_posix() + "/"
    raise DatasetError(f"{run_dir}: that run scanned {root}, which does not hold {wanted}")


def _inside(folder: Path, relpath: str) -> Path:
    """``folder / relpath``, refused when a (tampered) stored path would lead out of ``folder``."""
    path = (folder / relpath).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise DatasetError(f"{folder}: stored path {relpath!r} leads outside the folder")
    return path


def _read_gray(path: Path) -> np.ndarray | None:
    data = np.fromfile(path, dtype=np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None


def _class_maps(run_dir: Path, map_path: str) -> np.ndarray | None:
    """(K+1, H, W) float32 probability maps from a map PNG (the clean plane is unused and zero)."""
    pixels = _read_gray(_inside(run_dir, map_path))
    if pixels is None:
        return None
    planes = [pixels[..., _MAP_CHANNELS[name]] if pixels.ndim == 3 else pixels for name in ARTIFACT_CLASSES]
    stacked = np.stack([np.zeros_like(planes[0]), *planes]).astype(np.float32)
    return stacked / 255.0


def _mask_at(data: Path, sample: Sample, size: tuple[int, int]) -> np.ndarray:
    """The sample's ground-truth mask at the map size (width, height): a pixel is positive when at
    least half of the mask pixels it covers are."""
    if not sample.mask:
        return np.zeros(size[::-1], dtype=bool)
    mask = _read_gray(_inside(data, sample.mask))
    if mask is None:
        raise DatasetError(f"{data / sample.mask}: unreadable mask")
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    coverage = cv2.resize((mask > 127).astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return coverage >= 0.5


def score_run(run_dir: Path, data: Path, samples: Sequence[Sample], protocol: str = DEFAULT_PROTOCOL,
              set_aside: Counter | None = None) -> DetectorEvaluation:
    """Score the scan in ``run_dir`` against the labelled ``samples`` of ``data`` (see the module docstring)."""
    with ResultStore(run_dir, readonly=True) as store:
        prefix = _path_prefix(store.get_meta("root"), data, run_dir)
        rows = {row["path"]: row for row in store.rows()}
    with_masks = any(s.mask for s in samples)
    index = {name: k for k, name in enumerate(CLASS_NAMES)}
    evaluator = IpadEvaluator(protocol=protocol)
    verdicts, unscored, detectors = [], [], Counter()
    for sample in samples:
        row = rows.get(prefix + sample.image)
        if row is None:
            unscored.append((sample.image, "not in the run"))
            continue
        if row["status"] != "ok":
            unscored.append((sample.image, f"decode error: {row['error']}"))
            continue
        scores = np.array([[row[column] for column in SCORE_COLUMNS]], dtype=np.float64)
        maps = _class_maps(run_dir, row["map_path"]) if with_masks and row["map_path"] else None
        if maps is None:  # no masks anywhere, or no maps in this run: image level only
            maps, mask, known = np.zeros((len(CLASS_NAMES), 1, 1), np.float32), np.zeros((1, 1), bool), False
        else:
            mask = _mask_at(data, sample, maps.shape[:0:-1])
            known = sample.label == CLASS_NAMES[0] or sample.mask is not None
        evaluator.update(scores, np.array([index[sample.label]]), maps[None], mask[None], has_mask=np.array([known]))
        verdicts.append(ImageVerdict(sample.image, sample.label, row["label"],
                                     dict(zip(CLASS_NAMES, scores[0].tolist(), strict=True))))
        detectors[row["detector"]] += 1
    if not verdicts:
        reasons = Counter(reason.split(":")[0] for _, reason in unscored)
        raise DatasetError(f"{run_dir}: none of the {len(samples)} labelled images of {data} could be scored "
                           f"({', '.join(f'{n} {r}' for r, n in reasons.items())})")
    return DetectorEvaluation(data=data, run_dir=run_dir, detectors=tuple(name for name, _ in detectors.most_common()),
                              report=evaluator.compute(), verdicts=VerdictSummary.of(verdicts),
                              unscored=tuple(unscored), set_aside=dict(set_aside or {}))


def scan_labelled(data: Path, samples: Sequence[Sample], run_dir: Path, options: Any, listener: Any = None) -> Any:
    """Scan exactly the labelled files of ``data`` into ``run_dir`` with ``options`` (a ScanOptions whose
    ``only`` is replaced); returns the scan summary."""
    from dataclasses import replace

    from ipad_qc.scanner import scan

    chosen = replace(options, only=frozenset(sample.image for sample in samples))
    return scan(data, run_dir, chosen, listener=listener)


def evaluate_detector(data: Path, run_dir: Path, options: Any, split: str = "all",
                      protocol: str = DEFAULT_PROTOCOL) -> tuple[DetectorEvaluation, Any]:
    """``ipad-qc eval DATA --detector ...`` in code: scan the labelled files of ``split`` into ``run_dir``
    with ``options`` (a ScanOptions), score the run; returns the evaluation and the scan summary."""
    from ipad_qc.datasets.loader import read_labelled

    labelled = read_labelled(data)
    samples = [s for s in labelled.samples if split == "all" or s.split == split]
    summary = scan_labelled(data, samples, run_dir, options)
    return score_run(run_dir, data, samples, protocol, labelled.set_aside), summary
