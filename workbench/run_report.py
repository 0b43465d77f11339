"""The report of a batch run: `summary.txt` and `index.html` in the run directory.

One writer for every batch command (`workbench run` over notebooks, `workbench sweep`
over parity or generation cases), so a team reads every run the same way: one row per
item with its status, seconds and, for a failure, what failed; then links to the files
the items wrote.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

STAMP_SUFFIX = ".run.json"  # a notebook's skip-when-current stamp: bookkeeping, not a report
REPORT_FILES = ("index.html", "summary.txt")


@dataclass
class RunResult:
    family: str
    name: str              # the item: a notebook stem (01_pipeline_wiring) or a sweep case (seed=0 ...)
    status: str            # ok | skipped | failed
    seconds: float | None
    output: Path           # what the row links: the executed notebook, the case's JSON
    detail: str = ""       # for a failure: what failed (the notebook's cell, the first divergence)
    # Filled for executed notebooks (workbench/notebooks.py `annotate`); optional for other items.
    verdict: str = ""             # PASS | FAIL when the item printed a parity verdict
    first_divergence: str = ""    # the first divergent checkpoint (or module) it named
    key_parameters: dict[str, Any] = field(default_factory=dict)  # the parameters it ran with, less None
    date: str = ""                # UTC, when it finished
    commit: str = ""              # the checkout's commit (+ "-dirty")
    thumbnail: Path | None = None  # a PNG of its last figure
    html: Path | None = None       # a rendering of the executed notebook (nbconvert)


def status_line(r: RunResult) -> str:
    seconds = "-" if r.seconds is None else f"{r.seconds:.1f}s"
    text = f"{r.family}/{r.name}: {r.status.upper() if r.status == 'failed' else r.status} ({seconds})"
    return text + (f" {r.detail}" if r.detail and r.status == "failed" else "")


def summary_table(results: Sequence[RunResult], item: str = "notebook") -> str:
    rows = [("family", item, "status", "seconds", "detail")]
    rows += [(r.family, r.name, r.status.upper() if r.status == "failed" else r.status,
              "-" if r.seconds is None else f"{r.seconds:.1f}", r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * len(lines[0].rstrip()))
    return "\n".join(line.rstrip() for line in lines)


THUMB_SUFFIX = ".thumb.png"


def _written_files(directory: Path, exclude: set[Path]) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p not in exclude
                  and not p.name.startswith(".") and not p.name.endswith(STAMP_SUFFIX)
                  and not p.name.endswith(THUMB_SUFFIX) and p.name not in REPORT_FILES)


def _thumbnail(path: Path | None) -> str:
    """The thumbnail inlined (the index stays readable when mailed alone)."""
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img class='thumb' alt='thumbnail' src='data:image/png;base64,{data}'>"


def _parameters(values: dict[str, Any]) -> str:
    return "<br>".join(f"{html.escape(str(k))}={html.escape(repr(v))}" for k, v in values.items())


def write_index(directory: Path, results: Sequence[RunResult], item: str = "notebook",
                title: str | None = None) -> Path:
    """`index.html` (a table of the items: status, verdict, first divergence, key
    parameters, date, commit, thumbnail, a link to each item's HTML rendering and its
    output; then the other files the items wrote) and `summary.txt` (the table as text).
    The default title names the families."""
    from workbench.io import atomic_write_text

    directory = Path(directory)
    families = sorted({r.family for r in results})
    title = title or f"workbench run: {', '.join(families) or 'nothing ran'}"
    atomic_write_text(directory / "summary.txt", summary_table(results, item) + "\n")
    rows = []
    for r in results:
        link = html.escape(os.path.relpath(r.output, directory))
        name = html.escape(r.name)
        if r.html is not None and Path(r.html).is_file():
            page_link = html.escape(os.path.relpath(r.html, directory))
            cell = f"<a href='{page_link}'>{name}</a> <small>(<a href='{link}'>{Path(r.output).suffix[1:]}</a>)</small>"
        else:
            cell = f"<a href='{link}'>{name}</a>"
        seconds = "-" if r.seconds is None else f"{r.seconds:.1f}"
        verdict = f"<span class='v{r.verdict.lower()}'>{html.escape(r.verdict)}</span>" if r.verdict else "-"
        rows.append(f"<tr class='{r.status}'><td>{html.escape(r.family)}</td><td>{cell}</td>"
                    f"<td>{r.status}</td><td>{verdict}</td><td>{html.escape(r.first_divergence) or '-'}</td>"
                    f"<td class='params'>{_parameters(r.key_parameters)}</td><td>{html.escape(r.date)}</td>"
                    f"<td><code>{html.escape(r.commit)}</code></td><td>{seconds}</td>"
                    f"<td>{_thumbnail(r.thumbnail)}</td><td>{html.escape(r.detail)}</td></tr>")
    exclude = {r.output for r in results} | {Path(r.html) for r in results if r.html is not None}
    files = _written_files(directory, exclude)
    links = "".join(f"<li><a href='{html.escape(os.path.relpath(f, directory))}'>"
                    f"{html.escape(os.path.relpath(f, directory))}</a></li>" for f in files)
    head = ("family", item, "status", "verdict", "first divergence", "key parameters", "date (UTC)", "commit",
            "seconds", "thumbnail", "detail")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 10px;text-align:left;vertical-align:top}}
tr.failed{{background:#fdd}} tr.ok{{background:#efe}} td.params{{font-size:0.8em;font-family:monospace}}
img.thumb{{max-height:80px;max-width:200px}} .vpass{{color:#1a7f37;font-weight:bold}}
.vfail{{color:#c0392b;font-weight:bold}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table><tr>{''.join(f"<th>{html.escape(h)}</th>" for h in head)}</tr>
{chr(10).join(rows)}
</table>
<h2>Reports and media</h2><ul>{links or '<li>none</li>'}</ul>
</body></html>
"""
    return atomic_write_text(directory / "index.html", page)
