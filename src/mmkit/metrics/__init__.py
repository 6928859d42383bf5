"""Metrics, one module per task family; they wrap reference implementations where one exists."""

from mmkit.metrics.classification import ClassificationMeter, topk_accuracy

__all__ = ["ClassificationMeter", "topk_accuracy"]
