"""Run a Python removal hook in a worker process, so a crash or a hang fails one image only.

A plugin is third-party code working on 100-megapixel arrays: it can raise, segfault inside a
native library, or never return. The worker is started once per hook with ``spawn`` (no inherited
threads or locks, same behaviour on every OS) and re-used for every image; when a call exceeds the
timeout or the process dies, it is killed and a fresh one starts on the next call.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ipad_qc.routing.api import Declined, RemovalHook, RepairRequest


@dataclass
class HookResult:
    """What one call returned: pixels, no pixels (declined, with the hook's ``reason`` if it gave one),
    or an error message."""

    pixels: np.ndarray | None = None
    error: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, outcome: np.ndarray | Declined | None) -> HookResult:
        """The result of a hook's ``repair`` return value."""
        return cls(reason=outcome.reason) if isinstance(outcome, Declined) else cls(pixels=outcome)


def _serve(factory: Callable[..., RemovalHook], options: dict[str, Any], conn: Connection) -> None:
    """Worker loop: create the hook once, then answer one request per message until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the router's business
    try:
        hook = factory(**options)
    except Exception as exc:
        hook, startup_error = None, f"hook could not be created: {type(exc).__name__}: {exc}"
    while (request := conn.recv()) is not None:
        if hook is None:
            conn.send(HookResult(error=startup_error))
            continue
        try:
            conn.send(HookResult.of(hook.repair(request)))
        except Exception as exc:
            conn.send(HookResult(error=f"hook raised {type(exc).__name__}: {exc}"))


class IsolatedHook:
    """Calls ``factory(**options).repair`` in a worker process with a per-call timeout."""

    def __init__(self, factory: Callable[..., RemovalHook], options: dict[str, Any], timeout_s: float) -> None:
        self.factory, self.options, self.timeout_s = factory, options, timeout_s
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(self.factory, self.options, child), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        return parent

    def repair(self, request: RepairRequest) -> HookResult:
        conn = self._conn or self._start()
        try:
            conn.send(request)
            if not conn.poll(self.timeout_s):
                self.close(kill=True)
                return HookResult(error=f"timed out after {self.timeout_s:g} s (hook process killed)")
            return conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = self._process.exitcode if self._process else None
            self.close(kill=True)
            return HookResult(error=f"hook process died (exit code {code})")

    def close(self, kill: bool = False) -> None:
        """Stop the worker: politely when idle, by SIGKILL after a timeout or a crash."""
        process, conn = self._process, self._conn
        self._process, self._conn = None, None
        if process is None or conn is None:
            return
        if not kill:
            try:
                conn.send(None)
                process.join(timeout=5)
            except (BrokenPipeError, OSError):
                pass
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        conn.close()
