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
from ipad_qc.datasets.plan import Job, Source, allocate, label_sequence, plan_jobs
from ipad_qc.datasets.recipes import quantise, render
from ipad_qc.datasets.settings import SynthSettings
from ipad_qc.datasets.synth import read_records, synthesize
from ipad_qc.synthetic import clean_scene
from ipad_qc.synthetic.capture import TailSettings

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
    jobs, notes = plan_jobs([Source("/a.png", "a.png", ("sun",)), Source("/b.png", "b.png", ("sun",))], SETTINGS)
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


def _night(seed: int) -> np.ndarray:
    scene = _scene(seed) * 0.12  # a night shot of the same scene
    cv2.circle(scene, (120, 30), 6, (1.0, 1.0, 1.0), -1)  # a lamp against the dark
    return scene


@pytest.mark.parametrize("index", range(3))
def test_flare_comes_from_a_light_the_photo_offers(tmp_path: Path, index: int) -> None:
    path = _save(tmp_path / "night.png", _night(10 + index))
    _, mask, details = render(_job(path, "flare", index), FULL_FRAME)
    params = details["params"]
    assert params["site"] in ("detected", "lamp")
    if params["site"] == "detected":  # the flare is centred on the photo's own lamp
        x, y = params["sources"][0][:2]
        assert abs(x - 120 * SIZE / 160) < 2 and abs(y - 30 * SIZE / 120) < 2
        assert mask[round(y), round(x)]
    assert mask.mean() > FULL_FRAME.min_mask_fraction


def test_flare_on_a_photo_without_any_light_is_skipped_not_faked(tmp_path: Path) -> None:
    grey = np.full((120, 160, 3), 0.5, np.float32)  # a wall: no lamp, no sky, not night
    image, mask, details = render(_job(_save(tmp_path / "wall.png", grey), "flare"), FULL_FRAME)
    assert not mask.any() and "no_site" in details["params"] and details["attempts"] == FULL_FRAME.attempts


@pytest.mark.parametrize("index", range(3))
def test_moire_goes_on_the_screen_the_photo_shows(tmp_path: Path, index: int) -> None:
    scene = _scene(20 + index)
    screen = np.array([[40, 30], [125, 36], [118, 95], [46, 88]], np.int32)
    cv2.polylines(scene, [screen], True, (0.05, 0.05, 0.05), 4)  # the bezel
    cv2.fillPoly(scene, [screen], (0.92, 0.93, 0.96))
    settings = SynthSettings(count=COUNT, size=SIZE, seed=0, crop_min=1.0, moire_fullframe=0.0)
    _, mask, details = render(_job(_save(tmp_path / "screen.png", scene), "moire", index), settings)
    assert details["params"]["mode"] == "detected"
    planted = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(planted, [np.round(screen * [SIZE / 160, SIZE / 120]).astype(np.int32)], 1)
    grown = cv2.dilate(planted, np.ones((5, 5), np.uint8)) > 0
    assert mask.any() and not (mask & ~grown).any(), "fringes only on the screen"


def test_moire_without_a_screen_or_placed_devices_is_a_full_frame_screen_photo(tmp_path: Path) -> None:
    path = _save(tmp_path / "scene.png", _scene(3))
    settings = SynthSettings(count=COUNT, size=SIZE, seed=0, moire_fullframe=0.0, moire_placed=False)
    _, mask, details = render(_job(path, "moire"), settings)
    assert details["params"]["mode"] == "fullframe" and mask.any()


def test_the_capture_tail_does_not_depend_on_the_label(clean_dir: Path) -> None:
    path = str(sorted(clean_dir.iterdir())[0])
    tails = {label: render(_job(path, label, 5), SETTINGS)[2]["tail"] for label in ("clean", "moire", "ghosting")}
    assert tails["clean"] == tails["moire"] == tails["ghosting"]
    others = [render(_job(path, "clean", index), SETTINGS)[2]["tail"] for index in range(6)]
    assert len({json.dumps(tail, sort_keys=True) for tail in others}) > 1, "each sample draws its own tail"


