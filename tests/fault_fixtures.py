"""Helpers of the fault-injection tests: run the CLI in a child process, without root's powers, and
make the hostile inputs (damaged JPEGs, pixel bombs, tampered databases) the tests feed it.
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: The child's import path: this checkout first, so the tests exercise the code under test.
CHILD_PATH = os.pathsep.join([str(REPO), str(REPO / "plugins"), str(TESTS), os.environ.get("PYTHONPATH", "")])

#: Registers the test detector, then runs the CLI: ``python -c CLI_SCRIPT scan ...``.
CLI_SCRIPT = (
    "import sys\n"
    "from scan_fixtures import create_bright_spot\n"
    "from ipad_qc.detectors.registry import register_detector\n"
    "register_detector('bright-spot', create_bright_spot)\n"
    "from ipad_qc.cli import main\n"
    "main(sys.argv[1:])\n"
)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": CHILD_PATH, "COLUMNS": "200"}


def run_cli(*args: str, prefix: tuple[str, ...] = (), timeout: float = 120, script: str = CLI_SCRIPT,
            **kwargs) -> subprocess.CompletedProcess[str]:
    """The ``ipad-qc`` CLI (with the ``bright-spot`` test detector) in a child process."""
    return subprocess.run([*prefix, sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(), **kwargs)


@functools.cache
def _unprivileged_prefix() -> tuple[str, ...] | None:
    """How to run a child without root's override of file permissions, or ``None`` if we cannot.

    Not root: nothing to do. Root: a new user namespace (``unshare --user``) keeps the same files
    reachable but makes the kernel check permission bits as for an ordinary owner, so ``chmod 000``
    and read-only folders mean what they say.
    """
    if os.geteuid() != 0:
        return ()
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--user", "true"], capture_output=True).returncode == 0:
        return (unshare, "--user")
    return None


def unprivileged() -> tuple[str, ...]:
    """Prefix for a child that permission bits bind; skips the test (saying why) where none exists."""
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root without user namespaces (unshare --user): chmod cannot stop root")
    return prefix


def rows(run_dir: Path) -> dict[str, dict]:
    """The results rows of a run folder by path (read without writing anything)."""
    with sqlite3.connect(f"file:{run_dir / 'results.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return {row["path"]: dict(row) for row in db.execute("SELECT * FROM results")}


def tamper(run_dir: Path, sql: str, *params: object) -> None:
    """Edit a run folder's database the way someone handing over a CI artifact could."""
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        db.execute(sql, params)


def files_under(folder: Path, hidden: bool = True) -> set[str]:
    """Every file below ``folder`` (relative POSIX paths)."""
    found = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file() or path.is_symlink()}
    return found if hidden else {path for path in found if not any(part.startswith(".") for part in path.split("/"))}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(path: Path, side: int) -> Path:
    """A valid all-black 1-bit PNG of ``side`` x ``side``: a few tens of KB for hundreds of megapixels."""
    packer = zlib.compressobj(9)
    row = bytes(1 + -(-side // 8))
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
                     + _png_chunk(b"IEND", b""))
    return path


def forged_jpeg(source: bytes, width: int, height: int) -> bytes:
    """``source`` with its frame header claiming ``width`` x ``height``."""
    data = bytearray(source)
    start = data.index(b"\xff\xc0")
    data[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(data)
