"""What every CLI module shares: error reporting, JSON output, logging set-up."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

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
        import click

        if isinstance(e, click.exceptions.Abort):
            return 1
        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0


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


ENGINE_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "momentum",
    "schedule",
    "warmup",
    "step_size",
    "init",
    "grad_clip",
    "accumulate",
    "precision",
    "device",
    "channels_last",
    "compile",
    "workers",
    "seed",
    "patience",
    "max_steps",
    "name",
    "project",
    "exist_ok",
)


def train_config(task: str, opts: dict, task_args: dict):
    """TrainConfig from a train command's locals()."""
    from mmkit.engine import TrainConfig

    return TrainConfig(
        task=task,
        name=opts["name"] or "exp",
        project=str(opts["project"]),
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        lr=opts["lr"],
        optimizer=opts["optimizer"],
        weight_decay=opts["weight_decay"],
        momentum=opts["momentum"],
        schedule=opts["schedule"],
        warmup_epochs=opts["warmup"],
        step_size=opts["step_size"],
        init=opts["init"],
        grad_clip=opts["grad_clip"],
        accumulate=opts["accumulate"],
        precision=opts["precision"],
        device=opts["device"],
        channels_last=opts["channels_last"],
        compile=opts["compile"],
        workers=opts["workers"],
        threads=opts.get("threads"),
        seed=opts["seed"],
        patience=opts["patience"],
        max_steps_per_epoch=opts["max_steps"],
        exist_ok=opts["exist_ok"],
        task_args={k: (str(v) if isinstance(v, Path) else v) for k, v in task_args.items()},
    )


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
