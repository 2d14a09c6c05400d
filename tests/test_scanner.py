from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from scan_fixtures import BrightSpotDetector, tree_hashes, write_jpeg

from ipad_qc.scanner import DecodeJob, DecodeOutcome, LocalPipeline, ScanOptions, decode_job, scan
from ipad_qc.store import RESULT_COLUMNS, ResultStore

CSV_CONTRACT = ["path", "status", "error", "label", "score_clean", "score_ghosting", "score_flare", "score_moire",
                "mask_fraction", "mask_path", "width", "height", "format", "detector"]


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    root = tmp_path / "shots"
    for i in range(5):
        write_jpeg(root / f"clean_{i}.jpg", seed=i)
    for i in range(3):
        write_jpeg(root / "bright" / f"sun_{i}.jpg", width=400, height=300, bright=True, seed=10 + i)
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_writes_rows_masks_and_exports(shots: Path, tmp_path: Path, workers: int) -> None:
    out = tmp_path / "run"
    before = tree_hashes(shots)
    summary = scan(shots, out, ScanOptions(workers=workers, batch_size=3), detector=BrightSpotDetector())
    assert tree_hashes(shots) == before, "a scan must never modify an original"
    assert (summary.found, summary.scanned, summary.failed, summary.ignored) == (9, 8, 1, 1)
    assert summary.labels == {"clean": 5, "flare": 3}

    rows = read_csv(out / "results.csv")
    assert list(rows[0])[: len(CSV_CONTRACT)] == CSV_CONTRACT
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    by_path = {r["path"]: r for r in rows}
    assert by_path["broken.jpg"]["status"] == "error" and by_path["broken.jpg"]["error"]
    sun = by_path["bright/sun_0.jpg"]
    assert sun["label"] == "flare" and (sun["width"], sun["height"]) == ("400", "300")
    assert sum(float(sun[f"score_{c}"]) for c in ("clean", "ghosting", "flare", "moire")) == pytest.approx(1, abs=1e-4)
    mask = cv2.imread(str(out / sun["mask_path"]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (300, 400), "masks are written at the original image size"
    assert set(np.unique(mask)) <= {0, 255} and 0.15 < (mask > 0).mean() < 0.4
    assert by_path["clean_0.jpg"]["mask_path"] == "", "clean images have no mask file (all-zero by definition)"
    assert (out / by_path["clean_0.jpg"]["map_path"]).exists()

    jsonl = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["path"] for r in jsonl] == [r["path"] for r in rows]
    assert set(jsonl[0]) == set(RESULT_COLUMNS)


def test_rescan_skips_unchanged_and_redoes_changed(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    again = scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    assert (again.scanned, again.failed, again.skipped) == (0, 0, 9)

    touched = shots / "clean_1.jpg"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))  # new mtime, same bytes
    write_jpeg(shots / "clean_2.jpg", bright=True, seed=99)  # new content
    write_jpeg(shots / "new.jpg", seed=7)
    (shots / "clean_3.jpg").unlink()
    third = scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    assert (third.scanned, third.skipped, third.removed) == (2, 7, 1)
    with ResultStore(out) as store:
        rows = {r["path"]: r for r in store.rows()}
    assert "clean_3.jpg" not in rows and rows["clean_2.jpg"]["label"] == "flare"
    assert rows["clean_1.jpg"]["file_mtime_ns"] == touched.stat().st_mtime_ns


def test_changed_detector_settings_rescan_everything(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector(level=0.8))
    other = scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector(level=0.7))
    assert (other.scanned, other.failed, other.skipped) == (8, 1, 0)
    forced = scan(shots, out, ScanOptions(workers=0, force=True), detector=BrightSpotDetector(level=0.7))
    assert forced.scanned == 8


