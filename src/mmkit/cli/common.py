"""What every CLI module shares: error reporting, JSON output, logging, the train commands' engine options."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from mmkit.errors import MMKitError, catch_ctrl_c
from mmkit.options import cli_fields, flags_of

log = logging.getLogger("mmkit")


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    from mmkit.console import console

    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger("mmkit")
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=console(), show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def run_cli(app: typer.Typer, argv: list[str] | None = None) -> int:
    """Run the typer app; turn `MMKitError` into one `error:` line on stderr and its exit code."""
    setup_logging()
    catch_ctrl_c()
    try:
        code = app(args=argv, standalone_mode=False)
    except MMKitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # click usage errors come through here with standalone_mode=False
        if isinstance(e, _aborts()):
            return 1
        if isinstance(e, _usage_errors()):
            e.show()
            return e.exit_code
        raise
    if code == 130:  # Ctrl-C that no command turned into an `Interrupted` error: typer returns its exit code
        print("error: interrupted", file=sys.stderr)
    return code if isinstance(code, int) else 0  # typer.Exit(n) comes back as n


def _usage_errors() -> tuple[type[Exception], ...]:
    """click's ClickException, and the one of the copy of click that typer >= 0.24 carries (typer.BadParameter's
    base of that name)."""
    import click

    vendored = [c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"]
    return (click.ClickException, *vendored)


def _aborts() -> tuple[type[BaseException], ...]:
    import click

    return (click.exceptions.Abort, typer.Abort)


def emit(summary: str, payload: dict[str, Any], as_json: bool) -> None:
    """Print the one-line human summary, or (with --json) one JSON line for machines on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=_jsonable) + "\n")
    else:
        typer.echo(summary)


def emit_items(
    key: str,
    results: list[dict],
    failures: list[tuple[str, str]],
    as_json: bool,
    line: Callable[[dict], str],
    summary: str,
) -> None:
    """What a command over many inputs prints: a line per result and the summary (or, with --json, one object with
    `key` and `errors`); then, if any input failed, one error line for them and a non-zero exit."""
    if as_json:
        emit("", {key: results, "errors": [{"path": p, "error": e} for p, e in failures]}, True)
    else:
        for r in results:
            typer.echo(line(r))
        typer.echo(summary)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise MMKitError(f"{failures[0][1]}{more}")


def emit_exports(task: str, files: list[tuple[str, Path, float | None]], format: str, as_json: bool) -> None:
    """The summary of an `export` command: each (graph, path, max abs difference from PyTorch) written, and the
    largest difference (JSON: `files`, `max_abs_diff`, and `path` when there is one file)."""

    def checked(diff: float | None) -> str:
        return f", max abs difference vs PyTorch {diff:.2e}" if diff is not None else ""

    diffs = [d for _, _, d in files if d is not None]
    worst = max(diffs) if diffs else None
    payload: dict[str, Any] = {
        "format": format,
        "max_abs_diff": worst,
        "files": [{"graph": g, "path": str(p), "max_abs_diff": d} for g, p, d in files],
    }
    if len(files) == 1:
        payload["path"] = str(files[0][1])
        summary = f"{task} export: {files[0][1]}{checked(worst)}"
    else:
        lines = [f"  {g}: {p}{checked(d)}" for g, p, d in files]
        summary = "\n".join([f"{task} export: {len(files)} {format} files{checked(worst)}", *lines])
    emit(summary, payload, as_json)


def _jsonable(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


# ---------------------------------------------------------------------------------------------------------------------
# Options: typer parameters derived from the dataclass fields that declare them (mmkit.options)


def typer_parameter(f: Field, hints: dict[str, Any], default: Any) -> inspect.Parameter:
    """The keyword parameter typer reads for option field `f`, with `default`."""
    meta = f.metadata["option"]
    kind = meta["cli_type"] or hints[f.name]
    bounds = {"min": meta["min"]} if meta["min"] is not None else {}
    opt = typer.Option(*flags_of(f), help=meta["help"], rich_help_panel=meta["panel"], **bounds)
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, opt]
    )


def option_alias(cls: type, name: str) -> Any:
    """The Annotated type of option `name` of `cls`, for commands that take it alone (e.g. eval's --device)."""
    f = next(f for f in cli_fields(cls) if f.name == name)
    return typer_parameter(f, get_type_hints(cls, include_extras=True), None).annotation


