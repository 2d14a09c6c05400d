"""The fault-injection suite: each defect found by hostile and careless use (issue 13), as a test.

Every test here failed on the code before the fix. Inputs are tiny (a few 320x240 JPEGs), so the
suite stays fast; the test detector is ``bright-spot`` (tests/scan_fixtures.py), whose verdicts
are predictable: an image with a white disc is flagged ``flare``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import resource
import shutil
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fault_fixtures import CLI_SCRIPT, bilevel_png, files_under, forged_jpeg, rows, run_cli, tamper, unprivileged
from scan_fixtures import BrightSpotDetector, create_bright_spot, write_jpeg

from ipad_qc.cli import main
from ipad_qc.detectors.registry import register_detector
from ipad_qc.outputs import write_thumbnails
from ipad_qc.report.build import build_report
from ipad_qc.scanner import ScanOptions, scan

register_detector("bright-spot", create_bright_spot)
BRIGHT = ("--detector", "bright-spot", "--workers", "0")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    root = tmp_path / "shots"
    for i in range(3):
        write_jpeg(root / f"sun_{i}.jpg", bright=True, seed=i)
        write_jpeg(root / f"dark_{i}.jpg", seed=10 + i)
    return root


# 1 -------------------------------------------------------------------------------------------------
def test_tampered_database_cannot_make_route_or_report_touch_files_outside(shots: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    scan(shots, run, ScanOptions(workers=0), detector=BrightSpotDetector())
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"an original elsewhere on the disk")
    secret = tmp_path / "secret.png"
    cv2.imwrite(str(secret), np.full((40, 40), 255, np.uint8))
    tamper(run, "UPDATE results SET path = ? WHERE path = 'sun_0.jpg'", "../../../victim.txt")
    tamper(run, "UPDATE results SET path = ? WHERE path = 'sun_1.jpg'", str(victim))
    tamper(run, "UPDATE results SET mask_path = ?, map_path = ? WHERE path = 'sun_2.jpg'", str(secret),
           "../secret.png")
    tamper(run, "UPDATE results SET content_hash = ? WHERE path = 'dark_0.jpg'", "../../escaped")
    outside = {path: sha(path) for path in (victim, secret, *shots.iterdir())}

    for mode in ("hardlink", "copy", "symlink"):
        result = cli("route", str(run), "--sort", mode, "--force", "-q")
        assert result.exit_code == 1, result.output
        assert {path: sha(path) for path in outside} == outside, f"--sort {mode} touched a file outside the run"
        assert not any(path.is_symlink() and not path.resolve().is_relative_to(run.resolve())
                       for path in run.rglob("*") if path.name in ("victim.txt", "secret.png"))
    assert "refused" in cli("route", str(run), "--force", "-q").output
    assert {path: sha(path) for path in outside} == outside
    assert files_under(tmp_path / "shots") == {p.name for p in shots.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "secret.png", "shots", "victim.txt"]

    shutil.rmtree(run / "thumbs")  # the report makes every thumbnail again, named by content hash
    page = build_report(run, layout="single")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "secret.png", "shots", "victim.txt"]
    problems = dict(page.problems)
    assert "refused" in problems["sun_2.jpg"], "a mask outside masks/ is not drawn from"
    assert "refused" in problems["../../../victim.txt"]
    with sqlite3.connect(run / "results.sqlite") as db:
        statuses = dict(db.execute("SELECT path, error FROM repairs WHERE status = 'failed'").fetchall())
    assert all("refused" in statuses[key] for key in ("../../../victim.txt", str(victim)))


# 2 -------------------------------------------------------------------------------------------------
@pytest.mark.skipif(os.name != "posix", reason="file names are bytes only on POSIX")
def test_file_name_that_is_not_utf8_is_scanned_named_and_routed(shots: Path, tmp_path: Path) -> None:
    odd = shots / os.fsdecode(b"caf\xe9 sun.jpg")
    write_jpeg(odd, bright=True, seed=5)
    write_jpeg(shots / "zz_after.jpg", seed=6)
    result = cli("scan", str(shots), "--out", str(tmp_path / "run"), *BRIGHT, "-q")
    assert result.exit_code == 0, result.output
    found = rows(tmp_path / "run")
    assert len(found) == 8 and found["caf\\xe9 sun.jpg"]["label"] == "flare"
    assert found["zz_after.jpg"]["status"] == "ok", "files after the odd name are scanned too"
    routed = cli("route", str(tmp_path / "run"), "--sort", "copy", "-q")
    assert routed.exit_code == 0, routed.output
    copies = [path for path in (tmp_path / "run" / "sorted" / "flare").iterdir() if "caf" in path.name]
    assert len(copies) == 1 and copies[0].read_bytes() == odd.read_bytes()


# 3 -------------------------------------------------------------------------------------------------
def test_rescans_of_a_selection_keep_the_rows_outside_it(tmp_path: Path) -> None:
    root, run = tmp_path / "shots", tmp_path / "run"
    for folder in ("d00", "d01"):
        for i in range(3):
            write_jpeg(root / folder / f"img_{i}.jpg", seed=i)
    assert cli("scan", str(root), "--out", str(run), *BRIGHT, "-q").exit_code == 0
    everything = set(rows(run))
    assert len(everything) == 6
    assert cli("scan", str(root), "--out", str(run), *BRIGHT, "-q", "--include", "d00/**").exit_code == 0
    assert set(rows(run)) == everything, "--include must not delete the rows it leaves out"
    assert cli("scan", str(root / "d01" / "img_1.jpg"), "--out", str(run), *BRIGHT, "-q").exit_code == 0
    assert cli("scan", str(root / "d01"), "--out", str(run), *BRIGHT, "-q", "--force").exit_code == 0
    assert set(rows(run)) == everything, "a sub-folder or one file is a selection within the same run folder"

    (root / "d01" / "img_2.jpg").unlink()
    assert cli("scan", str(root / "d00"), "--out", str(run), *BRIGHT, "-q").exit_code == 0
    assert set(rows(run)) == everything - {"d01/img_2.jpg"}, "a file gone from disk loses its row"

    other = tmp_path / "elsewhere"
    write_jpeg(other / "x.jpg")
    refused = cli("scan", str(other), "--out", str(run), *BRIGHT, "-q")
    assert refused.exit_code == 2 and "--prune" in refused.output
    assert len(rows(run)) == 5
    assert cli("scan", str(root), "--out", str(run), *BRIGHT, "-q", "--include", "d00/**", "--prune").exit_code == 0
    assert set(rows(run)) == {f"d00/img_{i}.jpg" for i in range(3)}, "--prune removes what is outside"
    assert cli("scan", str(other), "--out", str(run), *BRIGHT, "-q", "--prune").exit_code == 0
    assert set(rows(run)) == {"x.jpg"}


# 4 -------------------------------------------------------------------------------------------------
def test_two_writers_of_one_content_named_file_never_collide(tmp_path: Path, monkeypatch) -> None:
    """Byte-identical files share their thumbnails: both writer threads write the same name at once."""
    both_written = threading.Barrier(2)
    real_replace = os.replace

    def replace_together(src, dst):
        both_written.wait(timeout=10)  # both temporary files are complete before either is renamed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_together)
    pixels = np.full((64, 80, 3), 120, np.uint8)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(write_thumbnails, tmp_path, "samehash", pixels, (256,)) for _ in range(2)]
        for future in futures:
            future.result()
    assert os.listdir(tmp_path) == ["samehash-256.jpg"], "no temporary file is left behind"
    assert cv2.imread(str(tmp_path / "samehash-256.jpg")).shape == (64, 80, 3)


def test_copies_of_one_photo_are_all_ok_rows(tmp_path: Path) -> None:
    source = write_jpeg(tmp_path / "one.jpg", bright=True)
    for i in range(24):
        (tmp_path / "burst").mkdir(exist_ok=True)
        (tmp_path / "burst" / f"copy_{i:02d}.jpg").write_bytes(source.read_bytes())
    summary = scan(tmp_path / "burst", tmp_path / "run", ScanOptions(workers=2, batch_size=8),
                   detector=BrightSpotDetector())
    assert (summary.scanned, summary.failed) == (24, 0)
    assert {row["label"] for row in rows(tmp_path / "run").values()} == {"flare"}


# 5 -------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_and_device_named_like_images_do_not_hang_the_scan(shots: Path, tmp_path: Path) -> None:
    os.mkfifo(shots / "pipe.jpg")
    (shots / "zero.jpg").symlink_to("/dev/zero")
    result = run_cli("scan", str(shots), "--out", str(tmp_path / "run"), *BRIGHT[:2], "--workers", "1", "-q",
                     timeout=90)
    assert result.returncode == 1, result.stderr
    found = rows(tmp_path / "run")
    assert "FIFO" in found["pipe.jpg"]["error"] and "character device" in found["zero.jpg"]["error"]
    assert sum(row["status"] == "ok" for row in found.values()) == 6


# 6 -------------------------------------------------------------------------------------------------
def test_folder_unreadable_on_a_rescan_keeps_its_rows(tmp_path: Path, monkeypatch) -> None:
    root, run = tmp_path / "shots", tmp_path / "run"
    for folder in ("open", "locked"):
        for i in range(2):
            write_jpeg(root / folder / f"img_{i}.jpg", seed=i)
    scan(root, run, ScanOptions(workers=0), detector=BrightSpotDetector())
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr("ipad_qc.walker.os.scandir", scandir)
    summary = scan(root, run, ScanOptions(workers=0), detector=BrightSpotDetector())
    assert len(rows(run)) == 4 and summary.removed == 0 and summary.kept_outside == 2
    assert any("cannot read folder" in reason for _, reason in summary.problems)


def test_folder_chmod_000_on_a_rescan_keeps_its_rows(tmp_path: Path) -> None:
    prefix = unprivileged()
    root, run = tmp_path / "shots", tmp_path / "run"
    for folder in ("open", "locked"):
        for i in range(2):
            write_jpeg(root / folder / f"img_{i}.jpg", seed=i)
    assert run_cli("scan", str(root), "--out", str(run), *BRIGHT, "-q").returncode == 0
    (root / "locked").chmod(0)
    try:
        result = run_cli("scan", str(root), "--out", str(run), *BRIGHT, prefix=prefix)
    finally:
        (root / "locked").chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert "cannot read folder" in result.stdout + result.stderr
    assert len(rows(run)) == 4


# 7 -------------------------------------------------------------------------------------------------
def test_names_with_markup_and_escape_codes_print_as_text(tmp_path: Path) -> None:
    root = tmp_path / "m"
    (root / "x[").mkdir(parents=True)
    (root / "x[" / "red]bad.jpg").write_bytes(b"x")
    (root / "shots [v2]").mkdir()
    (root / "shots [v2]" / "x.jpg").write_bytes(b"x")
    (root / "esc\x1b[31mred.jpg").write_bytes(b"x")
    for i in range(3):
        write_jpeg(root / f"z_{i}.jpg", seed=i)
    for _ in range(2):  # the second run prints the summary from stored rows
        result = cli("scan", str(root), "--out", str(tmp_path / "run"), *BRIGHT)
        assert result.exit_code == 1
        assert "x[/red]bad.jpg" in result.output and "shots [v2]/x.jpg" in result.output
        assert "esc\\x1b[31mred.jpg" in result.output and "\x1b" not in result.output
    assert len(rows(tmp_path / "run")) == 6


# 8 -------------------------------------------------------------------------------------------------
def _photo_like_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    pixels = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3)).astype(np.uint8), (0, 0), 2)
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def test_jpegs_damaged_in_the_middle_or_forged_are_error_rows(tmp_path: Path) -> None:
    data = _photo_like_jpeg()
    start, end = int(len(data) * 0.35), int(len(data) * 0.65)
    root = tmp_path / "jpegs"
    root.mkdir()
    (root / "good.jpg").write_bytes(data)
    (root / "cut.jpg").write_bytes(data[:start] + data[end:])
    (root / "zeroed.jpg").write_bytes(data[:start] + bytes(end - start) + data[end:])
    tiny = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes()
    (root / "forged.jpg").write_bytes(forged_jpeg(tiny, 65000, 65000))
    summary = scan(root, tmp_path / "run", ScanOptions(workers=0), detector=BrightSpotDetector())
    errors = dict(summary.errors)
    assert set(errors) == {"cut.jpg", "zeroed.jpg", "forged.jpg"}
    assert all("corrupt JPEG" in errors[name] for name in ("cut.jpg", "zeroed.jpg"))
    assert "65000x65000" in errors["forged.jpg"]
    partial = scan(root, tmp_path / "partial", ScanOptions(workers=0, allow_partial=True),
                   detector=BrightSpotDetector())
    found = rows(tmp_path / "partial")
    assert set(dict(partial.errors)) == {"forged.jpg"}
    assert all("corrupt JPEG" in found[name]["warning"] for name in ("cut.jpg", "zeroed.jpg"))


# 9 -------------------------------------------------------------------------------------------------
def test_decode_budget_refuses_pixel_bombs_and_oversized_files(tmp_path: Path) -> None:
    root = tmp_path / "bombs"
    root.mkdir()
    bilevel_png(root / "bomb.png", 20000)  # 400 MP in ~50 KB
    sparse = write_jpeg(root / "sparse.jpg")
    with open(sparse, "r+b") as handle:
        handle.truncate(300 << 20)  # a 320x240 JPEG followed by 300 MB of nothing (sparse on disk)
    write_jpeg(root / "fine.jpg")
    summary = scan(root, tmp_path / "run", ScanOptions(workers=0), detector=BrightSpotDetector())
    errors = dict(summary.errors)
    assert set(errors) == {"bomb.png", "sparse.jpg"}
    assert "20000x20000" in errors["bomb.png"] and "limit of 250 MP" in errors["bomb.png"]
    assert "far more than a 320x240 JPEG" in errors["sparse.jpg"]
    strict = cli("scan", str(root / "fine.jpg"), "--out", str(tmp_path / "strict"), *BRIGHT, "-q",
                 "--max-megapixels", "0.05")
    assert strict.exit_code == 1
    assert "320x240 (0.0768 MP) is above the limit of 0.05 MP" in rows(tmp_path / "strict")["fine.jpg"]["error"]


# 10 ------------------------------------------------------------------------------------------------
def test_run_folder_is_never_scanned_as_photos(shots: Path, tmp_path: Path) -> None:
    same = cli("scan", str(shots), "--out", str(shots), *BRIGHT, "-q")
    assert same.exit_code == 2 and "scanned folder itself" in same.output
    assert not (shots / "results.sqlite").exists()
    (shots / "sub").mkdir()
    inner = cli("scan", str(shots / "sub"), "--out", str(shots), *BRIGHT, "-q")
    assert inner.exit_code == 2 and "inside the run folder" in inner.output
    for name in ("a", "b"):  # a run folder inside ROOT, then another one: neither is scanned as photos
        assert cli("scan", str(shots), "--out", str(shots / "runs" / name), *BRIGHT, "-q").exit_code == 0
    assert len(rows(shots / "runs" / "b")) == 6
    again = cli("scan", str(shots), "--out", str(tmp_path / "outside"), *BRIGHT)
    assert len(rows(tmp_path / "outside")) == 6 and "an ipad-qc run folder" in again.output


# 11 ------------------------------------------------------------------------------------------------
DISK_FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG, like a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv.pop(1)),) * 2)
""" + CLI_SCRIPT


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE") or not hasattr(signal, "SIGXFSZ"),
                    reason="needs RLIMIT_FSIZE to make writes fail like a full disk")
def test_full_disk_is_exit_4_one_line_and_resumes(tmp_path: Path) -> None:
    root, run = tmp_path / "shots", tmp_path / "run"
    for i in range(16):
        write_jpeg(root / f"img_{i:02d}.jpg", bright=i % 2 == 0, seed=i)
    args = ("scan", str(root), "--out", str(run), *BRIGHT, "--batch-size", "2", "-q")
    full = run_cli("60000", *args, script=DISK_FULL)
    assert full.returncode == 4, full.stderr
    assert "Traceback" not in full.stderr and "cannot write the run folder" in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1, full.stderr
    assert not [name for name in files_under(run) if name.endswith(".tmp")], "no temporary file is left"
    committed = rows(run)
    assert len(committed) < 16
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert len(rows(run)) == 16
    with open(run / "results.csv", newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 16
    with sqlite3.connect(run / "results.sqlite") as db:
        outcomes = [outcome for (outcome,) in db.execute("SELECT outcome FROM scans ORDER BY id")]
    assert outcomes[-1] == "completed" and "running" not in outcomes