def test_error_rows_are_kept_unless_retry_asked(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    again = scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    assert again.failed == 0 and again.error_count == 1
    retried = scan(shots, out, ScanOptions(workers=0, retry_errors=True), detector=BrightSpotDetector())
    assert retried.failed == 1 and retried.scanned == 0


class InterruptingDetector(BrightSpotDetector):
    """Simulates Ctrl-C arriving during the third detector call."""

    def detect(self, images):
        if self.calls == 2:
            self.calls += 1
            raise KeyboardInterrupt
        return super().detect(images)


def test_keyboard_interrupt_keeps_finished_batches_and_resumes(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = scan(shots, out, ScanOptions(workers=0, batch_size=2), detector=InterruptingDetector())
    assert first.interrupted
    done_first = {r["path"]: r["scanned_at"] for r in read_csv(out / "results.csv")}
    assert 0 < len(done_first) < 9
    second = scan(shots, out, ScanOptions(workers=0, batch_size=2), detector=BrightSpotDetector())
    assert not second.interrupted
    rows = read_csv(out / "results.csv")
    assert sorted(r["path"] for r in rows) == sorted({r["path"] for r in rows}) and len(rows) == 9
    assert second.scanned + second.failed == 9 - len(done_first)
    assert all(r["scanned_at"] == done_first[r["path"]] for r in rows if r["path"] in done_first)


class FailingDetector(BrightSpotDetector):
    def detect(self, images):
        if any(image.meta.path.endswith("sun_1.jpg") for image in images):
            raise RuntimeError("model exploded")
        return super().detect(images)


def test_detector_failure_fails_only_that_image(shots: Path, tmp_path: Path) -> None:
    summary = scan(shots, tmp_path / "run", ScanOptions(workers=0, batch_size=4), detector=FailingDetector())
    errors = dict(summary.errors)
    assert set(errors) == {"broken.jpg", "bright/sun_1.jpg"}
    assert "model exploded" in errors["bright/sun_1.jpg"]
    assert summary.scanned == 7


def crash_on_marked_files(job: DecodeJob) -> DecodeOutcome:
    """Stands in for a decoder library that segfaults: the worker process dies on 'crash' files."""
    if "crash" in job.relpath:
        os._exit(11)
    return decode_job(job)


def test_worker_crash_fails_only_the_crashing_file(shots: Path, tmp_path: Path) -> None:
    write_jpeg(shots / "crash_me.jpg", seed=3)
    from ipad_qc.scanner import ScanSummary
    from ipad_qc.walker import walk

    options = ScanOptions(workers=2, batch_size=2)
    detector = BrightSpotDetector()
    summary = ScanSummary(tmp_path / "run", shots, detector.name)
    with ResultStore(tmp_path / "run") as store:
        from ipad_qc.scanner import SilentListener, plan_jobs

        jobs, _ = plan_jobs(walk(shots).files, {}, "h", options, detector.decode_hint)
        LocalPipeline(detector, store, "h", options, SilentListener(), summary, decode=crash_on_marked_files).run(jobs)
        rows = {r["path"]: r for r in store.rows()}
    assert len(rows) == 10
    assert "crashed" in rows["crash_me.jpg"]["error"]
    assert sum(r["status"] == "error" for r in rows.values()) == 2  # crash_me.jpg and broken.jpg


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from scan_fixtures import BrightSpotDetector
    from ipad_qc.scanner import ScanOptions, scan
    scan({root!r}, {out!r}, ScanOptions(workers=1, batch_size=2), detector=BrightSpotDetector(delay_s={delay}))
    """
)


def test_kill_9_midway_then_rerun_gives_one_row_per_file(tmp_path: Path) -> None:
    root, out = tmp_path / "shots", tmp_path / "run"
    for i in range(16):
        write_jpeg(root / f"img_{i:02d}.jpg", bright=i % 2 == 0, seed=i)
    tests_dir = str(Path(__file__).parent)
    script = KILL_SCRIPT.format(tests=tests_dir, root=str(root), out=str(out), delay=0.4)
    process = subprocess.Popen([sys.executable, "-c", script])
    db_path = out / "results.sqlite"
    deadline = time.time() + 60
    committed = 0
    while time.time() < deadline and committed < 4:
        time.sleep(0.1)
        if db_path.exists():
            with sqlite3.connect(db_path) as db:
                try:
                    committed = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    committed = 0
    process.kill()
    process.wait()
    assert 4 <= committed < 16, "the scan should have been killed halfway"
    with ResultStore(out) as store:
        finished = {r["path"]: r["scanned_at"] for r in store.rows()}
    resumed = scan(root, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    assert resumed.scanned == 16 - len(finished), "finished files must not be redone"
    with ResultStore(out) as store:
        rows = list(store.rows())
    assert [r["path"] for r in rows] == [f"img_{i:02d}.jpg" for i in range(16)]
    assert all(r["scanned_at"] == finished[r["path"]] for r in rows if r["path"] in finished)
    assert len(read_csv(out / "results.csv")) == 16


def test_scan_writes_report_thumbnails_from_decoded_pixels(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    scan(shots, out, ScanOptions(workers=0), detector=BrightSpotDetector())
    with ResultStore(out) as store:
        rows = {r["path"]: r for r in store.rows()}
    sun, clean = rows["bright/sun_0.jpg"], rows["clean_0.jpg"]
    thumb = cv2.imread(str(out / "thumbs" / f"{sun['content_hash']}-256.jpg"))
    assert thumb is not None and max(thumb.shape[:2]) == 256
    assert (out / "thumbs" / f"{sun['content_hash']}-1024.jpg").is_file(), "flagged images get a large view"
    assert not (out / "thumbs" / f"{clean['content_hash']}-1024.jpg").exists()
    no_thumbs = scan(shots, tmp_path / "bare", ScanOptions(workers=0, write_thumbnails=False),
                     detector=BrightSpotDetector())
    assert no_thumbs.scanned == 8 and not (tmp_path / "bare" / "thumbs").exists()
