"""CPU time and memory of this process and every process below it, read from ``/proc`` (Linux).

The standard tools under-report a scan: ``getrusage(RUSAGE_CHILDREN)`` counts only children that
were waited for, and the decode workers are children of multiprocessing's fork server, which lives
until this process exits; their memory is not this process's either. :class:`TreeMonitor` samples
the whole tree (this process, the fork server, its workers) every few milliseconds from a thread
and keeps, per process, the last CPU time seen, and over time the peak of the tree's summed RSS and
PSS (proportional set size: shared pages divided among the processes sharing them, so memory the
workers inherit from the fork server is counted once).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def available() -> bool:
    """True where ``/proc`` describes processes (Linux): the monitor reads nothing elsewhere."""
    return (_PROC / str(os.getpid()) / "stat").is_file()


def _cpu(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads); None once it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / _TICK


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in bytes; zeros once it is gone."""
    try:
        text = (_PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name] = int(rest.split()[0]) * 1024
    return values.get("Rss", 0), values.get("Pss", 0)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (each of its threads lists those it started)."""
    found: list[int] = []
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(root: int) -> dict[int, float]:
    """``root`` and every process below it, with their CPU seconds so far."""
    tree: dict[int, float] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        cpu = _cpu(pid)
        if cpu is None or pid in tree:
            continue
        tree[pid] = cpu
        frontier += _children(pid)
    return tree


@dataclass
class TreeUsage:
    """What one :class:`TreeMonitor` window saw."""

    cpu_s: float = 0.0
    peak_rss: int = 0
    peak_pss: int = 0
    processes: int = 0
    per_process_cpu: dict[int, float] = field(default_factory=dict)
    #: RSS of each process at the moment the tree's RSS peaked, by pid.
    rss_at_peak: dict[int, int] = field(default_factory=dict)


class TreeMonitor:
    """``with TreeMonitor() as usage:`` samples this process's tree until the block ends.

    CPU is counted from the block's start: a process that existed before counts its increase, one
    born inside the block all of its time. A process that ends between two samples loses at most
    one interval of CPU (``interval`` seconds, 10 ms by default). The sampling thread's own CPU is
    not counted.
    """

    def __init__(self, interval: float = 0.01, root: int | None = None) -> None:
        self.interval = interval
        self.root = root or os.getpid()
        self.usage = TreeUsage()
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._own_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-monitor", daemon=True)

    def __enter__(self) -> TreeUsage:
        self._start = descendants(self.root)
        self._thread.start()
        return self.usage

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        usage = self.usage
        usage.per_process_cpu = {pid: cpu - self._start.get(pid, 0.0) for pid, cpu in self._last.items()}
        usage.per_process_cpu[self.root] -= self._own_cpu
        usage.cpu_s = sum(usage.per_process_cpu.values())
        usage.processes = len(self._last)

    def _sample(self) -> None:
        tree = descendants(self.root)
        self._last.update(tree)
        memory = {pid: _memory(pid) for pid in tree}
        rss = sum(one[0] for one in memory.values())
        if rss > self.usage.peak_rss:
            self.usage.peak_rss = rss
            self.usage.rss_at_peak = {pid: one[0] for pid, one in memory.items()}
        self.usage.peak_pss = max(self.usage.peak_pss, sum(one[1] for one in memory.values()))

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self._sample()
            self._own_cpu = time.thread_time()
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))
