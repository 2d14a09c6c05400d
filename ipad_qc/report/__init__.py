"""HTML pages people look at: the scan report of one run folder and the comparison of two.

Both read the results database and mask files of a run folder, never the detector, so rebuilding a
page is cheap; see :func:`build_report` and :func:`compare_runs`.
"""

from ipad_qc.report.build import REPORT_NAME, PageResult, build_report
from ipad_qc.report.compare import Comparison, compare_runs
from ipad_qc.report.page import LAYOUTS, SINGLE_FILE_LIMIT
from ipad_qc.report.run import ReportError

__all__ = ["LAYOUTS", "REPORT_NAME", "SINGLE_FILE_LIMIT", "Comparison", "PageResult", "ReportError", "build_report",
           "compare_runs"]
