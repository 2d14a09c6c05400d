"""The lower-severity defects of issue 13 (each failed before the fix): unusable databases, read-only
and busy run folders, long and colliding names, CSV formulas, bad option values, failed side outputs.
"""

from __future__ import annotations

import csv
import errno
import os
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from fault_fixtures import rows, run_cli, tamper, unprivileged
from scan_fixtures import BrightSpotDetector, create_bright_spot, write_jpeg

from ipad_qc.cli import main
from ipad_qc.detectors.registry import register_detector
from ipad_qc.scanner import ScanOptions, scan

register_detector("bright-spot", create_bright_spot)
BRIGHT = ("--detector", "bright-spot", "--workers", "0")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture()
def scanned(tmp_path: Path) -> tuple[Path, Path]:
    root, run = tmp_path / "shots", tmp_path / "run"
    write_jpeg(root / "sun.jpg", bright=True)
    write_jpeg(root / "dark.jpg", seed=1)
    scan(root, run, ScanOptions(workers=0), detector=BrightSpotDetector())
    return root, run


def _one_line_error(result, code: int, words: str) -> None:
    assert result.exit_code == code, result.output
    assert words in result.output and "Traceback" not in result.output


def test_broken_or_newer_results_database_is_a_one_line_usage_error(scanned: tuple[Path, Path]) -> None:
    root, run = scanned
    tamper(run, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    for command in (("scan", str(root), "--out", str(run), *BRIGHT), ("route", str(run)), ("report", str(run))):
        _one_line_error(cli(*command), 2, "newer ipad-qc")
    for name in os.listdir(run):
        if name.startswith("results.sqlite"):
            (run / name).unlink()
    (run / "results.sqlite").write_bytes(b"this is not a database, it is a CI artifact gone wrong" * 100)
    for command in (("scan", str(root), "--out", str(run), *BRIGHT), ("route", str(run)), ("report", str(run))):
        _one_line_error(cli(*command), 2, "results.sqlite")


def test_read_only_run_folder_is_exit_4(scanned: tuple[Path, Path]) -> None:
    prefix = unprivileged()
    root, run = scanned
    write_jpeg(root / "new.jpg", seed=3)
    run.chmod(0o555)
    try:
        scanning = run_cli("scan", str(root), "--out", str(run), *BRIGHT, "-q", prefix=prefix)
        routing = run_cli("route", str(run), "--sort", "copy", "-q", prefix=prefix)
    finally:
        run.chmod(0o755)
    for result in (scanning, routing):
        assert result.returncode == 4, result.stderr
        assert "cannot write the run folder" in result.stderr and "Traceback" not in result.stderr
    assert set(rows(run)) == {"sun.jpg", "dark.jpg"}


def test_second_writer_of_a_run_folder_is_refused_with_the_holders_pid(scanned: tuple[Path, Path]) -> None:
    from ipad_qc.runfolder import lock

    root, run = scanned
    with lock(run):
        for command in (("scan", str(root), "--out", str(run), *BRIGHT, "-q"), ("route", str(run), "-q"),
                        ("report", str(run))):
            _one_line_error(cli(*command), 4, f"in use by another ipad-qc process (pid {os.getpid()})")
    assert cli("scan", str(root), "--out", str(run), *BRIGHT, "-q").exit_code == 0, "the lock is released"


def test_names_up_to_255_bytes_get_their_masks_and_maps(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    names = ["é" * 125 + "a.jpg", "é" * 125 + "b.jpg", "x" * 250 + ".jpg"]  # 255, 255 and 254 bytes
    for i, name in enumerate(names):
        write_jpeg(root / name, bright=True, seed=i)
    summary = scan(root, tmp_path / "run", ScanOptions(workers=0), detector=BrightSpotDetector())
    assert (summary.scanned, summary.failed) == (3, 0)
    found = rows(tmp_path / "run")
    masks = {found[name]["mask_path"] for name in names} | {found[name]["map_path"] for name in names}
    assert len(masks) == 6 and all((tmp_path / "run" / path).is_file() for path in masks)
    assert all(len(os.fsencode(Path(path).name)) <= 255 for path in masks)


def test_file_beside_a_folder_named_like_its_mask_gets_both_outputs(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    write_jpeg(root / "x.png", bright=True)
    write_jpeg(root / "x.png.png" / "y.png", bright=True, seed=1)
    summary = scan(root, tmp_path / "run", ScanOptions(workers=0), detector=BrightSpotDetector())
    assert (summary.scanned, summary.failed) == (2, 0)
    found = rows(tmp_path / "run")
    paths = [found[name][column] for name in ("x.png", "x.png.png/y.png") for column in ("mask_path", "map_path")]
    assert len(set(paths)) == 4 and all((tmp_path / "run" / path).is_file() for path in paths)


def test_csv_cells_of_names_never_run_as_spreadsheet_formulas(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    for i, name in enumerate(("=HYPERLINK(1).jpg", "+x.jpg", "-x.jpg", "@x.jpg", "plain.jpg")):
        write_jpeg(root / name, seed=i)
    scan(root, tmp_path / "run", ScanOptions(workers=0), detector=BrightSpotDetector())
    with open(tmp_path / "run" / "results.csv", newline="", encoding="utf-8") as handle:
        paths = {row["path"] for row in csv.DictReader(handle)}
    assert paths == {"'=HYPERLINK(1).jpg", "'+x.jpg", "'-x.jpg", "'@x.jpg", "plain.jpg"}
    assert "=HYPERLINK(1).jpg" in rows(tmp_path / "run"), "the database and JSONL keep the real name"


@pytest.mark.parametrize("config", ["mask_threshold = nan", "timeout_s = inf", "hooks = 5", "thresholds = 5",
                                    "options = 5", "references = 3"])
def test_bad_routing_config_values_are_usage_errors(scanned: tuple[Path, Path], config: str) -> None:
    _, run = scanned
    path = run.parent / "ipad-qc.toml"
    path.write_text(f"[route]\n{config}\n")
    _one_line_error(cli("route", str(run), "--config", str(path)), 2, "route.")


@pytest.mark.parametrize(("args", "words"), [
    (("--include", "[z-a]"), "--include '[z-a]' is not a valid pattern"),
    (("--exclude", "[z-a]"), "--exclude '[z-a]' is not a valid pattern"),
    (("--detector-option", "threshold=abc"), "cannot be made with threshold='abc'"),
    (("--max-megapixels", "nan"), "not a finite number"), (("--max-megapixels", "inf"), "not a finite number"),
])
def test_bad_scan_option_values_are_usage_errors(scanned: tuple[Path, Path], args: tuple[str, str],
                                                 words: str) -> None:
    root, run = scanned
    _one_line_error(cli("scan", str(root), "--out", str(run), "--workers", "0", *args), 2, words)


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_route_timeout_must_be_finite(scanned: tuple[Path, Path], value: str) -> None:
    result = CliRunner().invoke(main, ["route", str(scanned[1]), "--timeout", value])
    assert result.exit_code == 2 and "Invalid value for '--timeout'" in result.output


def test_failed_thumbnail_or_map_is_a_warning_on_a_finished_row(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "shots"
    write_jpeg(root / "sun.jpg", bright=True)

    def fails(*args, **kwargs):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr("ipad_qc.scanning.writer.write_thumbnails", fails)
    monkeypatch.setattr("ipad_qc.scanning.writer.write_probability_map", fails)
    summary = scan(root, tmp_path / "run", ScanOptions(workers=0), detector=BrightSpotDetector())
    row = rows(tmp_path / "run")["sun.jpg"]
    assert (summary.scanned, summary.failed) == (1, 0) and row["label"] == "flare"
    assert "probability map not written" in row["warning"] and "thumbnail not written" in row["warning"]
    assert (tmp_path / "run" / row["mask_path"]).is_file()


def test_bogus_tiff_says_what_is_wrong(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    root.mkdir()
    (root / "bogus.tif").write_bytes(b"II*\x00" + struct.pack("<I", 9999) + bytes(20))  # first page past the end
    summary = scan(root, tmp_path / "run", ScanOptions(workers=0), detector=BrightSpotDetector())
    reason = dict(summary.errors)["bogus.tif"]
    assert "no readable page" in reason and "IndexError" not in reason


def test_exit_code_4_is_documented_in_help_and_readme() -> None:
    for command in ("scan", "route", "report"):
        assert "4 the run folder could not be written" in " ".join(cli(command, "--help").output.split())
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "| 4 | the run folder could not be written" in readme and "`--prune`" in readme
