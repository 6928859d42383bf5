"""`mmkit models list`."""

from __future__ import annotations

from typing import Annotated

import typer

from mmkit.cli import common as c

app = typer.Typer(help="The model registry.", no_args_is_help=True)


@app.command("list", epilog="Example: mmkit models list --task classify")
def list_(
    task: Annotated[str | None, typer.Option("--task", help="Only models of this task.")] = None,
    json: c.Json = False,
) -> None:
    """Registered models, their default input size and the weights available for them."""
    from mmkit.models import get_model_info, list_models

    rows = []
    for name in list_models(task):
        info = get_model_info(name)
        rows.append(
            {
                "name": name,
                "task": info.task,
                "family": info.family,
                "input_size": info.default_input_size,
                "weights": sorted(info.weights),
                "description": info.description,
            }
        )
    if json:
        c.emit("", {"models": rows}, True)
        return
    for r in rows:
        w = ",".join(r["weights"]) or "-"
        typer.echo(
            f"{r['name']:<22} {r['task']:<9} {r['input_size']:>4}px  weights: {w:<10} {r['description']}"
        )
    typer.echo(f"{len(rows)} models")
