"""Hostile and careless use of runs and writers: Ctrl-C, options beside --resume, run names that lead elsewhere,
folders that cannot be written, damaged checkpoints and what a killed run leaves behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _cli import mmkit, train
from _toy import ToyTask

from mmkit.engine import TrainConfig, Trainer, load_checkpoint, save_checkpoint
from mmkit.errors import MMKitError

CMD = [sys.executable, "-m", "mmkit"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LONG = ["--data", "digits", "--epochs", "200", "--batch-size", "128", "--device", "cpu"]  # seconds an epoch
QUICK = ["--data", "digits", "--epochs", "1", "--max-steps", "2", "--batch-size", "32", "--device", "cpu"]


def _interrupt(args: list, ready) -> subprocess.CompletedProcess:
    """Run `mmkit ARGS...`, send it SIGINT (Ctrl-C) once `ready()` is true, and wait for it to end."""
    proc = subprocess.Popen(
        [*CMD, *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# --------------------------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_during_train_exits_130_and_says_which_checkpoint_is_kept(tmp_path):
    last = tmp_path / "classify" / "cut" / "last.pt"
    args = ["classify", "train", *LONG, "--project", tmp_path, "--name", "cut"]
    r = _interrupt(args, last.exists)
    assert r.returncode == 130, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    said = re.search(
        r"error: interrupted in epoch \d+/200; kept (\S+) of epoch (\d+); --resume continues it", r.stderr
    )
    assert said, r.stderr[-2000:]
    assert Path(said.group(1)) == last and load_checkpoint(last)["epoch"] == int(said.group(2))


def test_ctrl_c_during_synth_videos_leaves_no_half_written_folder(tmp_path):
    out = tmp_path / "motion"

    def some_clips_written() -> bool:
        return any(tmp_path.glob(".motion.*.partial/train/*/*.mp4"))

    r = _interrupt(["data", "synth", "videos", "--out", out, "--n", "5000", "--frames", "4", "--size", "32"],
                   some_clips_written)  # fmt: skip
    assert r.returncode == 130, r.stderr[-2000:]
    assert f"error: {out}: interrupted, not written" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # no output folder, no temporary one


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_where_it_landed_still_stops_the_writer(tmp_path):
    """Python drops an exception raised in a __del__ (and PyAV's callbacks): the Ctrl-C is remembered, and the
    writer's output is not kept."""
    from mmkit import errors
    from mmkit.data.output_folder import staged_output

    class SwallowsCtrlC:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # its KeyboardInterrupt is raised here, and ignored

    previous = signal.getsignal(signal.SIGINT)
    errors.catch_ctrl_c()
    try:
        with (
            pytest.raises(errors.Interrupted, match="interrupted, not written"),
            staged_output(tmp_path / "out") as partial,
        ):
            (partial / "a.txt").write_text("a")
            SwallowsCtrlC()  # collected at once
            (partial / "b.txt").write_text("b")  # the writer went on
        assert list(tmp_path.iterdir()) == []
    finally:
        signal.signal(signal.SIGINT, previous)
        errors._ctrl_c.clear()


def test_ctrl_c_outside_a_command_s_own_handling_is_exit_130(capsys, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("mmkit.cli.data.list_datasets", interrupted)
    code, _, err = mmkit(capsys, "data", "list")
    assert code == 130 and err.strip() == "error: interrupted"


def test_a_failed_writer_leaves_the_folder_as_it_was_and_a_finished_one_merges_into_it(tmp_path, monkeypatch):
    from mmkit.data import synthetic_matting
    from mmkit.data.synthetic_matting import write_synthetic_matting

    out = tmp_path / "mattes"
    (out / "train").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "train" / "keep.txt").write_text("mine too")
    real = synthetic_matting.matting_splits

    def failing(*a, **k):
        train, _ = real(*a, **k)
        return train, None  # writing the test split fails after the train split was written

    monkeypatch.setattr(synthetic_matting, "matting_splits", failing)
    with pytest.raises(TypeError):
        write_synthetic_matting(out, n_train=2, n_test=1)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "mattes", "mattes/notes.txt", "mattes/train", "mattes/train/keep.txt",
    ]  # fmt: skip
    monkeypatch.setattr(synthetic_matting, "matting_splits", real)
    write_synthetic_matting(out, n_train=2, n_test=1)
    assert (out / "notes.txt").read_text() == "mine" and (out / "train" / "keep.txt").is_file()
    assert len(list((out / "test" / "images").iterdir())) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["mattes"]


# --------------------------------------------------------------------------------------------------- --resume


