"""The engine and run options that `common.engine_options` adds to every `train` command."""

import inspect
from dataclasses import asdict

import pytest
import typer.main

from mmkit.cli import app
from mmkit.cli.common import EngineOptions, engine_options, run_cli

TASKS = ["classify", "detect", "face", "video", "caption", "generate"]

# Each command's engine defaults that differ from EngineOptions'.
DEFAULTS = {
    "classify": {},
    "detect": dict(epochs=30, batch_size=16, weight_decay=5e-4, warmup=1.0, grad_clip=10.0),
    "face": dict(epochs=20, batch_size=128, lr=3e-3, weight_decay=5e-4, warmup=1.0),
    "video": dict(grad_clip=5.0),
    "caption": dict(grad_clip=5.0),
    "generate": dict(lr=2e-4, weight_decay=0.0, schedule="constant", grad_clip=0.0),
}


def mmkit(capsys, *args) -> tuple[int, str, str]:
    code = run_cli(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


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
    expected = {**asdict(EngineOptions()), **DEFAULTS[task]}
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


def test_engine_options_collects_the_options_into_one_parameter():
    @engine_options(epochs=3)
    def train(data: str = "", *, engine: EngineOptions) -> tuple[str, EngineOptions]:
        return data, engine

    params = list(inspect.signature(train).parameters)
    assert params[0] == "data" and "engine" not in params and params[1:] == list(asdict(EngineOptions()))
    data, engine = train(data="d", **{**asdict(EngineOptions()), "epochs": 3, "lr": 0.5})
    assert data == "d" and engine == EngineOptions(epochs=3, lr=0.5)
    with pytest.raises(TypeError, match="epoch"):
        engine_options(epoch=3)


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
