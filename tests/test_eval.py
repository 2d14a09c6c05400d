"""`ipad-qc eval` for any detector on labelled folders: class folders and labels.csv, with and without masks,
checked against scikit-learn on the scores and maps the scan stored."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score, roc_auc_score
from test_routing_helpers import COLOURS, ColourCodeDetector

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.cli import main
from ipad_qc.detectors.registry import register_detector

WIDTH, HEIGHT = 96, 72  # the test detector's analysis size: maps and masks share the image's grid


@pytest.fixture(autouse=True, scope="module")
def colour_code_detector() -> None:
    register_detector("colour-code", lambda device="cpu", **options: ColourCodeDetector())


def write_case(root: Path, relpath: str, colour: str | None, side: int, seed: int) -> np.ndarray:
    """A noisy grey image with one square of a class colour (or none); returns its true square as a mask."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 160, size=(HEIGHT, WIDTH, 3)).astype(np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    if colour is not None and side:
        top, left = rng.integers(0, HEIGHT - side), rng.integers(0, WIDTH - side)
        pixels[top : top + side, left : left + side] = COLOURS[colour]
        mask[top : top + side, left : left + side] = True
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    return mask


def labelled_folder(root: Path, with_masks: bool) -> dict[str, str]:
    """Eight images per class in class folders. Square sizes vary, so scores vary; two clean images carry a
    small red square and one flare image a large red one, so the detector makes mistakes."""
    truth = {}
    for index in range(8):
        for label in CLASS_NAMES:
            relpath = f"{label}/{label}_{index}.png"
            colour = {"clean": "ghosting" if index < 2 else None}.get(label, label)
            if label == "flare" and index == 0:
                colour = "ghosting"
            side = 30 if label == "clean" else 8 + 3 * index
            mask = write_case(root, relpath, colour, side, seed=index * 10 + CLASS_NAMES.index(label))
            if with_masks and label != "clean":
                mask_path = root / "masks" / relpath
                mask_path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 255)
            truth[relpath] = label
    return truth


def run_eval(*args: object) -> tuple[int, str, dict]:
    json_path = Path(str(args[0])).parent / "eval.json"
    result = CliRunner().invoke(main, ["eval", *map(str, args), "--json", str(json_path), "-q"])
    report = json.loads(json_path.read_text()) if json_path.exists() else {}
    return result.exit_code, result.output, report


