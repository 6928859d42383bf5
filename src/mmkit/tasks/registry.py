"""The task registry: every package under `mmkit.tasks` that defines `SPEC` is a task.

    spec = get_task("classify")
    spec.cli()              # its typer app (`mmkit classify ...`)
    spec.predictor()        # its Predictor class: load a checkpoint, run it, evaluate, export
    spec.recipes            # its tuned settings as data, by builtin dataset

Nothing lists the tasks by hand: the CLI, `mmkit.load`, analyze, serve and the demo iterate `task_specs()`.
A package's `__init__` defines `SPEC` and imports no torch, so listing the tasks (and `mmkit --help`) stays fast; its
other public names load on first use, and none is also the name of one of its modules (an imported submodule
becomes an attribute of its package and would hide a function of the same name, e.g. `predict`).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, fields
from functools import cache
from typing import TYPE_CHECKING, Any

from mmkit.errors import MMKitError
from mmkit.options import Recipes

if TYPE_CHECKING:
    import typer

    from mmkit.tasks.predictor import Predictor


@dataclass(frozen=True)
class TaskSpec:
    """One task, declared in its package's `__init__` as `SPEC = TaskSpec(__name__, __doc__, what=..., order=...)`.

    Its name (the CLI group, and the `task` key of its checkpoints) is the package's; its one-line help is the first
    paragraph of the package's docstring; its recipes are `RECIPES` of its `options.py`; its engine Task is built by
    `factory` ("module:callable" in the package; by default `task:<Name>Task`).
    """

    package: (
        str  # "mmkit.tasks.classify": holds cli.py (`app`), predictor.py (`PREDICTOR`), options.py, task.py
    )
    doc: str  # the package's docstring: its first paragraph is the help `mmkit --help` shows
    what: str  # what its checkpoints hold, for messages: "a classifier"
    order: int = 100  # position in `mmkit --help` and the demo
    factory: str = (
        ""  # "module:callable" building the engine Task from the task options (default: task.<Name>Task)
    )

    @property
    def name(self) -> str:
        return self.package.rpartition(".")[2]

    @property
    def help(self) -> str:
        return " ".join(self.doc.strip().split("\n\n")[0].split())

    @property
    def recipes(self) -> Recipes:
        return importlib.import_module(f"{self.package}.options").RECIPES

    def cli(self) -> typer.Typer:
        return importlib.import_module(f"{self.package}.cli").app

    def predictor(self) -> type[Predictor]:
        return importlib.import_module(f"{self.package}.predictor").PREDICTOR

    def recipe(self, data: str | None, model: str | None = None) -> dict[str, Any]:
        return self.recipes.for_data(data, model)

    def make_task(self, task_args: dict[str, Any]) -> Any:
        """The engine Task of these task options."""
        module, _, attr = (self.factory or f"task:{self.name.capitalize()}Task").partition(":")
        return getattr(importlib.import_module(f"{self.package}.{module}"), attr)(**task_args)

    def train_config(self, data: str, **overrides: Any) -> Any:
        """The TrainConfig (task options in `task_args`) that trains on `data` with its recipe, then `overrides`
        (field names of TrainConfig or of the task's options): what `mmkit <task> train --data <data>` runs."""
        from mmkit.engine.config import TrainConfig

        engine_fields = {f.name for f in fields(TrainConfig)} - {"task", "task_args"}
        values = {**self.recipe(data, overrides.get("model")), **overrides, "data": data}
        engine = {k: v for k, v in values.items() if k in engine_fields}
        task_args = {k: v for k, v in values.items() if k not in engine_fields}
        return TrainConfig(task=self.name, **engine, task_args=task_args)

    def fit(self, data: str, *, progress: bool = True, **overrides: Any) -> Any:
        """Train on `data` with the recipe and `overrides` (see `train_config`); the engine's FitResult."""
        from mmkit.engine import Trainer

        cfg = self.train_config(data, **overrides)
        return Trainer(self.make_task(cfg.task_args), cfg, progress=progress).fit()


@cache
def task_specs() -> tuple[TaskSpec, ...]:
    """Every registered task, in `order`."""
    import mmkit.tasks as pkg

    specs = []
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.ispkg:
            continue
        spec = getattr(importlib.import_module(f"{pkg.__name__}.{mod.name}"), "SPEC", None)
        if isinstance(spec, TaskSpec):
            specs.append(spec)
    return tuple(sorted(specs, key=lambda s: (s.order, s.name)))


def get_task(name: str) -> TaskSpec:
    for spec in task_specs():
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in task_specs())
    raise MMKitError(f"{name}: unknown task (known: {known})")
