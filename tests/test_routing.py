from __future__ import annotations

import sqlite3
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image
from scan_fixtures import tree_hashes
from test_routing_helpers import ColourCodeDetector, create_scripted, write_marked

from ipad_qc.cli import main
from ipad_qc.detectors.registry import register_detector
from ipad_qc.io import load_image
from ipad_qc.routing import HookSpec, PolicyError, RoutingPolicy, load_policy, register_hook, route
from ipad_qc.routing.external import substitute
from ipad_qc.routing.repairs import RepairStore
from ipad_qc.scanner import ScanOptions, scan

register_hook("scripted", create_scripted)
register_detector("colour-code", lambda device="cpu", **_: ColourCodeDetector())


def scripted_policy(log: Path, **changes) -> RoutingPolicy:
    hooks = {name: HookSpec(name, plugin="scripted", options={"artifact": name, "log": str(log)})
             for name in ("ghosting", "flare", "moire")}
    return RoutingPolicy(hooks=hooks, timeout_s=changes.pop("timeout_s", 20), **changes)


def scanned(tmp_path: Path, files: dict[str, tuple[str, ...]], **kwargs) -> tuple[Path, Path]:
    root, run = tmp_path / "shots", tmp_path / "run"
    for index, (name, classes) in enumerate(files.items()):
        write_marked(root / name, classes, seed=index, **kwargs)
    scan(root, run, ScanOptions(workers=0), detector=ColourCodeDetector())
    return root, run


