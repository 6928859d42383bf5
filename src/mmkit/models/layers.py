"""Building blocks shared by the model families: an activation chosen by name, an input-size guard.

    act = activation("elu")                  # nn.ELU(): relu, relu6, leakyrelu, elu, sigmoid, tanh, gelu
    act = activation("leakyrelu", negative_slope=0.2, inplace=True)
    require_min_size(model, 63, "alexnet")   # a smaller input is one MMKitError line, not a conv traceback

A model with an `act` option (smallcnn, the GANs, DBoF) builds its activations here, so `--model-arg act=elu`
means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmkit.errors import MMKitError

# name -> factory(inplace, negative_slope): the survey's list (§2.1), GELU, and ReLU6 (a DBoF option of the
# YouTube-8M starter code)
_ACTIVATIONS: dict[str, Callable[[bool, float], nn.Module]] = {
    "relu": lambda inplace, slope: nn.ReLU(inplace),
    "relu6": lambda inplace, slope: nn.ReLU6(inplace),
    "leakyrelu": lambda inplace, slope: nn.LeakyReLU(slope, inplace),
    "elu": lambda inplace, slope: nn.ELU(inplace=inplace),
    "sigmoid": lambda inplace, slope: nn.Sigmoid(),
    "tanh": lambda inplace, slope: nn.Tanh(),
    "gelu": lambda inplace, slope: nn.GELU(),
}
ACTIVATIONS = tuple(_ACTIVATIONS)


def activation(name: str, *, inplace: bool = False, negative_slope: float = 0.01) -> nn.Module:
    """A fresh activation module by name (case and `_`/`-` ignored: "LeakyReLU", "leaky_relu"). `inplace` applies
    where the module has it (ReLU, ReLU6, LeakyReLU, ELU); `negative_slope` is LeakyReLU's (PyTorch's 0.01 by default; a
    model passes its own, e.g. 0.2 in the GAN discriminators). An unknown name is an `MMKitError` listing the known
    ones."""
    key = str(name).lower().replace("_", "").replace("-", "")
    if key not in _ACTIVATIONS:
        raise MMKitError(f"act={name}: unknown activation; known: {', '.join(ACTIVATIONS)}")
    return _ACTIVATIONS[key](inplace, negative_slope)


class _MinSize:
    """The forward pre-hook of `require_min_size` (a class, not a closure: a model holding it still pickles)."""

    def __init__(self, min_size: int, name: str) -> None:
        self.min_size, self.name = min_size, name

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0]
        if torch.jit.is_tracing():  # an eager-mode check: exported graphs (ONNX, TorchScript) go without it
            return
        if x.ndim == 4 and min(x.shape[-2:]) < self.min_size:
            raise MMKitError(
                f"{self.name}: input {x.shape[-2]}x{x.shape[-1]} is too small; it needs at least "
                f"{self.min_size}x{self.min_size} (e.g. --img-size {self.min_size})"
            )


def require_min_size(model: nn.Module, min_size: int, name: str) -> nn.Module:
    """Make `model` refuse [B, C, H, W] inputs smaller than `min_size` on either side with one `MMKitError` line
    (a forward pre-hook: no parameters, the state_dict keys stay the model's own). Returns `model`."""
    model.register_forward_pre_hook(_MinSize(min_size, name))
    return model
