"""Report build time: thumbnails of new images (cold), a 10,000-row rebuild (warm), and browser load time.

A scan of 10,000 images is simulated without detecting anything: a few camera-sized JPEGs (and masks
for the flagged ones) are real files, and 10,000 result rows are written straight into a results
database, reusing those images' content hashes as if the session held duplicates, so the rebuild
finds every thumbnail in the cache, as it does after the scan that first made them.

    python benchmarks/bench_report.py --rows 10000 --distinct 24 --width 4000 --height 3000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ipad_qc.classes import CLASS_NAMES
from ipad_qc.report import build_report
from ipad_qc.report.screenshot import browser_flags
from ipad_qc.scanner import file_hash
from ipad_qc.store import ResultStore
from ipad_qc.synthetic import make_case


def make_images(root: Path, run: Path, count: int, width: int, height: int) -> list[dict]:
    """Real JPEGs (and full-size masks for the artifact cases); returns their result rows."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        kind = CLASS_NAMES[i % len(CLASS_NAMES)]
        image, mask, label = make_case(kind, rng, width // 4, height // 4)
        pixels = (np.clip(cv2.resize(image, (width, height)), 0, 1) * 255 + 0.5).astype(np.uint8)
        path = root / f"{i:03d}_{label}.jpg"
        cv2.imwrite(str(path), pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        row = synthetic_row(path.name, label, rng)
        row["content_hash"] = file_hash(path)
        if label != "clean":
            row["mask_path"] = f"masks/{path.name}.png"
            (run / "masks").mkdir(parents=True, exist_ok=True)
            big_mask = cv2.resize(mask.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(run / row["mask_path"]), big_mask)
        rows.append(row)
    return rows


def synthetic_row(path: str, label: str, rng: np.random.Generator) -> dict:
    scores = rng.dirichlet(np.ones(len(CLASS_NAMES)) * 0.5)
    order = np.argsort(scores)[::-1]
    scores = dict(zip(CLASS_NAMES, scores, strict=True))
    top = CLASS_NAMES[order[0]]
    scores[label], scores[top] = scores[top], scores[label]  # the label gets the highest score
    row = {"path": path, "status": "ok", "label": label, "mask_fraction": float(rng.uniform(0, 0.2)) if label != "clean"
           else 0.0, "width": 4000, "height": 3000, "format": "jpeg", "detector": "bench", "decode_mode": "jpeg-1/4"}
    row.update({f"score_{name}": round(float(value), 6) for name, value in scores.items()})
    return row


def many_rows(seeds: list[dict], count: int) -> list[dict]:
    """``count`` rows in sessions of 500, cycling through the real images; 1 % decode errors."""
    rows = []
    for i in range(count):
        seed = seeds[i % len(seeds)]
        path = f"session_{i // 500:02d}/IMG_{i:05d}.jpg"
        if i % 100 == 99:
            rows.append({"path": path, "status": "error", "error": "truncated JPEG (premature end of data)",
                         "detector": "bench", "format": "jpeg"})
        else:
            rows.append({**seed, "path": path})
    return rows


def timed(label: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    elapsed = time.perf_counter() - start
    print(f"{label:<58} {elapsed:8.2f} s")
    return result, elapsed


def browser_load(page: Path) -> tuple[float, float] | None:
    """Seconds until the page has rendered its first rows, and for one filter change; None without a browser."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import Select, WebDriverWait
    except ImportError:
        return None
    if not (chromium and chromedriver):
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    with tempfile.TemporaryDirectory() as profile:
        for flag in [*browser_flags(profile), "--window-size=1400,1000"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        try:
            start = time.perf_counter()
            driver.get(page.as_uri())
            WebDriverWait(driver, 120).until(lambda d: d.execute_script("return document.body.dataset.ready"))
            loaded = time.perf_counter() - start
            start = time.perf_counter()
            Select(driver.find_element("id", "filter-label")).select_by_value("flare")
            driver.find_element("id", "count").text  # noqa: B018 - waits for the re-render to finish
            return loaded, time.perf_counter() - start
        finally:
            driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=24, help="real images (thumbnails made cold)")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, run = Path(tmp) / "shots", Path(tmp) / "run"
        root.mkdir()
        seeds = make_images(root, run, args.distinct, args.width, args.height)
        with ResultStore(run) as store:
            store.set_meta("root", str(root))
            store.put_batch(seeds)
        _, cold = timed(f"cold: thumbnails of {args.distinct} new {args.width}x{args.height} images",
                        build_report, run, workers=args.workers)
        print(f"{'':<58} {1000 * cold / args.distinct:8.1f} ms/image ({args.workers} workers)")
        with ResultStore(run) as store:
            store.put_batch(many_rows(seeds, args.rows))
        total = args.rows + args.distinct
        folder, _ = timed(f"warm: report of {total} rows (auto layout)", build_report, run, workers=args.workers)
        print(f"{'':<58} layout {folder.layout}, page {folder.size_bytes / 2**20:.1f} MB")
        measured = browser_load(run / "report.html")
        if measured is None:
            print("browser load: skipped (needs selenium, chromium and chromedriver)")
        else:
            print(f"{'browser: folder page until the first rows are drawn':<58} {measured[0]:8.2f} s")
            print(f"{'browser: filter all rows by class and redraw':<58} {measured[1]:8.2f} s")


if __name__ == "__main__":
    main()
