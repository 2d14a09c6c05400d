"""SIGKILL at random points of a scan, drawn from seeds: the run folder always ends as if uninterrupted.

The child scan counts the places where an interruption matters (a file renamed into place, a batch
before and after its commit, a detector call) and kills itself with SIGKILL at the N-th one, N drawn
from the seed. Each seed kills up to four scans in a row, then lets one finish; the rows, masks, maps
and thumbnails must then equal those of a scan that was never interrupted, one row per file.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_fixtures import child_env, files_under, rows
from scan_fixtures import BrightSpotDetector, write_jpeg

from ipad_qc.scanner import ScanOptions, scan

KILL_AT = """
import os, signal, sys
from scan_fixtures import BrightSpotDetector
from ipad_qc.scanner import ScanOptions, scan
from ipad_qc.store import ResultStore

target, root, out, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
seen = 0

def point():
    global seen
    seen += 1
    if seen == target:
        os.kill(os.getpid(), signal.SIGKILL)

real_replace, real_put = os.replace, ResultStore.put_batch

def replace(src, dst):  # killed with the temporary file complete, before the rename
    point()
    real_replace(src, dst)

def put_batch(self, batch):
    point()
    real_put(self, batch)
    point()

class Detector(BrightSpotDetector):
    def detect(self, images):
        point()
        return super().detect(images)

os.replace, ResultStore.put_batch = replace, put_batch
scan(root, out, ScanOptions(workers=workers, batch_size=3), detector=Detector())
"""
VOLATILE = {"scanned_at", "decode_ms", "detect_ms"}
SEEDS = (1, 2, 3)


def _tree(root: Path) -> Path:
    for i in range(10):
        write_jpeg(root / ("sub" if i % 3 else "") / f"img_{i:02d}.jpg", bright=i % 2 == 0, seed=i)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def _state(run: Path) -> tuple[dict, dict[str, bytes]]:
    found = {path: {k: v for k, v in row.items() if k not in VOLATILE} for path, row in rows(run).items()}
    outputs = {name: (run / name).read_bytes() for name in files_under(run, hidden=False)
               if name.split("/")[0] in ("masks", "maps", "thumbs")}
    return found, outputs


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_at_random_points_leaves_the_rows_of_an_uninterrupted_scan(tmp_path: Path, seed: int) -> None:
    root = _tree(tmp_path / "shots")
    scan(root, tmp_path / "reference", ScanOptions(workers=0, batch_size=3), detector=BrightSpotDetector())
    expected = _state(tmp_path / "reference")
    rng = random.Random(seed)
    run, kills = tmp_path / "run", 0
    for attempt in range(5):
        target = rng.randint(1, 40) if attempt < 4 else 0  # the last run is never killed
        workers = rng.choice((0, 1))
        done = subprocess.run([sys.executable, "-c", KILL_AT, str(target), str(root), str(run), str(workers)],
                              env=child_env(), capture_output=True, text=True, timeout=120)
        if done.returncode == -signal.SIGKILL:
            kills += 1
            continue
        assert done.returncode == 0, done.stderr
        if target:  # finished before its kill point: the folder is complete, no more to interrupt
            break
    assert kills >= 1, "the seed must interrupt at least one scan"
    assert _state(run) == expected
    assert not [name for name in files_under(run) if name.endswith(".tmp")], "leftovers are swept"
    with sqlite3.connect(run / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM results").fetchone() == (11, 11)


WORKERS_SCRIPT = """
import sys, time
from scan_fixtures import BrightSpotDetector
from ipad_qc.scanner import ScanOptions, scan
scan(sys.argv[1], sys.argv[2], ScanOptions(workers=2, batch_size=2), detector=BrightSpotDetector(delay_s=1.0))
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _committed(run: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{run / 'results.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc (Linux)")
def test_decode_workers_exit_when_the_scan_is_killed(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    for i in range(12):
        write_jpeg(root / f"img_{i:02d}.jpg", seed=i)
    scanner = subprocess.Popen([sys.executable, "-c", WORKERS_SCRIPT, str(root), str(tmp_path / "run")],
                               env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _committed(tmp_path / "run"):  # workers decode, batch 1 is in
        time.sleep(0.2)
    descendants: set[int] = set()
    frontier = [scanner.pid]
    while frontier:
        children = _children(frontier.pop())
        frontier += children
        descendants.update(children)
    try:
        assert len(descendants) >= 3, "the scan should be running its fork server and two decode workers"
    finally:
        scanner.kill()
        scanner.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_running(pid) for pid in descendants):
        time.sleep(0.2)
    survivors = [pid for pid in descendants if _running(pid)]
    for pid in survivors:  # do not leave them behind when the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "decode workers must not outlive a scan killed with SIGKILL"