def _engine_config_cls() -> type:
    from mmkit.engine.config import TrainConfig

    return TrainConfig


BatchSize = option_alias(_engine_config_cls(), "batch_size")
Device = option_alias(_engine_config_cls(), "device")
Precision = option_alias(_engine_config_cls(), "precision")
Workers = option_alias(_engine_config_cls(), "workers")
Threads = option_alias(_engine_config_cls(), "threads")
Seed = option_alias(_engine_config_cls(), "seed")
Json = Annotated[bool, typer.Option("--json", help="Print one JSON line instead of the summary.")]
Weights = Annotated[
    str, typer.Option("--weights", "-w", help="A checkpoint (runs/<task>/<name>/best.pt), or a weights name.")
]
Images = Annotated[list[Path], typer.Argument(help="Image files.")]
ExportFormat = Annotated[str, typer.Option("--format", "-f", help="onnx | torchscript")]
ExportOut = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Output file (default: beside the weights); a model of several graphs writes one file per graph, "
        "named <stem>.<graph><suffix>.",
    ),
]
Data = Annotated[str, typer.Option("--data", "-d", help="Dataset: a builtin name or a folder.")]
Split = Annotated[str | None, typer.Option("--split", help="train | val | test")]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Folder for metrics.json and the pictures (default: a new folder under runs/)."
    ),
]
SaveDir = Annotated[
    Path | None, typer.Option("--save-dir", help="Write each image with its predictions drawn here.")
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue runs/<task>/<name>/last.pt exactly (latest run if no --name); --epochs extends it, "
        "--device, --workers and --threads may change, the other options are the run's.",
        rich_help_panel="Run",
    ),
]


def options_command(fn: Callable, name: str, options: type) -> Callable:
    """`fn(..., <name>: options)` as a command whose parameters are `fn`'s others, then the option fields of the
    dataclass `options` (each declared once there); the values given build the `options` instance `fn` receives."""
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != name]
    fields_, hints = cli_fields(options), get_type_hints(options, include_extras=True)
    defaults = {f.name: f.default for f in fields_}
    params = own + [typer_parameter(f, hints, defaults[f.name]) for f in fields_]

    def command(**kw: Any) -> Any:
        values = {f.name: _parsed(f, kw.pop(f.name)) for f in fields_}
        return fn(**kw, **{name: options(**values)})

    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        sorted(params, key=lambda p: p.kind)
    )
    command.__doc__, command.__name__ = fn.__doc__, fn.__name__
    return command


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user set `name` (command line or environment), rather than typer filling in its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def train_command(
    app: typer.Typer,
    task: str,
    options: type,
    *,
    example: str,
    extra_check: Callable | None = None,
) -> None:
    """Add `train` to `app`: the fields of `options` (the task's), then TrainConfig's, then --resume and --json.

    The task's `SPEC.factory` builds the engine Task from the task options; it is imported only when the command
    runs. Defaults come from the task's recipes: `defaults` in --help, and the builtin dataset's recipe for any
    option not given on the command line. `extra_check(task_args, engine_args)` may refuse a combination.
    """
    from mmkit.tasks.registry import get_task

    spec = get_task(task)
    cfg_cls = _engine_config_cls()
    task_fields, cfg_fields = cli_fields(options), cli_fields(cfg_cls)
    task_hints, cfg_hints = (
        get_type_hints(options, include_extras=True),
        get_type_hints(cfg_cls, include_extras=True),
    )
    defaults = spec.recipes.defaults

    def default_of(f: Field) -> Any:
        if f.name in defaults:
            return defaults[f.name]
        return f.default if f.default is not MISSING else None

    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        *(typer_parameter(f, task_hints, default_of(f)) for f in task_fields),
        *(typer_parameter(f, cfg_hints, default_of(f)) for f in cfg_fields),
        inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Resume),
        inspect.Parameter("json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Json),
    ]

    def train(ctx: typer.Context, **kw: Any) -> None:
        resume, as_json = kw.pop("resume"), kw.pop("json")
        recipe = spec.recipe(kw.get("data"), kw.get("model") if _given(ctx, "model") else None)
        for key, value in recipe.items():
            if key in kw and not _given(ctx, key):
                kw[key] = value
        task_args = {f.name: _parsed(f, kw[f.name]) for f in task_fields}
        engine_args = {f.name: kw[f.name] for f in cfg_fields}
        if resume:
            given = {f: task_args[f.name] for f in task_fields if _given(ctx, f.name)}
            given |= {
                f: engine_args[f.name] for f in cfg_fields if _given(ctx, f.name) and f.name not in _PLACE
            }
            resume_run(task, Path(kw["project"]), kw["name"] if _given(ctx, "name") else None, as_json, given)
        else:
            run_train(task, task_args, engine_args, as_json=as_json, check=extra_check)

    train.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    train.__doc__ = (
        f"Train {spec.what}; writes runs/{task}/<name>/ (checkpoints, metrics.csv, curves, report.html)."
    )
    app.command("train", epilog=f"Example: {example}")(train)


