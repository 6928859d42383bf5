"""User-facing errors.

Anything the user can fix (a missing path, a corrupt file, a bad option) raises `MMKitError` with one line that
names the file and the problem. The CLI prints it as `error: ...` and exits with code 2; nothing else is caught.
"""

import re
import signal
import threading


class MMKitError(Exception):
    """An error caused by the input, reported to the user as one line (exit code 2).

    Raised in a DataLoader worker, it comes back to the main process as a new error of the same class whose
    message torch writes as "Caught MMKitError in DataLoader worker process 0.", the worker's traceback, and the
    original line last; that message is cut back to the original line."""

    exit_code = 2

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_from_worker(args[0], type(self).__name__),)
        super().__init__(*args)


def _from_worker(message: str, name: str) -> str:
    """The original message of torch's re-raised `message` for an error of class `name`, else `message`."""
    if not message.startswith(f"Caught {name} ") or "\nOriginal Traceback" not in message:
        return message
    # the traceback ends with "module.Class: message" (Class alone for builtins)
    last = list(re.finditer(rf"^(?:[\w.]+\.)?{name}: ", message, re.MULTILINE))
    return message[last[-1].end() :].rstrip("\n") if last else message


class TrainingDiverged(MMKitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3


class Interrupted(MMKitError):
    """Ctrl-C: the work stopped; the message says what was kept (exit code 130, as a shell's for SIGINT)."""

    exit_code = 130


# Ctrl-C raises KeyboardInterrupt wherever the main thread is. Where Python cannot raise (a __del__ run by the
# garbage collector, a C library's callback) it prints "Exception ignored" and goes on, and the Ctrl-C is lost:
# the handler below also remembers it, and long loops call `stop_if_interrupted` to raise it again.
_ctrl_c = threading.Event()


def _on_ctrl_c(signum, frame) -> None:
    _ctrl_c.set()
    raise KeyboardInterrupt


def catch_ctrl_c() -> None:
    """Install the remembering SIGINT handler (the CLI does, once per command; the main thread only)."""
    if threading.current_thread() is threading.main_thread():
        _ctrl_c.clear()
        signal.signal(signal.SIGINT, _on_ctrl_c)


def stop_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C came, even one that was swallowed where it landed."""
    if _ctrl_c.is_set():
        raise KeyboardInterrupt
