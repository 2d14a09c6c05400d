"""How a scan shares the machine: workers and detector threads within the cores, memory reused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import pytest
import scipy.fft
import torch
from fault_fixtures import child_env
from scan_fixtures import BrightSpotDetector, write_jpeg

import ipad_qc.scanning.resources as resources
from ipad_qc.scanner import ScanOptions, scan
from ipad_qc.scanning.resources import detector_threads, share_cores


@pytest.mark.parametrize(
    ("workers", "cores", "expected"),
    [(None, 2, (1, 1)), (None, 1, (1, 1)), (None, 16, (15, 1)), (4, 16, (4, 12)), (0, 8, (0, 8)), (3, 2, (3, 1))],
)
def test_workers_and_detector_threads_share_the_cores(workers, cores, expected) -> None:
    assert share_cores(workers, cores) == expected


def test_detector_threads_apply_inside_the_block_only() -> None:
    cv2_before, torch_before = cv2.getNumThreads(), torch.get_num_threads()
    with detector_threads(1):
        assert cv2.getNumThreads() == 1 and torch.get_num_threads() == 1
    assert (cv2.getNumThreads(), torch.get_num_threads()) == (cv2_before, torch_before)


class ThreadCounter(BrightSpotDetector):
    seen: list[tuple[int, int, int]] = []

    def detect(self, images):
        self.seen.append((cv2.getNumThreads(), torch.get_num_threads(), scipy.fft.get_workers()))
        return super().detect(images)


@pytest.mark.parametrize("workers", [None, 0])
def test_scan_runs_the_detector_on_the_cores_the_workers_leave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               workers: int | None) -> None:
    monkeypatch.setattr(resources, "usable_cores", lambda: 3)
    for i in range(3):
        write_jpeg(tmp_path / "shots" / f"{i}.jpg", seed=i)
    ThreadCounter.seen = []
    before = (cv2.getNumThreads(), torch.get_num_threads())
    summary = scan(tmp_path / "shots", tmp_path / "run", ScanOptions(workers=workers, batch_size=2),
                   detector=ThreadCounter())
    expected = 1 if workers is None else 3  # 2 decode workers leave one core; no workers leave all three
    assert summary.scanned == 3 and ThreadCounter.seen == [(expected, expected, expected)] * 2
    assert (cv2.getNumThreads(), torch.get_num_threads()) == before, "the caller's settings come back"


CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from ipad_qc.scanning.resources import keep_freed_memory
    assert keep_freed_memory()
def churn():
    for _ in range(20):
        a = np.ones((2000, 2000), np.float32)  # 16 MB: above glibc's default mmap threshold
        b = a * 2
        del a, b
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is what the setting tunes")
def test_freed_arrays_are_reused_instead_of_faulted_in_again() -> None:
    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(CHURN), mode], env=child_env(),
                              capture_output=True, text=True, check=True)
        return int(done.stdout.split()[-1])

    default, tuned = faults("default"), faults("tuned")
    assert default > 10_000, "glibc returns each 16 MB array to the kernel and faults it in again"
    assert tuned < default / 20


def test_pytorch_tensors_go_on_huge_pages_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    resources.keep_freed_memory()
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "1", "read by PyTorch at its first large CPU allocation"
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    resources.keep_freed_memory()
    assert os.environ["THP_MEM_ALLOC_ENABLE"] == "0"
