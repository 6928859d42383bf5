"""One reader (and writer) per on-disk format: image files, ImageFolder trees, CIFAR pickles, IDX files, YOLO and
COCO, caption JSONs, LFW pairs, videos, YouTube-8M TFRecords, matting folders.

Import a reader from its format's module (`from mmkit.data.formats.images import read_image`), so that a module
that needs no torch (pairs, captions, idx) is imported without the others.
"""
