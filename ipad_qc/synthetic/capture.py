"""The capture tail: what happens to every photo after the scene is made, whatever its label.

Real photos reach a detector resampled, with sensor noise, sharpened by the ISP, JPEG-compressed at
some quality, sometimes letterboxed for a screen or a video frame. A data set in which only the
artifact samples went through such steps would teach a detector that "was it JPEG'd" or "does it
have black bars" predicts the label. So a :class:`CaptureTail` is drawn for every sample from its own
random stream, from one distribution for all labels, and applied identically to an artifact image
and to its clean reference; its parameters are recorded with the sample.

Letterboxing shrinks the picture into the frame, so it applies to the mask as well (:meth:`frame_mask`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ipad_qc.synthetic.optics import gaussian


@dataclass(frozen=True)
class TailSettings:
    """How often each step happens and its range; the defaults mirror phone photos shared as JPEG."""

    jpeg_share: float = 0.85
    jpeg_quality: tuple[int, int] = (60, 98)
    noise_share: float = 0.6
    noise: tuple[float, float] = (0.002, 0.02)  # std of the added noise at mid-grey
    resample_share: float = 0.3
    resample: tuple[float, float] = (0.6, 0.95)  # down-scale factor before scaling back up
    sharpen_share: float = 0.3
    letterbox_share: float = 0.06


@dataclass(frozen=True)
class CaptureTail:
    """One drawn tail. ``None`` or 0 means the step is skipped."""

    resample: float | None = None
    noise: float = 0.0
    sharpen: float = 0.0
    quality: int | None = None
    subsampling: bool = True  # JPEG 4:2:0 chroma (else 4:4:4)
    letterbox: tuple[str, float] | None = None  # ("bars", fraction of the height) or ("pillars", of the width)
    seed: int = 0  # the noise's stream, so a reference gets the same noise

    @classmethod
    def draw(cls, rng: np.random.Generator, settings: TailSettings = TailSettings()) -> CaptureTail:
        """A tail drawn from ``settings``; every step is drawn (used or not) so the stream never shifts."""
        draws = rng.random(5)
        resample = float(rng.uniform(*settings.resample))
        noise = float(np.exp(rng.uniform(np.log(settings.noise[0]), np.log(settings.noise[1]))))
        sharpen = float(rng.uniform(0.2, 0.8))
        quality = int(rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
        subsampling = bool(rng.random() < 0.8)
        box = ("bars" if rng.random() < 0.7 else "pillars", float(rng.uniform(0.06, 0.2)))
        return cls(resample=resample if draws[0] < settings.resample_share else None,
                   noise=noise if draws[1] < settings.noise_share else 0.0,
                   sharpen=sharpen if draws[2] < settings.sharpen_share else 0.0,
                   quality=quality if draws[3] < settings.jpeg_share else None, subsampling=subsampling,
                   letterbox=box if draws[4] < settings.letterbox_share else None, seed=int(rng.integers(2**31)))

    def params(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key != "seed"}

    def _inner(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of the picture inside the frame (the whole frame without letterboxing)."""
        if self.letterbox is None:
            return 0, 0, width, height
        kind, fraction = self.letterbox
        if kind == "bars":
            bar = max(1, round(height * fraction))
            return 0, bar, width, height - bar
        bar = max(1, round(width * fraction))
        return bar, 0, width - bar, height

    def frame_mask(self, mask: np.ndarray) -> np.ndarray:
        """The mask moved with the picture into the letterbox (unchanged without one)."""
        if self.letterbox is None:
            return mask
        x0, y0, x1, y1 = self._inner(*mask.shape)
        framed = np.zeros_like(mask)
        framed[y0:y1, x0:x1] = cv2.resize(mask.astype(np.uint8), (x1 - x0, y1 - y0),
                                          interpolation=cv2.INTER_NEAREST).astype(mask.dtype)
        return framed

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Float RGB in [0, 1] through the tail; returns 8-bit RGB (what is stored).

        The order is a camera's and then an exporter's: resampling, sensor noise and sharpening
        happen to the photo; black bars are added when it is framed, before the final JPEG.
        """
        height, width = image.shape[:2]
        out = np.clip(image, 0, 1).astype(np.float32)
        if self.resample is not None:
            small = (max(1, round(width * self.resample)), max(1, round(height * self.resample)))
            out = cv2.resize(cv2.resize(out, small, interpolation=cv2.INTER_AREA), (width, height),
                             interpolation=cv2.INTER_CUBIC)
        if self.noise:
            rng = np.random.default_rng(self.seed)
            sigma = self.noise * np.sqrt(np.clip(out, 0, 1) / 0.5 + 0.05)  # shot noise grows with the signal
            grain = rng.standard_normal(out.shape).astype(np.float32)
            grain[..., 1:] = gaussian(np.ascontiguousarray(grain[..., 1:]), 0.7)  # demosaiced noise is correlated
            out = out + sigma * grain
        if self.sharpen:
            out = out + self.sharpen * (out - gaussian(out, 1.2))
        if self.letterbox is not None:
            x0, y0, x1, y1 = self._inner(height, width)
            inner = cv2.resize(out, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
            out = np.zeros_like(out)
            out[y0:y1, x0:x1] = inner
        pixels = np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)
        if self.quality is not None:
            pixels = jpeg(pixels, self.quality, self.subsampling)
        return pixels


def jpeg(pixels: np.ndarray, quality: int, subsampling: bool = True) -> np.ndarray:
    """8-bit RGB through a JPEG encode and decode at ``quality`` (4:2:0 chroma unless ``subsampling`` is off)."""
    factor = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420 if subsampling else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
