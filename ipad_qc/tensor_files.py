"""Model files: safetensors tensors plus JSON metadata, written atomically and read with clear errors.

Both model families (IPAD-CLIP heads, ipad-net) store their weights this way, so loading a file
never executes code. Every failure names the file and says what is wrong with it: missing, not a
safetensors file (truncated, corrupt), another model's file, or one written by a newer ipad-qc.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def write_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write ``path`` through a temporary name unique to this process, then rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_tensors(path: str | os.PathLike[str], file_format: str, version: int, what: str,
                 error: type[ValueError]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a file of ``file_format`` (at most ``version``); ``error`` names the problem."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except Exception as exc:  # safetensors raises several types for a damaged file; all mean the same here
        raise error(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from exc
    if metadata.get("format") != file_format:
        raise error(f"{path}: not {what} (format {metadata.get('format')!r})")
    try:
        written = int(metadata.get("format_version", "0"))
    except ValueError:
        raise error(f"{path}: unreadable format version {metadata.get('format_version')!r}") from None
    if written > version:
        raise error(f"{path}: written by a newer ipad-qc; upgrade to read it")
    return metadata, tensors