def stored_rows(run: Path) -> dict[str, dict[str, str]]:
    with open(run / "results.csv", newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def map_plane(run: Path, row: dict[str, str], name: str) -> np.ndarray:
    bgr = cv2.imread(str(run / row["map_path"]), cv2.IMREAD_UNCHANGED)
    return bgr[..., {"ghosting": 2, "flare": 1, "moire": 0}[name]] / 255.0


@pytest.mark.parametrize("with_masks", [False, True])
def test_class_folders_are_scored_like_scikit_learn(tmp_path: Path, with_masks: bool) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    truth = labelled_folder(data, with_masks)
    code, output, report = run_eval(data, "--detector", "colour-code", "--out", run, "--workers", "0")
    assert code == 0, output
    rows = stored_rows(run)
    assert set(rows) == set(truth)
    labels = np.array([CLASS_NAMES.index(truth[path]) for path in sorted(truth)])
    scores = np.array([[float(rows[path][f"score_{name}"]) for name in CLASS_NAMES] for path in sorted(truth)])
    for k, name in enumerate(ARTIFACT_CLASSES, start=1):
        rest = report["protocols"]["one-vs-rest"]["per_class"][name]
        assert rest["C-AUROC"] == pytest.approx(roc_auc_score(labels == k, scores[:, k]), abs=1e-9)
        assert rest["C-AP"] == pytest.approx(average_precision_score(labels == k, scores[:, k]), abs=1e-9)
        pair = (labels == 0) | (labels == k)
        vs_clean = report["protocols"]["vs-clean"]["per_class"][name]
        assert vs_clean["C-AUROC"] == pytest.approx(roc_auc_score(labels[pair] == k, scores[pair, k]), abs=1e-9)
        if not with_masks:
            assert vs_clean["S-AUROC"] is None
            continue
        chosen = [path for path in sorted(truth) if truth[path] in ("clean", name)]
        values = np.concatenate([map_plane(run, rows[p], name).ravel() for p in chosen])
        positives = np.concatenate([
            (cv2.imread(str(data / "masks" / p), cv2.IMREAD_GRAYSCALE) > 127).ravel() if truth[p] == name
            else np.zeros(WIDTH * HEIGHT, bool) for p in chosen])
        assert vs_clean["S-AUROC"] == pytest.approx(roc_auc_score(positives, values), abs=1e-9)
        assert vs_clean["S-AP"] == pytest.approx(average_precision_score(positives, values), abs=1e-9)

    predicted = {path: rows[path]["label"] for path in truth}
    confusion = report["labels"]["confusion"]
    for true_label in CLASS_NAMES:
        for label in CLASS_NAMES:
            expected = sum(1 for p in truth if truth[p] == true_label and predicted[p] == label)
            assert confusion[true_label][label] == expected
    assert report["labels"]["accuracy"] == pytest.approx(np.mean([predicted[p] == truth[p] for p in truth]))
    assert report["labels"]["clean_flagged"] == sum(predicted[p] != "clean" for p in truth if truth[p] == "clean") > 0
    mistakes = report["labels"]["mistakes"]
    assert {m["path"] for m in mistakes} >= {"clean/clean_0.png", "flare/flare_0.png"}
    margins = [m["scores"][m["predicted"]] - m["scores"][m["truth"]] for m in mistakes]
    assert margins == sorted(margins, reverse=True), "worst mistakes first"
    assert "Worst mistakes" in output and "flare/flare_0.png" in output
    assert (run / "report.html").is_file()


def test_labels_csv_with_masks_matches_the_class_folders(tmp_path: Path) -> None:
    """The same files through labels.csv (a mask column, a non-class row) give the same metrics."""
    data = tmp_path / "data"
    truth = labelled_folder(data, with_masks=True)
    _, _, by_folders = run_eval(data, "--detector", "colour-code", "--out", tmp_path / "run-a", "--workers", "0")
    (data / "labels.csv").write_text(
        "path,label,mask,notes\n"
        + "".join(f"{p},{label},{'masks/' + p if label != 'clean' else ''},n\n" for p, label in truth.items())
        + "stack/frame_1.png,stack:burst,,not a class\n", encoding="utf-8")
    code, output, by_csv = run_eval(data, "--detector", "colour-code", "--out", tmp_path / "run-b", "--workers", "0")
    assert code == 0, output
    assert by_csv["protocols"] == by_folders["protocols"]
    assert by_csv["set_aside"] == {"stack:burst": 1}
    assert "stack:burst x1" in output


def test_an_existing_run_of_a_parent_folder_is_scored_without_detecting(tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    truth = labelled_folder(shots / "labelled", with_masks=False)
    write_case(shots, "unlabelled/extra.png", "moire", 20, seed=99)
    scanned = CliRunner().invoke(main, ["scan", str(shots), "--out", str(tmp_path / "run"), "--detector",
                                        "colour-code", "--workers", "0", "-q", "--no-report"])
    assert scanned.exit_code == 0, scanned.output
    before = (tmp_path / "run" / "results.sqlite").stat().st_mtime_ns
    code, output, report = run_eval(shots / "labelled", "--run", tmp_path / "run")
    assert code == 0, output
    assert report["labels"]["images"] == len(truth) and report["detectors"] == ["colour-code"]
    assert (tmp_path / "run" / "results.sqlite").stat().st_mtime_ns == before, "scoring a run writes nothing to it"


def test_images_missing_from_the_run_are_listed_not_guessed(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    truth = labelled_folder(data, with_masks=False)
    assert run_eval(data, "--detector", "colour-code", "--out", run, "--workers", "0")[0] == 0
    write_case(data, "moire/late.png", "moire", 20, seed=5)
    code, output, report = run_eval(data, "--run", run)
    assert code == 0, output
    assert report["unscored"] == [{"path": "moire/late.png", "reason": "not in the run"}]
    assert report["labels"]["images"] == len(truth)
    assert "not scored: moire/late.png" in output


@pytest.mark.parametrize(("labels_csv", "message"), [
    ("path,label\nclean/nothere.png,clean\n", "nothere.png: no such image"),
    ("file,class\nclean/clean_0.png,clean\n", "needs the columns path and label"),
    ("path,label\n../outside.png,clean\n", "must be a relative path inside the folder"),
])
def test_bad_labels_csv_is_a_usage_error_naming_the_file(tmp_path: Path, labels_csv: str, message: str) -> None:
    data = tmp_path / "data"
    labelled_folder(data, with_masks=False)
    (data / "labels.csv").write_text(labels_csv, encoding="utf-8")
    code, output, _ = run_eval(data, "--detector", "colour-code", "--out", tmp_path / "run")
    assert code == 2 and message in output and "labels.csv" in output


def test_a_run_of_another_folder_is_refused(tmp_path: Path) -> None:
    data, other = tmp_path / "data", tmp_path / "other"
    labelled_folder(data, with_masks=False)
    write_case(other, "x.png", None, 0, seed=1)
    assert CliRunner().invoke(main, ["scan", str(other), "--out", str(tmp_path / "run"), "-q", "--no-report",
                                     "--detector", "colour-code", "--workers", "0"]).exit_code == 0
    code, output, _ = run_eval(data, "--run", tmp_path / "run")
    assert code == 2 and "does not hold" in output
