"""The benchmarks run end to end at toy sizes (their figures are for people, not for tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fault_fixtures import child_env

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, script, *args], cwd=BENCHMARKS, env=child_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_gpu_benchmark_dry_run_on_the_cpu() -> None:
    out = _run("bench_gpu.py", "--dry-run")
    assert "IPAD-CLIP ipad-tiny @ 64" in out and "scores float32" in out and "ipad-net @ 64" in out
    assert "scan, ipad-clip" in out and "scan, ipad-net" in out and "decode alone" in out


def test_scan_benchmark_counts_the_workers_cpu_and_memory() -> None:
    out = _run("bench_scan.py", "--images", "2", "--width", "400", "--height", "300", "--workers", "1")
    assert "Stages alone" in out and "full scan" in out and "slowest stage" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert [row[0] for row in rows] == ["0", "1"]
    assert int(rows[1][-1]) >= 3, "the scan with a worker counts this process, the fork server and the worker"


def test_memory_benchmark_prints_the_tree_against_the_target() -> None:
    out = _run("bench_memory.py", "--megapixels", "2", "--workers", "1")
    assert "the large files add" in out and "target 1.2x" in out and "0 failed" in out
