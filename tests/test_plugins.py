from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_routing_helpers import ColourCodeDetector, write_marked

from ipad_qc.cli import main
from ipad_qc.io.types import DecodedImage, ImageMeta
from ipad_qc.routing import Declined, RepairRequest, RoutingPolicy, available_hooks, create_hook, route, to_float
from ipad_qc.routing.pairs import make_pair
from ipad_qc.routing.policy import HookSpec
from ipad_qc.routing.quality import psnr
from ipad_qc.routing.repairs import RepairStore
from ipad_qc.scanner import ScanOptions, scan

HOOK_FOR = {"flare": "deflare", "moire": "demoire", "ghosting": "deghost"}
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "third_party_plugin"


def decoded(image: np.ndarray, depth: int) -> DecodedImage:
    peak, dtype = (255, np.uint8) if depth == 8 else (65535, np.uint16)
    pixels = np.round(np.clip(image, 0, 1) * peak).astype(dtype)
    meta = ImageMeta("pair.png", pixels.shape[1], pixels.shape[0], depth, "png", "full")
    return DecodedImage(pixels, meta)


def request_for(pair, depth: int = 8, with_reference: bool = False) -> RepairRequest:
    references = (decoded(pair.reference, depth),) if with_reference else ()
    return RepairRequest(decoded(pair.image, depth), pair.mask, pair.mask.astype(np.float32), pair.kind, pair.kind,
                         {}, "pair.png", references=references)


@pytest.mark.parametrize(("kind", "with_reference"), [("flare", False), ("moire", False), ("ghosting", False),
                                                      ("ghosting", True)])
def test_builtin_hook_improves_inside_mask_and_never_makes_it_worse(kind: str, with_reference: bool) -> None:
    hook = create_hook(HOOK_FOR[kind])
    gains = []
    for seed in range(4):
        pair = make_pair(kind, np.random.default_rng(seed), 160, 120)
        for depth in (8, 16):
            request = request_for(pair, depth, with_reference)
            out = hook.repair(request)
            original = request.image.pixels
            if isinstance(out, Declined):
                gains.append(0.0)
                continue
            assert out.dtype == original.dtype and out.shape == original.shape
            assert np.array_equal(out[~pair.mask], original[~pair.mask]), "no pixel outside the mask may change"
            gains.append(psnr(to_float(out), pair.truth, pair.mask) - psnr(to_float(original), pair.truth, pair.mask))
    assert min(gains) > -0.2, f"{HOOK_FOR[kind]} made an image worse: gains {gains}"
    if kind != "ghosting" or with_reference:  # the single-image model declines most bursts; it must not harm
        assert np.mean(gains) > 0.0, f"{HOOK_FOR[kind]} should improve PSNR inside the mask, gains {gains}"


def test_builtin_hooks_are_listed_through_entry_points() -> None:
    infos = {info.name: info for info in available_hooks()}
    assert {(infos[name].artifact, infos[name].origin) for name in HOOK_FOR.values()} == {
        ("flare", "built-in"), ("moire", "built-in"), ("ghosting", "built-in")}
    listing = CliRunner().invoke(main, ["plugins"])
    assert listing.exit_code == 0 and "deghost" in listing.output and "ghosting" in listing.output


def test_hook_options_are_validated() -> None:
    with pytest.raises(ValueError, match="strength must be between 0 and 1"):
        create_hook("deflare", strength=3)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory):
    """The example plugin pip-installed into a private folder (offline; nothing left in the venv or the repo,
    so it is built from a copy: setuptools writes build/ and egg-info next to the sources)."""
    source, target = tmp_path_factory.mktemp("src") / "plugin", tmp_path_factory.mktemp("site")
    shutil.copytree(EXAMPLE, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True, capture_output=True)
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in [module for module in sys.modules if module.startswith("ipad_qc_example_plugin")]:
        del sys.modules[name]


def test_third_party_plugin_is_discovered_and_routed_to(installed_example: Path, tmp_path: Path) -> None:
    info = {info.name: info for info in available_hooks()}["example-soften"]
    assert (info.artifact, info.version, info.origin) == ("flare", "0.2.0", "ipad-qc-example-plugin 0.2.0")
    root, run = tmp_path / "shots", tmp_path / "run"
    write_marked(root / "sun.png", ("flare",))
    scan(root, run, ScanOptions(workers=0), detector=ColourCodeDetector())
    route(run, RoutingPolicy(hooks={"flare": HookSpec("flare", plugin="example-soften")}))
    with RepairStore(run) as store:
        rows = list(store.rows())
    assert [(r["hook"], r["hook_version"], r["status"]) for r in rows] == [("example-soften", "0.2.0", "ok")]
    assert (run / "repaired" / "sun.png").exists()
