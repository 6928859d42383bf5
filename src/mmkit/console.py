"""The one rich console (stderr), shared by logging and progress bars so they do not garble each other."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def console() -> Console:
    from rich.console import Console  # rich's console loads on first output, not on `import mmkit`

    return Console(stderr=True)
