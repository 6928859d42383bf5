"""The tutorials stay true.

- Every `mmkit ...` command line in docs/tutorials/*.md (also `python -m mmkit`, `torchrun ... -m mmkit`) parses
  against the real typer app: subcommands exist, options exist and take values of the right type, required
  options are given; names that mmkit resolves (models, optimizers, schedules, ...) are known.
- The `>>>` examples in the tutorials run as doctests, page by page, in a scratch folder.
- Other ```python blocks at least compile.
- The example scripts the tutorials walk through run in quick mode and produce what they say.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
SHELL_LANGS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SEPARATORS = {";", "&&", "||", "|", "&"}
REDIRECTS = {">", ">>", "<", ">&", "&>"}


# ---------------------------------------------------------------------------------------------------------------------
# Reading the pages


def code_blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, code, line number of the first code line) for each fenced block."""
    text = page.read_text()
    return [(m[1], m[2], text.count("\n", 0, m.start(2)) + 1) for m in FENCE.finditer(text)]


def _commands_in_line(line: str) -> list[list[str]]:
    """Each simple command of a shell line as tokens, without prompts, env assignments and redirections."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, current, skip_next = [], [], False
    for tok in lexer:
        if tok in SEPARATORS:
            commands.append(current)
            current = []
        elif tok in REDIRECTS:
            if current and current[-1].isdigit():  # 2>file
                current.pop()
            skip_next = True
        elif skip_next:
            skip_next = False
        else:
            current.append(tok)
    commands.append(current)
    out = []
    for cmd in commands:
        while cmd and re.fullmatch(r"[A-Za-z_]\w*=.*", cmd[0]):  # OMP_NUM_THREADS=1 mmkit ...
            cmd = cmd[1:]
        if cmd:
            out.append(cmd)
    return out


def mmkit_args(tokens: list[str]) -> list[str] | None:
    """The arguments after `mmkit` (the program, `python -m mmkit`, `torchrun ... -m mmkit`), else None."""
    if Path(tokens[0]).name == "mmkit":
        return tokens[1:]
    for i in range(len(tokens) - 1):
        if tokens[i] == "-m" and tokens[i + 1] == "mmkit":
            return tokens[i + 2 :]
    return None


def documented_commands(page: Path) -> list[tuple[int, str, list[str]]]:
    """(line, text, mmkit arguments) for every mmkit invocation in the page's shell blocks."""
    found = []
    for lang, code, first in code_blocks(page):
        if lang not in SHELL_LANGS:
            continue
        lines = code.splitlines()
        i = 0
        while i < len(lines):
            lineno, line = first + i, lines[i]
            while line.rstrip().endswith("\\") and i + 1 < len(lines):  # continuation lines
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            i += 1
            line = re.sub(r"^\s*\$\s+", "", line)
            for tokens in _commands_in_line(line):
                args = mmkit_args(tokens)
                if args is not None:
                    found.append((lineno, line.strip(), args))
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Checking a command line against the CLI


def _known_values() -> dict[str, tuple[str, ...]]:
    from mmkit.engine.optim import INITS, OPTIMIZERS, SCHEDULES
    from mmkit.engine.runtime import PRECISIONS
    from mmkit.models import list_models

    return {
        "model": tuple(list_models()),
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "init": INITS,
        "precision": PRECISIONS,
        "format": ("onnx", "torchscript"),
    }


def check_command(args: list[str]) -> str:
    """Parse `mmkit <args>` as the CLI would, without running it; returns the command path ("classify train").
    Raises the CLI's usage error (or AssertionError) when the line is not valid."""
    from mmkit.cli import app

    cmd = typer.main.get_command(app)
    path, rest = [], list(args)
    while hasattr(cmd, "commands"):  # a group: the next word names a subcommand
        assert rest and not rest[0].startswith("-"), f"missing subcommand after {' '.join(['mmkit', *path])}"
        name = rest.pop(0)
        assert name in cmd.commands, f"no command {name!r} in {' '.join(['mmkit', *path])}"
        path.append(name)
        cmd = cmd.commands[name]
    if "--help" in rest:
        return " ".join(path)
    ctx = cmd.make_context(" ".join(["mmkit", *path]), rest)
    known = _known_values()
    if path[-1] != "export":
        known.pop("format")
    for key, allowed in known.items():
        value = ctx.params.get(key)
        if isinstance(value, str):
            assert value in allowed, f"--{key} {value}: not one of {', '.join(allowed)}"
    data = ctx.params.get("data")
    if isinstance(data, str) and data and "/" not in data and not Path(data).suffix:
        from mmkit.data import is_builtin
        from mmkit.data.detection import DETECTION_BUILTINS
        from mmkit.data.faces import BUILTIN_FACES, BUILTIN_FACES_LARGE
        from mmkit.data.videos import BUILTIN_CLIPS

        others = (*DETECTION_BUILTINS, BUILTIN_FACES, BUILTIN_FACES_LARGE, BUILTIN_CLIPS)
        known_data = is_builtin(data) or data in others
        assert known_data, f"--data {data}: not a builtin dataset (and not a path)"
    return " ".join(path)


