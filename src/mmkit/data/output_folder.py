"""The folders the synthetic-data writers fill (``mmkit data synth ...``). Every writer fills a temporary folder
that becomes its output only when complete (``staged_output``): an error or Ctrl-C leaves no half-written set. Some
writers own their folder, whose ``README.txt`` begins with their marker line, and write into no other folder that is
not empty (``claim_output_folder``)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmkit.errors import Interrupted, MMKitError, stop_if_interrupted


def claim_output_folder(out: Path, marker: str, command: str) -> None:
    """Check that ``out`` may take the output of the writer whose README.txt begins with ``marker``: refuse
    (MMKitError) a file, or a folder that holds anything but an earlier output of that writer (``command`` names it
    in the error)."""
    if out.exists() and not out.is_dir():
        raise MMKitError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        readme = out / "README.txt"
        first = readme.read_text(encoding="utf-8").split("\n", 1)[0] if readme.is_file() else ""
        if first != marker:
            raise MMKitError(f"{out}: not empty and not written by `{command}` (choose another folder)")


@contextmanager
def staged_output(out: Path, replaces: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a new temporary folder beside ``out`` for a writer to fill; when the writer is done, what it wrote
    becomes ``out``: renamed to it when ``out`` does not exist, else moved into it (a file over the file of its
    name, a folder merged into the folder of its name) after removing the ``replaces`` entries of ``out`` (an
    earlier output's). An error removes the temporary folder and leaves ``out`` as it was; so does Ctrl-C, reported
    as an `Interrupted` error that says so."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MMKitError(f"{out}: exists and is not a folder")
    existed, resolved = out.exists(), out.resolve()
    tmp = resolved.parent / f".{resolved.name}.{secrets.token_hex(4)}.partial"
    tmp.mkdir(parents=True)  # not mkdtemp: the folder gets the usual permissions
    try:
        yield tmp
        stop_if_interrupted()  # a Ctrl-C swallowed while the writer ran: its output is not kept
        if not existed:
            tmp.rename(out)
            return
        for name in replaces:
            _remove(out / name)
        _merge(tmp, out)
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        left = "left as it was" if existed else "not written"
        raise Interrupted(f"{out}: interrupted, {left} (a set is moved there only when complete)") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _merge(src: Path, dst: Path) -> None:
    """Move what ``src`` holds into the folder ``dst``, folders into folders of the same name; remove ``src``."""
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and target.is_dir() and not target.is_symlink():
            _merge(entry, target)
            continue
        _remove(target)
        shutil.move(entry, target)
    src.rmdir()
