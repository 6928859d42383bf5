"""Options declared once: a dataclass field carries its default, its flags and its help text.

    @dataclass
    class ClassifyOptions:
        data: str = option("", "--data", "-d", help="Builtin name or folder.")
        model: str = option("smallcnn", "--model", "-m", help="Registered model name.")

The engine's `TrainConfig` and every task's options are written this way. The CLI derives its parameters from
the fields (`mmkit.cli.common.train_command`), a run's config.yaml stores them under the same names, and a recipe (a dict of
field names to values, see `Recipes`) fills in what the command line did not give. No torch here: `--help` reads
these without loading a model library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any


def option(
    default: Any = MISSING,
    *flags: str,
    help: str,
    panel: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    cli_type: Any = None,
    min: float | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line option.

    `flags`: "--name" and an optional short "-n" (default: the field name with dashes). `parse` turns the value
    typer gives (of `cli_type`, default the field's type) into the field's value, e.g. KEY=VALUE items into a dict.
    `min`: the smallest value the command line accepts (a usage error below it).
    """
    meta = {"flags": flags, "help": help, "panel": panel, "parse": parse, "cli_type": cli_type, "min": min}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"option": meta})
    return field(default=default, metadata={"option": meta})


def cli_fields(cls: type) -> list[Field]:
    """The fields of a dataclass that are command-line options, in declaration order."""
    return [f for f in fields(cls) if "option" in f.metadata]


def flags_of(f: Field) -> tuple[str, ...]:
    return f.metadata["option"]["flags"] or ("--" + f.name.replace("_", "-"),)


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """`--model-arg KEY=VALUE` items (values read as YAML) -> the model constructor's keyword arguments."""
    import yaml

    from mmkit.errors import MMKitError

    if isinstance(items, Mapping):  # already parsed (a config.yaml, or the Python API)
        return dict(items)
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise MMKitError(f"--model-arg {item}: expected KEY=VALUE, e.g. pool_size=3")
        out[key] = yaml.safe_load(value)
    return out


def model_args_option(help_extra: str = "") -> Any:
    """The `--model-arg KEY=VALUE` option every task has, stored as the dict `model_kwargs`."""
    return option(
        MISSING,
        "--model-arg",
        help="KEY=VALUE passed to the model's builder, repeatable (e.g. pool_size=3); values read as YAML."
        + help_extra,
        parse=parse_model_args,
        cli_type=list[str] | None,
        default_factory=dict,
    )


@dataclass(frozen=True)
class Recipes:
    """A task's tuned settings as data: `defaults` for any data, then one dict per builtin dataset.

    Keys are field names of `TrainConfig` or of the task's options; a value given on the command line (or passed
    explicitly from Python) always wins. The demo and bench scripts read the same recipes.
    """

    defaults: Mapping[str, Any] = field(default_factory=dict)
    by_data: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_data(self, data: str | None, model: str | None = None) -> dict[str, Any]:
        """`defaults` updated with the recipe of builtin `data` (none for folders and unknown names).

        A recipe is tuned for the model it names: with another `model` chosen, only `defaults` apply."""
        recipe = self.by_data.get(str(data), {}) if data else {}
        if model is not None and recipe.get("model", model) != model:
            recipe = {}
        return {**self.defaults, **recipe}
