"""Datasets, readers and transforms. ``load_classification_data(spec)`` is the entry point for classification; every
builtin dataset (of every task) is in the registry, ``mmkit.data.registry``.

The names below load on first use, so that importing a torch-free module of this package (the registry, its
sources) does not import torch.
"""

from mmkit.lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    registry="DatasetInfo",
    builtin="is_builtin list_datasets",
    classification="ClassificationData TensorImageDataset collate_skip_none load_classification_data stratified_split",
    transforms="TransformedDataset build_transforms",
)
__all__ = sorted(__getattr__.exports)
