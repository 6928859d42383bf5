"""The `mmkit` command: one typer app, a group per registered task (its package's cli.py), and the applications.

A CLI module parses options and calls the task API; it holds no training or model logic, and imports no torch until
a command runs (`mmkit --help` stays fast).
"""

from __future__ import annotations

import os
import sys

# OpenMP threads that spin while waiting fight every other process on a small machine (10x slower training of small
# models measured on 2 busy cores, see bench/README.md); passive waiting costs little when the machine is idle.
# Read when the OpenMP runtime loads, so it is set before torch is imported; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer

from mmkit.cli import analyze, data, demo, models, serve
from mmkit.cli.common import run_cli
from mmkit.tasks.registry import task_specs

app = typer.Typer(
    name="mmkit",
    help="Deep-learning multimedia analytics: train, evaluate, apply and export classic multimedia models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
for _spec in task_specs():
    app.add_typer(_spec.cli(), name=_spec.name, help=_spec.help)
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.command("demo")(demo.demo)
app.command("analyze")(analyze.analyze)
app.command("serve")(serve.serve)


def _print_version(value: bool) -> None:
    if value:
        from mmkit import __version__

        typer.echo(f"mmkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    pass


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_cli(app, argv))
