"""One reader per on-disk format. Classification: ImageFolder trees, CIFAR pickles, IDX files, image files."""

from mmkit.data.formats.cifar import CifarData, find_cifar_dir, read_cifar
from mmkit.data.formats.idx import is_idx_dir, read_idx, read_idx_split
from mmkit.data.formats.imagefolder import ImageFolderDataset, find_classes, index_image_folder
from mmkit.data.formats.images import IMG_EXTENSIONS, check_image, is_image_file, read_image

__all__ = [
    "IMG_EXTENSIONS",
    "CifarData",
    "ImageFolderDataset",
    "check_image",
    "find_cifar_dir",
    "find_classes",
    "index_image_folder",
    "is_idx_dir",
    "is_image_file",
    "read_cifar",
    "read_idx",
    "read_idx_split",
    "read_image",
]
