"""The `mmkit` command. The typer app lives in root.py; this package's __init__ stays empty of it, so that a task's
cli.py can import `mmkit.cli.common` without building the app that imports every task's cli.py (an import cycle).
"""

from typing import Any


def main(argv: list[str] | None = None) -> None:
    from mmkit.cli.root import main as run

    run(argv)


def __getattr__(name: str) -> Any:
    if name == "app":
        from mmkit.cli.root import app

        return app
    raise AttributeError(f"module 'mmkit.cli' has no attribute {name!r}")
