"""``--engine ray`` against a real local Ray cluster (2 CPUs, no GPU), compared with the local engine."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from scan_fixtures import write_jpeg

from ipad_qc.cli import main
from ipad_qc.scanner import DecodeJob, DecodeOutcome, ScanError, ScanOptions, decode_job, scan
from ipad_qc.store import ResultStore

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ipad-qc[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ipad-qc[ray]')")

from ipad_qc.ray_engine import RAY_MISSING, WORKER_DIED, RayEngine  # noqa: E402

TIMING_COLUMNS = {"decode_ms", "detect_ms", "scanned_at"}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> None:
    """One local cluster for the module; workers import this folder's helpers (the crashing decoder)."""
    tests_dir = str(Path(__file__).parent)
    python_path = os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": python_path}})
    yield
    ray.shutdown()


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "shots"


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    """The bundled examples (JPEG, 16-bit TIFF, DNG; clean and flagged shots) plus a broken file."""
    root = tmp_path / "shots"
    shutil.copytree(EXAMPLES, root)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    return root


def rows_without_timings(run_dir: Path) -> dict[str, dict]:
    with ResultStore(run_dir) as store:
        return {row["path"]: {k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in store.rows()}


def output_files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for folder in ("masks", "maps", "thumbs")
            for p in sorted((run_dir / folder).rglob("*")) if p.is_file()}


def test_ray_engine_gives_the_local_engines_rows_and_files_and_resumes(shots: Path, tmp_path: Path) -> None:
    options = ScanOptions(batch_size=3)
    local = scan(shots, tmp_path / "local", ScanOptions(batch_size=3, workers=0))
    on_ray = scan(shots, tmp_path / "ray", options, engine=RayEngine())
    assert (on_ray.scanned, on_ray.failed, on_ray.skipped) == (local.scanned, local.failed, 0) == (10, 1, 0)
    assert on_ray.labels == local.labels
    assert set(local.labels) - {"clean"}, "some examples are flagged, so their masks are compared too"
    assert rows_without_timings(tmp_path / "ray") == rows_without_timings(tmp_path / "local")
    assert output_files(tmp_path / "ray") == output_files(tmp_path / "local")
    assert (tmp_path / "ray" / "results.csv").read_text().count("\n") == 12

    again = scan(shots, tmp_path / "ray", options, engine=RayEngine())
    assert (again.scanned, again.failed, again.skipped) == (0, 0, 11)
    write_jpeg(shots / "new.jpg", seed=42)
    switched = scan(shots, tmp_path / "ray", ScanOptions(workers=0))
    assert (switched.scanned, switched.skipped) == (1, 11), "same settings hash: switching engines rescans nothing"


def crash_once_or_always(job: DecodeJob, markers: Path) -> DecodeOutcome:
    """Stands in for a decoder library that segfaults: ``once_*`` files kill their worker the first
    time only (Ray's task retry must recover them), ``always_*`` files every time."""
    name = Path(job.path).name
    marker = markers / name
    if name.startswith("always_") or (name.startswith("once_") and not marker.exists()):
        marker.touch()
        os._exit(11)
    return decode_job(job)


def test_dying_workers_lose_and_duplicate_no_row(shots: Path, tmp_path: Path) -> None:
    for name in ("once_a.jpg", "once_b.jpg", "always_c.jpg"):
        write_jpeg(shots / name, seed=len(name))
    markers = tmp_path / "markers"
    markers.mkdir()
    engine = RayEngine(decode=functools.partial(crash_once_or_always, markers=markers))
    summary = scan(shots, tmp_path / "run", ScanOptions(batch_size=4), engine=engine)
    rows = rows_without_timings(tmp_path / "run")
    assert len(rows) == 14 and (summary.scanned, summary.failed) == (12, 2)
    assert rows["once_a.jpg"]["status"] == rows["once_b.jpg"]["status"] == "ok"
    assert rows["always_c.jpg"]["error"] == WORKER_DIED
    assert (markers / "once_a.jpg").exists(), "the worker really died once"


def test_cli_engine_ray(shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["scan", str(shots), "--out", str(out), "--engine", "ray", "-q", "--no-report"])
    assert result.exit_code == 1, result.output  # broken.jpg is an error row
    flagged = [row for row in rows_without_timings(out).values() if row["mask_path"]]
    assert flagged, "the default detector flags some of the bundled examples"
    mask = cv2.imread(str(out / flagged[0]["mask_path"]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (flagged[0]["height"], flagged[0]["width"]) and set(np.unique(mask)) <= {0, 255}
    usage = CliRunner().invoke(main, ["scan", str(shots), "--out", str(out), "--ray-address", "auto"])
    assert usage.exit_code == 2 and "--engine ray" in usage.output


def test_unknown_detector_fails_before_any_file(shots: Path, tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="unknown detector"):
        scan(shots, tmp_path / "run", ScanOptions(detector="no-such-detector"), engine=RayEngine())
    assert not (tmp_path / "run" / "results.csv").exists()


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ScanError, match=r"pip install 'ipad-qc\[ray\]'") as error:
        RayEngine()
    assert str(error.value) == RAY_MISSING
