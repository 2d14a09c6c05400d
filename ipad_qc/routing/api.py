"""The removal-hook plugin API: what a hook receives, what it returns, and helpers for writing one.

A hook repairs one artifact class in one image. It sees pixels, masks, the detection and the
file's metadata, never the detector (one direction of dependency: routing reads the results
database, not the model). Hooks are created by a factory registered in the
``ipad_qc.removal_hooks`` entry-point group (see :mod:`ipad_qc.routing.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ipad_qc.io.types import DecodedImage


@dataclass
class RepairRequest:
    """Everything a hook gets for one image and one artifact class.

    ``image`` is decoded at full resolution in its original bit depth (uint8 or uint16), upright.
    ``mask`` (bool) and ``probability`` (float32, [0, 1]) are that class's own region at the same
    size, not the union of all classes: a deflare hook must not touch the moiré on a screen in the
    same photo. ``references`` holds other frames of the same burst when the routing policy names
    them (for deghosting), decoded the same way.
    """

    image: DecodedImage
    mask: np.ndarray
    probability: np.ndarray
    artifact: str
    label: str
    scores: Mapping[str, float]
    relpath: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    references: tuple[DecodedImage, ...] = ()


@dataclass(frozen=True)
class Declined:
    """What a hook returns instead of pixels when its own check says the image would not get better.

    The ``reason`` is recorded with the ``declined`` status in the repairs table (column ``error``),
    so a person can see why an image was left alone, e.g. "no periodic false colour in the mask".
    """

    reason: str


@runtime_checkable
class RemovalHook(Protocol):
    """What a removal plugin implements.

    ``repair`` returns the repaired pixels (same shape as ``request.image.pixels``, either in the
    same dtype or float in [0, 1]), or :class:`Declined` (or ``None``, without a reason) to decline:
    a hook should decline an image it cannot improve rather than return a worse one. A declined
    repair is recorded and the image goes on to the next hook unchanged. Exceptions fail this image
    only: hooks run in a worker process under a timeout.
    """

    #: Registered name, recorded in the repairs table.
    name: str
    #: The artifact class it removes: ``ghosting``, ``flare`` or ``moire``.
    artifact: str
    #: Version string recorded with each repair (a new version redoes finished repairs).
    version: str

    def repair(self, request: RepairRequest) -> np.ndarray | Declined | None: ...


# --- helpers for hook authors ------------------------------------------------------------------


def pixel_scale(pixels: np.ndarray) -> float:
    """Full-scale value of an integer image (255 or 65535)."""
    return 65535.0 if pixels.dtype == np.uint16 else 255.0


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 pixels as float32 in [0, 1]."""
    return pixels.astype(np.float32) * np.float32(1.0 / pixel_scale(pixels))


def from_float(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """float values in [0, 1] back to the dtype of ``like``, rounded and clipped."""
    scale = pixel_scale(like)
    return np.rint(np.clip(values, 0.0, 1.0) * scale).astype(like.dtype)


def confine_to_mask(original: np.ndarray, repaired: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``repaired`` inside ``mask`` and the untouched original bytes outside it.

    Built-in hooks end with this so that no pixel outside the artifact's region can change, whatever
    filtering they did to get there (filters spill across the mask border).
    """
    return np.where(mask[..., None], from_float(repaired, original) if repaired.dtype.kind == "f" else repaired,
                    original)
