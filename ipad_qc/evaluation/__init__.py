"""Evaluation of IPAD predictions with the paper's seven metrics (see ``metrics`` for definitions)."""

from ipad_qc.evaluation.metrics import IpadEvaluator
from ipad_qc.evaluation.report import (
    DEFAULT_PROTOCOL,
    IMAGE_METRICS,
    METRIC_NAMES,
    PIXEL_METRICS,
    PROTOCOLS,
    EvaluationReport,
    ProtocolMetrics,
)

__all__ = ["DEFAULT_PROTOCOL", "IMAGE_METRICS", "METRIC_NAMES", "PIXEL_METRICS", "PROTOCOLS", "EvaluationReport",
           "IpadEvaluator", "ProtocolMetrics"]
