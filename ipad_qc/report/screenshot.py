"""``--screenshot``: a PNG of a page as headless Chromium renders it, to show users what to expect."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ipad_qc.report.run import ReportError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Headless, and nothing that would phone home: the page itself cannot reach the network anyway.
QUIET_FLAGS = ("--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio")


def find_browser(explicit: str | None = None) -> str:
    """The Chromium/Chrome executable to use: ``explicit`` or the first of :data:`BROWSERS` on PATH."""
    candidates = [explicit] if explicit else list(BROWSERS)
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    wanted = explicit or " / ".join(BROWSERS)
    raise ReportError(f"--screenshot needs Chromium or Chrome: {wanted} not found; install chromium "
                      "(e.g. `apt-get install chromium`) or pass --browser PATH")


def browser_flags(user_data_dir: str) -> list[str]:
    """Flags for a throw-away headless browser; root needs --no-sandbox (Chromium refuses otherwise)."""
    flags = [*QUIET_FLAGS, f"--user-data-dir={user_data_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")
    return flags


def screenshot(page: Path, png: Path, browser: str | None = None, size: tuple[int, int] = (1440, 1200)) -> Path:
    """Render ``page`` in headless Chromium and save the visible part (``size``) as ``png``."""
    executable = find_browser(browser)
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ipad-qc-chromium-") as profile:
        command = [executable, *browser_flags(profile), f"--window-size={size[0]},{size[1]}",
                   "--virtual-time-budget=5000", f"--screenshot={png}", page.resolve().as_uri()]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReportError(f"{executable}: could not take the screenshot ({exc})") from None
    if result.returncode != 0 or not png.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReportError(f"{executable}: screenshot failed (exit {result.returncode}): {last}")
    return png