def _parsed(f: Field, value: Any) -> Any:
    parse = f.metadata["option"]["parse"]
    value = parse(value) if parse is not None else value
    return str(value) if isinstance(value, Path) else value


def run_train(
    task: str,
    task_args: dict[str, Any],
    engine_args: dict[str, Any],
    *,
    as_json: bool = False,
    check: Callable | None = None,
) -> None:
    """What every `train` command does: fit the task and print the summary (rank 0)."""
    from mmkit.engine import TrainConfig

    if check is not None:
        check(task_args, engine_args)
    _fit(TrainConfig(task=task, **engine_args, task_args=task_args), None, as_json)


# Options beside --resume: where the run is (what finds it, or is moot), and those it applies (more epochs extend
# the run; the others change where and how fast it runs, not what it computes).
_PLACE = ("name", "project", "exist_ok")
_RESUMABLE = ("epochs", "device", "workers", "threads")


def resume_run(
    task: str, project: Path, name: str | None, as_json: bool = False, given: dict[Field, Any] | None = None
) -> None:
    """`train --resume`: continue runs/<task>/<name>/last.pt (the latest run without a name) with the task
    arguments and engine options saved in its config.yaml. `given` holds the options given beside --resume (task
    and engine fields): the `_RESUMABLE` ones are applied, any other that differs from the run's is refused."""
    from mmkit.engine import TrainConfig

    last = resume_target(project, task, name)
    cfg = TrainConfig.load(last.parent / "config.yaml")
    given = given or {}
    saved = {**cfg.to_dict(), **cfg.task_args}
    fixed = [flags_of(f)[0] for f, v in given.items() if f.name not in _RESUMABLE and v != saved.get(f.name)]
    if fixed:
        raise MMKitError(
            f"{last.parent}: --resume continues the run with its own options; {', '.join(fixed)} cannot change "
            f"(--epochs can, to extend it)"
        )
    _fit(cfg.replace(**{f.name: v for f, v in given.items() if f.name in _RESUMABLE}), last, as_json)


def _fit(cfg: Any, last: Path | None, as_json: bool) -> None:
    from mmkit.engine import Trainer
    from mmkit.tasks.registry import get_task

    res = Trainer(get_task(cfg.task).make_task(cfg.task_args), cfg, resume=last).fit()
    if res.run_dir is not None:  # rank 0
        emit(*fit_summary(cfg.task, res), as_json)


