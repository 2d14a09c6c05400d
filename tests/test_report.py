"""report.html: built from the results database, cached thumbnails, layout by size, inert file names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from report_fixtures import EVIL_NAME, EVIL_PATH, make_shots, result_row, scan_run, store_rows
from scan_fixtures import create_bright_spot

import ipad_qc.report.build as build_module
from ipad_qc.cli import main
from ipad_qc.detectors.registry import register_detector
from ipad_qc.outputs import overlay_pixels
from ipad_qc.report import ReportError, build_report
from ipad_qc.report.page import embed_json

register_detector("bright-spot", create_bright_spot)

SHOTS = {"a/clean.jpg": "clean", "a/sun.jpg": "bright", "b/sun2.jpg": "bright", "bad.jpg": "broken",
         EVIL_PATH: "bright", EVIL_NAME: "clean"}


def page_data(page: Path) -> dict:
    block = re.search(r'<script type="application/json" id="ipad-data">(.*?)</script>', page.read_text("utf-8"), re.S)
    data = json.loads(block.group(1))
    return {**data, "rows": [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]}


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    return scan_run(make_shots(tmp_path / "shots", SHOTS), tmp_path / "run")


def test_scan_writes_the_report_and_no_report_skips_it(tmp_path: Path) -> None:
    shots = make_shots(tmp_path / "shots", {"c.jpg": "clean", "s.jpg": "bright"})
    args = ["scan", str(shots), "--detector", "bright-spot", "--workers", "0", "-q", "--out"]
    assert CliRunner().invoke(main, [*args, str(tmp_path / "r1")]).exit_code == 0
    rows = {row["path"]: row for row in page_data(tmp_path / "r1" / "report.html")["rows"]}
    assert rows["s.jpg"]["label"] == "flare" and rows["s.jpg"]["overlay"].startswith("data:image/png;base64,")
    assert rows["c.jpg"]["thumb"].startswith("data:image/jpeg;base64,") and rows["c.jpg"]["overlay"] is None
    assert CliRunner().invoke(main, [*args, str(tmp_path / "r2"), "--no-report"]).exit_code == 0
    assert not (tmp_path / "r2" / "report.html").exists()


def test_page_holds_every_row_with_its_pictures(run: Path) -> None:
    result = build_report(run)
    assert result.layout == "single" and result.rows == len(SHOTS) and not result.problems
    data = page_data(result.path)
    rows = {row["path"]: row for row in data["rows"]}
    assert set(rows) == set(SHOTS)
    assert rows["bad.jpg"]["status"] == "error" and rows["bad.jpg"]["error"] and rows["bad.jpg"]["thumb"] is None
    flagged = rows["a/sun.jpg"]
    assert flagged["scores"][data["classes"].index("flare")] > 0.5 and flagged["view_overlay"]
    assert rows["a/clean.jpg"]["view"] is None, "large views are made for flagged images only"


def test_file_names_cannot_break_out_of_the_data_block(run: Path) -> None:
    text = build_report(run).path.read_text("utf-8")
    assert text.count("</script>") == 2  # the data block and the page's own script, nothing from a name
    assert "window.pwned" not in text.split('id="ipad-data">')[0]
    assert "<img src=x" not in text
    assert {EVIL_PATH, EVIL_NAME} <= {row["path"] for row in page_data(run / "report.html")["rows"]}
    assert embed_json({"p": "</script><!--&"}) == '{"p":"\\u003c/script\\u003e\\u003c!--\\u0026"}'


def test_strict_content_security_policy(run: Path) -> None:
    text = build_report(run).path.read_text("utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text).group(1)
    assert "default-src 'none'" in policy and "img-src data:;" in policy
    assert "'unsafe-inline'" not in policy and "http" not in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", policy)


def test_rebuild_reads_the_cache_and_never_the_detector(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_report(run)
    thumbs = {p.name: p.stat().st_mtime_ns for p in (run / "thumbs").iterdir()}
    import ipad_qc.detectors.registry as registry

    monkeypatch.setattr(registry, "get_detector", lambda *a, **k: pytest.fail("a report must not detect"))
    for original in (run.parent / "shots").rglob("*.jpg"):
        original.unlink()  # a rebuild must not need the originals once their thumbnails exist
    result = build_report(run)
    assert not result.problems
    assert {p.name: p.stat().st_mtime_ns for p in (run / "thumbs").iterdir()} == thumbs


def test_missing_originals_keep_their_rows_and_masks(run: Path) -> None:
    for original in (run.parent / "shots").rglob("*.jpg"):
        original.unlink()
    cached = {row["path"]: row for row in page_data(build_report(run).path)["rows"]}
    assert cached["a/sun.jpg"]["thumb"], "thumbnails the scan wrote keep working without the originals"
    shutil.rmtree(run / "thumbs")
    result = build_report(run)
    rows = {row["path"]: row for row in page_data(result.path)["rows"]}
    assert rows["a/sun.jpg"]["thumb"] is None and rows["a/sun.jpg"]["overlay"]
    assert "original not found" in rows["a/sun.jpg"]["note"]
    assert any(path == "a/sun.jpg" for path, _ in result.problems)


def test_layout_folder_above_the_size_limit(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "choose_inline", lambda layout, size: size <= 1000 and layout != "folder")
    result = build_report(run)
    assert result.layout == "folder"
    text = result.path.read_text("utf-8")
    assert "img-src data: 'self'" in text and "base64," not in text
    rows = {row["path"]: row for row in page_data(result.path)["rows"]}
    assert rows["a/sun.jpg"]["thumb"].startswith("thumbs/") and (run / rows["a/sun.jpg"]["thumb"]).is_file()


def test_forced_layouts(run: Path) -> None:
    assert build_report(run, layout="folder").layout == "folder"
    assert build_report(run, layout="single").layout == "single"


def test_stale_thumbnails_are_pruned(run: Path) -> None:
    build_report(run)
    (run / "thumbs" / "old-256.jpg").write_bytes(b"x")
    build_report(run)
    assert not (run / "thumbs" / "old-256.jpg").exists()


def test_report_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not an ipad-qc run folder" in result.output and str(tmp_path) in result.output
    with pytest.raises(ReportError, match="results.sqlite"):
        build_report(tmp_path)
    assert not (tmp_path / "results.sqlite").exists(), "a failed report must not create a database"


def test_rows_without_images_still_render(tmp_path: Path) -> None:
    run = store_rows(tmp_path / "run", [result_row("only/row.jpg", "moire", moire=0.7)])
    result = build_report(run)
    rows = page_data(result.path)["rows"]
    assert rows[0]["path"] == "only/row.jpg" and rows[0]["thumb"] is None and rows[0]["note"]


def test_overlay_is_translucent_fill_with_opaque_outline() -> None:
    mask = np.zeros((400, 400), np.uint8)
    mask[100:300, 100:300] = 255
    overlay = overlay_pixels(mask, (100, 100), "ghosting")
    alpha = overlay[..., 3]
    assert alpha[0, 0] == 0 and 0 < alpha[50, 50] < 128 and alpha[25, 50] == 255
    assert tuple(overlay[50, 50, :3]) == (255, 64, 64)  # RGBA: the ghosting red
