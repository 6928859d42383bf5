"""The folders the synthetic-data writers fill (``mmkit data synth identities``, ``... yt8m``): a writer owns a
folder whose ``README.txt`` begins with its marker line, and writes into no other folder that is not empty."""

from __future__ import annotations

from pathlib import Path

from mmkit.errors import MMKitError


def claim_output_folder(out: Path, marker: str, command: str) -> bool:
    """Make ``out`` ready for the writer whose README.txt begins with ``marker``: create it when missing; refuse
    (MMKitError) a file, or a folder that holds anything but an earlier output of that writer (``command`` names it
    in the error). True when ``out`` holds an earlier output: the caller removes what it writes again."""
    if out.exists() and not out.is_dir():
        raise MMKitError(f"{out}: exists and is not a folder")
    earlier = out.is_dir() and any(out.iterdir())
    if earlier:
        readme = out / "README.txt"
        first = readme.read_text(encoding="utf-8").split("\n", 1)[0] if readme.is_file() else ""
        if first != marker:
            raise MMKitError(f"{out}: not empty and not written by `{command}` (choose another folder)")
    out.mkdir(parents=True, exist_ok=True)
    return earlier
