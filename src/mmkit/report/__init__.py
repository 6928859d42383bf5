"""Run reports: plots (PNG, drawn headless) and a single self-contained HTML page."""

from mmkit.report.html import Section, write_report
from mmkit.report.plots import plot_confusion_matrix, plot_curves, plot_predictions, save_image_grid

__all__ = [
    "Section",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_predictions",
    "save_image_grid",
    "write_report",
]
