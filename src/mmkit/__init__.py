"""mmkit: deep-learning multimedia analytics on PyTorch.

import mmkit
p = mmkit.load("runs/classify/digits/best.pt")     # the task's Predictor, whatever the task
p.predict(["digit.png"])
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("mmkit")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def load(source: Any, *, model: str | None = None, device: Any = "cpu") -> Any:
    """The predictor of any mmkit checkpoint or `"model:weights"` (see `mmkit.tasks.predictor.load`)."""
    from mmkit.tasks.predictor import load as load_predictor  # torch loads here, not on `import mmkit`

    return load_predictor(source, model=model, device=device)
