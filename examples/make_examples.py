"""Generate the bundled example shot folder ``examples/shots`` (committed; re-run to regenerate).

The pictures are public-domain and CC0 photographs shipped inside scikit-image (``skimage.data``; the
licence of each is in its docstring in ``skimage/data/_fetchers.py`` and in ``examples/shots/NOTES.txt``),
with artifacts made by the project's own camera-like synthesis (``ipad_qc.synthetic``): a photographed
screen for moiré, flare from a plausible light, a fused burst for ghosting. Also a 16-bit TIFF, a DNG
written by ``ipad_qc.io.dng`` (real Bayer data that LibRaw demosaics), and two files that are not images
(a sidecar and a note) that a scan counts as ignored. The artifacts' ground-truth masks go to
``examples/ground-truth``, so users can compare them with what a scan finds.

    pip install 'ipad-qc[dev]'      # scikit-image
    python examples/make_examples.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import tifffile
from skimage import data

from ipad_qc.io.dng import mosaic, write_dng
from ipad_qc.synthetic import fused_burst, lens_flare, screen_capture

HERE = Path(__file__).resolve().parent
SHOTS = HERE / "shots"
TRUTH = HERE / "ground-truth"
#: Long side of the example shots: the photos are upscaled from their small originals to a camera-like size.
LONG_SIDE = 1280
SMALL = 640  # the 16-bit TIFF and the DNG hold incompressible data: keep the repository small

#: The photographs and their licences, as scikit-image's ``_fetchers.py`` states them.
PHOTOS = {
    "astronaut": ("astronaut Eileen Collins, from the NASA Great Images database: no known copyright restrictions, "
                  "released into the public domain"),
    "coffee": "coffee cup, courtesy of Pikolo Espresso Bar: no copyright restrictions, CC0 by Rachel Michetti",
    "chelsea": "Chelsea the cat: no copyright restrictions, CC0 by Stefan van der Walt",
    "rocket": "launch of DSCOVR on Falcon 9, captured by SpaceX and released into the public domain",
}

#: (file name, photo, artifact, seed): a small capture session with each artifact twice.
CASES = [
    ("street/clean_chelsea.jpg", "chelsea", None, 11),
    ("street/clean_astronaut.jpg", "astronaut", None, 12),
    ("street/ghosting_chelsea.jpg", "chelsea", "ghosting", 21),
    ("street/ghosting_astronaut.jpg", "astronaut", "ghosting", 22),
    ("night/flare_rocket.jpg", "rocket", "flare", 31),
    ("night/flare_rocket_16bit.tif", "rocket", "flare", 32),
    ("office/moire_coffee.jpg", "coffee", "moire", 41),
    ("office/moire_chelsea.jpg", "chelsea", "moire", 42),
    ("office/clean_coffee.jpg", "coffee", None, 13),
]
DNG_CASE = ("raw/clean_astronaut.dng", "astronaut")


def photo(name: str, long_side: int) -> np.ndarray:
    """The photograph as float RGB with the given long side (Lanczos)."""
    rgb = getattr(data, name)().astype(np.float32) / 255.0
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    size = (round(width * scale), round(height * scale))
    return np.clip(cv2.resize(rgb, size, interpolation=cv2.INTER_LANCZOS4), 0, 1)


def with_artifact(image: np.ndarray, artifact: str | None, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    if artifact is None:
        return image, None
    if artifact == "moire":
        made = screen_capture(image, rng)
    elif artifact == "flare":
        # A night version of the scene with a lamp in it: the flare then has a source.
        night = (image**2.2 * 0.15) ** (1 / 2.2)
        made = lens_flare(night.astype(np.float32), rng, site="lamp")
    else:
        made = fused_burst(image, rng, motion="object")
    return made.image, made.mask


def to_uint(image: np.ndarray, bits: int) -> np.ndarray:
    peak = (1 << bits) - 1
    return np.rint(np.clip(image, 0, 1) * peak).astype(np.uint8 if bits == 8 else np.uint16)


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        tifffile.imwrite(path, to_uint(image, 16), photometric="rgb", compression="zlib")
    else:
        cv2.imwrite(str(path), to_uint(image, 8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    for folder in (SHOTS, TRUTH):
        shutil.rmtree(folder, ignore_errors=True)
    for name, source, artifact, seed in CASES:
        image, mask = with_artifact(photo(source, SMALL if name.endswith(".tif") else LONG_SIDE), artifact, seed)
        write_image(SHOTS / name, image)
        if mask is not None and mask.any():
            truth = TRUTH / f"{name}.png"
            truth.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(truth), mask.astype(np.uint8) * 255)
    name, source = DNG_CASE
    (SHOTS / name).parent.mkdir(parents=True, exist_ok=True)
    write_dng(SHOTS / name, mosaic(photo(source, SMALL)))
    (SHOTS / "night" / "flare_rocket.jpg.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n', encoding="utf-8")
    notes = ["Example capture session generated by examples/make_examples.py from photographs shipped in",
             "scikit-image (skimage.data), with artifacts made by ipad-qc's synthesis. Licences:", ""]
    notes += [f"  {photo_name}: {licence}" for photo_name, licence in PHOTOS.items()]
    (SHOTS / "NOTES.txt").write_text("\n".join(notes) + "\n", encoding="utf-8")
    print(f"wrote {len(CASES) + 1} images to {SHOTS} and ground-truth masks to {TRUTH}")


if __name__ == "__main__":
    main()
