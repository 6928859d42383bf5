"""Walk a data folder safely: each real file once, whatever links and special files the folder holds.

A link to a file is followed; so is a link to a folder that lies outside the tree being walked and has not been
walked yet. A link back into the tree, or up to a folder above it (a loop), is not followed, with a warning: the
folder it points to is walked under its own name, or would walk the tree again. A file reached twice (through a
link) is listed once, under its first path. A FIFO, socket or device file is skipped with a warning naming it:
opening one would block or never end. A broken link is listed, so that reading it reports why it failed. Hidden
names (a leading ".") are left out, and the files come in path order: each folder's names sorted, depth first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def _inside(path: str, folder: str) -> bool:
    """True when the real path `path` is `folder` or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _entries(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        logger.warning("%s: cannot list folder (%s)", folder, exc.strerror or exc)
        return []


def walk_files(
    top: str | os.PathLike,
    *,
    tree: str | os.PathLike | None = None,
    exclude: str | os.PathLike | None = None,
    recursive: bool = True,
) -> list[Path]:
    """The files under the folder `top` (see the module docstring), in path order.

    tree: the folder links must not lead back into (default `top`), e.g. a dataset's root while walking one of
    its class folders. exclude: a folder whose contents are left out (e.g. the output folder). recursive=False:
    only the files directly in `top`."""
    top_real = os.path.realpath(top)
    tree_real = os.path.realpath(tree) if tree is not None else top_real
    exclude_real = os.path.realpath(exclude) if exclude is not None else None
    if exclude_real is not None and _inside(top_real, exclude_real):
        return []
    seen_dirs = {(st.st_dev, st.st_ino) for st in map(os.stat, {top_real, tree_real})}
    files: dict[str, Path] = {}  # real path -> the first path it was reached by
    stack = [(top_real, iter(_entries(os.fspath(top))))]
    while stack:
        real, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        link = entry.is_symlink()
        entry_real = os.path.realpath(entry.path) if link else os.path.join(real, entry.name)
        if entry.is_dir():
            if not recursive or (exclude_real is not None and _inside(entry_real, exclude_real)):
                continue
            st = entry.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs or (
                link and (_inside(entry_real, tree_real) or _inside(tree_real, entry_real))
            ):
                if link:
                    logger.warning(
                        "%s: link not followed (it leads back into the tree, or to a folder walked already)",
                        entry.path,
                    )
                continue
            seen_dirs.add(key)
            stack.append((entry_real, iter(_entries(entry.path))))
        elif entry.is_file() or (link and not os.path.exists(entry.path)):
            files.setdefault(entry_real, Path(entry.path))
        else:
            logger.warning("%s: skipped, not a regular file (a pipe, socket or device)", entry.path)
    return list(files.values())
