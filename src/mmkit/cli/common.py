"""What every CLI module shares: error reporting, JSON output, logging, the train commands' engine options."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from mmkit.errors import MMKitError

log = logging.getLogger("mmkit")


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    from mmkit.engine.runtime import console

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
    try:
        app(args=argv, standalone_mode=False)
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
    return 0


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
# Engine options shared by every `train` command (typer reads these Annotated aliases).

Epochs = Annotated[int, typer.Option("--epochs", "-e", help="Training epochs.", rich_help_panel="Engine")]
BatchSize = Annotated[
    int,
    typer.Option(
        "--batch-size", "-b", help="Global batch size (split over DDP processes).", rich_help_panel="Engine"
    ),
]
Lr = Annotated[float, typer.Option("--lr", help="Base learning rate.", rich_help_panel="Engine")]
Optimizer = Annotated[
    str,
    typer.Option(
        "--optimizer", help="sgd | adam | adamw | rmsprop | rprop | lbfgs", rich_help_panel="Engine"
    ),
]
WeightDecay = Annotated[float, typer.Option("--weight-decay", help="Weight decay.", rich_help_panel="Engine")]
Momentum = Annotated[
    float, typer.Option("--momentum", help="Momentum (SGD, RMSprop).", rich_help_panel="Engine")
]
Schedule = Annotated[
    str, typer.Option("--schedule", help="cosine | step | onecycle | constant", rich_help_panel="Engine")
]
Warmup = Annotated[
    float, typer.Option("--warmup", help="Linear warm-up, in epochs.", rich_help_panel="Engine")
]
StepSize = Annotated[
    int, typer.Option("--step-size", help="Epochs between decays (step schedule).", rich_help_panel="Engine")
]
Init = Annotated[
    str | None, typer.Option("--init", help="Re-initialize weights: xavier | he.", rich_help_panel="Engine")
]
GradClip = Annotated[
    float | None, typer.Option("--grad-clip", help="Clip the global gradient norm.", rich_help_panel="Engine")
]
Accumulate = Annotated[
    int, typer.Option("--accumulate", help="Micro-batches per optimizer step.", rich_help_panel="Engine")
]
Precision = Annotated[
    str, typer.Option("--precision", help="fp32 | bf16 | fp16 (with a grad scaler)", rich_help_panel="Engine")
]
Device = Annotated[
    str, typer.Option("--device", help="auto | cpu | cuda | cuda:N | mps", rich_help_panel="Engine")
]
ChannelsLast = Annotated[
    bool, typer.Option("--channels-last", help="channels_last memory format.", rich_help_panel="Engine")
]
Compile = Annotated[
    bool, typer.Option("--compile", help="torch.compile the model.", rich_help_panel="Engine")
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers", help="DataLoader workers (default: 0 for in-memory data).", rich_help_panel="Engine"
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads for PyTorch ops (fewer than cores when the machine is busy).",
        rich_help_panel="Engine",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.", rich_help_panel="Engine")]
Patience = Annotated[
    int | None,
    typer.Option("--patience", help="Early stopping: epochs without improvement.", rich_help_panel="Engine"),
]
MaxSteps = Annotated[
    int | None,
    typer.Option("--max-steps", help="Cap batches per epoch (quick runs).", rich_help_panel="Engine"),
]
Name = Annotated[
    str | None,
    typer.Option(
        "--name", help="Run name: runs/<task>/<name> (default exp, exp2, ...).", rich_help_panel="Run"
    ),
]
Project = Annotated[Path, typer.Option("--project", help="Root folder of runs.", rich_help_panel="Run")]
ExistOk = Annotated[
    bool,
    typer.Option("--exist-ok", help="Reuse runs/<task>/<name> instead of a new name.", rich_help_panel="Run"),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue runs/<task>/<name>/last.pt exactly (latest run if no --name).",
        rich_help_panel="Run",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON line instead of the summary.")]
ModelArg = Annotated[
    list[str] | None,
    typer.Option(
        "--model-arg",
        help="KEY=VALUE passed to the model's constructor, repeatable (e.g. pool_size=3); values read as YAML.",
    ),
]


def model_kwargs(width: float, items: list[str] | None) -> dict[str, Any] | None:
    """Model constructor options from --width (when not 1) and --model-arg KEY=VALUE items."""
    import yaml

    out: dict[str, Any] = {"width": width} if width != 1.0 else {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise MMKitError(f"--model-arg {item}: expected KEY=VALUE, e.g. pool_size=3")
        out[key] = yaml.safe_load(value)
    return out or None


@dataclass
class EngineOptions:
    """The engine and run options of every `train` command, as `engine_options` adds them.

    The defaults here are the common ones; a command overrides its own with `engine_options(epochs=30, ...)`.
    """

    epochs: Epochs = 10
    batch_size: BatchSize = 64
    lr: Lr = 1e-3
    optimizer: Optimizer = "adamw"
    weight_decay: WeightDecay = 1e-4
    momentum: Momentum = 0.9
    schedule: Schedule = "cosine"
    warmup: Warmup = 0.0
    step_size: StepSize = 30
    init: Init = None
    grad_clip: GradClip = None
    accumulate: Accumulate = 1
    precision: Precision = "fp32"
    device: Device = "auto"
    channels_last: ChannelsLast = False
    compile: Compile = False
    workers: Workers = None
    threads: Threads = None
    seed: Seed = 0
    patience: Patience = None
    max_steps: MaxSteps = None
    name: Name = None
    project: Project = Path("runs")
    exist_ok: ExistOk = False
    resume: Resume = False
    json: Json = False


def engine_options(**defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator of a `train` command: adds the `EngineOptions` fields to its options (after its own, with
    these `defaults` in place of the dataclass's) and passes them to it collected in its `engine` parameter.

    typer reads the options from the returned function's `__signature__`.
    """
    names = [f.name for f in fields(EngineOptions)]
    unknown = set(defaults) - set(names)
    if unknown:
        raise TypeError(f"engine_options: unknown options {sorted(unknown)}")
    hints = get_type_hints(EngineOptions, include_extras=True)
    added = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=defaults.get(f.name, f.default),
            annotation=hints[f.name],
        )
        for f in fields(EngineOptions)
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)  # the command's own options, annotations resolved
        own = [p for p in sig.parameters.values() if p.name != "engine"]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            engine = EngineOptions(**{k: kwargs.pop(k) for k in names})
            return fn(**kwargs, engine=engine)

        wrapper.__signature__ = sig.replace(parameters=own + added)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def train_config(task: str, engine: EngineOptions, task_args: dict):
    """TrainConfig from a train command's engine options and its task's arguments."""
    from mmkit.engine import TrainConfig

    return TrainConfig(
        task=task,
        name=engine.name or "exp",
        project=str(engine.project),
        epochs=engine.epochs,
        batch_size=engine.batch_size,
        lr=engine.lr,
        optimizer=engine.optimizer,
        weight_decay=engine.weight_decay,
        momentum=engine.momentum,
        schedule=engine.schedule,
        warmup_epochs=engine.warmup,
        step_size=engine.step_size,
        init=engine.init,
        grad_clip=engine.grad_clip,
        accumulate=engine.accumulate,
        precision=engine.precision,
        device=engine.device,
        channels_last=engine.channels_last,
        compile=engine.compile,
        workers=engine.workers,
        threads=engine.threads,
        seed=engine.seed,
        patience=engine.patience,
        max_steps_per_epoch=engine.max_steps,
        exist_ok=engine.exist_ok,
        task_args={k: (str(v) if isinstance(v, Path) else v) for k, v in task_args.items()},
    )


