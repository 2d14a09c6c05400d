from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from scan_fixtures import create_bright_spot, shared_testdata, tree_hashes, write_jpeg

from ipad_qc.cli import main
from ipad_qc.detectors.registry import register_detector

register_detector("bright-spot", create_bright_spot)


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture()
def clean_folder(tmp_path: Path) -> Path:
    for i in range(3):
        write_jpeg(tmp_path / "shots" / f"c{i}.jpg", seed=i)
    return tmp_path / "shots"


def test_exit_codes(clean_folder: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    assert run("scan", str(clean_folder), "--out", out, "--detector", "bright-spot", "-q").exit_code == 0
    write_jpeg(clean_folder / "sun.jpg", bright=True)
    assert run("scan", str(clean_folder), "--out", out, "--detector", "bright-spot", "-q").exit_code == 0
    flagged = run("scan", str(clean_folder), "--out", out, "--detector", "bright-spot", "-q", "--fail-on", "flare")
    assert flagged.exit_code == 3 and "sun.jpg" in flagged.output
    high_bar = run("scan", str(clean_folder), "--out", out, "--detector", "bright-spot", "-q",
                   "--fail-on", "flare:0.95,moire")
    assert high_bar.exit_code == 0
    (clean_folder / "bad.png").write_bytes(b"garbage")
    assert run("scan", str(clean_folder), "--out", out, "--detector", "bright-spot", "-q").exit_code == 1


@pytest.mark.parametrize(
    "args",
    [["--fail-on", "smudge"], ["--fail-on", "flare:2"], ["--detector", "no-such-detector"], ["--raw-mode", "quarter"],
     ["--batch-size", "0"]],
)
def test_usage_errors_exit_2(clean_folder: Path, tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, ["scan", str(clean_folder), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output


def test_missing_root_is_usage_error(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["scan", str(tmp_path / "nope")]).exit_code == 2


def test_summary_and_default_run_folder(clean_folder: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("scan", str(clean_folder), "--detector", "bright-spot")
    assert result.exit_code == 0
    assert "clean" in result.output and "results.csv" in result.output
    assert (tmp_path / "runs" / "shots" / "results.csv").exists()


def test_help_teaches(tmp_path: Path) -> None:
    text = run("scan", "--help").output
    for expected in ("--raw-mode", "--fail-on", "Exit codes", "masks/", "--include"):
        assert expected in text


def test_detectors_lists_builtin_classic() -> None:
    output = run("detectors").output
    assert "classic" in output and "bright-spot" in output


def test_console_script_is_installed() -> None:
    exe = shutil.which("ipad-qc") or str(Path(sys.executable).with_name("ipad-qc"))
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert "ipad-qc" in result.stdout


def test_scan_shared_testdata(tmp_path: Path) -> None:
    testdata = shared_testdata()
    if testdata is None:
        pytest.skip("shared testdata not present")
    before = tree_hashes(testdata)
    result = subprocess.run([sys.executable, "-m", "ipad_qc.cli", "scan", str(testdata), "--out",
                             str(tmp_path / "run"), "-q"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert tree_hashes(testdata) == before
    with open(tmp_path / "run" / "results.csv", newline="", encoding="utf-8") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    stubs = [path for path in rows if path.startswith("raw-stubs/")]
    assert len(stubs) == 9 and all(rows[p]["status"] == "error" and rows[p]["error"] for p in stubs)
    assert rows["jpeg-broken/corrupted.jpg"]["status"] == "error"
    for name in ("Blackmagic.dng", "Nikon_uncompressed.nef", "RAW_KODAK_DC50_é.KDC", "canon_eos_6d.dng"):
        assert rows[f"raw/{name}"]["status"] == "ok", rows[f"raw/{name}"]["error"]
    portrait = {(rows[f"jpeg-orientation/portrait_{i}.jpg"]["width"],
                 rows[f"jpeg-orientation/portrait_{i}.jpg"]["height"]) for i in range(1, 9)}
    assert len(portrait) == 1, "EXIF orientation must give every portrait_N the same size"
    assert "SOURCES.md" not in rows
