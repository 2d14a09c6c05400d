"""The streaming IPAD evaluator: exactness against scikit-learn and a slow AUPRO, mapping, streaming."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import numpy as np
import pytest
from rich.console import Console
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from ipad_qc.classes import ARTIFACT_CLASSES, CLASS_NAMES
from ipad_qc.evaluation import METRIC_NAMES, PIXEL_METRICS, PROTOCOLS, EvaluationReport, IpadEvaluator
from ipad_qc.evaluation.curves import RankCurve, aupro, aupro_error_bound
from ipad_qc.evaluation.score_grid import CELLS, score_cells

N_CLASSES = len(CLASS_NAMES)


def on_levels(values: np.ndarray, levels: int) -> np.ndarray:
    """Scores rounded to ``levels`` evenly spaced values (as an 8-bit map has 256): one per cell."""
    return np.round(values * (levels - 1)) / (levels - 1)


def saturated_data(seed: int, n: int = 24, size: int = 32, dtype: type = np.float32) -> tuple[np.ndarray, ...]:
    """Maps like IPAD-CLIP's Eq. 12 head: softmax of cosines over T = 0.07, scores within 1e-12 of 0 and 1."""
    _, labels, _, masks = random_data(seed, n, size)
    rng = np.random.default_rng(seed)
    cosines = rng.uniform(-1, 1, (n, N_CLASSES, size, size))
    for i in np.flatnonzero(labels):
        cosines[i, labels[i]][masks[i]] += 0.6
    logits = cosines / 0.07
    seg = np.exp(logits - logits.max(axis=1, keepdims=True))
    seg = (seg / seg.sum(axis=1, keepdims=True)).astype(dtype)
    return rng.dirichlet(np.ones(N_CLASSES), n), labels, seg, masks


