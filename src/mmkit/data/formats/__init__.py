"""One reader (and writer) per on-disk format: image files, ImageFolder trees, CIFAR pickles, IDX files, YOLO and
COCO, caption JSONs, LFW pairs, videos, YouTube-8M TFRecords, matting folders.

The names below load on first use, so that a module of this package that needs no torch (pairs, captions, idx)
can be imported without the others.
"""

from mmkit.lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    cifar="CifarData find_cifar_dir read_cifar",
    idx="is_idx_dir read_idx read_idx_split",
    imagefolder="ImageFolderDataset find_classes index_image_folder",
    images="IMG_EXTENSIONS check_image is_image_file read_image",
)
__all__ = sorted(__getattr__.exports)
