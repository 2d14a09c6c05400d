"""Evaluation of IPAD predictions with the paper's seven metrics (see ``metrics`` for definitions)."""

from ipad_qc.evaluation.metrics import IpadEvaluator
from ipad_qc.evaluation.report import IMAGE_METRICS, METRIC_NAMES, PIXEL_METRICS, EvaluationReport

__all__ = ["IMAGE_METRICS", "METRIC_NAMES", "PIXEL_METRICS", "EvaluationReport", "IpadEvaluator"]
