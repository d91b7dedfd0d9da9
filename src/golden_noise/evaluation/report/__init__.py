"""The evaluation report: metrics.json, a per-image CSV, one offline HTML page, a PNG grid."""

from golden_noise.evaluation.report.rows import ImageRow, MetricInfo
from golden_noise.evaluation.report.writer import write_report

__all__ = ["ImageRow", "MetricInfo", "write_report"]
