"""Files a scan writes into its run folder: mask PNGs, probability-map PNGs, CSV and JSONL exports.

Every file is written to a temporary name and renamed into place, so a scan killed mid-write
never leaves a half-written PNG or CSV that a later step would trust.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ipad_qc.classes import ARTIFACT_CLASSES
from ipad_qc.detectors.base import Detection
from ipad_qc.store import RESULT_COLUMNS

MASK_DIR = "masks"
MAP_DIR = "maps"
CSV_NAME = "results.csv"
JSONL_NAME = "results.jsonl"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_png(run_dir: Path, relpath: str, pixels: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"PNG encoding failed for {relpath}")
    _atomic_write(run_dir / relpath, encoded.tobytes())
    return relpath


def write_mask(run_dir: Path, image_relpath: str, detection: Detection) -> str:
    """Binary mask (0/255) at the original image size; returns its path relative to the run folder.

    Clean verdicts have an all-zero mask by definition, so no file is written and "" is returned.
    """
    if detection.is_clean:
        return ""
    mask = detection.mask().view(np.uint8) * np.uint8(255)
    return _write_png(run_dir, f"{MASK_DIR}/{image_relpath}.png", mask)


def write_probability_map(run_dir: Path, image_relpath: str, detection: Detection) -> str:
    """Per-class probability maps at analysis resolution as one 8-bit PNG.

    Channels are red = ghosting, green = flare, blue = moiré (grey when the detector gives only the
    combined map). Reports use it for heat-map overlays; it is small because it is low-resolution.
    """
    if detection.class_maps:
        planes = [detection.class_maps.get(name, np.zeros_like(detection.probability)) for name in ARTIFACT_CLASSES]
        rgb = np.stack(planes, axis=-1)
        pixels = np.ascontiguousarray(rgb[..., ::-1])  # OpenCV writes BGR
    else:
        pixels = detection.probability
    quantised = np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return _write_png(run_dir, f"{MAP_DIR}/{image_relpath}.png", quantised)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def write_exports(run_dir: Path, rows: Iterable[Mapping[str, Any]]) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.jsonl`` (same rows, same columns) from the database rows."""
    rows = list(rows)
    columns = list(RESULT_COLUMNS)
    csv_path, jsonl_path = run_dir / CSV_NAME, run_dir / JSONL_NAME

    csv_tmp = csv_path.with_name(f".{CSV_NAME}.tmp")
    with open(csv_tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_value(row.get(name)) for name in columns])
    os.replace(csv_tmp, csv_path)

    lines = [json.dumps({name: row.get(name) for name in columns}, ensure_ascii=False) for row in rows]
    _atomic_write(jsonl_path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
    return csv_path, jsonl_path
