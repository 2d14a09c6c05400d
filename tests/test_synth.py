"""``ipad-qc synth``: the IPAD data-set format, reproducible generation and artifacts put where they belong."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ipad_qc.cli import main
from ipad_qc.datasets.manifest import FIELDS, SPLITS, ManifestError, Sample, read_manifest, write_manifest
from ipad_qc.datasets.synth import (
    Job,
    SynthSettings,
    allocate,
    crop_resize,
    label_sequence,
    load_source,
    plan_jobs,
    quantise,
    render,
    synthesize,
)
from ipad_qc.synthetic import clean_scene

SIZE, COUNT = 96, 12
SETTINGS = SynthSettings(count=COUNT, size=SIZE, seed=0)


def _save(path: Path, image: np.ndarray) -> str:
    cv2.imwrite(str(path), cv2.cvtColor(quantise(image), cv2.COLOR_RGB2BGR))
    return str(path)


def _scene(seed: int) -> np.ndarray:
    return clean_scene(np.random.default_rng(seed), 160, 120, lamps=0)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clean")
    for seed in range(6):
        _save(folder / f"photo {seed}.png", clean_scene(np.random.default_rng(seed), 160, 120))
    return folder


@pytest.fixture(scope="module")
def dataset(clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sets") / "first"
    synthesize(clean_dir, out, SETTINGS, workers=0)
    return out


# --- the format -----------------------------------------------------------------------------


def test_manifest_has_the_fixed_schema_and_every_path_exists(dataset: Path) -> None:
    assert (dataset / "manifest.csv").read_text().splitlines()[0] == ",".join(FIELDS)
    samples = read_manifest(dataset)
    assert len(samples) == COUNT
    for sample in samples:
        assert sample.source == "synthetic"
        assert sample.image == f"images/{sample.split}/{sample.label}/{Path(sample.image).name}"
        assert (dataset / sample.image).is_file()
        if sample.mask:
            assert sample.mask == "masks" + sample.image[len("images"):]
            assert (dataset / sample.mask).is_file()
    record = json.loads((dataset / "synth.json").read_text())
    assert SynthSettings.from_json(record["settings"]) == SETTINGS and record["ipad_qc_version"]
    assert len(record["samples"]) == COUNT


def test_images_are_square_rgb_and_masks_match_and_are_empty_iff_clean(dataset: Path) -> None:
    for sample in read_manifest(dataset):
        image = cv2.imread(str(dataset / sample.image), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert (sample.mask is None) == (sample.label == "clean")
        if sample.mask:
            mask = cv2.imread(str(dataset / sample.mask), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 255}
            assert (mask > 0).any(), f"{sample.mask} is empty"


def test_split_and_class_ratios_are_respected_and_every_split_is_present(dataset: Path) -> None:
    samples = read_manifest(dataset)
    splits = Counter(sample.split for sample in samples)
    assert set(splits) == set(SPLITS)
    for split, ratio in zip(SPLITS, SETTINGS.splits, strict=True):
        assert abs(splits[split] - ratio * COUNT) < 1
    labels = Counter(sample.label for sample in samples)
    for label, weight in SETTINGS.class_weights().items():
        assert abs(labels[label] - weight * COUNT) <= 1


def test_one_photo_never_feeds_two_splits(dataset: Path) -> None:
    records = json.loads((dataset / "synth.json").read_text())["samples"]
    splits_of = {}
    for record in records:
        splits_of.setdefault(record["source"], set()).add(record["split"])
    assert all(len(splits) == 1 for splits in splits_of.values())


def test_contact_sheet_is_a_readable_picture_with_a_row_per_class(dataset: Path) -> None:
    sheet = cv2.imread(str(dataset / "contact_sheet.jpg"))
    assert sheet is not None
    assert sheet.shape[0] > 4 * 160 and sheet.shape[1] > 6 * 160


def test_manifest_round_trip_and_rejections(tmp_path: Path) -> None:
    rows = [Sample("images/train/clean/a_0.png", None, "clean", "train", "synthetic"),
            Sample("images/val/flare/b_1.png", "masks/val/flare/b_1.png", "flare", "val", "synthetic"),
            Sample("real/moire/c.jpg", None, "moire", "test", "real")]
    write_manifest(tmp_path, rows)
    assert read_manifest(tmp_path) == rows
    bad = [Sample("images/a.png", "masks/a.png", "clean", "train", "synthetic"),
           Sample("images/a.png", None, "flare", "train", "synthetic"),
           Sample("/abs/a.png", None, "clean", "train", "real"),
           Sample("../a.png", None, "clean", "train", "real"),
           Sample("images/a.png", None, "blur", "train", "real"),
           Sample("images/a.png", None, "clean", "holdout", "real")]
    for sample in bad:
        with pytest.raises(ManifestError, match="row 2"):
            write_manifest(tmp_path, [sample])
    lines = [",".join(FIELDS), "images/a.png,,clean,train,synthetic", "x,,blur,train,real"]
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match="line 3: label 'blur'"):
        read_manifest(tmp_path / "manifest.csv")
    (tmp_path / "manifest.csv").write_text("path,label\n")
    with pytest.raises(ManifestError, match="line 1: header"):
        read_manifest(tmp_path)


# --- planning -------------------------------------------------------------------------------


def test_allocate_and_label_sequence_keep_proportions() -> None:
    assert allocate(12, [0.8, 0.1, 0.1], at_least_one=True) == [10, 1, 1]
    assert allocate(3, [0.98, 0.01, 0.01], at_least_one=True) == [1, 1, 1]
    assert sum(allocate(2, [0.8, 0.1, 0.1], at_least_one=True)) == 2
    labels = label_sequence(8, {"clean": 0.25, "flare": 0.75})
    assert Counter(labels[:4]) == {"clean": 1, "flare": 3} and Counter(labels) == {"clean": 2, "flare": 6}


def test_plan_warns_when_there_are_fewer_photos_than_splits() -> None:
    jobs, notes = plan_jobs([("/a.png", "a.png"), ("/b.png", "b.png")], SETTINGS)
    assert len(jobs) == COUNT and {job.split for job in jobs} == set(SPLITS)
    assert notes and "share photos" in notes[0]


# --- reproducibility ------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(clean_dir: Path, dataset: Path,
                                                                    tmp_path: Path) -> None:
    synthesize(clean_dir, tmp_path / "again", SETTINGS, workers=2)
    assert _files(tmp_path / "again") == _files(dataset)


def test_another_seed_gives_another_data_set(clean_dir: Path, dataset: Path, tmp_path: Path) -> None:
    synthesize(clean_dir, tmp_path / "other", SynthSettings(count=COUNT, size=SIZE, seed=1), workers=0,
               contact_sheet=False)
    def images(root: Path) -> set[bytes]:
        return {data for name, data in _files(root).items() if name.startswith("images/")}

    assert not images(dataset) & images(tmp_path / "other")


# --- artifacts where they belong ------------------------------------------------------------

FULL_FRAME = SynthSettings(count=COUNT, size=SIZE, seed=0, crop_min=1.0)  # crop = whole photo: scale only


def _job(path: str, label: str, index: int = 0) -> Job:
    return Job(index, path, Path(path).name, label, "train", f"x_{index}")


@pytest.mark.parametrize("index", range(3))
def test_flare_is_put_on_a_bright_light_source(tmp_path: Path, index: int) -> None:
    scene = _scene(10 + index)
    cv2.circle(scene, (120, 30), 16, (0.1, 0.1, 0.15), -1)  # a lamp against the night sky
    cv2.circle(scene, (120, 30), 6, (1.0, 1.0, 1.0), -1)
    _, mask, details = render(_job(_save(tmp_path / "lamp.png", scene), "flare", index), FULL_FRAME)
    assert details["placement"] == "detected"
    x, y = details["source_xy"]
    assert abs(x - 120 * SIZE / 160) < 2 and abs(y - 30 * SIZE / 120) < 2
    disc = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(disc, (72, 24), (3, 4), 0, 0, 360, 1, -1)
    assert mask[disc > 0].all()


@pytest.mark.parametrize("index", range(3))
def test_moire_is_put_on_a_bright_screen_quadrilateral(tmp_path: Path, index: int) -> None:
    scene = _scene(20 + index)
    screen = np.array([[40, 30], [125, 36], [118, 95], [46, 88]], np.int32)
    cv2.polylines(scene, [screen], True, (0.05, 0.05, 0.05), 4)  # the bezel
    cv2.fillPoly(scene, [screen], (0.92, 0.93, 0.96))
    _, mask, details = render(_job(_save(tmp_path / "screen.png", scene), "moire", index), FULL_FRAME)
    assert details["placement"] == "detected"
    planted = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(planted, [np.round(screen * [SIZE / 160, SIZE / 120]).astype(np.int32)], 1)
    iou = (mask & (planted > 0)).sum() / (mask | (planted > 0)).sum()
    assert iou > 0.85


def test_moire_without_a_screen_gets_a_placed_one(tmp_path: Path) -> None:
    dark = np.full((120, 160, 3), 0.2, np.float32)
    _, mask, details = render(_job(_save(tmp_path / "dark.png", dark), "moire"), FULL_FRAME)
    assert details["placement"] == "placed" and mask.mean() > 0.05


@pytest.mark.parametrize("label", ["flare", "moire"])
def test_pixels_outside_the_mask_are_the_clean_crop(clean_dir: Path, label: str) -> None:
    for index in range(3):
        path = str(sorted(clean_dir.iterdir())[index])
        image, mask, details = render(_job(path, label, index), SETTINGS)
        clean = quantise(crop_resize(load_source(path, SETTINGS), tuple(details["crop"]), SIZE))
        assert np.array_equal(image[~mask], clean[~mask])
        assert not np.array_equal(image[mask], clean[mask])


def test_ghosting_has_a_mask(clean_dir: Path) -> None:
    for index in range(3):
        _, mask, details = render(_job(str(sorted(clean_dir.iterdir())[index]), "ghosting", index), SETTINGS)
        assert mask.any() and details["frames"] in (2, 3)


# --- the command ----------------------------------------------------------------------------


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["synth", *args, "--workers", "0", "--quiet"])
    return result.exit_code, result.output


def test_cli_warns_about_undecodable_files_and_writes_the_set(clean_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes((clean_dir / "photo 0.png").read_bytes())
    (photos / "b.png").write_bytes((clean_dir / "photo 1.png").read_bytes())
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    code, output = _cli(str(photos), "--out", str(tmp_path / "set"), "--count", "4", "--size", "32",
                        "--splits", "1,0,0", "--classes", "flare")
    assert code == 0, output
    assert "broken.jpg" in output
    samples = read_manifest(tmp_path / "set")
    assert {s.label for s in samples} == {"clean", "flare"} and {s.split for s in samples} == {"train"}


def test_cli_without_decodable_photos_exits_2(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"junk")
    (tmp_path / "photos" / "notes.txt").write_text("hello")
    code, output = _cli(str(tmp_path / "photos"), "--out", str(tmp_path / "set"))
    assert code == 2 and "no decodable photos" in output


def test_cli_refuses_a_non_empty_out_unless_overwriting_a_previous_set(dataset: Path, clean_dir: Path,
                                                                       tmp_path: Path) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    code, output = _cli(str(clean_dir), "--out", str(other), "--overwrite")
    assert code == 2 and "refusing" in output and (other / "thesis.tex").exists()
    code, output = _cli(str(clean_dir), "--out", str(dataset))
    assert code == 2 and "--overwrite" in output
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "synth.json").write_text("{}")
    (copy / "images").mkdir()
    (copy / "keep.txt").write_text("not ours")
    code, output = _cli(str(clean_dir), "--out", str(copy), "--overwrite", "--count", "2", "--size", "32")
    assert code == 0, output
    assert len(read_manifest(copy)) == 2 and (copy / "keep.txt").exists()


@pytest.mark.parametrize("args", [["--splits", "0.8,0.2"], ["--classes", "blur"], ["--moire-phi", "0.9,0.2"],
                                  ["--ghost-frames", "1,2"]])
def test_cli_rejects_bad_options(clean_dir: Path, tmp_path: Path, args: list[str]) -> None:
    code, _ = _cli(str(clean_dir), "--out", str(tmp_path / "set"), *args)
    assert code == 2