def test_the_checker_rejects_stale_lines():
    """Guard for the guard: each kind of stale line fails."""
    from typer.exceptions import TyperException  # base of the usage errors of typer's click

    assert check_command(["classify", "train", "--data", "digits", "--epochs", "2"]) == "classify train"
    assert check_command(["classify", "train", "--help"]) == "classify train"
    assert (
        check_command(["detect", "train", "--data", "digit-scenes", "--model", "localizer"]) == "detect train"
    )
    bad = [
        ["classify", "trian", "--data", "digits"],  # unknown subcommand
        ["classify", "train", "--data", "digits", "--epoch", "2"],  # unknown option
        ["classify", "train", "--data", "digits", "--epochs", "two"],  # wrong type
        ["classify", "eval", "--data", "digits"],  # missing required --weights
        ["classify", "train", "--data", "digits", "--model", "resnet101"],  # unregistered model
        ["classify", "train", "--data", "digits", "--optimizer", "adagrad"],  # unknown optimizer
        ["classify", "train", "--data", "cifar99"],  # neither builtin nor path
        ["detect", "train", "--data", "digit-scene"],  # not the builtin detection set
        ["classify"],  # missing subcommand
    ]
    for args in bad:
        with pytest.raises((TyperException, AssertionError)):
            check_command(args)
    line = "OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -m mmkit classify train --data digits 2>/dev/null | tail"
    cmds = [mmkit_args(t) for t in _commands_in_line(line)]
    assert cmds == [["classify", "train", "--data", "digits"], None]


def test_tutorial_pages_exist():
    names = {p.name for p in TUTORIALS}
    assert {"01-fundamentals.md", "02-cnn-classification.md"} <= names
    index = (ROOT / "docs" / "index.md").read_text()
    for page in TUTORIALS:  # the table of contents links every tutorial, and the links resolve
        assert f"tutorials/{page.name}" in index, f"docs/index.md does not link {page.name}"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", index):
        if "://" not in target:
            assert (ROOT / "docs" / target).exists(), f"docs/index.md links a missing file: {target}"


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.name)
def test_every_command_line_parses(page: Path):
    commands = documented_commands(page)
    failures = []
    for lineno, text, args in commands:
        try:
            check_command(args)
        except Exception as e:  # report every stale line of the page at once
            failures.append(f"{page.name}:{lineno}: {text}\n    {type(e).__name__}: {e}")
    assert not failures, "stale command lines:\n" + "\n".join(failures)


def test_the_course_commands_are_documented():
    """The pages show what modules 1 to 3 promise (so a page cannot go quiet and still pass)."""
    covered = {}
    for name in (
        "01-fundamentals.md",
        "02-cnn-classification.md",
        "03-object-detection.md",
        "03-face-recognition.md",
    ):
        page = ROOT / "docs" / "tutorials" / name
        covered[name] = {check_command(args) for _, _, args in documented_commands(page)}
    assert {"data list", "classify train", "classify eval", "classify predict"} <= covered[
        "01-fundamentals.md"
    ]
    assert {"models list", "classify train", "classify predict", "classify export"} <= covered[
        "02-cnn-classification.md"
    ]
    lines = " ".join(t for _, t, _ in documented_commands(ROOT / "docs/tutorials/02-cnn-classification.md"))
    for flag in ("--freeze-backbone", "--weights imagenet", "--precision", "--channels-last", "--compile"):
        assert flag in lines, f"module 2 shows no command with {flag}"
    assert "torchrun --nproc-per-node 2 -m mmkit classify train" in lines
    detection = {
        "data synth detection",
        "data convert",
        "detect anchors",
        "detect train",
        "detect eval",
        "detect predict",
        "detect export",
    }
    assert detection <= covered["03-object-detection.md"], detection - covered["03-object-detection.md"]
    faces = {
        "face detect",
        "data synth identities",
        "face train",
        "face eval",
        "face enroll",
        "face identify",
        "face verify",
        "face list",
        "face remove",
    }
    assert faces <= covered["03-face-recognition.md"], faces - covered["03-face-recognition.md"]
    lines = " ".join(t for _, t, _ in documented_commands(ROOT / "docs/tutorials/03-object-detection.md"))
    for flag in (
        "--format coco",
        "--from coco --to yolo",
        "--model yolov3-tiny",
        "--model localizer",
        "--save-dir",
    ):
        assert flag in lines, f"module 3 shows no command with {flag}"


