"""Datasets, readers and transforms. ``load_classification_data(spec)`` is the entry point for classification."""

from mmkit.data.builtin import DatasetInfo, is_builtin, list_datasets
from mmkit.data.classification import (
    ClassificationData,
    TensorImageDataset,
    collate_skip_none,
    load_classification_data,
    stratified_split,
)
from mmkit.data.transforms import TransformedDataset, build_transforms

__all__ = [
    "ClassificationData",
    "DatasetInfo",
    "TensorImageDataset",
    "TransformedDataset",
    "build_transforms",
    "collate_skip_none",
    "is_builtin",
    "list_datasets",
    "load_classification_data",
    "stratified_split",
]
