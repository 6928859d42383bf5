"""The `mmkit` command run in this process, as the end-to-end tests use it: calls, and module-scoped fixtures
for the synthetic data and the short training runs that a test module shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmkit.cli import app
from mmkit.cli.common import run_cli


def mmkit(capsys, *args) -> tuple[int, str, str]:
    """Run `mmkit ARGS...` (any values, given as text): exit code, stdout, stderr."""
    code = run_cli(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def train(project: Path, task: str, *args, name: str = "t") -> Path:
    """`mmkit TASK train ARGS... --project PROJECT --name NAME`, which must succeed: the run folder."""
    assert run_cli(app, [task, "train", *map(str, args), "--project", str(project), "--name", name]) == 0
    return project / task / name


def synth_fixture(kind: str, *args):
    """A module-scoped fixture: the folder that `mmkit data synth KIND --out FOLDER ARGS...` writes."""

    @pytest.fixture(scope="module")
    def folder(tmp_path_factory) -> Path:
        out = tmp_path_factory.mktemp(kind) / kind
        assert run_cli(app, ["data", "synth", kind, "--out", str(out), *map(str, args)]) == 0
        return out

    return folder


def run_fixture(task: str, *args, data: str | None = None):
    """A module-scoped fixture: the run folder of `mmkit TASK train ARGS...` in a fresh project; `data` names
    the fixture whose folder is given as --data."""

    @pytest.fixture(scope="module")
    def run(request, tmp_path_factory) -> Path:
        given = ["--data", request.getfixturevalue(data)] if data else []
        return train(tmp_path_factory.mktemp("runs"), task, *given, *args)

    return run
