"""A single self-contained HTML report: inline CSS, images as data URIs, no external references.

The page works offline and keeps working when moved, since nothing it shows lives outside the file. Everything
the caller passes in (titles, text, captions, table cells) is HTML-escaped.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mmkit

__all__ = ["Section", "atomic_output", "displayable", "write_report"]

log = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")

_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports and plots are meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Section:
    """One titled block of the report.

    text: plain text (escaped); blank lines separate paragraphs. images: (path, caption) pairs, embedded as
    data URIs. table: (header, rows); floats are shown with 4 significant digits.
    """

    title: str
    text: str | None = None
    images: list[tuple[Path, str]] = field(default_factory=list)
    table: tuple[list[str], list[list[Any]]] | None = None


REPORT_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --zebra:#f6f8fa; --accent:#0969da; }
* { box-sizing: border-box; }
body { margin:0; background:#fff; color:var(--fg);
  font:15px/1.55 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width:1100px; margin:0 auto; padding:28px 24px 48px; }
header { border-bottom:2px solid var(--line); margin-bottom:20px; padding-bottom:10px; }
h1 { font-size:1.8em; margin:0 0 4px; }
.subtitle { color:var(--muted); margin:0; }
nav { font-size:0.92em; margin:0 0 20px; color:var(--muted); }
nav a { color:var(--accent); text-decoration:none; margin-right:14px; white-space:nowrap; }
section { margin:0 0 34px; }
h2 { font-size:1.3em; border-bottom:1px solid var(--line); padding-bottom:4px; margin:0 0 12px; }
p { margin:0 0 10px; }
figure { margin:12px 0 18px; text-align:center; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; }
figcaption { color:var(--muted); font-size:0.9em; margin-top:4px; }
.missing { color:#9a6700; background:#fff8c5; padding:6px 10px; border-radius:4px; display:inline-block; }
.table-wrap { overflow-x:auto; margin:8px 0 16px; }
table { border-collapse:collapse; font-size:0.92em; min-width:40%; }
th, td { padding:5px 12px; border-bottom:1px solid var(--line); text-align:left; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
th { background:#eef1f4; position:sticky; top:0; cursor:pointer; user-select:none; }
th:after { content:" \\2195"; color:#9aa4ae; font-size:0.8em; }
tbody tr:nth-child(even) { background:var(--zebra); }
tbody tr:hover { background:#eaf2fe; }
footer { color:var(--muted); font-size:0.85em; border-top:1px solid var(--line); padding-top:8px; }
"""

# Click a header to sort that column (numeric when every cell has a data-v value); click again to reverse.
REPORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var tbody = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    var asc = th.dataset.dir !== "asc"; th.dataset.dir = asc ? "asc" : "desc";
    function key(r) { var c = r.cells[col]; if (!c) return ""; return c.dataset.v !== undefined ?
      parseFloat(c.dataset.v) : c.textContent.trim().toLowerCase(); }
    rows.sort(function (a, b) { var x = key(a), y = key(b);
      if (typeof x === "number" && typeof y === "number") { if (isNaN(x)) return 1; if (isNaN(y)) return -1; }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
    rows.forEach(function (r) { tbody.appendChild(r); });
  });
});
"""


def displayable(value: Any) -> str:
    """``str(value)`` with each byte of a file name that is not UTF-8 shown as the replacement character U+FFFD.

    Python reads such a byte as a lone surrogate (``b"caf\\xe9"`` -> ``"caf\\udce9"``), which opens the file
    but cannot be written as UTF-8 or drawn."""
    return _SURROGATE.sub("\ufffd", str(value))


def _esc(value: Any) -> str:
    return html.escape(displayable(value), quote=True)


def format_cell(value: Any) -> str:
    """Cell text: floats with 4 significant digits, None as empty, everything else via str()."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # numpy / torch scalars
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _cell_html(value: Any) -> str:
    text = _esc(format_cell(value))
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num" data-v="{_esc(repr(float(value)))}">{text}</td>'
    return f"<td>{text}</td>"


def _table_html(table: tuple[list[str], list[list[Any]]]) -> str:
    header, rows = table
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(_cell_html(v) for v in row) + "</tr>" for row in rows)
    return (
        f'<div class="table-wrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table></div>"
    )


def _text_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n")]
    return "\n".join(
        "<p>" + "<br>".join(_esc(line) for line in p.split("\n")) + "</p>" for p in paragraphs if p
    )


def _image_html(path: Path, caption: str) -> str:
    path = Path(path)
    cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    try:
        data = path.read_bytes()
    except OSError:
        log.warning("report image missing: %s", path)
        return f'<figure><span class="missing">(missing: {_esc(path.name)})</span>{cap}</figure>'
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<figure><img src="{uri}" alt="{_esc(caption or path.name)}">{cap}</figure>'


def _section_html(index: int, section: Section) -> str:
    parts = [f'<section id="s{index}"><h2>{_esc(section.title)}</h2>']
    if section.text:
        parts.append(_text_html(section.text))
    if section.table is not None:
        parts.append(_table_html(section.table))
    parts.extend(_image_html(p, c) for p, c in section.images)
    parts.append("</section>")
    return "\n".join(parts)


def render_report(title: str, sections: list[Section], *, subtitle: str | None = None) -> str:
    """The report as an HTML string (see `write_report`)."""
    nav = ""
    if len(sections) > 1:
        links = "".join(f'<a href="#s{i}">{_esc(s.title)}</a>' for i, s in enumerate(sections))
        nav = f"<nav>{links}</nav>"
    sub = f'<p class="subtitle">{_esc(subtitle)}</p>' if subtitle else ""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = "\n".join(_section_html(i, s) for i, s in enumerate(sections))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<style>{REPORT_CSS}</style>
</head>
<body>
<main>
<header><h1>{_esc(title)}</h1>{sub}</header>
{nav}
{body}
<footer>Generated by mmkit {_esc(mmkit.__version__)} on {stamp}.</footer>
</main>
<script>{REPORT_JS}</script>
</body>
</html>
"""


def write_report(path: Path, title: str, sections: list[Section], *, subtitle: str | None = None) -> Path:
    """Write a self-contained HTML report to `path` atomically and return the path.

    Images are embedded as base64 data URIs; a missing image shows "(missing: <name>)" instead of failing.
    """
    path = Path(path)
    page = render_report(title, sections, subtitle=subtitle)
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote report %s", path)
    return path