# ---------------------------------------------------------------------------------------------------------------------
# Python in the pages


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.name)
def test_python_examples_run(page: Path, tmp_path, monkeypatch):
    """`>>>` blocks run as doctests (one namespace per page, in order, in a scratch folder); other python
    blocks must compile."""
    monkeypatch.chdir(tmp_path)
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    globs: dict = {"__name__": "__docs__"}
    ran = 0
    for lang, code, first in code_blocks(page):
        if ">>>" in code:
            test = parser.get_doctest(code, globs, page.name, str(page), first - 1)
            runner.run(test, clear_globs=False)
            globs = test.globs  # DocTest copies its globals: carry them to the next block
            ran += len(test.examples)
        elif lang == "python":
            compile(code, f"{page}:{first}", "exec")
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {ran} doctest examples in {page.name} failed (see output)"


# ---------------------------------------------------------------------------------------------------------------------
# The example scripts


EXAMPLES = {
    "tiny_network": ["--quick", "--project", "runs"],
    "transfer_learning": ["--quick", "--project", "runs", "--data-dir", "textures"],
}


@pytest.fixture(scope="module", autouse=True)
def _started_examples(request, tmp_path_factory):
    """Start the selected example scripts (quick mode) when the module starts, so that they run while the
    in-process tests do. One thread each: on a busy 2-core machine torch's default of one thread per core makes
    small models several times slower."""
    selected = {getattr(item, "originalname", item.name) for item in request.session.items}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    started = {}
    for name, args in EXAMPLES.items():
        if f"test_{name}_example" not in selected:
            continue
        cwd = tmp_path_factory.mktemp(name)
        cmd = [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args]
        with (cwd / "stdout.txt").open("w") as out, (cwd / "stderr.txt").open("w") as err:
            started[name] = (subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err), cmd, cwd)
    yield started
    for proc, _, _ in started.values():
        if proc.poll() is None:  # deselected half-way, or a test failed before waiting
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def examples(_started_examples) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The finished example runs: (result with stdout/stderr, working folder)."""
    out = {}
    for name, (proc, cmd, cwd) in _started_examples.items():
        proc.wait(timeout=300)
        stdout, stderr = (cwd / "stdout.txt").read_text(), (cwd / "stderr.txt").read_text()
        out[name] = (subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), cwd)
    return out


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def test_tiny_network_example(examples):
    import csv

    result, cwd = examples["tiny_network"]
    stdout = _ok(result)
    run = cwd / "runs" / "tiny" / "exp"
    m = re.search(r"tiny network: best val/acc ([\d.]+)% \(epoch (\d) of 2\) -> (\S+)", stdout)
    assert m, stdout
    assert Path(m[3]) == Path("runs/tiny/exp")
    for f in ("config.yaml", "metrics.csv", "curves.png", "report.html", "best.pt", "last.pt"):
        assert (run / f).is_file(), f
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard events"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    accs = [float(r["val/acc"]) for r in rows]
    assert float(m[1]) == pytest.approx(max(accs), abs=0.05)
    assert max(accs) > 80, "two epochs of Adam should reach 80% on the digits"  # chance is 10%
    assert float(rows[1]["train/loss"]) < float(rows[0]["train/loss"])


def test_transfer_learning_example(examples):
    result, cwd = examples["transfer_learning"]
    stdout = _ok(result)
    tree = cwd / "textures"
    for split, n in (("train", 4), ("val", 2)):
        for texture in ("brick", "grass", "gravel"):
            assert len(list((tree / split / texture).glob("*.png"))) == n
    run = cwd / "runs" / "classify" / "textures-py"
    assert (run / "best.pt").is_file() and (run / "report.html").is_file()
    assert (run / "best.onnx").is_file()
    m = re.search(r"max abs diff (\S+); ONNX Runtime val top1 ([\d.]+)%, agrees with PyTorch (\d+)%", stdout)
    assert m, stdout
    assert float(m[1]) < 1e-3
    assert m[3] == "100", "ONNX Runtime and PyTorch disagree on some image"

    import torch

    ck = torch.load(run / "best.pt", weights_only=True)
    assert ck["meta"]["model"] == "efficientnet_lite0" and ck["meta"]["classes"] == [
        "brick",
        "grass",
        "gravel",
    ]
    from mmkit.models import get_model

    pretrained = get_model("efficientnet_lite0", weights="imagenet").state_dict()
    assert torch.equal(ck["model"]["conv_stem.weight"], pretrained["conv_stem.weight"]), (
        "backbone was not frozen"
    )
    assert not torch.equal(ck["model"]["classifier.weight"][:3], pretrained["classifier.weight"][:3])
