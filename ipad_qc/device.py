"""Choose the compute device from ``--device auto|cpu|cuda`` without importing torch needlessly."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceUnavailableError(RuntimeError):
    """``cuda`` was asked for on a machine where PyTorch sees no CUDA device."""


def cuda_available() -> bool:
    """True when PyTorch imports and sees a CUDA device. A broken torch install counts as no CUDA."""
    try:
        import torch
    except Exception:  # an unusable torch must not stop a CPU-only scan
        return False
    return bool(torch.cuda.is_available())


def resolve_device(requested: str) -> str:
    """``auto`` becomes ``cuda`` when available, else ``cpu``; ``cuda:N`` is accepted as given."""
    requested = requested.strip().lower()
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not cuda_available():
            raise DeviceUnavailableError(
                "--device cuda was requested but PyTorch sees no CUDA GPU here; use --device cpu or auto"
            )
        return requested
    raise ValueError(f"unknown device {requested!r}; choose from {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def autocast_for(device: str) -> AbstractContextManager[Any]:
    """bf16 autocast on CUDA (fp16 where bf16 is missing), for the backbones; plain fp32 elsewhere.

    Models keep their score heads in fp32 inside it (see :mod:`ipad_qc.clip.model`).
    """
    if not device.startswith("cuda"):
        return nullcontext()
    import torch

    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)