def test_letterboxing_moves_the_mask_with_the_picture(clean_dir: Path) -> None:
    settings = SynthSettings(count=COUNT, size=SIZE, seed=0, tail=TailSettings(letterbox_share=1.0))
    path = str(sorted(clean_dir.iterdir())[1])
    image, mask, details = render(_job(path, "ghosting", 2), settings)
    kind, fraction = details["tail"]["letterbox"]
    bar = max(1, round(SIZE * fraction))
    edge = (slice(0, bar), slice(None)) if kind == "bars" else (slice(None), slice(0, bar))
    assert image[edge].mean() < 3, "black bars, but for the JPEG's ringing at the picture's edge"
    assert not mask[edge].any() and mask.any()


def test_clean_samples_record_their_recipe_and_fall_back_to_the_photo(tmp_path: Path) -> None:
    path = _save(tmp_path / "day.png", _scene(4))
    settings = SynthSettings(count=COUNT, size=SIZE, seed=0, clean_recipes=(("lamps", 1.0),))
    image, mask, details = render(_job(path, "clean"), settings)
    assert mask is None and details["recipe"] == "photo" and details["wanted"] == "lamps"
    night = _save(tmp_path / "night.png", _night(4) + 0.02)
    _, _, details = render(_job(night, "clean"), settings)
    assert details["recipe"] == "lamps" and details["lamps"] >= 1


def test_synth_json_records_every_samples_parameters(dataset: Path) -> None:
    records = read_records(dataset)
    samples = read_manifest(dataset)
    assert set(records) == {sample.image for sample in samples}
    for sample in samples:
        record = records[sample.image]
        assert record["label"] == sample.label and "tail" in record and "crop" in record
        assert ("recipe" in record) if sample.label == "clean" else ("params" in record)


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
                                  ["--ghost-frames", "1,2"], ["--clean-recipes", "photo=1,blur=2"],
                                  ["--clean-recipes", "photo=x"], ["--jpeg-quality", "0,90"]])
def test_cli_rejects_bad_options(clean_dir: Path, tmp_path: Path, args: list[str]) -> None:
    code, _ = _cli(str(clean_dir), "--out", str(tmp_path / "set"), *args)
    assert code == 2


def test_flare_samples_go_only_to_photos_that_offer_a_light() -> None:
    sources = [Source(f"/{name}.png", f"{name}.png", sites) for name, sites in
               (("night", ("lamp",)), ("indoor", ()), ("beach", ("sun",)), ("desk", ()))]
    jobs, notes = plan_jobs(sources, SynthSettings(count=48, size=SIZE, splits=(1, 0, 0)))  # 12 flare samples
    flare = Counter(job.source_rel for job in jobs if job.label == "flare")
    assert set(flare) == {"night.png", "beach.png"} and not notes
    assert flare["night.png"] == 2 * flare["beach.png"], "night photos carry most real flares"
    assert {job.source_rel for job in jobs if job.label == "moire"} == {s.relpath for s in sources}
    jobs, notes = plan_jobs(sources[1::2], SynthSettings(count=40, size=SIZE, splits=(1, 0, 0)))
    assert not any(job.label == "flare" for job in jobs) and "flare sample(s) of the train split left out" in notes[0]


def test_cli_options_reach_the_settings_and_the_comparison_sheet_is_written(clean_dir: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    for label in ("clean", "moire"):
        (real / label).mkdir(parents=True)
        (real / label / "a.png").write_bytes((clean_dir / "photo 2.png").read_bytes())
    code, output = _cli(str(clean_dir), "--out", str(tmp_path / "set"), "--count", "8", "--size", "48",
                        "--no-capture-tail", "--clean-recipes", "photo=1,fused=1", "--moire-fullframe", "1",
                        "--compare", str(real))
    assert code == 0, output
    record = json.loads((tmp_path / "set" / "synth.json").read_text())
    settings = SynthSettings.from_json(record["settings"])
    assert settings.tail.jpeg_share == 0 and settings.clean_recipes == (("photo", 1.0), ("fused", 1.0))
    assert all(sample["tail"]["quality"] is None for sample in record["samples"])
    sheet = cv2.imread(str(tmp_path / "set" / "comparison_sheet.jpg"))
    assert sheet is not None and sheet.shape[1] > 8 * 192
    code, output = _cli(str(clean_dir), "--out", str(tmp_path / "other"), "--compare", str(clean_dir))
    assert code == 2 and "class folders" in output
