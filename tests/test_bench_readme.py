"""bench/README.md's tables against the results the benchmark scripts wrote.

The convention: every table in bench/README.md has, after the previous table and before its first line, an HTML
comment that says where its numbers come from:

    <!-- from: results/detect_quality.json -->                  every figure is in that JSON (or these JSONs)
    <!-- from: results/x.json | text: dataset, recipe -->       ... except in the columns named (descriptions)
    <!-- not checked: REASON -->                               history, or numbers measured elsewhere

In a checked table the first column names the row and is not checked, nor are the columns named after `text:`.
Every other number must equal a number of the JSON within the rounding it is printed with (1,032 matches 1031.9;
0.588 matches 0.58804). A number in a cell with a % may also be a JSON fraction (95.12 % matches 0.9512); one
followed by M or k is in millions or thousands (2.18 M matches 2,179,512).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SOURCE = re.compile(r"<!--\s*(from|not checked):\s*(.*?)\s*-->")
NUMBER = re.compile(
    r"(?<![\w.])([−+-]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:e([−+-]?\d+))?(?![\w.]*\w)(\s?[Mk]\b)?"
)


@dataclass
class Table:
    line: int  # of its header, 1-based
    source: tuple[str, str] | None  # ("from", "results/x.json | text: a, b") or ("not checked", reason)
    header: list[str]
    rows: list[list[str]]


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # escaped \\| stays


def tables(text: str) -> list[Table]:
    """The Markdown tables of `text`, each with the last source comment between it and the table before it."""
    found, source, lines = [], None, text.split("\n")
    i = 0
    while i < len(lines):
        if m := SOURCE.search(lines[i]):
            source = (m.group(1), m.group(2))
        if lines[i].startswith("|"):
            start = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            block = [cells(row) for row in lines[start:i]]
            found.append(Table(start + 1, source, block[0], block[2:]))
            source = None
            continue
        i += 1
    return found


def numbers(value) -> list[float]:
    """Every number of a JSON document (booleans are not numbers)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers(v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return [float(value)]
    return []


def printed(cell: str) -> list[tuple[float, float, list[float]]]:
    """The numbers printed in a cell: (value, half of its last printed digit, the scales it may be printed at)."""
    out = []
    for m in NUMBER.finditer(cell.replace("**", "").replace("`", "")):
        sign, whole, decimals, exponent, suffix = m.groups()
        value = float(whole.replace(",", "") + (decimals or "")) * (-1 if sign in "−-" and sign else 1)
        half = 0.5 * 10 ** -(len(decimals) - 1 if decimals else 0)
        if exponent:
            scale = 10 ** int(exponent.replace("−", "-"))
            value, half = value * scale, half * scale
        scales = [1.0]
        if suffix:
            scales = [{"M": 1e6, "k": 1e3}[suffix.strip()]]
        elif "%" in cell:
            scales = [1.0, 0.01]
        out.append((value, half, scales))
    return out


def traces(value: float, half: float, scales: list[float], known: list[float]) -> bool:
    return any(abs(v / s - value) <= half * (1 + 1e-9) + 1e-12 for s in scales for v in known)


def checked(table: Table) -> tuple[list[Path], set[int]]:
    """The JSONs a table names and the indices of its text columns (the first one's included)."""
    spec, _, text = table.source[1].partition("|")
    paths = [BENCH / p for p in spec.split()]
    assert not text.strip() or text.strip().startswith("text:"), f"line {table.line}: `| text: a, b` expected"
    names = {n.strip() for n in text.strip().removeprefix("text:").split(",") if n.strip()}
    unknown = names - set(table.header)
    assert not unknown, f"line {table.line}: no column named {unknown}"
    return paths, {0} | {i for i, h in enumerate(table.header) if h in names}


def readme_tables() -> list[Table]:
    return tables((BENCH / "README.md").read_text())


def test_every_table_says_where_its_numbers_come_from():
    for t in readme_tables():
        assert t.source is not None, (
            f"bench/README.md line {t.line}: no <!-- from: ... --> or <!-- not checked: -->"
        )


@pytest.mark.parametrize(
    "table", [t for t in readme_tables() if t.source and t.source[0] == "from"], ids=lambda t: f"line{t.line}"
)
def test_each_figure_is_in_the_json_its_table_names(table):
    paths, text_columns = checked(table)
    known = []
    for p in paths:
        assert p.is_file() and not p.name.endswith(".quick.json"), f"line {table.line}: {p} is not a result"
        result = json.loads(p.read_text())
        when = [result.get(k, {}).get("date") for k in ("environment", "machine")]
        assert any(when), f"{p} does not say when it ran"
        known += numbers(result)
    missing = [
        (row[0], table.header[i], cell)
        for row in table.rows
        for i, cell in enumerate(row)
        if i not in text_columns
        for value, half, scales in printed(cell)
        if not traces(value, half, scales, known)
    ]
    assert not missing, (
        f"bench/README.md line {table.line}: figures not in {[p.name for p in paths]}: {missing}"
    )


def test_the_check_reads_numbers_as_printed():
    assert [v for v, _, _ in printed("**1,032 s** / −0.0065 and 2.18 M, lr 1e-3 (yolov3, 25×25)")] == [
        1032,
        -0.0065,
        2.18,
        0.001,
        25,
        25,
    ]
    ((value, half, scales),) = printed("95.12 %")
    assert traces(value, half, scales, [0.95123]) and not traces(value, half, scales, [0.9513])
    assert traces(*printed("1,032 s")[0], [1031.9]) and not traces(*printed("1,032 s")[0], [1031.4])
    assert traces(*printed("2.18 M")[0], [2179512.0]) and not traces(*printed("0.46 MP")[0], [0.429])
    (t,) = tables(
        "<!-- from: results/x.json | text: b -->\n\n| a | b | c |\n|---|---|---|\n| r 1 | 2 | 3 |\n"
    )
    assert t.source == ("from", "results/x.json | text: b") and t.rows == [["r 1", "2", "3"]]
    assert tables("| a |\n|---|\n| 1 |\n")[0].source is None
