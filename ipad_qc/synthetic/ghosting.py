"""Ghosting as multi-frame pipelines make it: a synthetic burst of the photo itself, fused without de-ghosting.

HDR and night modes capture a burst (often exposure-bracketed), align it globally and merge it.
Where something moved between frames, or the alignment left the camera's shake, the merge shows
semi-transparent duplicates and doubled edges. Here the burst is made from the photo:

* a real region of it (segmented by GrabCut inside a random box, so it follows the photo's own edges:
  a person, a car, a sign) moves along a straight or curved path, over the background inpainted
  where it was; or the whole frame shakes (translation and a little rotation); or both;
* every frame is exposed at its own EV (bracketing) in linear light and clipped like a sensor;
* the frames are merged by Mertens exposure fusion (``cv2.createMergeMertens``) or averaged.

The reference is the same pipeline with nothing moving (the still burst fused the same way), so the
mask is exactly where the motion shows: where the two fusions differ visibly.
"""

from __future__ import annotations

import cv2
import numpy as np

from ipad_qc.synthetic.optics import Synthesis, gaussian, to_display, to_linear, visible_mask

#: Default visibility of a ghost (display-referred units).
VISIBILITY = 0.04
MOTIONS = ("object", "shake", "both")
FUSIONS = ("mertens", "average")
_WORK_SIDE = 128  # GrabCut and inpainting run at this size: they decide shapes, not pixels


