"""The `train` commands `common.train_command` derives from the task's options and TrainConfig's fields."""

from dataclasses import MISSING

import pytest
import typer.main
import yaml
from _cli import mmkit

from mmkit.cli import app
from mmkit.engine.config import TrainConfig
from mmkit.options import cli_fields

TASKS = ["classify", "detect", "face", "video", "caption", "generate"]

# Each command's engine defaults that differ from TrainConfig's (its recipes' `defaults`), as before the options were
# declared once.
DEFAULTS = {
    "classify": {},
    "detect": dict(epochs=30, batch_size=16, weight_decay=5e-4, warmup=1.0, grad_clip=10.0),
    "face": dict(epochs=20, batch_size=128, lr=3e-3, weight_decay=5e-4, warmup=1.0),
    "video": dict(grad_clip=5.0),
    "caption": dict(grad_clip=5.0),
    "generate": dict(lr=2e-4, weight_decay=0.0, schedule="constant", grad_clip=0.0),
}


@pytest.mark.parametrize("task", TASKS)
def test_help_lists_the_task_and_engine_options(task, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = mmkit(capsys, task, "train", "--help")
    assert code == 0
    for flag in ("--data", "--epochs", "-e", "--batch-size", "-b", "--lr", "--grad-clip", "--threads"):
        assert flag in out, flag
    for flag in ("--name", "--project", "--exist-ok", "--resume", "--json"):
        assert flag in out, flag
    assert "Engine" in out  # the panel; which option sits in which panel is checked below


@pytest.mark.parametrize("task", TASKS)
def test_each_command_keeps_its_engine_defaults(task):
    cmd = typer.main.get_command(app).commands[task].commands["train"]
    got = {p.name: p.default for p in cmd.params}
    engine = {f.name: (None if f.default is MISSING else f.default) for f in cli_fields(TrainConfig)}
    expected = {**engine, **DEFAULTS[task]}
    assert {k: got[k] for k in expected} == expected
    panels = {p.name: p.rich_help_panel for p in cmd.params}
    assert panels["epochs"] == "Engine" and panels["resume"] == "Run" and panels["data"] is None


@pytest.mark.parametrize("task", TASKS)
def test_resume_needs_no_data_and_new_runs_do(task, capsys, tmp_path):
    code, _, err = mmkit(capsys, task, "train", "--resume", "--project", tmp_path)
    assert code != 0 and "no run with a last.pt to resume" in err and "--data" not in err
    code, _, err = mmkit(capsys, task, "train", "--resume", "--name", "x", "--project", tmp_path)
    assert code != 0 and "no checkpoint to resume" in err
    code, _, err = mmkit(capsys, task, "train", "--project", tmp_path)
    assert code != 0 and "--data is required" in err


def test_a_builtin_recipe_fills_what_the_command_line_did_not_give(capsys, tmp_path):
    code, _, err = mmkit(
        capsys,
        "classify",
        "train",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--project",
        tmp_path,
    )
    assert code == 0, err
    cfg = yaml.safe_load((tmp_path / "classify" / "exp" / "config.yaml").read_text())
    assert cfg["epochs"] == 1 and cfg["max_steps"] == 1  # given: kept
    assert (
        cfg["lr"] == 1e-2 and cfg["schedule"] == "onecycle"
    )  # the digits recipe, not TrainConfig's 1e-3/cosine
    assert cfg["task_args"]["img_size"] == 16 and cfg["task_args"]["label_smoothing"] == 0.1


def test_every_train_option_is_a_field_of_the_task_or_the_engine():
    """Options are declared once: each `train` parameter comes from a dataclass field (or is --resume/--json)."""
    from mmkit.tasks.registry import task_specs

    engine = {f.name for f in cli_fields(TrainConfig)}
    for spec in task_specs():
        cmd = typer.main.get_command(spec.cli()).commands["train"]
        names = {p.name for p in cmd.params} - {"ctx", "resume", "json"}
        assert engine <= names, spec.name
        for task_name in names - engine:
            assert task_name.isidentifier()


@pytest.mark.parametrize(
    "args, flag",
    [
        (["classify", "train", "--epochs", "two"], "--epochs"),
        (["generate", "train", "--crops", "0"], "--crops"),
    ],
)
def test_bad_option_values_are_usage_errors_not_tracebacks(capsys, args, flag):
    code, _, err = mmkit(capsys, *args)
    assert code == 2
    assert f"Invalid value for '{flag}'" in err and "Traceback" not in err