def log_lines(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def repairs(run: Path) -> dict[tuple[str, str], dict]:
    with RepairStore(run) as store:
        return {(row["path"], row["artifact"]): row for row in store.rows()}


def test_route_runs_hooks_only_on_flagged_images_and_survives_failures(tmp_path: Path) -> None:
    files = {"clean_a.png": (), "clean_b.png": (), "sun.png": ("flare",), "screen.png": ("moire",),
             "both.png": ("moire", "flare"), "boom_sun.png": ("flare",), "hang_sun.png": ("flare",)}
    root, run = scanned(tmp_path, files)
    before = tree_hashes(root)
    log = tmp_path / "calls.log"
    summary = route(run, scripted_policy(log, thresholds={"flare": 0.05, "moire": 0.05}, timeout_s=1.5))

    calls = log_lines(log)
    called = sorted((artifact, path) for artifact, path, _ in calls)
    assert called == sorted([("flare", "sun.png"), ("moire", "screen.png"), ("moire", "both.png"),
                             ("flare", "both.png"), ("flare", "boom_sun.png"), ("flare", "hang_sun.png")])
    assert [c[0] for c in calls if c[1] == "both.png"] == ["moire", "flare"], "default order: moiré before flare"
    assert all(int(pixels) > 0 for *_, pixels in calls), "every hook gets a non-empty mask"
    assert tree_hashes(root) == before, "originals are never modified"

    rows = repairs(run)
    assert rows[("boom_sun.png", "flare")]["status"] == "failed"
    assert "scripted failure" in rows[("boom_sun.png", "flare")]["error"]
    assert rows[("hang_sun.png", "flare")]["status"] == "failed"
    assert "timed out" in rows[("hang_sun.png", "flare")]["error"]
    assert rows[("sun.png", "flare")]["status"] == "ok" and rows[("sun.png", "flare")]["hook"] == "scripted"
    assert {path for path, _, _ in summary.failures} == {"boom_sun.png", "hang_sun.png"}
    repaired = cv2.imread(str(run / rows[("both.png", "flare")]["output_path"]))
    original = cv2.imread(str(root / "both.png"))
    changed = np.any(repaired != original, axis=2)
    assert changed.any() and changed.mean() < 0.3, "only the two class regions change"
    assert not (run / "repaired" / "boom_sun.png").exists()

    log.unlink()
    again = route(run, scripted_policy(log, thresholds={"flare": 0.05, "moire": 0.05}, timeout_s=1.5))
    assert again.skipped == 3 and again.routed == 2, "finished repairs are skipped, failed ones retried"
    assert sorted(path for _, path, _ in log_lines(log)) == ["boom_sun.png", "hang_sun.png"]


def test_class_gets_its_own_region_not_the_union(tmp_path: Path) -> None:
    _, run = scanned(tmp_path, {"both.png": ("moire", "flare")})
    log = tmp_path / "calls.log"
    route(run, scripted_policy(log, thresholds={"flare": 0.05, "moire": 0.05}))
    sizes = {artifact: int(pixels) for artifact, _, pixels in log_lines(log)}
    assert sizes["flare"] == pytest.approx(30 * 40, rel=0.3) and sizes["moire"] == pytest.approx(30 * 40, rel=0.3)


def test_dry_run_writes_nothing_and_sort_copies_or_links(tmp_path: Path) -> None:
    root, run = scanned(tmp_path, {"sun.png": ("flare",), "plain.png": ()})
    summary = route(run, RoutingPolicy(), dry_run=True)
    assert summary.plan == [("sun.png", ["flare"])]
    assert not (run / "repaired").exists()
    route(run, RoutingPolicy(sort="copy"))
    copied = run / "sorted" / "flare" / "sun.png"
    assert copied.read_bytes() == (root / "sun.png").read_bytes() and not copied.is_symlink()
    route(run, RoutingPolicy(sort="symlink"))
    assert copied.is_symlink() and copied.resolve() == (root / "sun.png").resolve()
    assert not (run / "sorted" / "clean").exists()


def test_sixteen_bit_tiff_stays_sixteen_bit_and_raw_becomes_tiff(tmp_path: Path) -> None:
    from ipad_qc.io.dng import mosaic, write_dng

    root, run = scanned(tmp_path, {"deep.tif": ("flare",)}, depth=16)
    rgb = np.full((64, 96, 3), 0.3)
    rgb[20:50, 10:40] = (0.0, 1.0, 0.0)
    write_dng(root / "shot.dng", mosaic(rgb))
    scan(root, run, ScanOptions(workers=0), detector=ColourCodeDetector())
    route(run, RoutingPolicy(thresholds={"flare": 0.05, "moire": 0.05}))
    rows = repairs(run)
    deep = tifffile.imread(run / rows[("deep.tif", "flare")]["output_path"])
    assert deep.dtype == np.uint16 and deep.shape == (90, 120, 3)
    raw_out = rows[("shot.dng", "flare")]["output_path"]
    assert raw_out == "repaired/shot.dng.tiff" and tifffile.imread(run / raw_out).dtype == np.uint16


def test_jpeg_keeps_exif_and_is_written_upright(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    write_marked(root / "tmp.png", ("flare",))
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "ipad-qc test camera", 6  # Make, Orientation: rotate 90°
    Image.open(root / "tmp.png").save(root / "sun.jpg", quality=95, exif=exif.tobytes())
    (root / "tmp.png").unlink()
    run = tmp_path / "run"
    scan(root, run, ScanOptions(workers=0), detector=ColourCodeDetector())
    route(run, RoutingPolicy())
    out = Image.open(run / "repaired" / "sun.jpg")
    assert out.getexif()[0x010F] == "ipad-qc test camera" and out.getexif()[0x0112] == 1
    assert out.size == load_image(root / "sun.jpg").size == (90, 120)


EXTERNAL = textwrap.dedent("""
    import sys, shutil, time
    mode, src, mask, out = sys.argv[1:5]
    if mode == "fail":
        sys.stderr.write("my_deflare: calibration file missing\\n"); sys.exit(3)
    if mode == "sleep":
        time.sleep(60)
    shutil.copy(src, out)
""")


@pytest.mark.parametrize(("mode", "status", "message"), [
    ("copy", "ok", None), ("fail", "failed", "exited with status 3: my_deflare: calibration file missing"),
    ("sleep", "failed", "timed out after 1 s")])
def test_external_command_hook(tmp_path: Path, mode: str, status: str, message: str | None) -> None:
    _, run = scanned(tmp_path, {"sun.png": ("flare",)})
    script = tmp_path / "my deflare;.py"  # a space and a semicolon: harmless without a shell
    script.write_text(EXTERNAL)
    command = (sys.executable, str(script), mode, "{input}", "{mask}", "{output}")
    summary = route(run, RoutingPolicy(hooks={"flare": HookSpec("flare", command=command)}, timeout_s=1))
    row = repairs(run)[("sun.png", "flare")]
    assert row["status"] == status and row["hook"] == "command:python" + sys.executable.split("python")[-1]
    if message:
        assert message in row["error"] and summary.failures
    else:
        assert (run / row["output_path"]).exists()
    assert not (run / ".routing-tmp").exists()


def test_placeholders_are_substituted_only_where_named() -> None:
    argv = ("tool", "--in={input}", "{mask}", "{not_a_placeholder}", "literal {", "{output}")
    values = {"input": "/a b/x;rm -rf.png", "mask": "m.png", "map": "", "output": "o.png", "source": "", "class": ""}
    assert substitute(argv, values) == ["tool", "--in=/a b/x;rm -rf.png", "m.png", "{not_a_placeholder}", "literal {",
                                        "o.png"]


def test_policy_file(tmp_path: Path) -> None:
    config = tmp_path / "ipad-qc.toml"
    config.write_text(textwrap.dedent("""
        [route]
        order = ["flare"]
        mask_threshold = 0.3
        [route.thresholds]
        flare = 0.4
        [route.hooks]
        moire = ["my_demoire", "{input}", "{mask}", "{output}"]
        ghosting = false
        [route.options.deflare]
        strength = 0.8
    """))
    policy = load_policy(config)
    assert policy.order == ("flare", "ghosting", "moire")
    assert policy.hooks["flare"].options == {"strength": 0.8} and "ghosting" not in policy.hooks
    assert policy.hooks["moire"].command[0] == "my_demoire" and policy.mask_threshold == 0.3
    row = {"status": "ok", "label": "moire", "score_flare": 0.45, "score_moire": 0.5, "score_ghosting": 0.05}
    assert policy.classes_for(row) == ["flare", "moire"]
    assert policy.classes_for({**row, "label": "clean"}) == [], "clean images are never routed"


@pytest.mark.parametrize(("text", "message"), [
    ("[route.hooks]\nsmudge = 'x'", "unknown artifact class 'smudge'"),
    ("[route.hooks]\nflare = ['x', '{input}', '{oops}', '{output}']", "unknown placeholder {oops}"),
    ("[route.hooks]\nflare = ['x', '{input}']", "must write its result to {output}"),
    ("[route.thresholds]\nflare = 2", "route.thresholds.flare: must be a number between 0 and 1"),
    ("[route]\nsort = 'move'", "route.sort: must be one of copy, hardlink, symlink"),
    ("[route]\ncolour = 1", "route.colour: unknown setting"),
])
def test_policy_errors_name_the_setting(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(PolicyError, match=None) as caught:
        load_policy(config)
    assert message in str(caught.value) and str(config) in str(caught.value)


def test_cli_scan_route_and_route_command(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    write_marked(root / "sun.png", ("flare",))
    write_marked(root / "plain.png", ())
    run = tmp_path / "run"
    runner = CliRunner()
    scanned_run = runner.invoke(main, ["scan", str(root), "--out", str(run), "--detector", "colour-code", "-q",
                                       "--workers", "0", "--no-report", "--route"])
    assert scanned_run.exit_code == 0, scanned_run.output
    assert (run / "repaired" / "sun.png").exists() and not (run / "repaired" / "plain.png").exists()
    dry = runner.invoke(main, ["route", str(run), "--dry-run", "--hook", "flare=deflare"])
    assert dry.exit_code == 0 and "sun.png" in dry.output and "deflare" in dry.output
    again = runner.invoke(main, ["route", str(run)])
    assert again.exit_code == 0 and "1 already finished" in again.output
    unknown = runner.invoke(main, ["route", str(run), "--hook", "flare=no-such-hook", "--force"])
    assert unknown.exit_code == 2 and "unknown removal hook 'no-such-hook'" in unknown.output
    bad = runner.invoke(main, ["route", str(run), "--command", "flare=tool {input}"])
    assert bad.exit_code == 2 and "{output}" in bad.output
    with sqlite3.connect(run / "results.sqlite") as db:
        assert db.execute("SELECT hook, status FROM repairs").fetchall() == [("deflare", "ok")]


def test_route_needs_a_scanned_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["route", str(tmp_path)])
    assert result.exit_code == 2 and "no results.sqlite" in " ".join(result.output.split())