def random_data(seed: int, n: int = 24, size: int = 16, labels: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Class probabilities, labels, pixel maps and masks with rectangles of varied size per artifact image."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % N_CLASSES) if labels is None else labels
    masks = np.zeros((n, size, size), dtype=bool)
    for i in np.flatnonzero(labels):
        for _ in range(rng.integers(1, 4)):
            top, left = rng.integers(0, size - 2, 2)
            height, width = rng.integers(1, size // 2, 2)
            masks[i, top : top + height, left : left + width] = True
    seg = rng.random((n, N_CLASSES, size, size))
    seg[np.flatnonzero(labels), labels[labels > 0]] += 0.8 * masks[labels > 0]
    seg /= seg.sum(axis=1, keepdims=True)
    return rng.dirichlet(np.ones(N_CLASSES), n), labels, seg, masks


def evaluate(data: tuple[np.ndarray, ...], **options: float | str) -> EvaluationReport:
    evaluator = IpadEvaluator(**options)
    evaluator.update(*data)
    return evaluator.compute()


def chosen_images(labels: np.ndarray, k: int, protocol: str) -> np.ndarray:
    """The documented mapping of images: vs-clean compares class-k images with clean ones only."""
    return (labels == 0) | (labels == k) if protocol == "vs-clean" else np.ones(labels.shape, dtype=bool)


def pixel_truth(labels: np.ndarray, masks: np.ndarray, k: int) -> np.ndarray:
    """The documented mapping: positives are the mask pixels of class-k images, all else negative."""
    return (masks & (labels == k)[:, None, None]).ravel()


def f1_max_reference(truth: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(truth, scores)
    total = precision + recall
    return float(np.max(np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)))


def sklearn_metrics(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
    return roc_auc_score(truth, scores), average_precision_score(truth, scores), f1_max_reference(truth, scores)


def aupro_reference(scores: np.ndarray, labels: np.ndarray, masks: np.ndarray, k: int, fpr_limit: float) -> float:
    """Slow AUPRO: binarise at every distinct score, label regions, count overlaps and false positives."""
    regions = []
    for i in np.flatnonzero(labels == k):
        labelled, count = ndimage.label(masks[i], structure=np.ones((3, 3)))
        regions += [(i, labelled == r) for r in range(1, count + 1)]
    negative = ~pixel_truth(labels, masks, k).reshape(masks.shape)
    points = [(0.0, 0.0)]
    for threshold in np.unique(scores)[::-1]:
        predicted = scores >= threshold
        pro = np.mean([predicted[i][region].mean() for i, region in regions])
        points.append((predicted[negative].sum() / negative.sum(), pro))
    area = 0.0
    for (x0, y0), (x1, y1) in pairwise(points):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:
            x1, y1 = fpr_limit, y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


def perfect_data(n: int = 16, size: int = 12) -> tuple[np.ndarray, ...]:
    """One-hot class probabilities and maps equal to the masks: every metric must be 1."""
    _, labels, _, masks = random_data(0, n, size)
    seg = np.zeros((n, N_CLASSES, size, size))
    seg[np.flatnonzero(labels), labels[labels > 0]] = masks[labels > 0]
    seg[:, 0] = 1 - seg[:, 1:].sum(axis=1)
    return np.eye(N_CLASSES)[labels], labels, seg, masks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_score_cells_keep_the_order_and_the_saturated_top(dtype: type) -> None:
    rng = np.random.default_rng(0)
    scores = np.sort(np.concatenate([rng.random(20000), np.exp(-rng.uniform(0, 60, 20000)),
                                     1 - np.exp(-rng.uniform(0, 30, 20000)), [0.0, 0.5, 1.0, 2**-4, 1 - 2**-4]]))
    cells, _ = score_cells(scores.astype(dtype))
    assert np.all(np.diff(cells) >= 0), "a higher score never falls in a lower cell"
    assert cells[0] == 0 and cells[-1] == CELLS - 1
    top = np.float32(1) - np.arange(4097, dtype=np.float32) * np.float32(2**-24)  # every float32 >= 1 - 2**-12
    assert np.unique(score_cells(top)[0]).size == top.size
    eight_bit = np.arange(256) / 255
    assert np.unique(score_cells(eight_bit.astype(dtype))[0]).size == 256
    assert np.array_equal(score_cells(np.array([-0.5, 1.5], dtype))[0], [0, CELLS - 1])
    with pytest.raises(ValueError, match="NaN"):
        score_cells(np.array([0.5, np.nan], dtype))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tie_decimals", [None, 1])
def test_image_level_equals_sklearn(tie_decimals: int | None, protocol: str) -> None:
    class_probs, labels, seg, masks = random_data(1, n=40)
    if tie_decimals is not None:
        class_probs = np.round(class_probs, tie_decimals)
    report = evaluate((class_probs, labels, seg, masks), protocol=protocol)
    for k, name in enumerate(ARTIFACT_CLASSES, start=1):
        chosen = chosen_images(labels, k, protocol)
        expected = sklearn_metrics(labels[chosen] == k, class_probs[chosen, k])
        got = [report.per_class[name][metric] for metric in ("C-AUROC", "C-AP", "C-F1max")]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def pixel_metrics_against_sklearn(data: tuple[np.ndarray, ...], protocol: str) -> list[tuple[float, float, float]]:
    """(ours, exact, our bound) for every class and pixel metric but AUPRO."""
    class_probs, labels, seg, masks = data
    report = evaluate(data, protocol=protocol)
    rows = []
    for k, name in enumerate(ARTIFACT_CLASSES, start=1):
        chosen = chosen_images(labels, k, protocol)
        expected = sklearn_metrics(pixel_truth(labels[chosen], masks[chosen], k), seg[chosen, k].ravel())
        for metric, exact in zip(("S-AUROC", "S-AP", "S-F1max"), expected, strict=True):
            bound = report.by_protocol[protocol].error_bounds[name][metric]
            rows.append((report.per_class[name][metric], exact, bound))
    return rows


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("levels", [11, 256])
def test_pixel_level_equals_sklearn_for_maps_with_few_levels(levels: int, protocol: str) -> None:
    class_probs, labels, seg, masks = random_data(2)
    for ours, exact, _ in pixel_metrics_against_sklearn((class_probs, labels, on_levels(seg, levels), masks), protocol):
        assert ours == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pixel_level_within_its_bound_of_sklearn_for_arbitrary_scores(protocol: str) -> None:
    for ours, exact, bound in pixel_metrics_against_sklearn(random_data(3, n=32, size=32), protocol):
        assert abs(ours - exact) <= bound + 1e-12
        assert bound < 1e-3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_saturated_softmax_maps_are_scored_exactly(protocol: str, dtype: type) -> None:
    """T = 0.07 softmax maps put most scores within 1e-6 of 0 or 1, where a uniform grid of 65,536
    levels merges them (S-AP was 1.1-1.3 points low). The bound is proven, and small here."""
    for ours, exact, bound in pixel_metrics_against_sklearn(saturated_data(13, dtype=dtype), protocol):
        assert abs(ours - exact) <= 1e-4
        assert abs(ours - exact) <= bound + 1e-12 and bound <= 1e-4


def grouped_curve(scores: np.ndarray, truth: np.ndarray, levels: int) -> RankCurve:
    """The curve of ``scores`` counted in ``levels`` coarse cells, as the evaluator counts pixels."""
    cells = np.minimum((scores * levels).astype(int), levels - 1)
    return RankCurve.from_histograms(np.bincount(cells[truth], minlength=levels),
                                     np.bincount(cells[~truth], minlength=levels))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [3, 20, 200])
def test_error_bounds_hold_when_cells_merge_many_scores(seed: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random(3000) < rng.uniform(0.05, 0.5)
    scores = np.clip(rng.normal(0.5 + 0.2 * truth, 0.2), 0, 0.999)
    curve, bounds = grouped_curve(scores, truth, levels), grouped_curve(scores, truth, levels).error_bounds()
    exact = sklearn_metrics(truth, scores)
    for value, reference, bound in zip((curve.auroc(), curve.average_precision(), curve.f1_max()), exact,
                                       (bounds["auroc"], bounds["average_precision"], bounds["f1_max"]), strict=True):
        assert abs(value - reference) <= bound + 1e-12


def test_auroc_bound_is_attained_by_one_mixed_cell() -> None:
    """All negatives scored above all positives, in one cell: AUROC is 0, counted 0.5, bound 0.5."""
    scores, truth = np.r_[np.full(5, 0.30), np.full(7, 0.31)], np.r_[np.ones(5, bool), np.zeros(7, bool)]
    curve = grouped_curve(scores, truth, 2)
    assert roc_auc_score(truth, scores) == 0.0 and curve.auroc() == 0.5 and curve.error_bounds()["auroc"] == 0.5


@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
@pytest.mark.parametrize("seed", [4, 5])
def test_aupro_bound_holds_when_cells_merge_many_scores(seed: int, fpr_limit: float) -> None:
    class_probs, labels, seg, masks = random_data(seed)
    k, levels = 1, 7
    scores = seg[:, k]
    exact = aupro_reference(scores, labels, masks, k, fpr_limit)
    cells = np.minimum((scores * levels).astype(int), levels - 1)
    weighted, negatives, regions = np.zeros(levels), np.zeros(levels), 0
    for i in range(len(labels)):
        own = masks[i] & (labels[i] == k)
        if own.any():
            labelled, count = ndimage.label(own, structure=np.ones((3, 3)))
            sizes = np.bincount(labelled.ravel())
            weighted += np.bincount(cells[i][own], weights=1 / sizes[labelled[own]], minlength=levels)
            regions += count
        negatives += np.bincount(cells[i][~own], minlength=levels)
    grouped = aupro(weighted, regions, negatives, fpr_limit)
    bound = aupro_error_bound(weighted, regions, negatives, fpr_limit)
    assert abs(grouped - exact) <= bound + 1e-12 and bound < 0.5


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
@pytest.mark.parametrize("seed", [4, 5])
def test_aupro_equals_slow_reference(seed: int, fpr_limit: float, protocol: str) -> None:
    class_probs, labels, seg, masks = random_data(seed)
    seg = on_levels(seg, 11)
    report = evaluate((class_probs, labels, seg, masks), fpr_limit=fpr_limit, protocol=protocol)
    for k, name in enumerate(ARTIFACT_CLASSES, start=1):
        chosen = chosen_images(labels, k, protocol)
        expected = aupro_reference(seg[chosen, k], labels[chosen], masks[chosen], k, fpr_limit)
        assert report.per_class[name]["S-AUPRO"] == pytest.approx(expected, abs=1e-6)


def test_protocols_differ_only_in_the_negatives_they_count() -> None:
    """Flare images scoring high on ghosting hurt ghosting one-vs-rest, and not vs-clean, at both levels."""
    class_probs, labels, seg, masks = perfect_data()
    flare = labels == 2
    class_probs[flare, 1] = 1.0
    seg[flare, 1] = 1.0
    report = evaluate((class_probs, labels, seg, masks))
    assert report.protocol == "vs-clean"
    vs_clean, rest = report.by_protocol["vs-clean"], report.by_protocol["one-vs-rest"]
    for metric in ("C-AUROC", "S-AUROC", "S-AP"):
        assert vs_clean.per_class["ghosting"][metric] == pytest.approx(1.0)
        assert rest.per_class["ghosting"][metric] < 0.9
    assert report.shown_as("one-vs-rest").per_class == rest.per_class
    stored = json.loads(report.to_json())
    assert stored["protocol"] == "vs-clean" and set(stored["protocols"]) == set(PROTOCOLS)
    assert stored["protocols"]["one-vs-rest"]["per_class"]["ghosting"]["C-AUROC"] < 0.9


def test_artifact_images_without_masks_count_at_image_level_only() -> None:
    """Image-level-only samples: never counted as 'all pixels clean', and reported."""
    class_probs, labels, seg, masks = perfect_data()
    unmasked = np.flatnonzero(labels == 1)[:2]
    known = np.ones(labels.shape, dtype=bool)
    known[unmasked] = False
    masks[unmasked] = False  # what a loader holds for an image with no mask file
    evaluator = IpadEvaluator()
    evaluator.update(class_probs, labels, seg, masks, has_mask=known)
    report = evaluator.compute()
    assert report.per_class["ghosting"] == pytest.approx(dict.fromkeys(METRIC_NAMES, 1.0))
    assert report.counts["images"]["ghosting"] == int(np.sum(labels == 1))
    assert report.counts["images_without_mask"] == {"clean": 0, "ghosting": 2, "flare": 0, "moire": 0}
    assert report.counts["pixels"] == (len(labels) - 2) * masks[0].size
    assert any("2 image(s) without a ground-truth mask" in note for note in report.notes)
    # Without has_mask the same data reads as "no artifact anywhere in those images": pixel AUROC drops.
    assert evaluate((class_probs, labels, seg, masks)).per_class["ghosting"]["S-AUROC"] < 1.0


def test_artifact_class_with_no_masks_at_all_keeps_image_metrics() -> None:
    class_probs, labels, seg, masks = perfect_data()
    masks[labels > 0] = False
    evaluator = IpadEvaluator()
    evaluator.update(class_probs, labels, seg, masks, has_mask=labels == 0)
    report = evaluator.compute()
    assert report.counts["images_without_mask"]["clean"] == 0
    for values in report.per_class.values():
        assert all(math.isnan(values[metric]) for metric in PIXEL_METRICS)
        assert values["C-AUROC"] == pytest.approx(1.0)


def test_regions_are_eight_connected() -> None:
    class_probs, labels, seg, _ = perfect_data(n=4)
    masks = np.zeros(seg[:, 0].shape, dtype=bool)
    masks[labels > 0, 2:4, 2:4] = True
    masks[labels > 0, 4:6, 4:6] = True  # touches the first square by a corner only
    report = evaluate((class_probs, labels, seg, masks))
    assert all(report.counts["regions"][name] == np.sum(labels == k) for k, name in enumerate(CLASS_NAMES) if k)


def test_perfect_predictor_scores_one_everywhere() -> None:
    report = evaluate(perfect_data())
    assert report.overall == pytest.approx(dict.fromkeys(METRIC_NAMES, 1.0))
    for values in report.per_class.values():
        assert values == pytest.approx(dict.fromkeys(METRIC_NAMES, 1.0))


def test_swapping_two_class_maps_drops_their_pixel_auroc() -> None:
    class_probs, labels, seg, masks = perfect_data()
    seg = seg[:, [0, 2, 1, 3]]
    report = evaluate((class_probs, labels, seg, masks))
    assert report.per_class["ghosting"]["S-AUROC"] < 0.6
    assert report.per_class["flare"]["S-AUROC"] < 0.6
    assert report.per_class["moire"]["S-AUROC"] == pytest.approx(1.0)


def test_clean_images_contribute_only_negatives() -> None:
    """Clean images scoring 1 on ghosting everywhere tie with every positive: AP = P / (P + clean pixels)."""
    class_probs, labels, seg, masks = perfect_data()
    clean = labels == 0
    seg[clean, 1] = 1.0
    report = evaluate((class_probs, labels, seg, masks))
    positives = masks[labels == 1].sum()
    assert report.counts["positive_pixels"]["ghosting"] == positives
    assert report.per_class["ghosting"]["S-AP"] == pytest.approx(positives / (positives + masks[clean].size))
    assert report.per_class["ghosting"]["S-AUROC"] < 1.0
    assert report.per_class["flare"]["S-AUROC"] == pytest.approx(1.0)


def test_clean_image_with_a_mask_is_refused() -> None:
    class_probs, labels, seg, masks = perfect_data()
    masks[np.flatnonzero(labels == 0)[0], 0, 0] = True
    with pytest.raises(ValueError, match="clean images"):
        evaluate((class_probs, labels, seg, masks))


def test_overall_is_the_macro_mean_of_the_classes() -> None:
    report = evaluate(random_data(6))
    for metric in METRIC_NAMES:
        per_class = [report.per_class[name][metric] for name in ARTIFACT_CLASSES]
        assert report.overall[metric] == pytest.approx(np.mean(per_class), abs=1e-15)


def test_class_without_positives_is_nan_and_left_out_of_the_mean() -> None:
    labels = np.arange(24) % 3  # clean, ghosting, flare: no moire image
    report = evaluate(random_data(7, labels=labels))
    assert all(math.isnan(value) for value in report.per_class["moire"].values())
    for metric in METRIC_NAMES:
        expected = np.mean([report.per_class[name][metric] for name in ("ghosting", "flare")])
        assert report.overall[metric] == pytest.approx(expected, abs=1e-15)
    assert any(note.startswith("moire: ") and "no positive images" in note for note in report.notes)
    assert json.loads(report.to_json())["per_class"]["moire"]["C-AP"] is None


def test_class_without_mask_pixels_keeps_its_image_metrics() -> None:
    class_probs, labels, seg, masks = random_data(8)
    masks[labels == 2] = False
    report = evaluate((class_probs, labels, seg, masks))
    flare = report.per_class["flare"]
    assert all(math.isnan(flare[metric]) for metric in PIXEL_METRICS)
    assert all(math.isfinite(flare[metric]) for metric in ("C-AUROC", "C-AP", "C-F1max"))
    assert any(note.startswith("flare: ") and "no ground-truth artifact pixels" in note for note in report.notes)


def test_streaming_in_batches_equals_one_update() -> None:
    data = random_data(9, n=30)
    whole = evaluate(data)
    streamed = IpadEvaluator()
    for start, stop in [(0, 5), (5, 6), (6, 19), (19, 30)]:
        streamed.update(*(array[start:stop] for array in data))
    report = streamed.compute()
    assert report.counts == whole.counts
    for name in ARTIFACT_CLASSES:
        assert report.per_class[name] == pytest.approx(whole.per_class[name], abs=1e-12)


def test_report_json_and_table() -> None:
    report = evaluate(random_data(10, labels=np.arange(24) % 3))
    stored = json.loads(report.to_json())
    assert stored["counts"]["images"] == {"clean": 8, "ghosting": 8, "flare": 8, "moire": 0}
    assert stored["counts"]["pixels"] == 24 * 16 * 16
    assert set(stored["counts"]) >= {"regions", "positive_pixels"}
    table = report.table()
    assert [column.header for column in table.columns] == ["Class", *METRIC_NAMES]
    assert table.row_count == 1 + len(ARTIFACT_CLASSES)
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert f"{100 * report.overall['C-AP']:.2f}" in text
    assert "–" in text  # moire has no images


@pytest.mark.parametrize(
    ("index", "bad"),
    [
        (0, np.zeros((24, 3))),
        (1, np.zeros(24)),
        (1, np.full(24, 4)),
        (2, np.zeros((24, 4, 16))),
        (3, np.zeros((24, 8, 8))),
    ],
)
def test_malformed_inputs_are_refused(index: int, bad: np.ndarray) -> None:
    data = list(random_data(11))
    data[index] = bad
    with pytest.raises(ValueError):
        evaluate(tuple(data))


@pytest.mark.parametrize("index", [0, 2])
def test_nan_scores_are_refused(index: int) -> None:
    data = list(random_data(12))
    data[index][1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate(tuple(data))


def test_compute_before_update_is_refused() -> None:
    with pytest.raises(ValueError, match="no predictions"):
        IpadEvaluator().compute()
