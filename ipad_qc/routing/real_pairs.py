"""Real (artifact, clean reference, oracle mask) triples for measuring removal hooks, from a realdev folder.

Synthetic pairs (:mod:`ipad_qc.routing.pairs`) flatter hooks tuned on the same generator, so hooks
are also measured on real captures laid out as in ``shared/realdev`` (see its README):

* **flare**: ``flare/irawal_f7kpp_NNN_input.png`` with ``clean/irawal_f7kpp_NNN_gt.png``, the
  flare-free frame of the same scene (aligned);
* **moire**: ``moire/barney_NNNN_moire.jpg`` (a phone photo of a screen) with
  ``clean/barney_NNNN_gt.jpg`` (the digital image that was shown; aligned);
* **ghosting**: ``ghosting/<seq>_fused.png`` (Mertens fusion of real frames, no alignment) with the
  frames in ``sequences/<seq>/fN.*`` or ``stack/<seq>_fN.*``. No ghost-free image exists, so the
  reference is made: every frame is aligned to one anchor frame by dense optical flow and fused the
  same way (Mertens), which is what the fusion would have been with alignment. Any frame is a
  valid anchor (a ghost-free result may show a moving person where any one frame has them), so
  every anchor's fusion is kept in ``anchors``; ``truth`` (and with it the oracle mask) is the one
  closest to the ghosted image, and a repair is judged against the anchor it is closest to
  (:meth:`RealPair.truth_for`). The frames go to the hook as its reference frames.

The **oracle mask** of a pair is where it differs from its reference, thresholded and cleaned up
(:func:`clean_mask`), so a hook can be judged apart from any detector. What "differs" means per
class is in :func:`oracle_mask`. Nothing here trains on these files; they are only read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REAL_KINDS = ("flare", "moire", "ghosting")
_FRAME_PATTERNS = ("sequences/{seq}/f[0-9]*.*", "stack/{seq}_f[0-9]*.*")
_FLARE_LEVEL = 0.06  # display-value excess of the blurred input over the blurred clean frame
_MOIRE_LEVEL = 0.012  # band-passed false-colour energy (YCrCb chroma) after a global colour fit
_GHOST_LEVEL = 0.05  # largest channel difference to the ghost-free fusion, lightly blurred (keeps faint halos)


@dataclass
class RealPair:
    """A real artifact ``image`` (float32 RGB, [0, 1]), its clean ``truth`` and oracle ``mask``."""

    kind: str
    name: str
    path: Path
    image: np.ndarray
    truth: np.ndarray
    mask: np.ndarray
    references: list[np.ndarray] = field(default_factory=list)
    anchors: list[np.ndarray] = field(default_factory=list)

    def truth_for(self, result: np.ndarray) -> np.ndarray:
        """The clean reference to judge ``result`` by: for ghosting, the anchor's fusion closest to it."""
        if not self.anchors:
            return self.truth
        return min(self.anchors, key=lambda anchor: float(np.mean((anchor - result) ** 2)))


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit file as float32 RGB in [0, 1]; ``ValueError`` naming the file when it cannot be read."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"{path}: cannot be read as an image")
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) * np.float32(1 / 255)


def real_pairs(root: Path, kind: str) -> Iterator[RealPair]:
    """Every pair of ``kind`` under ``root`` (a realdev folder), in name order."""
    if kind not in REAL_KINDS:
        raise ValueError(f"unknown pair kind {kind!r}; choose from {', '.join(REAL_KINDS)}")
    if kind == "ghosting":
        yield from _ghost_pairs(root)
        return
    folder, suffix, clean_suffix = {"flare": ("flare", "_input.png", "_gt.png"),
                                    "moire": ("moire", "_moire.jpg", "_gt.jpg")}[kind]
    for path in sorted((root / folder).glob(f"*{suffix}")):
        clean = root / "clean" / (path.name[: -len(suffix)] + clean_suffix)
        if clean.is_file():
            image, truth = read_rgb(path), read_rgb(clean)
            yield RealPair(kind, path.name[: -len(suffix)], path, image, truth, oracle_mask(kind, image, truth))


def _ghost_pairs(root: Path) -> Iterator[RealPair]:
    for path in sorted((root / "ghosting").glob("*_fused.png")):
        seq = path.name[: -len("_fused.png")]
        frames = next((found for pattern in _FRAME_PATTERNS
                       if (found := sorted(root.glob(pattern.format(seq=seq))))), [])
        if len(frames) < 2:
            continue
        image, references = read_rgb(path), [read_rgb(frame) for frame in frames]
        fusions = [aligned_fusion(references, anchor) for anchor in range(len(references))]
        truth = min(fusions, key=lambda fusion: float(np.mean((fusion - image) ** 2)))
        yield RealPair("ghosting", seq, path, image, truth, oracle_mask("ghosting", image, truth), references,
                       fusions)


# --- oracle masks -------------------------------------------------------------------------------


