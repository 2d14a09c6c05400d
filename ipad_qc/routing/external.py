"""External command hooks: a team's own binary (ISP toolchain, model CLI) as a removal step.

The command is an argument list run without a shell, so file names with spaces, quotes or ``;``
cannot turn into extra commands. Placeholders are replaced only when an argument contains them,
by plain string substitution of paths that ipad-qc chose:

``{input}``  the decoded image, upright, lossless (8-bit PNG or 16-bit TIFF)
``{mask}``   the class's mask, PNG 0/255 at the image size
``{map}``    the class's probability map, 8-bit PNG at the image size
``{output}`` where the command must write its result (any format ipad-qc reads; same size)
``{source}`` the original file (read it, never write it)
``{class}``  the artifact class (``flare``, ``moire``, ``ghosting``)

A non-zero exit status fails the image with the tail of the command's stderr; so does a command
that runs past the timeout (it is killed) or writes no readable output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ipad_qc.io import DecodeError, load_image
from ipad_qc.routing.api import RepairRequest
from ipad_qc.routing.isolation import HookResult
from ipad_qc.routing.writer import encode

_PLACEHOLDER = re.compile(r"\{(input|mask|map|output|source|class)\}")
STDERR_TAIL = 400


def substitute(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """Replace ``{name}`` placeholders in each argument; other text (even other braces) is left alone."""
    return [_PLACEHOLDER.sub(lambda match: values[match.group(1)], arg) for arg in argv]


def _write_png(path: Path, pixels: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    path.write_bytes(data.tobytes())


def _stderr_tail(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip()
    return " ".join(text[-STDERR_TAIL:].split()) or "(no stderr)"


class ExternalCommandHook:
    """Runs one configured command per image, in a scratch folder that is removed afterwards."""

    def __init__(self, argv: tuple[str, ...], timeout_s: float, scratch_root: Path) -> None:
        self.argv, self.timeout_s, self.scratch_root = argv, timeout_s, scratch_root
        self.name = argv[0]

    def _files(self, request: RepairRequest, folder: Path) -> dict[str, str]:
        pixels = request.image.pixels
        suffix = ".tiff" if pixels.dtype == np.uint16 else ".png"
        files = {"input": folder / f"input{suffix}", "mask": folder / "mask.png", "map": folder / "map.png",
                 "output": folder / f"output{suffix}"}
        files["input"].write_bytes(encode(pixels, suffix[1:]))
        _write_png(files["mask"], request.mask.astype(np.uint8) * np.uint8(255))
        _write_png(files["map"], np.clip(request.probability * 255.0 + 0.5, 0, 255).astype(np.uint8))
        return {**{key: str(path) for key, path in files.items()}, "source": str(request.image.meta.path),
                "class": request.artifact}

    def repair(self, request: RepairRequest) -> HookResult:
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="hook-", dir=self.scratch_root))
        try:
            values = self._files(request, folder)
            return self._run(substitute(self.argv, values), Path(values["output"]), request)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run(self, argv: list[str], output: Path, request: RepairRequest) -> HookResult:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired:
            return HookResult(error=f"command timed out after {self.timeout_s:g} s (killed): {argv[0]}")
        except OSError as exc:
            return HookResult(error=f"cannot run {argv[0]!r}: {exc.strerror or exc}")
        if done.returncode != 0:
            return HookResult(error=f"command exited with status {done.returncode}: {_stderr_tail(done.stderr)}")
        if not output.is_file():
            return HookResult(error=f"command exited 0 but wrote no {{output}} file: {argv[0]}")
        try:
            result = load_image(output).pixels
        except DecodeError as exc:
            return HookResult(error=f"command output unreadable: {exc.reason}")
        if result.shape != request.image.pixels.shape:
            return HookResult(error=f"command output is {result.shape[1]}x{result.shape[0]}, "
                                    f"expected {request.image.size[0]}x{request.image.size[1]}")
        return HookResult(pixels=result)

    def close(self, kill: bool = False) -> None:
        """Nothing stays running between images; present so the router closes every hook alike."""