def resume_target(project: Path, task: str, name: str | None) -> Path:
    """The last.pt to resume: runs/<task>/<name>/last.pt, or the most recently written one of the task."""
    if name:
        from mmkit.engine.logger import check_run_name

        p = Path(project) / task / check_run_name(name) / "last.pt"
        if not p.is_file():
            raise MMKitError(f"{p}: no checkpoint to resume")
        return p
    cands = sorted(Path(project, task).glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not cands:
        raise MMKitError(f"{Path(project) / task}: no run with a last.pt to resume")
    return cands[-1]


def fit_summary(task: str, res) -> tuple[str, dict]:
    best = (
        f"best {res.best_metric} {res.best_value:.4g} (epoch {res.best_epoch})"
        if res.best_value is not None
        else ""
    )
    extra = ", stopped early" if res.stopped_early else ""
    best = f", {best}" if best else ""
    summary = f"{task}: {res.epochs} epoch{'s' if res.epochs != 1 else ''} in {res.seconds:.1f}s{extra}{best} -> {res.run_dir}"
    payload = {
        "task": task,
        "run_dir": str(res.run_dir),
        "epochs": res.epochs,
        "seconds": round(res.seconds, 3),
        "best_metric": res.best_metric,
        "best_value": res.best_value,
        "best_epoch": res.best_epoch,
        "stopped_early": res.stopped_early,
        "metrics": res.last_metrics,
    }
    return summary, payload


# ---------------------------------------------------------------------------------------------------------------------
# Commands built from their options: the options several commands share are declared once, with their defaults

REQUIRED = inspect.Parameter.empty
SHARED: dict[str, tuple[Any, Any]] = {
    "weights": (Weights, REQUIRED),
    "images": (Images, REQUIRED),
    "data": (Data, REQUIRED),
    "split": (Split, None),
    "batch_size": (BatchSize, 64),
    "device": (Device, "auto"),
    "precision": (Precision, "fp32"),
    "seed": (Seed, 0),
    "out": (Out, None),
    "save_dir": (SaveDir, None),
}


def command(
    app: typer.Typer,
    verb: str,
    run: str | Callable[..., Any],
    shared: str = "",
    *,
    doc: str,
    example: str,
    show: Callable[[Any, dict[str, Any], bool], None],
    **options: Any,
) -> None:
    """Add `verb` to `app`. Its parameters: the `SHARED` options named in `shared` (space-separated), then `options`
    (`name=default` for a `SHARED` one with another default, `name=(annotation, default)` for the command's own;
    `REQUIRED`: no default), then --json. It calls `run` ("module:function", imported when the command runs, or a
    function) with every option by name and hands the result to `show(result, options, as_json)`."""
    specs = {name: SHARED[name] for name in shared.split()}
    for name, value in options.items():
        specs[name] = value if isinstance(value, tuple) else (SHARED[name][0], value)
    params = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, (annotation, default) in {**specs, "json": (Json, False)}.items()
    ]

    def cmd(**kw: Any) -> None:
        as_json = kw.pop("json")
        fn = run
        if isinstance(fn, str):
            module, _, name = fn.partition(":")
            fn = getattr(importlib.import_module(module), name)
        show(fn(**kw), kw, as_json)

    cmd.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    cmd.__doc__ = doc
    epilog = ("Examples: " if "\n\n" in example else "Example: ") + example
    app.command(verb, epilog=epilog)(cmd)


def own(flags: str, help: str, kind: Any, default: Any = REQUIRED) -> tuple[Any, Any]:
    """A command's own option for `command`, as (annotation, default): `flags` (its spellings separated by
    spaces: "--data -d"; a switch pair as typer writes it: "--letterbox/--no-letterbox") of type `kind`."""
    return Annotated[kind, typer.Option(*flags.split(), help=help)], default


def summary(line: Callable[[dict[str, Any]], str]) -> Callable[[Any, dict[str, Any], bool], None]:
    """`show` for a command that returns one result: the line `line(result)`, or the result as JSON."""
    return lambda result, options, as_json: emit(line(result), result, as_json)


def items(
    key: str, line: Callable[[dict[str, Any]], str], total: Callable[[list[dict], dict[str, Any]], str]
) -> Callable[[Any, dict[str, Any], bool], None]:
    """`show` for a command over many inputs that returns (results, failures): `emit_items` with a line per result
    and the summary `total(results, options)`."""

    def show(result: Any, options: dict[str, Any], as_json: bool) -> None:
        results, failures = result
        emit_items(key, results, failures, as_json, line, total(results, options))

    return show


def export_command(
    app: typer.Typer, task: str, *, example: str | None = None, doc: str | None = None, **options: Any
) -> None:
    """Add `export` to `app`: --weights, --format, --out, the task's own `options` (as for `command`; e.g. --model
    where the task has named weights), --json. The task's predictor writes its graph(s) (`Predictor.export`, which
    takes the other options) and the command prints each file; `doc` is the command's help."""

    def export(weights: str, format: str, out: Path | None, model: str | None = None, **kw: Any) -> Any:
        from mmkit.tasks.registry import get_task

        return (
            get_task(task).predictor().load(weights, model=model, device="cpu").export(format, out=out, **kw)
        )

    command(
        app,
        "export",
        export,
        "weights",
        doc=doc
        or "Export to ONNX or TorchScript and check the result against PyTorch (ONNX Runtime for ONNX).",
        example=example or f"mmkit {task} export --weights runs/{task}/exp/best.pt --format onnx",
        show=lambda files, options, as_json: emit_exports(task, files, options["format"], as_json),
        format=(ExportFormat, "onnx"),
        out=(ExportOut, None),
        **options,
    )