def oracle_mask(kind: str, image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Where ``image`` shows its artifact, judged against its clean ``truth``.

    * flare adds light: the blurred input brighter than the blurred clean frame (blurring keeps
      the slight misregistration of the two captures out);
    * moiré is false colour at the beat frequencies: the phone photo's global colour and tone
      differ from the digital source everywhere, so a least-squares 3x4 colour transform is fitted
      first, and the residual's chroma, band-passed (1 to 10 px), is what is thresholded;
    * ghosting: any channel far from the ghost-free fusion.
    """
    if kind == "flare":
        excess = (cv2.GaussianBlur(image, (0, 0), 3) - cv2.GaussianBlur(truth, (0, 0), 3)).mean(axis=2)
        return clean_mask(excess > _FLARE_LEVEL)
    if kind == "moire":
        residual = cv2.cvtColor(_colour_fit(image, truth), cv2.COLOR_RGB2YCrCb) - cv2.cvtColor(
            truth, cv2.COLOR_RGB2YCrCb)
        chroma = residual[..., 1:]
        band = cv2.GaussianBlur(chroma, (0, 0), 1.0) - cv2.GaussianBlur(chroma, (0, 0), 10)
        energy = np.sqrt(cv2.GaussianBlur((band * band).sum(axis=2), (0, 0), 10))
        return clean_mask(energy > _MOIRE_LEVEL)
    difference = cv2.GaussianBlur(np.abs(image - truth).max(axis=2), (0, 0), 1.5)
    return clean_mask(difference > _GHOST_LEVEL)


def clean_mask(raw: np.ndarray) -> np.ndarray:
    """Open away specks, close gaps, fill holes, drop regions under 0.2 % of the image."""
    radius = max(2, int(round(0.006 * max(raw.shape))))
    mask = cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_OPEN, _disc(radius))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disc(3 * radius))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(_fill_holes(mask).astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 0.002 * mask.size
    return keep[labels]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background region that does not touch the image border filled."""
    count, labels = cv2.connectedComponents((mask == 0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    hole = np.ones(count, bool)
    hole[border] = False
    hole[0] = False  # label 0 is the mask itself
    return (mask > 0) | hole[labels]


def _colour_fit(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``image`` through the 3x4 colour transform that best maps it onto ``truth`` (trimmed least squares)."""
    source = np.concatenate([image.reshape(-1, 3), np.ones((image.size // 3, 1), np.float32)], axis=1)
    target, keep = truth.reshape(-1, 3), np.ones(image.size // 3, bool)
    for _ in range(3):
        matrix, *_ = np.linalg.lstsq(source[keep], target[keep], rcond=None)
        residual = np.abs(source @ matrix - target).max(axis=1)
        keep = residual <= np.percentile(residual, 80)
    return np.clip(source @ matrix, 0, 1).reshape(image.shape).astype(np.float32)


# --- ghost-free reference -----------------------------------------------------------------------


def aligned_fusion(frames: list[np.ndarray], anchor: int) -> np.ndarray:
    """Mertens fusion of ``frames`` after aligning each to ``frames[anchor]`` by dense optical flow.

    Flow is computed on grey images brought to the anchor's exposure (histogram matching), so
    brackets align too. Where a warped frame still disagrees with the anchor (occlusions, flow
    failures) the anchor's own pixels, brought to that frame's exposure, stand in: the fusion can
    then show nothing that is not in the anchor.
    """
    images = [np.round(frame * 255).astype(np.uint8) for frame in frames]
    reference = images[anchor]
    grey = cv2.cvtColor(reference, cv2.COLOR_RGB2GRAY)
    flow_method = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    height, width = grey.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    aligned = []
    for index, image in enumerate(images):
        if index == anchor:
            aligned.append(image)
            continue
        flow = flow_method.calc(grey, cv2.cvtColor(match_histograms(image, reference), cv2.COLOR_RGB2GRAY), None)
        warped = cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        disagreement = np.abs(match_histograms(warped, reference).astype(np.float32) - reference).max(axis=2)
        wrong = cv2.dilate((cv2.GaussianBlur(disagreement, (0, 0), 2) > 40).astype(np.uint8), _disc(2)) > 0
        warped[wrong] = match_histograms(reference, image)[wrong]
        aligned.append(warped)
    fused = cv2.createMergeMertens().process([cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in aligned])
    return np.clip(cv2.cvtColor(fused, cv2.COLOR_BGR2RGB), 0, 1).astype(np.float32)


def match_histograms(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` (uint8 RGB) with each channel's histogram mapped onto ``target``'s."""
    matched = np.empty_like(source)
    for channel in range(3):
        have = np.cumsum(np.bincount(source[..., channel].ravel(), minlength=256)).astype(np.float64)
        want = np.cumsum(np.bincount(target[..., channel].ravel(), minlength=256)).astype(np.float64)
        lut = np.clip(np.searchsorted(want / want[-1], have / have[-1]), 0, 255).astype(np.uint8)
        matched[..., channel] = lut[source[..., channel]]
    return matched


def _disc(radius: int) -> np.ndarray:
    size = 2 * max(1, radius) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