def test_resume_extends_epochs_and_refuses_options_it_cannot_change(capsys, tmp_path):
    run = train(tmp_path, "classify", *QUICK)
    capsys.readouterr()
    code, out, err = mmkit(capsys, "classify", "train", "--resume", "--name", "t", "--project", tmp_path,
                           "--epochs", "4", "--lr", "5", "--model", "resnet18")  # fmt: skip
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--model, --lr cannot change (--epochs can, to extend it)" in err
    assert load_checkpoint(run / "last.pt")["epoch"] == 1

    code, out, err = mmkit(capsys, "classify", "train", "--resume", "--name", "t", "--project", tmp_path,
                           "--epochs", "2", "--data", "digits", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert "classify: 2 epochs" in out
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    assert TrainConfig.load(run / "config.yaml").epochs == 2
    assert len((run / "metrics.csv").read_text().splitlines()) == 3

    code, _, err = mmkit(capsys, "classify", "train", "--resume", "--name", "t", "--project", tmp_path,
                         "--epochs", "1")  # fmt: skip
    assert code == 2 and "holds 2 epochs, more than the 1 asked" in err


# --------------------------------------------------------------------------------------------------- run names


@pytest.mark.parametrize("name", ["../../escape_run", "/ABSOLUTE", "..", "a/b"])
def test_a_run_name_is_one_folder_name(capsys, tmp_path, name):
    name = name.replace("/ABSOLUTE", str(tmp_path / "elsewhere"))
    project = tmp_path / "deep" / "er" / "runs"
    code, _, err = mmkit(capsys, "classify", "train", *QUICK, "--project", project, "--name", name)
    assert code == 2 and err.startswith("error: --name") and "one folder name" in err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    code, _, err = mmkit(capsys, "classify", "train", "--resume", "--project", project, "--name", name)
    assert code == 2 and "one folder name" in err


# --------------------------------------------------------------------------------------------------- unwritable


def test_a_run_folder_that_cannot_be_written_is_one_error_line(capsys, tmp_path, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    code, _, err = mmkit(capsys, "classify", "train", *QUICK, "--project", a_file / "runs")
    assert code == 2 and "Traceback" not in err
    assert _error_line(err).startswith(
        f"error: {a_file / 'runs' / 'classify' / 'exp'}: cannot write the run folder"
    )

    read_only = tmp_path / "read_only"  # as a read-only folder behaves (chmod alone does not stop root)
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.is_relative_to(read_only):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = mmkit(capsys, "classify", "train", *QUICK, "--project", read_only)
    assert code == 2 and "Traceback" not in err
    assert _error_line(err).startswith(
        f"error: {read_only / 'classify' / 'exp'}: cannot write the run folder (Permission denied"
    )


def _error_line(err: str) -> str:
    """The one `error:` line of stderr (the task's INFO lines go there too)."""
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


# --------------------------------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_with_one_flipped_byte_is_refused(tmp_path):
    w = torch.arange(4096, dtype=torch.float32)
    path = save_checkpoint({"format": "mmkit-checkpoint", "version": 1, "w": w}, tmp_path / "ck.pt")
    assert torch.equal(load_checkpoint(path)["w"], w)
    data = bytearray(path.read_bytes())
    at = data.index(w[1000:1004].numpy().tobytes())
    data[at + 1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(MMKitError, match="ck.pt: corrupt checkpoint.*checksum"):
        load_checkpoint(path)


def test_a_checkpoint_without_a_checksum_still_loads(tmp_path):
    old = tmp_path / "old.pt"
    torch.save({"format": "mmkit-checkpoint", "version": 1, "w": torch.ones(3)}, old)
    assert torch.equal(load_checkpoint(old)["w"], torch.ones(3))


def test_an_unsafe_pickle_is_refused_naming_the_global(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "mmkit-checkpoint", "x": Evil()}, evil)
    with pytest.raises(
        MMKitError, match=r"evil.pt: refused to load, not a safe checkpoint \(it would import \w+\.system"
    ):
        load_checkpoint(evil)


def test_temporary_files_of_a_killed_run_are_removed_on_the_next_start(tmp_path):
    cfg = TrainConfig(task="toy", project=str(tmp_path), epochs=1, batch_size=32, lr=0.05)
    run = Trainer(ToyTask(), cfg, progress=False).fit().run_dir
    leftovers = [run / ".curves.png.k2j4x9.tmp", run / ".last.pt.a8f3.tmp", run / "metrics.csv.tmp"]
    for p in leftovers:
        p.write_bytes(b"")
    res = Trainer(ToyTask(), cfg.replace(epochs=2), resume=run / "last.pt", progress=False).fit()
    assert res.epochs == 2 and not [p for p in leftovers if p.exists()]
    assert sorted(p.name for p in run.glob("*.tmp")) == []