def _candidate_boxes(small: np.ndarray, rng: np.random.Generator, count: int = 32, keep: int = 4) -> list[tuple]:
    """Random boxes ranked by how much their inside differs in colour from the ring around them, times
    how much structure the inside has: a box around an object (a person against a wall) scores high,
    one on a uniform texture or a patch of sky low."""
    sh, sw = small.shape[:2]
    sums, squares = cv2.integral2(small.astype(np.float64))

    def box_sum(table: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]

    scored = []
    for _ in range(count):
        bw, bh = int(sw * rng.uniform(0.15, 0.45)), int(sh * rng.uniform(0.2, 0.55))
        x0, y0 = int(rng.integers(2, max(3, sw - bw - 2))), int(rng.integers(2, max(3, sh - bh - 2)))
        x1, y1 = x0 + bw, y0 + bh
        mx, my = max(2, bw // 3), max(2, bh // 3)
        ox0, oy0, ox1, oy1 = max(0, x0 - mx), max(0, y0 - my), min(sw, x1 + mx), min(sh, y1 + my)
        inner_area, outer_area = bw * bh, (ox1 - ox0) * (oy1 - oy0) - bw * bh
        inside = box_sum(sums, x0, y0, x1, y1) / inner_area
        ring = (box_sum(sums, ox0, oy0, ox1, oy1) - inside * inner_area) / max(outer_area, 1)
        spread = np.sqrt(np.maximum(box_sum(squares, x0, y0, x1, y1) / inner_area - inside**2, 0)).mean()
        scored.append((float(np.linalg.norm(inside - ring) * min(spread / 0.08, 1.0)), (x0, y0, bw, bh)))
    return [box for _, box in sorted(scored, reverse=True)[:keep]]


def segment_region(image: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Soft alpha (float32 [0, 1]) of a region of the photo that GrabCut separates from its surroundings
    inside a box that stands out in colour (:func:`_candidate_boxes`), or ``None`` when no box gives a
    region of sensible size."""
    height, width = image.shape[:2]
    scale = _WORK_SIDE / max(height, width)
    small = cv2.resize(image, (max(8, round(width * scale)), max(8, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    small8 = np.round(np.clip(small, 0, 1) * 255).astype(np.uint8)
    sh, sw = small8.shape[:2]
    cv2.setRNGSeed(int(rng.integers(2**31)))  # GrabCut's k-means initialisation draws from OpenCV's RNG
    for x0, y0, bw, bh in _candidate_boxes(small, rng):
        # seeds: outside the box is background, an ellipse inside it probably foreground, its core surely
        labels = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        labels[y0 : y0 + bh, x0 : x0 + bw] = cv2.GC_PR_BGD
        centre, axes = (x0 + bw // 2, y0 + bh // 2), (max(1, bw * 2 // 5), max(1, bh * 2 // 5))
        cv2.ellipse(labels, centre, axes, 0, 0, 360, cv2.GC_PR_FGD, -1)
        cv2.ellipse(labels, centre, (max(1, axes[0] // 3), max(1, axes[1] // 3)), 0, 0, 360, cv2.GC_FGD, -1)
        core = int((labels == cv2.GC_FGD).sum())
        background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(small8, labels, None, background, foreground, 3, cv2.GC_INIT_WITH_MASK)
        region = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        count, parts, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = stats[largest, cv2.CC_STAT_AREA]
        # the region must follow an edge of its own: grown well past the seed core, short of the box
        if 2 * core <= area <= 0.85 * bw * bh and area >= 0.008 * sh * sw:
            alpha = cv2.resize((parts == largest).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
            return np.clip(gaussian(alpha, 0.6), 0, 1)
    return None


def remove_region(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The photo with the region replaced by the background beside it.

    What a moving object uncovers is unknown, but it usually continues what surrounds it. The hole
    is filled with the photo shifted by the region's width or height, in whichever of the four
    directions brings in the least of the region itself (real texture, not a smear); what is still
    covered after that is inpainted (Telea). The seam is feathered.
    """
    height, width = image.shape[:2]
    ys, xs = np.nonzero(alpha > 0.5)
    if not len(xs):
        return image
    span_x, span_y = int(np.ptp(xs)) + 4, int(np.ptp(ys)) + 4
    shifts = [(span_x, 0), (-span_x, 0), (0, span_y), (0, -span_y)]
    overlaps = [float((np.roll(alpha, shift[::-1], axis=(0, 1)) * alpha).sum()) for shift in shifts]
    dx, dy = shifts[int(np.argmin(overlaps))]
    # pixel (x, y) of the hole takes the photo at (x - dx, y - dy), which the region does not cover
    filled = _warp(image, np.float32([[1, 0, dx], [0, 1, dy]]))
    still = (_warp(alpha, np.float32([[1, 0, dx], [0, 1, dy]])) > 0.02) & (alpha > 0.02)
    if still.any():
        pixels = np.round(np.clip(filled, 0, 1) * 255).astype(np.uint8)
        hole = cv2.dilate(still.astype(np.uint8), np.ones((3, 3), np.uint8))
        filled = cv2.inpaint(pixels, hole, 3, cv2.INPAINT_TELEA).astype(np.float32) / 255
    cover = np.clip(gaussian(alpha, 2.0) * 1.5, 0, 1)[..., None]
    return (image * (1 - cover) + filled * cover).astype(np.float32)


def _warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(image, matrix.astype(np.float32), image.shape[1::-1], flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _motion(dx: float, dy: float, angle: float = 0.0, scale: float = 1.0, centre=(0.0, 0.0)) -> np.ndarray:
    """2 x 3 affine matrix: rotate by ``angle`` and scale about ``centre``, then translate."""
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(np.degrees(angle)), float(scale))
    matrix[:, 2] += (dx, dy)
    return matrix


def expose(image: np.ndarray, ev: float) -> np.ndarray:
    """The frame a camera records at ``ev`` stops from the photo's exposure: linear gain, clipped, 8-bit."""
    return np.round(to_display(to_linear(image) * 2.0**ev) * 255).astype(np.uint8)


def fuse(frames: list[np.ndarray], method: str, evs: list[float]) -> np.ndarray:
    """Merge 8-bit frames: Mertens exposure fusion, or the average in linear light of the radiometrically
    normalised frames (multi-frame noise reduction)."""
    if method == "mertens":
        return np.clip(cv2.createMergeMertens().process(frames), 0, 1).astype(np.float32)
    if method == "average":
        linear = [to_linear(frame.astype(np.float32) / 255) / 2.0**ev for frame, ev in zip(frames, evs, strict=True)]
        return to_display(np.mean(linear, axis=0))
    raise ValueError(f"unknown fusion {method!r}; choose from {', '.join(FUSIONS)}")


def fused_burst(image: np.ndarray, rng: np.random.Generator, *, motion: str | None = None, frames: int | None = None,
                shift: tuple[float, float] = (0.02, 0.1), fusion: str | None = None,
                visibility: float = VISIBILITY) -> Synthesis:
    """Fuse a synthetic burst of ``image`` (float RGB, display-referred) in which something moved.

    ``motion``: ``object`` (a segmented region moves), ``shake`` (the camera does), ``both``;
    default drawn (``object`` falls back to ``shake`` when no region segments cleanly). ``frames``
    (default 2–4) frames; the region moves ``shift`` (fraction of the long side, per frame) along a
    straight or curved path. ``fusion``: ``mertens`` (bracketed, ±0.5–2 EV) or ``average`` (equal
    exposures); default drawn, Mertens three times in four.
    """
    height, width = image.shape[:2]
    side = max(height, width)
    motion = str(rng.choice(MOTIONS, p=[0.55, 0.2, 0.25])) if motion is None else motion
    frames = int(rng.integers(2, 5)) if frames is None else frames
    fusion = str(rng.choice(FUSIONS, p=[0.75, 0.25])) if fusion is None else fusion
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose from {', '.join(MOTIONS)}")
    alpha = segment_region(image, rng) if motion != "shake" else None
    if alpha is None:
        motion = "shake"
    reference_frame = int(rng.integers(frames))
    step = rng.uniform(*shift) * side
    direction = rng.uniform(0, 2 * np.pi)
    bend = rng.uniform(-0.3, 0.3) * step  # sideways drift per frame², a curved path
    growth = rng.uniform(-0.03, 0.03)  # the region comes closer or recedes
    jitter = float(np.exp(rng.uniform(np.log(0.003), np.log(0.04)))) * side if motion != "object" else 0.0
    spread = rng.uniform(0.5, 2.0)
    evs = [0.0] * frames if fusion == "average" else [float(ev) for ev in np.linspace(-spread, spread, frames)]
    background = remove_region(image, alpha) if alpha is not None else image
    if alpha is not None:
        ys, xs = np.nonzero(alpha > 0.5)
        centre = (float(xs.mean()), float(ys.mean())) if len(xs) else (width / 2, height / 2)
    moving, still = [], []
    for index in range(frames):
        t = index - reference_frame
        shake = rng.normal(0, jitter, 3) if t else np.zeros(3)  # dx, dy and a roll of the same order
        camera = _motion(shake[0], shake[1], angle=shake[2] / side)
        scene = image
        if alpha is not None:
            along, across = t * step, t * t * bend
            dx = along * np.cos(direction) - across * np.sin(direction)
            dy = along * np.sin(direction) + across * np.cos(direction)
            place = _motion(dx, dy, scale=1 + growth * t, centre=centre)
            cover = _warp(alpha, place)[..., None]
            scene = background * (1 - cover) + _warp(image, place) * cover
            held = background * (1 - alpha[..., None]) + image * alpha[..., None]
        else:
            held = image
        moving.append(expose(_warp(scene, camera), evs[index]))
        still.append(expose(held, evs[index]))
    fused, reference = fuse(moving, fusion, evs), fuse(still, fusion, evs)
    mask = visible_mask(fused, reference, visibility, close=7)
    params = {"motion": motion, "frames": frames, "fusion": fusion, "evs": [round(ev, 2) for ev in evs],
              "shift": round(step / side, 4), "shake_px": round(jitter, 2), "reference_frame": reference_frame}
    return Synthesis(fused, reference, mask, params)