def run_train(
    task: str,
    engine: EngineOptions,
    make_task: Callable[..., Any],
    task_args: Callable[[], dict[str, Any]],
) -> None:
    """What every `train` command does: fit `make_task(**task_args)` and print the summary (rank 0).

    With --resume the run continues from runs/<task>/<name>/last.pt with the task arguments and engine options
    saved in its config.yaml; otherwise `task_args()`, called only then (so it may check the task's options,
    e.g. that --data is given), supplies the task's arguments for a new config.
    """
    from mmkit.engine import TrainConfig, Trainer

    if engine.resume:
        last = resume_target(engine.project, task, engine.name)
        cfg = TrainConfig.load(last.parent / "config.yaml")
    else:
        last = None
        cfg = train_config(task, engine, task_args())
    res = Trainer(make_task(**cfg.task_args), cfg, resume=last).fit()
    if res.run_dir is not None:  # rank 0
        emit(*fit_summary(task, res), engine.json)


def resume_target(project: Path, task: str, name: str | None) -> Path:
    """The last.pt to resume: runs/<task>/<name>/last.pt, or the most recently written one of the task."""
    if name:
        p = Path(project) / task / name / "last.pt"
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
    summary = f"{task}: {res.epochs} epoch{'s' if res.epochs != 1 else ''} in {res.seconds:.1f}s{extra}, {best} -> {res.run_dir}"
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
