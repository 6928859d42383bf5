"""A face gallery in SQLite: named people, their embeddings as float32 BLOBs, exact nearest-neighbour search in torch.

    gallery = Gallery("faces.db", model="facenet-light:3f2a9c01", dim=128)
    gallery.enroll("ada", embeddings, sources=["ada1.jpg"])
    matches = gallery.identify(queries, threshold=1.1)   # [Match(name or None, distance, nearest name)]

The gallery remembers the model that embedded its faces (a name and a fingerprint of the weights) and the embedding
width, and refuses embeddings from another model: distances between two models' embeddings mean nothing. A person's
distance to a query is the smallest distance to any of their enrolled embeddings (squared L2 on unit vectors, the
FaceNet convention, so 0 ≤ d ≤ 4).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmkit.errors import MMKitError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    person INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    embedding BLOB NOT NULL
);
"""
_VERSION = "1"
_TABLES = {"meta", "people", "faces"}


@dataclass
class Match:
    """The answer for one query face: the best match within the threshold, or None (unknown)."""

    name: str | None  # None: no enrolled person within the threshold
    distance: float  # to the nearest enrolled person (inf for an empty gallery)
    nearest: str | None  # that nearest person, even past the threshold


class Gallery:
    """An SQLite file of enrolled people. `model` and `dim` identify the embedding space; they are stored on first
    use and checked on every later open. A new or empty file becomes a gallery; any other SQLite database is refused
    and left as it was."""

    def __init__(self, path: str | Path, *, model: str, dim: int) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise MMKitError(f"{self.path}: not a file; give the path of a gallery database")
        if not self.path.parent.is_dir():
            raise MMKitError(f"{self.path.parent}: no such directory for the gallery database")
        try:
            # Callers serialize access (serve holds a lock); the connection may move between server threads.
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self.db.execute("PRAGMA foreign_keys = ON")
            if not self.db.execute("SELECT name FROM sqlite_master").fetchone():  # a new (or empty) file
                with self.db:  # one transaction: the tables and their meta, or nothing
                    self.db.executescript(f"BEGIN; {_SCHEMA}")
                    self.db.executemany(
                        "INSERT INTO meta VALUES (?, ?)",
                        [("model", model), ("dim", str(dim)), ("version", _VERSION)],
                    )
            stored = _gallery_meta(self.db, self.path)
        except sqlite3.DatabaseError as e:
            raise MMKitError(f"{self.path}: not a face gallery database ({e})") from e
        if stored.get("model") != model or stored.get("dim") != str(dim):
            raise MMKitError(
                f"{self.path}: gallery was enrolled with model {stored.get('model')} ({stored.get('dim')}-d), "
                f"not {model} ({dim}-d); use the same weights or a new database"
            )
        self.model, self.dim = model, dim

    @classmethod
    def _existing(cls, path: str | os.PathLike) -> Gallery:
        """An existing gallery opened whatever its model (listing and removing need no embeddings)."""
        path = Path(path)
        if not path.is_file():
            raise MMKitError(f"{path}: no such gallery database")
        try:
            db = sqlite3.connect(path)
            meta = _gallery_meta(db, path)
            db.close()
        except sqlite3.DatabaseError as e:
            raise MMKitError(f"{path}: not a face gallery database ({e})") from e
        return cls(path, model=meta.get("model", ""), dim=int(meta.get("dim", 0)))

    @classmethod
    def read_people(cls, path: str | os.PathLike) -> list[tuple[str, int]]:
        with cls._existing(path) as g:
            return g.people()

    @classmethod
    def remove_from(cls, path: str | os.PathLike, name: str) -> int:
        with cls._existing(path) as g:
            return g.remove(name)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------------------------
    def enroll(self, name: str, embeddings: Tensor, sources: list[str]) -> int:
        """Add `embeddings` [N, dim] of `name` (created if new), one source label (file name) each. Returns N."""
        name = name.strip()
        if not name:
            raise MMKitError("enroll: the person's name is empty")
        emb = embeddings.detach().float().cpu()
        if emb.ndim != 2 or emb.shape[1] != self.dim or len(sources) != emb.shape[0]:
            raise ValueError(f"expected [N, {self.dim}] embeddings and N sources, got {tuple(emb.shape)}")
        with self.db:  # one transaction: all faces or none
            self.db.execute("INSERT OR IGNORE INTO people (name) VALUES (?)", (name,))
            (pid,) = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            self.db.executemany(
                "INSERT INTO faces (person, source, embedding) VALUES (?, ?, ?)",
                [(pid, s, e.numpy().astype("<f4").tobytes()) for s, e in zip(sources, emb, strict=True)],
            )
        return emb.shape[0]

    def remove(self, name: str) -> int:
        """Forget `name` and their faces; the number of faces removed. An unknown name is an MMKitError."""
        row = self.db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise MMKitError(f"{self.path}: no person named {name!r} in the gallery")
        with self.db:
            (n,) = self.db.execute("SELECT COUNT(*) FROM faces WHERE person = ?", row).fetchone()
            self.db.execute("DELETE FROM faces WHERE person = ?", row)
            self.db.execute("DELETE FROM people WHERE id = ?", row)
        return n

    # --- reading -------------------------------------------------------------------------------------------------
    def people(self) -> list[tuple[str, int]]:
        """(name, number of enrolled faces), sorted by name."""
        return self.db.execute(
            "SELECT p.name, COUNT(f.id) FROM people p LEFT JOIN faces f ON f.person = p.id "
            "GROUP BY p.id ORDER BY p.name"
        ).fetchall()

    def embeddings(self) -> tuple[Tensor, list[str]]:
        """All enrolled embeddings [M, dim] and the person's name of each row."""
        rows = self.db.execute(
            "SELECT f.id, p.name, f.embedding FROM faces f JOIN people p ON p.id = f.person ORDER BY f.id"
        ).fetchall()
        if not rows:
            return torch.zeros(0, self.dim), []
        for row, name, blob in rows:
            if not isinstance(blob, bytes) or len(blob) != 4 * self.dim:
                what = f"{len(blob)} bytes" if isinstance(blob, bytes) else f"a {type(blob).__name__}"
                raise MMKitError(
                    f"{self.path}: face {row} of {name!r}: an embedding of {what}, not {self.dim} float32 "
                    f"({4 * self.dim} bytes); remove {name!r} and enroll them again"
                )
        emb = np.stack([np.frombuffer(blob, dtype="<f4") for _, _, blob in rows])
        return torch.from_numpy(emb.copy()), [name for _, name, _ in rows]

    def identify(self, queries: Tensor, threshold: float) -> list[Match]:
        """The nearest enrolled person of each query [Q, dim] (squared L2), or None past `threshold`."""
        emb, names = self.embeddings()
        q = queries.detach().float().cpu()
        if not names:
            return [Match(None, float("inf"), None) for _ in range(q.shape[0])]
        d = torch.cdist(q, emb).square()  # [Q, M]
        best, idx = d.min(dim=1)
        return [
            Match(names[i] if b <= threshold else None, float(b), names[i])
            for b, i in zip(best.tolist(), idx.tolist(), strict=True)
        ]


def _gallery_meta(db: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The meta of a gallery database; MMKitError for any other SQLite database (nothing is written to it)."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if tables >= _TABLES else {}
    if "version" not in meta:
        found = f"tables {', '.join(sorted(tables))}" if tables else "no tables"
        raise MMKitError(
            f"{path}: an SQLite database that is not an mmkit face gallery ({found}); "
            "give a gallery, or a new file to start one"
        )
    if meta["version"] != _VERSION:
        raise MMKitError(
            f"{path}: face gallery version {meta['version']}; this mmkit reads version {_VERSION}"
        )
    return meta
